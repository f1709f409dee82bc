"""The root's own files: the root directory itself, `mkts.root` (database format and time
zone, docs/format.md) and `LOCK` (the single-writer lock and its holder's pid). The catalog
owns the bucket directories; the WAL owns `wal/`."""

from __future__ import annotations

import json
import os

from mkts.engine.durable import atomic_write
from mkts.engine.errors import (
    CorruptFileError,
    InvalidInputError,
    LockedError,
    UnsupportedFormatError,
)
from mkts.engine.timeutil import get_calendar
from mkts.wal.fs import FileSystem

__all__ = ["ROOT_META", "ROOT_FORMAT", "take_root", "root_timezone", "lock_holder"]

ROOT_META = "mkts.root"
ROOT_FORMAT = 1


def take_root(fs: FileSystem, root: str, *, readonly: bool) -> int | None:
    """Create the root directory if it is missing (durably; not when `readonly`) and, unless
    `readonly`, take its single-writer lock: the lock handle, or None for a readonly open.
    A root locked by another handle raises LockedError naming the holder's pid."""
    if not fs.isdir(root):
        if readonly:
            raise InvalidInputError(f"database root {root} does not exist (readonly open)")
        parent = os.path.dirname(root)
        if not fs.isdir(parent):
            raise InvalidInputError(f"cannot create database root {root}: {parent} does not exist")
        fs.mkdir(root)
        fs.fsync_dir(parent)
    if readonly:
        return None
    lock_path = os.path.join(root, "LOCK")
    try:
        return fs.lock(lock_path)
    except BlockingIOError:
        holder = lock_holder(fs, lock_path)
        raise LockedError(
            f"database root {root} is in use by pid {holder}; close that handle first "
            "or open with readonly=True"
        ) from None


def root_timezone(fs: FileSystem, root: str, requested: str | None, *, readonly: bool) -> str:
    """The database time zone: the one `mkts.root` records, which `requested` (if given) must
    match; for a new root `requested` or UTC, recorded durably unless `readonly`."""
    path = os.path.join(root, ROOT_META)
    if fs.exists(path):
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
        if requested is not None and requested != stored:
            raise InvalidInputError(
                f"database {root} uses timezone {stored!r}; open it with "
                f"timezone={stored!r} (or leave timezone unset)"
            )
        return stored
    tz = requested or "UTC"
    get_calendar(tz)  # validate before writing anything
    if readonly:
        return tz
    meta_bytes = json.dumps({"format": ROOT_FORMAT, "timezone": tz}).encode()
    atomic_write(fs, path, meta_bytes + b"\n")
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
