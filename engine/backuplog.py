"""The log part of a backup (docs/backup.md steps 2, 4 and 6): keep the source's segments
from its newest base on readable while the data files are copied, then copy them into the
backup and find which data files their records write. The rest is engine/backup.py's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from mkts.engine.catalog import read_header
from mkts.engine.errors import MktsError
from mkts.engine.keys import BucketKey
from mkts.engine.schema import Schema
from mkts.wal.format import (
    FLAG_BASE,
    HeaderProblem,
    encode_segment_header,
    parse_segment_name,
    segment_name,
)
from mkts.wal.fs import BackupFileSystem, File
from mkts.wal.recovery import write_highest
from mkts.wal.scan import read_header as read_segment_header

__all__ = ["HeldLog", "pin_segments", "copy_log", "EVERY"]

EVERY = ("*", -1)  # in the set copy_log returns: the records may write any year file

_CHUNK = 8 << 20


@dataclass
class HeldLog:
    """The segments a backup holds open (so a checkpoint's deletes cannot take them away)."""

    segments: dict[int, File] = field(default_factory=dict)
    base_seq: int = 0
    base_txn: int = 0  # the data files hold every transaction up to it

    def close(self) -> None:
        for f in self.segments.values():
            f.close()
        self.segments.clear()


def pin_segments(fs: BackupFileSystem, wal_dir: str, a: HeldLog, *, first: bool) -> bool:
    """Open (and so keep readable even if a checkpoint deletes them) the log's segments from
    its newest base on. The first call picks the base: the data files hold every transaction
    up to `base_txn`. False when a segment after the base vanished before it was opened."""
    if not fs.isdir(wal_dir):
        return True
    seqs = sorted(s for s in (parse_segment_name(n) for n in fs.listdir(wal_dir))
                  if s is not None)
    for seq in seqs:
        if seq in a.segments or (not first and seq < a.base_seq):
            continue
        try:
            f = fs.open(os.path.join(wal_dir, segment_name(seq)))
        except FileNotFoundError:
            if first:
                continue
            return False
        try:
            header = read_segment_header(f, f.size())
        except (HeaderProblem, OSError):  # being created, or damaged: the copy's open judges
            f.close()
            continue
        if first and header.is_base:
            for old in a.segments.values():
                old.close()
            a.segments.clear()
            a.base_seq, a.base_txn = seq, header.first_txn - 1
        a.segments[seq] = f
    held = sorted(a.segments)
    if held and held != list(range(held[0], held[0] + len(held))):
        return False  # a segment was deleted before it could be held: its records are lost
    return True


def copy_log(fs: BackupFileSystem, staging: str, a: HeldLog,
             need_header: Callable[[BucketKey], str]) -> set[tuple[str, int]] | None:
    """Copy the held segments into the copy's log (the base's BASE flag only: a checkpoint
    during the copy made a later base, whose records the copy still needs); returns the
    (bucket key, year) of every year the copied records write; None when a bucket they
    write is gone from the source (start again)."""
    from mkts.engine import journal
    from mkts.wal import WriteAheadLog

    wal_dir = os.path.join(staging, "wal")
    fs.mkdir(wal_dir)
    if not a.segments:
        return set()
    for seq, f in sorted(a.segments.items()):
        dst = fs.open(os.path.join(wal_dir, segment_name(seq)), create=True)
        try:
            size = f.size()
            off = 0
            while off < size:
                chunk = f.pread(min(_CHUNK, size - off), off)
                if not chunk:
                    break
                dst.pwrite(chunk, off)
                off += len(chunk)
            header = read_segment_header(f, size)
            if seq != a.base_seq and header.is_base:
                dst.pwrite(encode_segment_header(seq, header.first_txn,
                                                 flags=header.flags & ~FLAG_BASE,
                                                 salt=header.salt), 0)
            dst.sync()
        finally:
            dst.close()
    fs.fsync_dir(wal_dir)
    write_highest(fs, wal_dir, max(a.segments))
    schemas: dict[BucketKey, Schema] = {}

    def schema_of(key: BucketKey) -> Schema:
        if key not in schemas:
            schemas[key] = read_header(fs, need_header(key)).schema
        return schemas[key]

    touched: set[tuple[str, int]] = set()
    # A damaged source log is an error of its own (the copy's open names it); a bucket gone
    # since its record was logged (destroyed during the copy) starts the backup again.
    log_ = WriteAheadLog.open(wal_dir, fs, readonly=True)
    try:
        for rec in log_.records():
            try:
                writes = journal.decode(rec.payload, schema_of, f"txn {rec.txn}")
            except FileNotFoundError:
                return None
            except (MktsError, ValueError):
                # A record this static decoding cannot read (a column change earlier in the
                # log changed the schema it was written with): every year may be written.
                # The replay itself decodes in order and reports real damage.
                touched.add(EVERY)
                continue
            # operations on the bucket rather than a year file (a column change) name none
            touched.update((str(w.key), int(y)) for w in writes
                           if (y := getattr(w, "year", None)) is not None)
    finally:
        log_.close()
    return touched
