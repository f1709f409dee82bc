"""Range deletes and replaces (issue 16), each beside the write of the same rows, measured in
the same run on the same open database, with sync=always (durable: one log fsync per call)
and sync=off (the engine's own cost).

- delete_day_of_bars: `db.delete` of one trading day of 1Min bars from a symbol-year (the
  day's rows written back, untimed, before each round) vs `db.write` of that day (the day
  deleted, untimed, before each round).
- replace_day_of_ticks: `db.update` of a busy day of trades (`size.ticks_per_day`, 10^6 at
  full size) over the same day already stored vs `db.write` of that day into an emptied day.

The ratio delete ÷ write (replace ÷ write) is the figure of interest; `summarize` prints
the medians.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from benchmarks import data as D

BAR_KEY = D.BAR_KEY.format("AAPL")
TICK_KEY = D.TICK_KEY.format("AAPL")


@pytest.fixture(scope="module", params=["always", "off"])
def bars_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            size: D.Size) -> Iterator[Any]:
    from mkts import engine

    rows = D.bars("AAPL", size)
    db = engine.open(os.fspath(tmp_path_factory.mktemp("corr-bars") / "db"), bulk_load_rows=0,
                     sync=request.param, checkpoint_interval_s=3600)
    db.write(BAR_KEY, rows)
    day = D.trading_days(size.bar_start, size.bar_end)[len(D.trading_days(size.bar_start,
                                                                          size.bar_end)) // 2]
    s, e = D.day_bounds(day)
    sel = (rows["Epoch"] >= s) & (rows["Epoch"] <= e)
    yield db, rows[sel], s, e
    db.close()


@pytest.fixture(scope="module", params=["always", "off"])
def ticks_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             size: D.Size) -> Iterator[Any]:
    from mkts import engine

    day, ticks = D.tick_days(size)[0]
    s, e = D.day_bounds(day)
    db = engine.open(os.fspath(tmp_path_factory.mktemp("corr-ticks") / "db"), bulk_load_rows=0,
                     sync=request.param, checkpoint_interval_s=3600)
    db.write(TICK_KEY, ticks, variable=True)
    yield db, ticks, s, e
    db.close()


@pytest.mark.benchmark(group="delete_day_of_bars")
def test_delete_day_of_bars(benchmark: Any, size: D.Size, bars_db: Any) -> None:
    db, day, s, e = bars_db

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        db.write(BAR_KEY, day)
        return (), {}

    removed: list[int] = []
    benchmark.pedantic(lambda: removed.append(db.delete(BAR_KEY, s, e)), setup=setup,
                       rounds=max(3, size.repeats * 5), iterations=1)
    assert removed[-1] == len(day)
    benchmark.extra_info["rows"] = len(day)


@pytest.mark.benchmark(group="delete_day_of_bars")
def test_write_day_of_bars(benchmark: Any, size: D.Size, bars_db: Any) -> None:
    db, day, s, e = bars_db

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        db.delete(BAR_KEY, s, e)
        return (), {}

    benchmark.pedantic(lambda: db.write(BAR_KEY, day), setup=setup,
                       rounds=max(3, size.repeats * 5), iterations=1)
    assert len(db.read(BAR_KEY, s, e)) == len(day)
    benchmark.extra_info["rows"] = len(day)


@pytest.mark.benchmark(group="replace_day_of_ticks")
def test_replace_day_of_ticks(benchmark: Any, size: D.Size, ticks_db: Any) -> None:
    db, ticks, s, e = ticks_db
    benchmark.pedantic(lambda: db.update(TICK_KEY, ticks), rounds=max(3, size.repeats),
                       iterations=1)
    got = db.read(TICK_KEY, s, e)
    assert len(got) == len(ticks)  # replaced, not appended
    assert np.array_equal(np.asarray(got["Price"]), ticks["Price"])
    benchmark.extra_info["ticks"] = len(ticks)


@pytest.mark.benchmark(group="replace_day_of_ticks")
def test_write_day_of_ticks(benchmark: Any, size: D.Size, ticks_db: Any) -> None:
    db, ticks, s, e = ticks_db

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        db.delete(TICK_KEY, s, e)
        db.compact(TICK_KEY)  # the write starts from a file without garbage, as a first load
        return (), {}

    benchmark.pedantic(lambda: db.write(TICK_KEY, ticks, variable=True), setup=setup,
                       rounds=max(3, size.repeats), iterations=1)
    assert len(db.read(TICK_KEY, s, e)) == len(ticks)
    benchmark.extra_info["ticks"] = len(ticks)
