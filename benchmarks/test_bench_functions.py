"""Query-time functions and resampling (issue 15).

- candlecandler_1H: `candlecandler('1H',Open,High,Low,Close,Sum::Volume)` over one symbol-year
  of 1Min bars, against reading the same rows with no function. Goal: <= 2x the read.
- tickcandler_1Min: `tickcandler('1Min',Price,Sum::Size)` over one day of `ticks_per_day`
  ticks (10^6 at full size), against the plain read. Goal: <= 2x the read.
- resample_1H: `db.resample(key, "1H")` of the symbol-year, against pandas
  `DataFrame.resample("1h").agg(...)` on the same rows already in memory. Goal: mkts at
  least as fast (the figure includes mkts reading the rows from disk).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from benchmarks import data as D

BAR_KEY = "AAPL/1Min/OHLCV"
TICK_KEY = "AAPL/1Sec/TRADE"
CANDLE = "candlecandler('1H',Open,High,Low,Close,Sum::Volume)"
TICKS = "tickcandler('1Min',Price,Sum::Size)"


@pytest.fixture(scope="module")
def fn_db(tmp_path_factory: pytest.TempPathFactory, size: D.Size) -> Iterator[Any]:
    """One symbol-year of 1Min bars and one busy tick day, read-only, warm."""
    from mkts import engine

    root = os.fspath(tmp_path_factory.mktemp("functions") / "db")
    with engine.open(root, bulk_load_rows=0, sync="off") as db:
        db.write(BAR_KEY, D.bars("AAPL", size))
        _day, ticks = D.tick_days(size)[0]
        db.write(TICK_KEY, ticks, variable=True)
    db = engine.open(root, readonly=True)
    db.read(BAR_KEY)
    db.read(TICK_KEY)
    yield db
    db.close()


@pytest.mark.benchmark(group="candlecandler_1H")
@pytest.mark.parametrize("functions", [None, [CANDLE]], ids=["read", "candlecandler"])
def test_candlecandler_symbol_year(benchmark: Any, fn_db: Any, functions: Any) -> None:
    r = benchmark(fn_db.read, BAR_KEY, functions=functions)
    if functions:
        assert int(r["Volume_SUM"].sum()) == int(fn_db.read(BAR_KEY)["Volume"].sum())


@pytest.mark.benchmark(group="tickcandler_1Min")
@pytest.mark.parametrize("functions", [None, [TICKS]], ids=["read", "tickcandler"])
def test_tickcandler_tick_day(benchmark: Any, fn_db: Any, size: D.Size, functions: Any) -> None:
    r = benchmark(fn_db.read, TICK_KEY, functions=functions)
    if functions:
        assert int(r["Size_SUM"].sum()) == int(fn_db.read(TICK_KEY)["Size"].sum())
    else:
        assert len(r) == size.ticks_per_day


@pytest.mark.benchmark(group="resample_1H")
def test_resample_mkts(benchmark: Any, fn_db: Any) -> None:
    r = benchmark(fn_db.resample, BAR_KEY, "1H")
    assert r.columns == ["Epoch", "Open", "High", "Low", "Close", "Volume"]


@pytest.mark.benchmark(group="resample_1H")
def test_resample_pandas_in_memory(benchmark: Any, fn_db: Any) -> None:
    pytest.importorskip("pandas")
    df = fn_db.read(BAR_KEY).to_pandas()
    agg = {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}

    def run() -> Any:
        out = df.resample("1h", label="left", closed="left").agg(agg)
        return out[out["Open"].notna()]

    out = benchmark(run)
    mine = fn_db.resample(BAR_KEY, "1H")
    assert len(out) == len(mine) and np.array_equal(out["Volume"].to_numpy(), mine["Volume"])
