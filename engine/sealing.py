"""The files of a bucket-year's states: the rows of a live year file in read order, writing
`<YYYY>.sealed` from them, opening one, tombstones in an overlay (the apply side of WAL op 3
mode 1 that the delete path calls), and the open-time cleanup rules (docs/format.md "Sealing,
re-sealing and the swap", "Deletes and updates"). Bulk loads' files: engine/bulkload.py.
"""

from __future__ import annotations

import os

import numpy as np

from mkts.engine.errors import CorruptFileError, InvalidInputError
from mkts.engine.header import MAX_HEADER, Header, decode_header
from mkts.engine.schema import FIXED, SLOT_FIELD, Schema
from mkts.engine.sealfile import PAGE, SealedReader, SealMeta, encode_sealed
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.timeutil import NS, Calendar
from mkts.engine.yearfile import YearFile
from mkts.wal.fs import FileSystem

__all__ = ["live_rows", "write_sealed", "open_sealed", "sealed_name", "overlay_name",
           "live_name", "tidy_year_files", "SEALED_SUFFIX", "tombstone_records",
           "apply_tombstones"]

SEALED_SUFFIX = ".sealed"
TAIL_BYTES = 1 << 16  # the end of a sealed file read ahead with its header (the footer)


def sealed_name(year: int) -> str:
    return f"{year}{SEALED_SUFFIX}"


def live_name(year: int) -> str:
    return f"{year}.bin"


def overlay_name(year: int) -> str:
    return f"{year}.overlay"


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
        hint = getattr(f, "prefetch", None)
        if hint is not None:  # header and footer requested together: one wait, not two
            hint(0, PAGE)
            hint(max(0, size - TAIL_BYTES), min(size, TAIL_BYTES))
        return SealedReader(lambda offset, n: f.pread(n, offset), size, path, later=pread)
    finally:
        f.close()


def tidy_year_files(fs: FileSystem, path: str, names: list[str], readonly: bool,
                    readers: dict[str, SealedReader] | None = None) -> list[str]:
    """Apply the open-time rules to one bucket directory's file names and return the names
    that remain (`readers` receives the reader of each valid sealed file, by name: a read
    then finds header and footer already in memory): `.bin` beside a valid `.sealed` is removed (a crash after a seal's rename);
    a `.sealed` that does not read beside a `.bin` is removed (the `.bin` holds the rows); an
    `.overlay` whose base generation is older than its sealed file's is removed (a re-seal
    merged it). A readonly open changes nothing and ignores what it would remove."""
    have = set(names)
    out = set(names)

    def drop(name: str) -> None:
        out.discard(name)
        if not readonly:
            fs.unlink(os.path.join(path, name))
            fs.fsync_dir(path)

    for name in names:
        if not name.endswith(SEALED_SUFFIX):
            continue
        stem = name[: -len(SEALED_SUFFIX)]
        try:
            reader = open_sealed(fs, os.path.join(path, name))
            gen = reader.meta.generation
            if readers is not None:
                readers[name] = reader
        except CorruptFileError:
            if stem + ".bin" in have:
                drop(name)
            continue  # else the damage is reported by reads and `mkts check`
        if stem + ".bin" in have:
            drop(stem + ".bin")
        if stem + ".overlay" in have:
            try:
                h = read_header(fs, os.path.join(path, stem + ".overlay"))
            except CorruptFileError:
                continue
            if h.base_generation < gen:
                drop(stem + ".overlay")
    return sorted(out)


def read_header(fs: FileSystem, path: str) -> Header:
    f = fs.open(path)
    try:
        head = f.pread(MAX_HEADER, 0)
    finally:
        f.close()
    return decode_header(head, path)


TOMBSTONE_CHUNK = 1 << 16  # slots written per call: a year of 1Sec ticks is 31.6 M slots


def tombstone_records(schema: Schema, slots: np.ndarray) -> np.ndarray:
    """Overlay records that delete whatever the sealed file holds in `slots`: `_slot` =
    -(slot + 1), every other byte zero (a tick slot: no chain, no rows)."""
    recs = np.zeros(len(slots), dtype=schema.record_dtype)
    recs[SLOT_FIELD] = -(np.asarray(slots, dtype=np.int64) + 1)
    return recs


def apply_tombstones(f: YearFile, first: int, last: int) -> None:
    """Make slots first..last (inclusive) of the overlay `f` tombstones (WAL op 3 mode 1).
    For a tick bucket the caller passes the intervals wholly inside the deleted range; an
    interval the range cuts becomes a replacing slot instead (TICK_REPLACING). Writing the
    same range again leaves the same bytes."""
    h = f.header
    if h.base_generation < 1:
        raise InvalidInputError(f"{f.path} is not an overlay: tombstones go only into the "
                                "overlay of a sealed year")
    if not 0 <= first <= last < h.nslots:
        raise InvalidInputError(f"{f.path}: slots {first}..{last} are outside 0..{h.nslots - 1}")
    for a in range(first, last + 1, TOMBSTONE_CHUNK):
        slots = np.arange(a, min(last + 1, a + TOMBSTONE_CHUNK), dtype=np.int64)
        f.write_slots(slots, tombstone_records(h.schema, slots).data.cast("B"))
