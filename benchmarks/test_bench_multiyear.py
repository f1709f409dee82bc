"""Reads across year files (issue 17): the same bucket read over one year and over two,
rows per second of each measured in the same run (goal: two years at >= 0.8x the rate of
one), with a control that holds as many rows as the two years inside a single year file
(the same bytes to copy, no join), which separates the cost of joining years from the
cost of a result twice as large (CPU cache).

- `one year`: 1Min bars of one symbol, the size's year, out of a bucket holding two;
- `two years`: the whole bucket (the year before and the size's year);
- `one year, rows of two`: a second bucket whose rows are the two years' rows, relabelled
  to consecutive minutes of one year.

Each through the writing handle (occupancy kept in memory) and a read-only one (which
looks at the file's slot words on every read, as another process may be writing), and the
raw ceiling of the first two (`test_multi_year_read_raw`): the occupied slots of the same
mapped year files gathered with `np.take` into one new array, nothing of mkts
(`benchmarks.ceilings.raw_gathers`; slots found outside the timing).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import numpy as np
import pytest

from benchmarks import ceilings
from benchmarks import data as D

TWO = "MY/1Min/OHLCV"
PACKED = "MYONE/1Min/OHLCV"


@pytest.fixture(scope="module")
def multi_year_db(tmp_path_factory: pytest.TempPathFactory, size: D.Size) -> Any:
    from mkts import engine

    rows = D.multi_year_bars(size)
    packed = rows.copy()
    start = int(dt.datetime(size.bar_end.year, 1, 1, tzinfo=dt.UTC).timestamp())
    packed["Epoch"] = start + 60 * np.arange(len(rows), dtype=np.int64)
    root = os.fspath(tmp_path_factory.mktemp("multiyear") / "db")
    writer = engine.open(root, bulk_load_rows=0, sync="off")
    writer.write(TWO, rows)
    writer.write(PACKED, packed)
    reader = engine.open(root, readonly=True)
    yield {"writer": writer, "readonly": reader}, rows
    reader.close()
    writer.close()


@pytest.mark.benchmark(group="multi_year_read")
@pytest.mark.parametrize("what", ["one year", "two years", "one year, rows of two"])
@pytest.mark.parametrize("handle", ["writer", "readonly"])
def test_multi_year_read_mkts(benchmark: Any, size: D.Size, multi_year_db: Any, handle: str,
                              what: str) -> None:
    handles, rows = multi_year_db
    db = handles[handle]
    year = size.bar_end.year
    if what == "one year":
        args: tuple[Any, ...] = (TWO, f"{year}-01-01", f"{year}-12-31")
        want = int((rows["Epoch"] >= int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp())
                    ).sum())
    else:
        args, want = ((TWO,) if what == "two years" else (PACKED,)), len(rows)
    r = benchmark(db.read, *args)
    assert len(r) == want
    years = {int(y) for y in r["Epoch"].astype("datetime64[s]").astype("datetime64[Y]")
             .astype(np.int64) + 1970}
    assert len(years) == (2 if what == "two years" else 1)
    benchmark.extra_info["rows"] = len(r)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = len(r) / benchmark.stats.stats.median


@pytest.mark.benchmark(group="multi_year_read")
@pytest.mark.parametrize("what", ["one year", "two years"])
def test_multi_year_read_raw(benchmark: Any, size: D.Size, multi_year_db: Any, what: str
                             ) -> None:
    handles, rows = multi_year_db
    handles["writer"].flush()
    year = size.bar_end.year
    folder = os.path.join(handles["writer"].root, *TWO.split("/"))
    years = [year] if what == "one year" else [year - 1, year]
    sources = []
    for y in years:
        words = ceilings._year_words(os.path.join(folder, f"{y}.bin"))
        sources.append((words, (words[:, 0] != 0).nonzero()[0]))
    r = benchmark(ceilings.raw_gathers(sources))
    start = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp())
    assert len(r) == (int((rows["Epoch"] >= start).sum()) if what == "one year" else len(rows))
    benchmark.extra_info["rows"] = len(r)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = len(r) / benchmark.stats.stats.median
