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
from mkts.engine.filerecord import DATA_FILE
from mkts.engine.keys import BucketKey
from mkts.engine.schema import Schema
from mkts.engine.sealing import open_sealed, sealed_name
from mkts.engine.sealswap import SealYear
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

__all__ = ["HeldLog", "pin_segments", "copy_log", "copy_file", "copy_sealed", "swapped", "EVERY"]

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
             need_header: Callable[[BucketKey], str],
             seals: dict[tuple[str, int], tuple[int, int, int]] | None = None
             ) -> set[tuple[str, int]] | None:
    """Copy the held segments into the copy's log (the base's BASE flag only: a checkpoint
    during the copy made a later base, whose records the copy still needs); returns the
    (bucket key, year) of every year the copied records write, and into `seals` the
    last op-6 record of each year a seal swapped meanwhile; None when a bucket they write
    is gone from the source (start again)."""
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
            _copy_span(f, dst, 0, size)
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
            if seals is not None:  # op 6: the last seal of each year (generation, size, CRC)
                seals.update(((str(w.key), w.year), (w.generation, w.size, w.footer_crc))
                             for w in writes if isinstance(w, SealYear))
    finally:
        log_.close()
    return touched


def _copy_span(src: File, dst: File, lo: int, hi: int) -> int:
    """Copy bytes lo..hi of `src` to the same offsets of `dst` through memory, in chunks;
    the bytes copied (fewer if `src` ends first)."""
    off = lo
    while off < hi:
        chunk = src.pread(min(_CHUNK, hi - off), off)
        if not chunk:
            break
        dst.pwrite(chunk, off)
        off += len(chunk)
    return off - lo


def copy_file(fs: BackupFileSystem, src_path: str, dst_path: str) -> int:
    """Copy a file, keeping its holes (not fsynced yet). Returns the bytes copied."""
    src = fs.open(src_path)
    try:
        out = fs.open(dst_path, create=True)
        try:
            size = src.size()
            ranges = getattr(src, "data_ranges", None)
            spans = ranges(0, size) if ranges is not None else [(0, size)]
            done = 0
            fast = getattr(src, "copy_range", None) if type(src) is type(out) else None
            for lo, hi in spans:
                if fast is not None:
                    try:
                        done += fast(out, lo, hi - lo)
                        continue
                    except OSError:  # not between these file systems: copy through memory
                        fast = None
                done += _copy_span(src, out, lo, hi)
            out.truncate(size)  # fsynced with the whole copy (_fsync_tree): one wait, not one per file
            return done
        finally:
            out.close()
    finally:
        src.close()


def swapped(rel: str, seals: dict[tuple[str, int], tuple[int, int, int]]) -> bool:
    """Whether `rel` is a data file of a year a seal swapped during the copy."""
    m = DATA_FILE.match(os.path.basename(rel))
    return m is not None and (os.path.dirname(rel), int(m.group(1))) in seals


def copy_sealed(fs: BackupFileSystem, root: str, staging: str,
                seals: dict[tuple[str, int], tuple[int, int, int]]
                ) -> list[tuple[str, os.stat_result, int]] | None:
    """Copy the sealed file of every year a seal swapped during the copy, the one the last
    op-6 record of the copied log names (replaying the log removes the `.bin` or old overlay
    copied before the swap, and skips the writes the sealed file holds; docs/format.md
    "Sealing, re-sealing and the swap"): (path, its stat, bytes copied) of each; None when
    the source holds another file by now (sealed again, or dropped: start again)."""
    out = []
    for (key, year), ident in sorted(seals.items()):
        rel = f"{key}/{sealed_name(year)}"
        src, dst = os.path.join(root, rel), os.path.join(staging, rel)
        try:
            st = fs.stat(src)
        except FileNotFoundError:
            return None
        if fs.exists(dst):
            fs.unlink(dst)
        n = copy_file(fs, src, dst)
        try:
            r = open_sealed(fs, dst)
        except (FileNotFoundError, MktsError):
            return None
        if (r.meta.generation, r.file_size, r.footer_crc) != ident:
            return None
        out.append((rel, st, n))
    return out
