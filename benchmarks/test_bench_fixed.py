"""Fixed-record buckets (issue 2, and the bulk write goal of issue 3), each beside the same
operation on raw files measured in the same run.

- bulk_write: `size.symbols` symbols x one year of 1Min bars; mkts with sync=always (one
  write() per symbol, and one write_many per 10 symbols), sync=off, against raw pwrite of the
  same slot layout with and without one fdatasync per file.
- full_year_read: one bucket's whole year, against `np.memmap` of the very same year file
  (drop empty slots, copy).
- one_day_read: one trading day inside the year, against the same slice of that memmap.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from benchmarks import data as D
from benchmarks import raw


def _rounds(size: D.Size) -> int:
    return size.repeats


@pytest.mark.benchmark(group="bulk_write")
@pytest.mark.parametrize("how", ["sync=always, write per symbol",
                                 "sync=always, write_many per 10 symbols",
                                 "sync=off, write per symbol"])
def test_bulk_write_mkts(benchmark: Any, size: D.Size, bar_data: dict[str, np.ndarray],
                         fresh_root: Callable[[], str], how: str) -> None:
    from mkts import engine

    sync = how.split(",")[0].split("=")[1]
    rows = sum(len(v) for v in bar_data.values())
    items = list(bar_data.items())
    handles: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for h in handles:
            h.close()
        handles.clear()
        handles.append(engine.open(fresh_root(), bulk_load_rows=0, sync=sync))
        return (handles[0],), {}

    def run(db: Any) -> None:
        if "write_many" in how:
            for i in range(0, len(items), 10):
                db.write_many({D.BAR_KEY.format(s): r for s, r in items[i : i + 10]})
        else:
            for s, r in items:
                db.write(D.BAR_KEY.format(s), r)

    benchmark.extra_info["rows"] = rows
    benchmark.pedantic(run, setup=setup, rounds=_rounds(size), iterations=1)
    db = handles[0]
    first = next(iter(bar_data))
    assert len(db.read(D.BAR_KEY.format(first))) == len(bar_data[first])
    db.close()
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median


@pytest.mark.benchmark(group="bulk_write")
@pytest.mark.parametrize("fsync", [True, False], ids=["raw pwrite + one fdatasync per file",
                                                      "raw pwrite, no fsync"])
def test_bulk_write_raw(benchmark: Any, size: D.Size, bar_data: dict[str, np.ndarray],
                        tmp_path: Any, fsync: bool) -> None:
    rows = sum(len(v) for v in bar_data.values())
    dirs = iter(range(1000))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        d = tmp_path / f"raw{next(dirs)}"
        d.mkdir()
        return (os.fspath(d),), {}

    def run(d: str) -> None:
        paths = []
        for s, r in bar_data.items():
            p = os.path.join(d, f"{s}.bin")
            raw.write_bars(p, r, 2024, fsync=False)
            paths.append(p)
        if fsync:
            for p in paths:
                raw.fsync_path(p)

    benchmark.extra_info["rows"] = rows
    benchmark.pedantic(run, setup=setup, rounds=_rounds(size), iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median


def _raw_view(root: str, sym: str, db: Any) -> tuple[np.memmap, int]:
    """np.memmap of mkts's own year file of `sym` (header skipped), and the year start."""
    path = os.path.join(root, sym, "1Min", "OHLCV", "2024.bin")
    with open(path, "rb") as f:
        head = f.read(16)
    header_size = int.from_bytes(head[12:16], "little")  # docs/format.md "Header"
    cols = db.info(D.BAR_KEY.format(sym))["columns"]
    dtype = np.dtype([("_slot", "<i8")] + [(n, "<" + t) for n, t in cols.items() if n != "Epoch"])
    return np.memmap(path, dtype=dtype, mode="r", offset=header_size), raw.year_start(2024)


@pytest.mark.benchmark(group="full_year_read")
def test_full_year_read_mkts(benchmark: Any, read_db: Any, bar_data: dict[str, np.ndarray]
                             ) -> None:
    sym = next(iter(bar_data))
    r = benchmark(read_db.read, D.BAR_KEY.format(sym))
    assert len(r) == len(bar_data[sym])
    benchmark.extra_info["rows"] = len(r)


@pytest.mark.benchmark(group="full_year_read")
def test_full_year_read_raw_memmap(benchmark: Any, bars_root: str, read_db: Any,
                                   bar_data: dict[str, np.ndarray]) -> None:
    sym = next(iter(bar_data))
    m, _ = _raw_view(bars_root, sym, read_db)
    r = benchmark(lambda: m[m["_slot"] != 0])
    assert len(r) == len(bar_data[sym])
    benchmark.extra_info["rows"] = len(r)


def _one_day(size: D.Size) -> tuple[int, int]:
    days = D.trading_days(size.bar_start, size.bar_end)
    return D.day_bounds(days[len(days) // 2])


@pytest.mark.benchmark(group="one_day_read")
def test_one_day_read_mkts(benchmark: Any, size: D.Size, read_db: Any,
                           bar_data: dict[str, np.ndarray]) -> None:
    sym = next(iter(bar_data))
    s, e = _one_day(size)
    r = benchmark(read_db.read, D.BAR_KEY.format(sym), s, e)
    ep = bar_data[sym]["Epoch"]
    assert len(r) == int(((ep >= s) & (ep <= e)).sum()) > 0


@pytest.mark.benchmark(group="one_day_read")
def test_one_day_read_raw_memmap(benchmark: Any, size: D.Size, bars_root: str, read_db: Any,
                                 bar_data: dict[str, np.ndarray]) -> None:
    sym = next(iter(bar_data))
    m, y0 = _raw_view(bars_root, sym, read_db)
    s, e = _one_day(size)
    lo, hi = (s - y0) // 60, (e - y0) // 60 + 1

    def read() -> np.ndarray:
        v = m[lo:hi]
        return v[v["_slot"] != 0]

    r = benchmark(read)
    ep = bar_data[sym]["Epoch"]
    assert len(r) == int(((ep >= s) & (ep <= e)).sum()) > 0
