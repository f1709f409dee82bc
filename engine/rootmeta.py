"""The root's own files: the root directory itself, `mkts.root` (database format and time
zone, docs/format.md) and `LOCK` (the single-writer lock and its holder's pid). The catalog
owns the bucket directories; the WAL owns `wal/`."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass

from mkts.engine.durable import atomic_write
from mkts.engine.errors import (
    CorruptFileError,
    InvalidInputError,
    LockedError,
    RootNotFoundError,
    UnsupportedFormatError,
)
from mkts.engine.timeutil import get_calendar
from mkts.wal.fs import FileSystem

__all__ = ["ROOT_META", "ROOT_FORMAT", "ROOT_FORMAT_3", "LOCK_FILE", "use_format_3", "RootMeta", "read_root_meta", "take_root",
           "root_timezone", "lock_holder", "writer_of", "check_root_dir"]

log = logging.getLogger("mkts.engine")

ROOT_META = "mkts.root"
ROOT_FORMAT = 1
# docs/format.md "Format 3: corrections, column changes and sealed years": a root whose
# buckets use format-3 files records database format 2; an mkts that reads only format 1
# refuses it (UnsupportedFormatError) instead of misreading those files.
ROOT_FORMAT_3 = 2
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
    if fmt not in (ROOT_FORMAT, ROOT_FORMAT_3):
        raise UnsupportedFormatError(
            f"{path}: database format {fmt}; this mkts reads formats {ROOT_FORMAT} and "
            f"{ROOT_FORMAT_3}"
        )
    return RootMeta(fmt, stored)


def take_root(fs: FileSystem, root: str, *, readonly: bool, create: bool,
              has_buckets: Callable[[], bool]) -> int | None:
    """Create the root directory if it is missing and `create` (never when `readonly`:
    RootNotFoundError naming the path), durably; refuse an existing directory that is not an
    mkts root (`check_root_dir`); unless `readonly`, take its single-writer lock. Returns the
    lock handle, None for a readonly open. A root locked by another handle raises
    LockedError naming the holder's pid."""
    if not fs.isdir(root):
        if not create or readonly:
            why = "a read-only open" if readonly else "an open with create=False"
            raise RootNotFoundError(
                f"database root {root} does not exist; check the path ({why} never "
                "creates a database)")
        parent = os.path.dirname(root)
        if not fs.isdir(parent):
            raise InvalidInputError(f"cannot create database root {root}: {parent} does not exist")
        fs.mkdir(root)
        fs.fsync_dir(parent)
    else:
        check_root_dir(fs, root, has_buckets=has_buckets)
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


def root_timezone(fs: FileSystem, root: str, requested: str | None, *, readonly: bool,
                  bucket_zones: Collection[str] = (), root_format: int = ROOT_FORMAT) -> str:
    """The database time zone: the one `mkts.root` records, which `requested` (if given) must
    match; for a new root `requested` or UTC, recorded durably unless `readonly`.

    `bucket_zones` are the zones the root's bucket headers record: `mkts.root` must agree with
    them, and a lost `mkts.root` is recreated only with their zone (docs/format.md
    "Directory"), because slot positions depend on it."""
    path = os.path.join(root, ROOT_META)
    meta = read_root_meta(fs, root)
    if meta is not None:
        stored = meta.timezone
        if bucket_zones and set(bucket_zones) != {stored}:
            raise CorruptFileError(
                f"{path} says time zone {stored!r} but the bucket headers of {root} say "
                f"{_names(bucket_zones)}: reading would shift every timestamp. If the buckets "
                f"are right, delete {path} and open once with timezone="
                f"{sorted(bucket_zones)[0]!r} to write it again (`mkts check` lists the buckets)"
            )
        if requested is not None and requested != stored:
            raise InvalidInputError(
                f"database {root} uses timezone {stored!r}; open it with "
                f"timezone={stored!r} (or leave timezone unset)"
            )
        return stored
    tz = requested or "UTC"
    get_calendar(tz)  # validate before writing anything
    if bucket_zones:
        if set(bucket_zones) != {tz}:
            raise CorruptFileError(
                f"{path} is missing but {root} holds buckets whose headers say time zone "
                f"{_names(bucket_zones)}; this open would record {tz!r} and shift every "
                "timestamp. Open once with timezone="
                f"{sorted(bucket_zones)[0]!r} (mkts.yml: timezone) to write {ROOT_META} again"
            )
        log.warning("%s was missing; its buckets say time zone %r: %s",
                    path, tz, "not recreated (read-only)" if readonly else "recreated")
    if readonly:
        return tz
    # a lost mkts.root of a root whose buckets use format-3 files is written with format 2
    meta_bytes = json.dumps({"format": root_format, "timezone": tz}).encode()
    atomic_write(fs, path, meta_bytes + b"\n")
    return tz


def use_format_3(fs: FileSystem, root: str, timezone: str) -> None:
    """Record database format 2 in `mkts.root` (durably, before the first format-3 file is
    written); nothing to do when it says so already."""
    meta = read_root_meta(fs, root)
    if meta is not None and meta.format == ROOT_FORMAT_3:
        return
    data = json.dumps({"format": ROOT_FORMAT_3, "timezone": timezone}).encode()
    atomic_write(fs, os.path.join(root, ROOT_META), data + b"\n")


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


def _names(zones: Collection[str]) -> str:
    return " and ".join(repr(z) for z in sorted(set(zones)))


# Names mkts itself creates in a root before `mkts.root` exists (a crash during the first
# open can leave them).
_OWN_NAMES = frozenset({LOCK_FILE, "wal", ROOT_META + ".tmp"})


def check_root_dir(fs: FileSystem, root: str, *, has_buckets: Callable[[], bool]) -> None:
    """Refuse a directory that is neither empty nor an mkts root (no `mkts.root`, no bucket,
    but other files: `/`, a home directory, a mistyped path) before anything is written."""
    if fs.exists(os.path.join(root, ROOT_META)):
        return
    foreign = sorted(n for n in fs.listdir(root) if n not in _OWN_NAMES)
    if foreign and not has_buckets():
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InvalidInputError(
            f"{root} is not an mkts database (it has no {ROOT_META}) and is not empty "
            f"({shown}); give the path of an existing database, or of a new or empty directory"
        )
