"""Reads after a column change (issue 16): one symbol-year of 1Min bars read from a bucket
whose columns never changed, and from the same rows in a bucket after `add_column` (its year
file is still the one written before the change: docs/format.md "Column changes"), measured
in the same run. The goal: reads of the untouched columns cost what they did (ratio ≈ 1).

- read_after_add_column_full_year / _one_day, "untouched columns": Open … Volume;
  "all columns": with the added column too, whose fill the read has to write (a copy).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from benchmarks import data as D

UNTOUCHED = ["Open", "High", "Low", "Close", "Volume"]
BUCKETS = {"unchanged bucket": "BASE/1Min/OHLCV", "after add_column": "ALTERED/1Min/OHLCV"}


@pytest.fixture(scope="module")
def altered_db(tmp_path_factory: pytest.TempPathFactory, bar_data: dict[str, np.ndarray]
               ) -> Any:
    """A read-only handle on a root holding one symbol-year twice: as written, and after
    add_column("VWAP", "f8") of its bucket."""
    from mkts import engine

    rows = next(iter(bar_data.values()))
    root = os.fspath(tmp_path_factory.mktemp("columns") / "db")
    with engine.open(root, bulk_load_rows=0, sync="off") as db:
        for key in BUCKETS.values():
            db.write(key, rows)
        db.add_column(BUCKETS["after add_column"], "VWAP", "f8", fill=0)
    db = engine.open(root, readonly=True)
    yield db
    db.close()


def _one_day(size: D.Size) -> tuple[int, int]:
    days = D.trading_days(size.bar_start, size.bar_end)
    return D.day_bounds(days[len(days) // 2])


@pytest.mark.benchmark(group="read_after_add_column_full_year")
@pytest.mark.parametrize("columns", ["untouched columns", "all columns"])
@pytest.mark.parametrize("bucket", list(BUCKETS))
def test_full_year_read_after_add_column(benchmark: Any, altered_db: Any, bucket: str,
                                         columns: str) -> None:
    cols = UNTOUCHED if columns == "untouched columns" else None
    r = benchmark(lambda: np.asarray(altered_db.read(BUCKETS[bucket], columns=cols)["Close"]))
    assert len(r) > 0
    benchmark.extra_info["rows"] = len(r)


@pytest.mark.benchmark(group="read_after_add_column_one_day")
@pytest.mark.parametrize("columns", ["untouched columns", "all columns"])
@pytest.mark.parametrize("bucket", list(BUCKETS))
def test_one_day_read_after_add_column(benchmark: Any, size: D.Size, altered_db: Any,
                                       bucket: str, columns: str) -> None:
    cols = UNTOUCHED if columns == "untouched columns" else None
    s, e = _one_day(size)
    r = benchmark(lambda: np.asarray(altered_db.read(BUCKETS[bucket], s, e,
                                                     columns=cols)["Close"]))
    assert len(r) > 0
    benchmark.extra_info["rows"] = len(r)
