"""The root's own files: `mkts.root` (database format and time zone, docs/format.md) and the
pid written into `LOCK`. The catalog owns the bucket directories; the WAL owns `wal/`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from mkts.engine.durable import atomic_write
from mkts.engine.errors import CorruptFileError, InvalidInputError, UnsupportedFormatError
from mkts.engine.timeutil import get_calendar
from mkts.wal.fs import FileSystem

__all__ = ["ROOT_META", "ROOT_FORMAT", "LOCK_FILE", "RootMeta", "read_root_meta",
           "root_timezone", "lock_holder", "writer_of"]

ROOT_META = "mkts.root"
ROOT_FORMAT = 1
LOCK_FILE = "LOCK"


@dataclass(frozen=True)
class RootMeta:
    """What `mkts.root` records: the database format and time zone."""

    format: int
    timezone: str


def read_root_meta(fs: FileSystem, root: str) -> RootMeta | None:
    """The root's `mkts.root`, or None when it has none (a root never opened for writing).
    Read-only. Raises CorruptFileError when it cannot be decoded and UnsupportedFormatError
    for a database format this mkts does not read."""
    path = os.path.join(root, ROOT_META)
    if not fs.exists(path):
        return None
    f = fs.open(path)
    try:
        raw = f.pread(1 << 16, 0)
    finally:
        f.close()
    try:
        meta = json.loads(raw.decode("utf-8"))
        stored = str(meta["timezone"])
        fmt = int(meta["format"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"{path} is damaged: {exc}") from exc
    if fmt != ROOT_FORMAT:
        raise UnsupportedFormatError(
            f"{path}: database format {fmt}; this mkts reads format {ROOT_FORMAT}"
        )
    return RootMeta(fmt, stored)


def root_timezone(fs: FileSystem, root: str, requested: str | None, *, readonly: bool) -> str:
    """The database time zone: the one `mkts.root` records, which `requested` (if given) must
    match; for a new root `requested` or UTC, recorded durably unless `readonly`."""
    meta = read_root_meta(fs, root)
    if meta is not None:
        if requested is not None and requested != meta.timezone:
            raise InvalidInputError(
                f"database {root} uses timezone {meta.timezone!r}; open it with "
                f"timezone={meta.timezone!r} (or leave timezone unset)"
            )
        return meta.timezone
    tz = requested or "UTC"
    get_calendar(tz)  # validate before writing anything
    if readonly:
        return tz
    meta_bytes = json.dumps({"format": ROOT_FORMAT, "timezone": tz}).encode()
    atomic_write(fs, os.path.join(root, ROOT_META), meta_bytes + b"\n")
    return tz


def lock_holder(fs: FileSystem, path: str) -> str:
    """What the holder of the lock file at `path` wrote into it (its pid), or "unknown"."""
    try:
        f = fs.open(path)
        try:
            return f.pread(64, 0).decode("ascii", "replace").strip() or "unknown"
        finally:
            f.close()
    except OSError:
        return "unknown"


def writer_of(fs: FileSystem, root: str) -> str | None:
    """The pid of the writer holding the root's lock, or None when no writer holds it.
    Read-only: probes the lock without taking it."""
    path = os.path.join(root, LOCK_FILE)
    try:
        if not fs.is_locked(path):
            return None
    except OSError:
        return None
    return lock_holder(fs, path)
