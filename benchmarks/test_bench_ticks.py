"""Tick buckets (issue 4).

- tick_ingest: `size.total_ticks` trades (10^7 at full size) in batches of `size.tick_batch`
  (10^5) into a 1Sec tick bucket, sync=always.
- single_tick_append: one tick per write() into the current interval of a 1Min bucket that
  already holds 10^2 or 10^5 ticks (sync=off, so the figure is the engine's cost, not the
  disk's); the cost per append must not grow with the ticks already in the interval.
- tick_day_read: the full day of a busy symbol (`size.ticks_per_day` trades), against a raw
  append-only file of the same records read with np.memmap + searchsorted.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import numpy as np
import pytest

from benchmarks import data as D
from benchmarks import raw

TICK_KEY = D.TICK_KEY.format("AAPL")


@pytest.mark.benchmark(group="tick_ingest")
def test_tick_ingest_mkts(benchmark: Any, size: D.Size, tmp_path: Any) -> None:
    from mkts import engine

    batches = D.tick_batches(size)
    total = sum(len(b) for b in batches)
    roots = iter(range(100))
    handles: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for h in handles:
            h.close()
        handles.clear()
        handles.append(engine.open(os.fspath(tmp_path / f"db{next(roots)}"), bulk_load_rows=0, sync="always"))
        return (handles[0],), {}

    def run(db: Any) -> None:
        for b in batches:
            db.write(TICK_KEY, b, variable=True)

    benchmark.extra_info["ticks"] = total
    benchmark.pedantic(run, setup=setup, rounds=1 if size.name == "full" else size.repeats,
                       iterations=1)
    db = handles[0]
    day, ticks = D.tick_days(size)[0]
    s, e = D.day_bounds(day)
    assert len(db.read(TICK_KEY, s, e)) == len(ticks)
    db.close()
    if benchmark.stats is not None:
        benchmark.extra_info["ticks_per_s"] = total / benchmark.stats.stats.median


@pytest.mark.benchmark(group="tick_ingest")
def test_tick_ingest_raw(benchmark: Any, size: D.Size, tmp_path: Any) -> None:
    batches = D.tick_batches(size)
    total = sum(len(b) for b in batches)
    files = iter(range(100))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (raw.TickFile(os.fspath(tmp_path / f"t{next(files)}.bin"), D.TICK_DTYPE),), {}

    def run(f: raw.TickFile) -> None:
        for b in batches:
            f.append(b, fsync=True)
        f.close()

    benchmark.extra_info["ticks"] = total
    benchmark.pedantic(run, setup=setup, rounds=size.repeats, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["ticks_per_s"] = total / benchmark.stats.stats.median


@pytest.mark.benchmark(group="single_tick_append")
@pytest.mark.parametrize("already", [100, 100_000], ids=["10^2 ticks in interval",
                                                         "10^5 ticks in interval"])
def test_single_tick_append(benchmark: Any, size: D.Size, tmp_path: Any, already: int) -> None:
    from mkts import engine

    if size.name == "smoke":
        already = min(already, 1_000)
    key = "AAPL/1Min/TRADE"
    label = int(dt.datetime(2024, 3, 5, 15, 0, tzinfo=dt.UTC).timestamp())
    slots = already + 200_000  # room for every tick the benchmark may append
    step = 60_000_000_000 // slots
    ns = np.arange(slots, dtype=np.int64) * step
    ticks = np.zeros(slots, dtype=D.TICK_DTYPE)
    ticks["Epoch"] = label + ns // 1_000_000_000
    ticks["Nanoseconds"] = ns % 1_000_000_000
    ticks["Price"] = 100.0
    ticks["Size"] = 100
    with engine.open(os.fspath(tmp_path / "db"), bulk_load_rows=0, sync="off") as db:
        db.write(key, ticks[:already], variable=True)
        nxt = iter(range(already, slots))

        def one() -> None:
            i = next(nxt)
            db.write(key, ticks[i : i + 1], variable=True)

        benchmark.extra_info["ticks_in_interval_before"] = already
        benchmark(one)
        n = len(db.read(key))
        assert n > already


@pytest.fixture(scope="module")
def busy_day(tmp_path_factory: pytest.TempPathFactory, size: D.Size
             ) -> tuple[str, str, int, int, int]:
    """One busy day of ticks in mkts (1Sec bucket) and in a raw file: (root, raw path,
    start, end, ticks)."""
    from mkts import engine

    day, ticks = D.tick_days(size)[0]
    root = os.fspath(tmp_path_factory.mktemp("ticks") / "db")
    with engine.open(root, bulk_load_rows=0, sync="off") as db:
        for i in range(0, len(ticks), size.tick_batch):
            db.write(TICK_KEY, ticks[i : i + size.tick_batch], variable=True)
    path = os.fspath(tmp_path_factory.mktemp("rawticks") / "ticks.bin")
    f = raw.TickFile(path, D.TICK_DTYPE)
    f.append(ticks, fsync=False)
    f.close()
    s, e = D.day_bounds(day)
    return root, path, s, e, len(ticks)


@pytest.mark.benchmark(group="tick_day_read")
def test_tick_day_read_mkts(benchmark: Any, busy_day: tuple[str, str, int, int, int]) -> None:
    from mkts import engine

    root, _, s, e, n = busy_day
    with engine.open(root, readonly=True) as db:
        r = benchmark(db.read, TICK_KEY, s, e)
        assert len(r) == n
    benchmark.extra_info["ticks"] = n


@pytest.mark.benchmark(group="tick_day_read")
def test_tick_day_read_raw(benchmark: Any, busy_day: tuple[str, str, int, int, int]) -> None:
    _, path, s, e, n = busy_day
    reader = raw.TickFile.__new__(raw.TickFile)
    reader.path, reader.dtype = path, D.TICK_DTYPE
    r = benchmark(reader.read, s, e)
    assert len(r) == n
    benchmark.extra_info["ticks"] = n
