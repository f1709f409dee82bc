"""`export_parquet`: buckets as a Hive-partitioned Parquet dataset for any engine to read.

Owns the dataset layout (`symbol=/timeframe=/attrgroup=/year=/part-0.parquet`), the Arrow
table of one piece, and replacing one partition's file atomically through the I/O seam
(wal/fs.py). Which pieces a pattern and range cover is `mkts.scale`. Layout: docs/scale.md.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import numpy as np

from mkts import engine
from mkts.engine.durable import makedirs_durable
from mkts.engine.timeutil import NS
from mkts.plugins.progress import progress_bar
from mkts.scale import plan_pieces, time_arg
from mkts.wal.fs import FileSystem, OsFileSystem

__all__ = ["export_parquet", "ExportResult", "partition_dir", "PART_FILE", "LOCK_FILE"]

PART_FILE = "part-0.parquet"  # the one data file of a partition
_TMP_FILE = ".part-0.parquet.mkts-tmp"  # dot first: readers skip it (pyarrow, Spark, DuckDB globs)
LOCK_FILE = ".mkts-export.lock"  # one export at a time per destination
COMPRESSION = "zstd"


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote: `partitions` files holding `rows` rows in `bytes` bytes;
    `partial` of them hold only part of their year because the range cuts it."""

    partitions: int
    rows: int
    bytes: int
    partial: int
    seconds: float


def partition_dir(key: str, year: int) -> str:
    """The partition of one bucket-year, relative to the destination (values URI-encoded,
    as pyarrow and DuckDB decode them: `ES=F` is `symbol=ES%3DF`)."""
    sym, tf, attr = key.split("/")
    parts = (("symbol", sym), ("timeframe", tf), ("attrgroup", attr), ("year", str(year)))
    return os.path.join(*(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in parts))


def export_parquet(root: str | os.PathLike[str], dest: str | os.PathLike[str],
                   pattern: str = "*/*/*", start: Any = None, end: Any = None, *,
                   progress: bool = True) -> ExportResult:
    """Write every bucket matching `pattern` over [start, end] to `dest` as Parquet.

    One partition per (bucket, year file) overlapping the range, at
    `dest/symbol=S/timeframe=T/attrgroup=A/year=Y/part-0.parquet`, zstd compressed, with
    `Epoch` as timestamp[ns, UTC] (exact to the nanosecond for ticks) followed by the
    bucket's columns as `db.read` returns them (ticks keep `Nanoseconds`). `start`/`end`
    follow `db.read` (without an offset in the database's zone; a date-only `end` is its
    whole day); a partition holds the rows of its year inside the range.

    Guarantees: each partition written replaces the one there before atomically (readers
    see the old file or the new one, never a mix; a crash leaves at most a hidden temporary
    file that the next export removes); partitions outside the pattern and range are not
    touched; every file and directory is fsynced before the call returns. The root is read
    through a read-only handle (no lock; see docs/scale.md on concurrent writers); two
    exports into one destination at the same time are refused. `progress` shows a tqdm bar
    on stderr when tqdm is installed.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("export_parquet needs pyarrow: pip install 'mkts[scale]'") from exc
    began = time.perf_counter()
    root_path = os.path.abspath(os.fspath(root))
    dest_path = os.path.abspath(os.fspath(dest))
    time_arg(start, "start"), time_arg(end, "end")  # a bad time fails before the open
    _check_dest(root_path, dest_path)
    fs: FileSystem = OsFileSystem()
    with engine.open(root_path, readonly=True) as db:
        keys = engine.parse_pattern(pattern).select(db.list_keys())
        if not keys:
            raise engine.BucketNotFoundError(f"no bucket in {root_path} matches {pattern!r}")
        infos = {k: db.info(k, rows=False) for k in keys}  # no row counts: no scan
        start_ns = time_arg(start, "start", db.timezone)
        end_ns = time_arg(end, "end", db.timezone)
        pieces = plan_pieces(engine.get_calendar(db.timezone), infos, start_ns, end_ns)
        makedirs_durable(fs, dest_path, os.path.dirname(dest_path))
        lock = _lock(fs, dest_path)
        rows = size = 0
        bar = progress_bar(len(pieces), "export", unit="partition", enabled=progress)
        try:
            for p in pieces:
                r = db.read(p.key, np.datetime64(p.start_ns, "ns"), np.datetime64(p.end_ns, "ns"))
                table = _table(pa, r, db.timezone)
                sink = pa.BufferOutputStream()
                pq.write_table(table, sink, compression=COMPRESSION)
                data = sink.getvalue()
                _replace(fs, dest_path, partition_dir(p.key, p.year), memoryview(data))
                rows += len(r)
                size += len(data)
                bar.note(f"{p.key} {p.year}")
                bar.update(1)
        finally:
            bar.close()
            fs.unlock(lock)
    partial = sum(not p.whole_year for p in pieces)
    return ExportResult(len(pieces), rows, size, partial, time.perf_counter() - began)


def _table(pa: Any, r: engine.Result, tz: str) -> Any:
    """Epoch (+ Nanoseconds) as one timestamp[ns, UTC] column, then the result's columns."""
    arr = r.array
    ns = arr["Epoch"].astype(np.int64) * NS
    if r.ticks:  # (a fixed bucket's Nanoseconds column is data)
        ns += arr["Nanoseconds"]
    arrays = [pa.array(ns, type=pa.timestamp("ns", tz="UTC"))]
    names = r.columns
    for c in names[1:]:
        arrays.append(pa.array(np.ascontiguousarray(arr[c])))
    meta = {"mkts.key": r.key, "mkts.timezone": tz}
    return pa.Table.from_arrays(arrays, names=names, metadata=meta)


def _replace(fs: FileSystem, dest: str, rel: str, data: memoryview) -> None:
    """Write `data` as the partition's file: temp file, fsync, rename over, fsync the dir."""
    d = os.path.join(dest, rel)
    makedirs_durable(fs, d, dest)
    tmp = os.path.join(d, _TMP_FILE)
    if fs.exists(tmp):  # left by an export that crashed; the lock says it is not running
        fs.unlink(tmp)
    f = fs.open(tmp, create=True)
    try:
        f.pwrite(data, 0)
        f.sync()
    finally:
        f.close()
    fs.replace(tmp, os.path.join(d, PART_FILE))
    fs.fsync_dir(d)


def _check_dest(root: str, dest: str) -> None:
    if dest == root or dest.startswith(root + os.sep):
        raise engine.InvalidInputError(
            f"export destination {dest} is inside the database root {root}; choose a "
            "directory outside it")
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise engine.InvalidInputError(f"export destination {dest} is a file, not a directory")
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise engine.InvalidInputError(
            f"cannot create export destination {dest}: {parent} does not exist")


def _lock(fs: FileSystem, dest: str) -> int:
    path = os.path.join(dest, LOCK_FILE)
    try:
        return fs.lock(path)
    except BlockingIOError:
        raise engine.LockedError(
            f"another export into {dest} is running ({path} is locked); wait for it to "
            "finish") from None
