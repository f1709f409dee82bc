"""Moving a bucket-year between its live and sealed states: the rows of a live year file in
read order, writing `<YYYY>.sealed` from them, rebuilding a live file from a sealed one, and
the open-time cleanup rules (docs/format.md "Sealing, re-sealing and the swap").
"""

from __future__ import annotations

import os

import numpy as np

from mkts.engine.errors import CorruptFileError
from mkts.engine.header import decode_header, encode_header
from mkts.engine.schema import FIXED, SLOT_FIELD, Schema
from mkts.engine.sealfile import SealedReader, SealMeta, encode_sealed
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.timeutil import NS, Calendar
from mkts.engine.yearfile import YearFile
from mkts.wal.fs import FileSystem

__all__ = ["live_rows", "write_sealed", "open_sealed", "write_live", "sealed_name",
           "live_name", "tidy_year_files", "SEALED_SUFFIX"]

SEALED_SUFFIX = ".sealed"


def sealed_name(year: int) -> str:
    return f"{year}{SEALED_SUFFIX}"


def live_name(year: int) -> str:
    return f"{year}.bin"


def live_rows(f: YearFile, schema: Schema, calendar: Calendar
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(keys, columns) of every row of a live year file in read order: keys are slot numbers
    (fixed) or tick times in nanoseconds (ties in write order). Damage raises
    CorruptFileError, as a read would."""
    idx = f.occupied().astype(np.int64)
    recs = np.asarray(f.slots[idx]) if len(idx) else np.zeros(0, schema.record_dtype)
    if len(idx) and bool((recs[SLOT_FIELD] != idx + 1).any()):
        raise CorruptFileError(f"{f.path}: a record's slot number does not match its position; "
                               "the file is damaged")
    if schema.kind == FIXED:
        return idx, {n: recs[n] for n in schema.names}
    if not len(idx):
        return idx, {n: np.zeros(0, d) for n, d in schema.columns}
    f.verify_slots(idx, recs)
    rows, ns = read_rows(BlockSource(f, schema, f.path), idx, recs, schema.row_dtype)
    labels = calendar.labels(f.header.year, idx, schema.timeframe)
    keys = np.repeat(labels * NS, recs["nrows"].astype(np.int64)) + ns
    return keys, {n: rows[n] for n in schema.names}


def write_sealed(fs: FileSystem, path: str, meta: SealMeta, keys: np.ndarray,
                 columns: dict[str, np.ndarray]) -> int:
    """Write a sealed file at `path` (a temporary name) and fsync it; its size."""
    parts = encode_sealed(meta, keys, columns)
    if fs.exists(path):
        fs.unlink(path)
    out = fs.open(path, create=True)
    try:
        pos = 0
        for p in parts:
            out.pwrite(p, pos)
            pos += len(p)
        out.sync()
    finally:
        out.close()
    return pos


def open_sealed(fs: FileSystem, path: str) -> SealedReader:
    """A reader of the sealed file at `path`: each read opens the file for one pread, so a
    sealed year holds no descriptor between reads (the open-file cache is the live files')."""

    def pread(offset: int, size: int) -> bytes:
        f = fs.open(path)
        try:
            return f.pread(size, offset)
        finally:
            f.close()

    f = fs.open(path)
    try:
        size = f.size()
    finally:
        f.close()
    return SealedReader(pread, size, path)


def write_live(fs: FileSystem, path: str, reader: SealedReader, calendar: Calendar) -> None:
    """Rebuild the live year file of a sealed one at `path` (a temporary name), fsynced. The
    bytes depend only on the sealed rows, so doing it again gives the same file."""
    from mkts.engine.ticks import build_blocks  # the tick writer's block layout

    meta = reader.meta
    schema = meta.schema
    head = encode_header(schema, meta.year, meta.nslots, meta.year_start, meta.timezone)
    header = decode_header(head, path)
    keys, cols = reader.read(np.iinfo(np.int64).min, np.iinfo(np.int64).max)
    if fs.exists(path):
        fs.unlink(path)
    out = fs.open(path, create=True)
    try:
        out.pwrite(head, 0)
        out.truncate(header.file_size)
        live = YearFile(path, header, out)
        if schema.kind == FIXED:
            recs = np.zeros(len(keys), dtype=schema.record_dtype)
            recs[SLOT_FIELD] = keys + 1
            for n in schema.names:
                recs[n] = cols[n]
            if len(keys):
                live.write_slots(keys, recs.data.cast("B"))
        elif len(keys):
            secs = keys // NS
            _, slots = calendar.slots(secs, schema.timeframe)
            slots = slots.astype(np.int64)
            starts = np.concatenate(([0], np.flatnonzero(slots[1:] != slots[:-1]) + 1))
            idx = slots[starts]
            counts = np.diff(np.append(starts, len(slots))).astype(np.int64)
            ns = keys - np.repeat(calendar.labels(meta.year, idx, schema.timeframe) * NS, counts)
            rows = np.zeros(len(keys), dtype=schema.row_dtype)
            for n in schema.names:
                rows[n] = cols[n]
            zero = np.zeros(len(idx), dtype=np.int64)
            blocks, which, shares = build_blocks(schema, idx, counts, zero, zero, zero, ns,
                                                 rows, path)
            sizes = np.array([len(b) for b in blocks], dtype=np.int64)
            offs = header.file_size + np.cumsum(sizes) - sizes
            recs = np.zeros(len(idx), dtype=schema.record_dtype)
            recs[SLOT_FIELD] = idx + 1
            recs["head"] = offs[which]
            recs["head_bytes"] = sizes[which]
            recs["head_rows"] = counts
            recs["nblobs"] = 1
            recs["total_bytes"] = shares
            recs["nrows"] = counts
            out.pwrite(b"".join(blocks), header.file_size)
            live.write_slots(idx, recs.data.cast("B"))
        out.sync()
    finally:
        out.close()


def tidy_year_files(fs: FileSystem, path: str, names: list[str], readonly: bool
                    ) -> list[str]:
    """Apply the open-time rules to one bucket directory's file names and return the names
    that remain: `.bin` beside a valid `.sealed` is removed (a crash after a seal's rename, or
    during a rebuild of the live file); a `.sealed` that does not read beside a `.bin` is
    removed (the `.bin` holds the rows). A readonly open changes nothing and prefers the
    valid sealed file."""
    have = set(names)
    out = set(names)
    for name in names:
        if not name.endswith(SEALED_SUFFIX) or name[: -len(SEALED_SUFFIX)] + ".bin" not in have:
            continue
        live = name[: -len(SEALED_SUFFIX)] + ".bin"
        try:
            open_sealed(fs, os.path.join(path, name))
            drop = live
        except CorruptFileError:
            drop = name
        out.discard(drop)
        if not readonly:
            fs.unlink(os.path.join(path, drop))
            fs.fsync_dir(path)
    return sorted(out)
