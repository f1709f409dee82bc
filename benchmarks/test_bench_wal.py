"""Write-ahead log scenarios (issue 3), beside raw file I/O measured in the same run.

- append: 1-row and 100-row writes to a 1Min bucket under each sync mode, against a raw
  `os.write` + `os.fsync` loop (and a raw loop without fsync) on the same disk.
- threads: 1 vs 4 writer threads under sync=always (group commit shares one fsync), beside
  a minimal pure-Python group commit on a raw file (the ceiling of group commit in CPython).
- replay: time to open a database whose log holds N unapplied transactions (a crash image),
  for growing log sizes.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from benchmarks import data as D
from benchmarks import raw
from mkts.plugins import synth

START = int(dt.datetime(2025, 1, 2, tzinfo=dt.UTC).timestamp())
RING = 100_000  # appends cycle through this many minutes (later rounds overwrite: same cost)


@pytest.fixture(scope="module")
def ring() -> np.ndarray:
    return D.append_rows(START, RING + 100)


def _appender(rows: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    i = 0
    while True:
        if i + batch > RING:
            i = 0
        yield rows[i : i + batch]
        i += batch


@pytest.mark.benchmark(group="append_1_row")
@pytest.mark.parametrize("sync", ["always", "interval", "off"])
def test_append_1_row_mkts(benchmark: Any, ring: np.ndarray, tmp_path: Any, sync: str) -> None:
    _append_mkts(benchmark, ring, os.fspath(tmp_path / "db"), sync, 1)


@pytest.mark.benchmark(group="append_100_rows")
@pytest.mark.parametrize("sync", ["always", "interval", "off"])
def test_append_100_rows_mkts(benchmark: Any, ring: np.ndarray, tmp_path: Any, sync: str
                              ) -> None:
    _append_mkts(benchmark, ring, os.fspath(tmp_path / "db"), sync, 100)


def _append_mkts(benchmark: Any, ring: np.ndarray, root: str, sync: str, batch: int) -> None:
    from mkts import engine

    key = "APPEND/1Min/OHLCV"
    with engine.open(root, bulk_load_rows=0, sync=sync) as db:
        db.write(key, ring[:batch])  # creates the bucket and the year file
        chunks = _appender(ring, batch)
        benchmark.extra_info["rows_per_call"] = batch
        benchmark(lambda: db.write(key, next(chunks)))
        assert len(db.read(key, limit=1)) == 1


@pytest.mark.benchmark(group="append_1_row")
@pytest.mark.parametrize("fsync", [True, False], ids=["raw os.write + os.fsync",
                                                      "raw os.write, no fsync"])
def test_append_1_row_raw(benchmark: Any, ring: np.ndarray, tmp_path: Any, fsync: bool) -> None:
    _append_raw(benchmark, ring, tmp_path, fsync, 1)


@pytest.mark.benchmark(group="append_100_rows")
@pytest.mark.parametrize("fsync", [True, False], ids=["raw os.write + os.fsync",
                                                      "raw os.write, no fsync"])
def test_append_100_rows_raw(benchmark: Any, ring: np.ndarray, tmp_path: Any, fsync: bool
                             ) -> None:
    _append_raw(benchmark, ring, tmp_path, fsync, 100)


def _append_raw(benchmark: Any, ring: np.ndarray, tmp_path: Any, fsync: bool, batch: int
                ) -> None:
    fd = os.open(tmp_path / "raw.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    chunks = _appender(ring, batch)

    def run() -> None:
        os.write(fd, next(chunks).tobytes())
        if fsync:
            os.fsync(fd)

    try:
        benchmark.extra_info["rows_per_call"] = batch
        benchmark(run)
    finally:
        os.close(fd)
    assert os.path.getsize(tmp_path / "raw.bin") > 0


PER_THREAD = {"smoke": 20, "quick": 200, "full": 500}  # writer_threads: appends per thread


@pytest.mark.benchmark(group="writer_threads")
@pytest.mark.parametrize("threads", [1, 4])
def test_writer_threads_always(benchmark: Any, size: D.Size, ring: np.ndarray, tmp_path: Any,
                               threads: int) -> None:
    """`threads` writers append 1-row writes to their own buckets under sync=always; the
    figure is the time for all of them to make `per_thread` appends each."""
    from mkts import engine

    per_thread = PER_THREAD[size.name]
    with engine.open(os.fspath(tmp_path / "db"), bulk_load_rows=0, sync="always") as db:
        keys = [f"T{i}/1Min/OHLCV" for i in range(threads)]
        for k in keys:
            db.write(k, ring[:1])
        offset = iter(range(0, 1_000_000, per_thread))

        def run() -> None:
            base = next(offset) % (RING - per_thread)

            def one(k: str) -> None:
                for j in range(base, base + per_thread):
                    db.write(k, ring[j : j + 1])

            ts = [threading.Thread(target=one, args=(k,)) for k in keys]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

        benchmark.extra_info["appends"] = per_thread * threads
        # fsync times vary a lot on shared disks: a few more rounds than the size's default
        benchmark.pedantic(run, rounds=max(size.repeats, 5), iterations=1)
        if benchmark.stats is not None:
            benchmark.extra_info["appends_per_s"] = (per_thread * threads
                                                     / benchmark.stats.stats.median)


@pytest.mark.benchmark(group="writer_threads")
@pytest.mark.parametrize("threads", [1, 4])
def test_writer_threads_raw_group_commit(benchmark: Any, size: D.Size, tmp_path: Any,
                                         threads: int) -> None:
    """The same-run ceiling of the scenario above: `threads` writers each commit
    `per_thread` 200-byte records through a minimal pure-Python group commit
    (`raw.group_commit_appends`: one os.write + os.fdatasync per group, no database)."""
    per_thread = PER_THREAD[size.name]
    path = os.fspath(tmp_path / "gc.bin")
    runs: list[raw.GroupCommitRun] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        if os.path.exists(path):  # the previous round's file, outside the timing
            os.unlink(path)
        return (), {}

    def run() -> None:
        runs.append(raw.group_commit_appends(path, threads, count=per_thread))

    benchmark.pedantic(run, setup=setup, rounds=max(size.repeats, 5), iterations=1)
    assert all(r.appends == per_thread * threads for r in runs)
    benchmark.extra_info["appends"] = per_thread * threads
    benchmark.extra_info["appends_per_fdatasync"] = round(
        sum(r.appends for r in runs) / sum(r.syncs for r in runs), 2)
    if benchmark.stats is not None:
        benchmark.extra_info["appends_per_s"] = (per_thread * threads
                                                 / benchmark.stats.stats.median)


def _copy(src: str, dst: str) -> None:
    """Copy a database root keeping the holes of its sparse year files."""
    subprocess.run(["cp", "-a", "--sparse=always", src, dst], check=True)


@pytest.fixture(scope="module")
def crash_images(tmp_path_factory: pytest.TempPathFactory, size: D.Size) -> dict[int, str]:
    """Database roots whose log holds N transactions not yet applied to a checkpoint: each
    is a copy of a live database taken while it was open (what a crash leaves)."""
    from mkts import engine

    out = {}
    months = [(dt.date(2024, m, 1), dt.date(2024, m + 1, 1) - dt.timedelta(days=1))
              for m in range(1, 12)]
    syms = synth.symbols(max(size.replay_txns))
    for n in size.replay_txns:
        live = os.fspath(tmp_path_factory.mktemp(f"live{n}") / "db")
        image = os.fspath(tmp_path_factory.mktemp(f"image{n}") / "db")
        with engine.open(live, bulk_load_rows=0, sync="off", checkpoint_interval_s=3600, max_wal_mb=1 << 20) as db:
            for i in range(n):
                a, b = months[i % len(months)]
                db.write(D.BAR_KEY.format(syms[i // len(months)]),
                         synth.minute_bars(syms[i // len(months)], a, b, seed=D.SEED))
            _copy(live, image)
            wal_bytes = db.stats()["wal_bytes"]
        out[n] = image
        with open(os.path.join(image, "WAL_BYTES"), "w") as f:
            f.write(str(wal_bytes))
    return out


@pytest.mark.benchmark(group="replay")
@pytest.mark.parametrize("index", [0, 1, 2], ids=["small log", "medium log", "large log"])
def test_replay(benchmark: Any, size: D.Size, crash_images: dict[int, str], tmp_path: Any,
                index: int) -> None:
    from mkts import engine

    if index >= len(size.replay_txns):
        pytest.skip(f"size {size.name} has {len(size.replay_txns)} replay sizes")
    n = size.replay_txns[index]
    image = crash_images[n]
    with open(os.path.join(image, "WAL_BYTES")) as f:
        wal_bytes = int(f.read())
    copies = iter(range(1000))
    handles: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for h in handles:
            h.close()
        handles.clear()
        dst = os.fspath(tmp_path / f"copy{next(copies)}")
        _copy(image, dst)
        return (dst,), {}

    def run(root: str) -> None:
        handles.append(engine.open(root, bulk_load_rows=0))

    benchmark.extra_info.update(transactions=n, wal_mb=round(wal_bytes / 2**20, 1))
    benchmark.pedantic(run, setup=setup, rounds=size.repeats, iterations=1)
    db = handles[0]
    assert db.stats()["last_txn"] >= n
    db.close()
    if benchmark.stats is not None:
        benchmark.extra_info["replay_mb_per_s"] = wal_bytes / 2**20 / benchmark.stats.stats.median
