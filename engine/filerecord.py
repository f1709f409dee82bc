"""The file record of a bucket, `bucket.files`: which data files it has, and the size and
CRC-32C of each closed one (docs/format.md "File record"), so that a lost or damaged file is
found by `mkts check` instead of silently dropping rows. Written at checkpoints.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from mkts.engine.durable import atomic_write, read_small
from mkts.engine.errors import CorruptFileError
from mkts.wal.crc import crc32c
from mkts.wal.fs import FileSystem

__all__ = ["RECORD_NAME", "RECORD_FORMAT", "FileEntry", "read_record", "encode_record",
           "file_crc", "is_closed", "year_of_name", "DATA_FILE", "current_year",
           "update_record"]

RECORD_NAME = "bucket.files"
RECORD_FORMAT = 1
# Data files of a bucket, by name: `<YYYY>.bin` (live or closed year); the names the
# sealed-year design adds (`<YYYY>.sealed`, `<YYYY>.overlay`) fit the same pattern.
DATA_FILE = re.compile(r"^(\d{4})\.(bin|sealed|overlay)\Z")
_CHUNK = 8 << 20  # bytes read at a time for a checksum
_ZEROS = memoryview(bytes(_CHUNK))
# Files that never change once written are checksummed even in the current year.
_IMMUTABLE = ("sealed",)


@dataclass(frozen=True)
class FileEntry:
    """One data file in the record: `size` and `crc32c` are set for a closed file only
    (a live file changes with every write; its presence is what is recorded)."""

    name: str
    size: int | None = None
    crc32c: int | None = None


def year_of_name(name: str) -> int | None:
    m = DATA_FILE.match(name)
    return int(m.group(1)) if m else None


def current_year(tz: str) -> int:
    """The calendar year now in the zone `tz` (which years are closed)."""
    return datetime.now(ZoneInfo(tz)).year


def is_closed(name: str, this_year: int) -> bool:
    """A closed file: a year before `this_year`, or a file that is immutable by kind."""
    m = DATA_FILE.match(name)
    if m is None:
        return False
    return int(m.group(1)) < this_year or m.group(2) in _IMMUTABLE


def file_crc(fs: FileSystem, path: str) -> tuple[int, int]:
    """(size, CRC-32C) of the whole file, holes read as zeros. Only the data is read from
    disk: a hole's zeros are checksummed from memory (a sparse year file is mostly holes)."""
    f = fs.open(path)
    try:
        size = f.size()
        ranges = getattr(f, "data_ranges", None)
        spans = ranges(0, size) if ranges is not None else [(0, size)]
        crc = 0
        pos = 0
        for lo, hi in [*spans, (size, size)]:
            while pos < lo:  # a hole
                n = min(len(_ZEROS), lo - pos)
                crc = crc32c(_ZEROS[:n], crc)
                pos += n
            while pos < hi:
                chunk = f.pread(min(_CHUNK, hi - pos), pos)
                if not chunk:
                    raise CorruptFileError(f"{path} ends at byte {pos}, before its size {size}")
                crc = crc32c(chunk, crc)
                pos += len(chunk)
        return size, int(crc)
    finally:
        f.close()


def read_record(fs: FileSystem, bucket_dir: str) -> dict[str, FileEntry] | None:
    """The record of the bucket at `bucket_dir` by file name, or None when it has none (a
    bucket written before the record existed, or never checkpointed). A record that cannot
    be decoded raises CorruptFileError."""
    path = os.path.join(bucket_dir, RECORD_NAME)
    raw = read_small(fs, path)
    if raw is None:
        return None
    try:
        doc = json.loads(raw.decode("utf-8"))
        if int(doc["format"]) != RECORD_FORMAT:
            raise CorruptFileError(f"{path}: record format {doc['format']}; this mkts reads "
                                   f"format {RECORD_FORMAT}")
        out: dict[str, FileEntry] = {}
        for name, e in dict(doc["files"]).items():
            if DATA_FILE.match(name) is None:
                raise ValueError(f"{name!r} is not a data file name")
            size, crc = e.get("size"), e.get("crc32c")
            out[name] = FileEntry(name, None if size is None else int(size),
                                  None if crc is None else int(crc))
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptFileError(f"{path} is damaged ({exc}); it is written again at the next "
                               "checkpoint that writes the bucket") from exc


def encode_record(entries: dict[str, FileEntry]) -> bytes:
    files = {}
    for name in sorted(entries):
        e = entries[name]
        files[name] = {} if e.size is None else {"size": e.size, "crc32c": e.crc32c}
    return (json.dumps({"format": RECORD_FORMAT, "files": files}, sort_keys=True) + "\n"
            ).encode()


def update_record(fs: FileSystem, bucket_dir: str, names: set[str], redo: set[str],
                  this_year: int, *, defer: set[str] | None = None) -> bool:
    """Write the record of `bucket_dir` for the data files `names`: a closed file keeps its
    checksum from the previous record unless it is in `redo` (written since) or has none,
    is computed once otherwise, and is left without one when in `defer` (still being
    written). Atomic (docs/format.md "Durability"), and only when it changed. Returns
    whether it was written."""
    try:
        old = read_record(fs, bucket_dir)
    except CorruptFileError:
        old = None
    old = old or {}
    defer = defer or set()
    new: dict[str, FileEntry] = {}
    for name in names:
        prev = old.get(name)
        if not is_closed(name, this_year) or name in defer:
            new[name] = FileEntry(name)
        elif prev is not None and prev.crc32c is not None and name not in redo:
            new[name] = prev
        else:
            size, crc = file_crc(fs, os.path.join(bucket_dir, name))
            new[name] = FileEntry(name, size, crc)
    if new == old and fs.exists(os.path.join(bucket_dir, RECORD_NAME)):
        return False
    atomic_write(fs, os.path.join(bucket_dir, RECORD_NAME), encode_record(new))
    return True
