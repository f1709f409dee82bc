"""SQL over buckets (`db.sql`, DuckDB), each beside the read it is made of, measured in the
same run:

- sql_one_day: one trading day of one bucket selected with `WHERE Epoch >= s AND Epoch <= e`
  (the bounds limit the read), the same statement with an `OR` that gives no bound (the
  whole year is read, DuckDB filters), and `db.read(key, s, e)` as the baseline.
- sql_year_aggregate: daily max/min/sum over one symbol-year in SQL, against
  `db.read` + `to_arrow()` of the same rows (what db.sql hands DuckDB).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks import data as D

pytest.importorskip("duckdb")


def _one_day(size: D.Size) -> tuple[int, int]:
    days = D.trading_days(size.bar_start, size.bar_end)
    return D.day_bounds(days[len(days) // 2])


@pytest.mark.benchmark(group="sql_one_day")
@pytest.mark.parametrize("how", ["db.read(key, s, e)", "db.sql, Epoch bounds",
                                 "db.sql, no usable bound"])
def test_sql_one_day(benchmark: Any, size: D.Size, read_db: Any,
                     bar_data: dict[str, np.ndarray], how: str) -> None:
    sym = next(iter(bar_data))
    key = D.BAR_KEY.format(sym)
    s, e = _one_day(size)
    bounded = f'SELECT * FROM "{key}" WHERE Epoch >= {s} AND Epoch <= {e}'
    unbounded = f'SELECT * FROM "{key}" WHERE (Epoch >= {s} AND Epoch <= {e}) OR Close < 0'

    def run() -> Any:
        if how.startswith("db.read"):
            return read_db.read(key, s, e)
        return read_db.sql(bounded if "Epoch bounds" in how else unbounded)

    r = benchmark(run)
    ep = bar_data[sym]["Epoch"]
    assert len(r) == int(((ep >= s) & (ep <= e)).sum()) > 0


@pytest.mark.benchmark(group="sql_year_aggregate")
@pytest.mark.parametrize("how", ["db.read + to_arrow", "db.sql daily aggregate"])
def test_sql_year_aggregate(benchmark: Any, read_db: Any, bar_data: dict[str, np.ndarray],
                            how: str) -> None:
    sym = next(iter(bar_data))
    key = D.BAR_KEY.format(sym)
    stmt = (f"SELECT Epoch // 86400 AS day, max(High) AS hi, min(Low) AS lo, "
            f'sum(Volume) AS v FROM "{key}" GROUP BY day ORDER BY day')

    def run() -> Any:
        if how.startswith("db.read"):
            return read_db.read(key).to_arrow()
        return read_db.sql(stmt)

    r = benchmark(run)
    assert len(r) > 0
