"""Tick (variable) buckets: any number of rows per interval, exact nanosecond times.

Each interval's rows live in zstandard-compressed blobs appended to the year file's data
region; the interval's slot points to its newest blob, and each blob to the one before
(a chain). Appends merge the newest blobs while they are no larger than the new one, so a
chain stays O(log n) long and an append costs O(log n) amortised. Layout and rules:
docs/format.md "Tick buckets".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zstandard

from engine.errors import CorruptFileError
from engine.keys import BucketKey
from engine.schema import SLOT_FIELD, TICK_SLOT_DTYPE, Schema
from engine.timeutil import NS, Calendar
from engine.yearfile import YearFile
from wal.crc import crc32c

__all__ = ["TickWrite", "TickPlanner", "IntervalRows", "plan_ticks", "read_interval",
           "tick_event_rows", "BLOB_HEADER"]

BLOB_MAGIC = b"MKTB"
# magic, slot, rows, raw size, previous blob offset, previous blob bytes, previous rows, crc
BLOB_HEADER = struct.Struct("<4sIIIqIII")
_CRC_AT = BLOB_HEADER.size - 4
MAX_BLOB = 1 << 31
_LEVEL = 3
_cctx = zstandard.ZstdCompressor(level=_LEVEL)
_dctx = zstandard.ZstdDecompressor()


@dataclass
class IntervalRows:
    """The rows of one interval: nanoseconds since the interval's label, and the columns."""

    ns: np.ndarray  # int64, sorted ascending (stable: ties in write order)
    rows: np.ndarray  # the schema's row_dtype

    def __len__(self) -> int:
        return len(self.ns)


def _merge(old: IntervalRows, new: IntervalRows) -> IntervalRows:
    """Older rows first, then newer, stably sorted by time: ties keep write order."""
    ns = np.concatenate((old.ns, new.ns))
    rows = np.concatenate((old.rows, new.rows))
    if len(old) and len(new) and new.ns[0] < old.ns[-1]:
        order = np.argsort(ns, kind="stable")
        ns, rows = ns[order], rows[order]
    return IntervalRows(ns, rows)


def encode_blob(slot: int, data: IntervalRows, prev: tuple[int, int, int]) -> bytes:
    """One blob: header + zstd frame of [ns offsets][column 1]...[column k] (columnar)."""
    parts = [data.ns.astype("<i8", copy=False).tobytes()]
    for name in data.rows.dtype.names or ():
        parts.append(np.ascontiguousarray(data.rows[name]).tobytes())
    raw = b"".join(parts)
    payload = _cctx.compress(raw)
    head = BLOB_HEADER.pack(BLOB_MAGIC, slot, len(data), len(raw), prev[0], prev[1], prev[2], 0)
    crc = crc32c(payload, crc32c(memoryview(head)[:_CRC_AT]))
    return head[:_CRC_AT] + struct.pack("<I", crc) + payload


def decode_blob(buf: bytes | memoryview, slot: int, schema: Schema, where: str
                ) -> tuple[IntervalRows, tuple[int, int, int]]:
    """Decode and verify one blob; returns its rows and (prev offset, prev bytes, prev rows)."""
    if len(buf) < BLOB_HEADER.size:
        raise CorruptFileError(f"{where}: tick blob for slot {slot} is cut short")
    magic, bslot, nrows, raw_size, p_off, p_bytes, p_rows, crc = BLOB_HEADER.unpack_from(buf, 0)
    if magic != BLOB_MAGIC or bslot != slot:
        raise CorruptFileError(f"{where}: tick blob for slot {slot} is damaged (bad magic or slot)")
    payload = memoryview(buf)[BLOB_HEADER.size :]
    if crc32c(payload, crc32c(memoryview(buf)[:_CRC_AT])) != crc:
        raise CorruptFileError(f"{where}: tick blob for slot {slot} fails its checksum")
    row_size = 8 + schema.row_dtype.itemsize
    if raw_size != nrows * row_size:
        raise CorruptFileError(f"{where}: tick blob for slot {slot} has an inconsistent size")
    try:
        raw = _dctx.decompress(payload, max_output_size=raw_size)
    except zstandard.ZstdError as exc:
        raise CorruptFileError(f"{where}: tick blob for slot {slot} does not decompress") from exc
    if len(raw) != raw_size:
        raise CorruptFileError(f"{where}: tick blob for slot {slot} decompressed to a wrong size")
    ns = np.frombuffer(raw, dtype="<i8", count=nrows).astype(np.int64)
    rows = np.empty(nrows, dtype=schema.row_dtype)
    pos = 8 * nrows
    for name in schema.row_dtype.names or ():
        dt = schema.row_dtype.fields[name][0]  # type: ignore[index]
        rows[name] = np.frombuffer(raw, dtype=dt, count=nrows, offset=pos)
        pos += dt.itemsize * nrows
    return IntervalRows(ns, rows), (p_off, p_bytes, p_rows)


def _read_blob(f: YearFile, offset: int, nbytes: int, slot: int) -> bytes:
    """The bytes of one blob of `slot`, refusing pointers outside the data region (a damaged
    slot must raise CorruptFileError naming the file, not an OSError from pread)."""
    if offset < f.data_start or nbytes < BLOB_HEADER.size:
        raise CorruptFileError(
            f"{f.path}: tick chain of slot {slot} points outside the data region "
            f"({nbytes} bytes at offset {offset})"
        )
    return f.read(offset, nbytes)


@dataclass
class TickWrite:
    """Physical redo for one year file of a tick bucket: append `region` at `offset`, then
    write the slot records (pointers to the new chain heads)."""

    key: BucketKey
    year: int
    offset: int
    region: bytes
    slots: np.ndarray  # int64 ascending
    records: np.ndarray  # TICK_SLOT_DTYPE
    # For triggers: the rows this transaction added, sorted by (slot, time).
    new_slots: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    new_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    new_rows: Any = None
    # The planner's pending heads this plan replaced, for TickPlanner.discard.
    undo: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def nbytes(self) -> int:
        return len(self.region) + int(self.records.nbytes)


@dataclass
class _FileState:
    end: int  # next free byte of the data region, including planned writes
    heads: dict[int, tuple[object, np.void]] = field(default_factory=dict)
    blobs: dict[int, tuple[object, bytes]] = field(default_factory=dict)


class TickPlanner:
    """Plans tick appends in commit order, seeing writes planned but not yet applied."""

    def __init__(self) -> None:
        self._files: dict[tuple[BucketKey, int], _FileState] = {}

    def _state(self, key: BucketKey, year: int, f: YearFile | None, data_start: int) -> _FileState:
        st = self._files.get((key, year))
        if st is None or not (st.heads or st.blobs):
            # Nothing planned awaits apply: the file's size is the end (also after the bucket
            # was destroyed and created again, or a compaction stopped half-way).
            end = data_start if f is None else max(f.size(), data_start)
            if st is None:
                st = _FileState(end)
                self._files[(key, year)] = st
            st.end = end
        return st

    def forget(self, key: BucketKey, year: int | None = None) -> None:
        """Drop cached state (after compaction or destroy)."""
        for k in [k for k in self._files if k[0] == key and (year is None or k[1] == year)]:
            del self._files[k]

    def applied(self, w: TickWrite) -> None:
        st = self._files.get((w.key, w.year))
        if st is None:
            return
        for s in w.slots.tolist():
            cur = st.heads.get(s)
            if cur is not None and cur[0] is w:
                del st.heads[s]
        for off in [o for o, (tok, _) in st.blobs.items() if tok is w]:
            del st.blobs[off]

    def discard(self, w: TickWrite) -> None:
        """Undo the plan of a write that will never be logged (its transaction failed to
        build); discard in reverse plan order."""
        st = self._files.get((w.key, w.year))
        if st is None:
            return
        for s, before in w.undo.items():
            cur = st.heads.get(s)
            if cur is not None and cur[0] is w:
                if before is None:
                    del st.heads[s]
                else:
                    st.heads[s] = before
        for off in [o for o, (tok, _) in st.blobs.items() if tok is w]:
            del st.blobs[off]
        if st.end == w.offset + len(w.region):
            st.end = w.offset

    def plan(self, key: BucketKey, schema: Schema, year: int, f: YearFile | None,
             data_start: int, slots: np.ndarray, ns: np.ndarray, rows: np.ndarray) -> TickWrite:
        """Rows sorted by (slot, ns) for one year file -> one TickWrite."""
        st = self._state(key, year, f, data_start)
        w = TickWrite(key, year, st.end, b"", np.zeros(0, np.int64),
                      np.zeros(0, TICK_SLOT_DTYPE), slots, ns, rows)
        bounds = np.flatnonzero(np.diff(slots)) + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), len(slots)]
        out_slots = np.empty(len(starts), dtype=np.int64)
        out_recs = np.zeros(len(starts), dtype=TICK_SLOT_DTYPE)
        blobs: list[bytes] = []
        new_heads: dict[int, tuple[object, np.void]] = {}
        new_blobs: dict[int, tuple[object, bytes]] = {}
        pos = st.end
        where = f.path if f is not None else f"{key}/{year}.bin"
        for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
            slot = int(slots[a])
            data = IntervalRows(ns[a:b], rows[a:b])
            cur = self._current(st, f, slot)
            if cur is None:
                head, head_bytes, head_rows, nblobs, total, nrows = 0, 0, 0, 0, 0, 0
            else:
                head, head_bytes, head_rows = int(cur["head"]), int(cur["head_bytes"]), int(cur["head_rows"])
                nblobs, total, nrows = int(cur["nblobs"]), int(cur["total_bytes"]), int(cur["nrows"])
            added = len(data)
            while nblobs and head_rows <= len(data):
                old, prev = decode_blob(self._blob(st, f, head, head_bytes, slot), slot, schema,
                                        where)
                data = _merge(old, data)
                total -= head_bytes
                nblobs -= 1
                head, head_bytes, head_rows = prev
            blob = encode_blob(slot, data, (head, head_bytes, head_rows))
            if len(blob) >= MAX_BLOB:
                raise CorruptFileError(f"{where}: interval {slot} would exceed {MAX_BLOB} bytes")
            rec = out_recs[i]
            rec[SLOT_FIELD] = slot + 1
            rec["head"] = pos
            rec["head_bytes"] = len(blob)
            rec["head_rows"] = len(data)
            rec["nblobs"] = nblobs + 1
            rec["total_bytes"] = total + len(blob)
            rec["nrows"] = nrows + added
            out_slots[i] = slot
            new_blobs[pos] = (w, blob)
            new_heads[slot] = (w, rec)
            blobs.append(blob)
            pos += len(blob)
        w.region = b"".join(blobs)
        w.slots = out_slots
        w.records = out_recs
        # Publish to the planner state only now: a plan that raised half-way (a damaged blob,
        # an oversized interval) must leave no pending head behind, or a later write would
        # merge rows that were never logged.
        w.undo = {s: st.heads.get(s) for s in new_heads}
        st.heads.update(new_heads)
        st.blobs.update(new_blobs)
        st.end = pos
        return w

    def _current(self, st: _FileState, f: YearFile | None, slot: int) -> np.void | None:
        pending = st.heads.get(slot)
        if pending is not None:
            return pending[1]
        if f is None:
            return None
        rec = f.slots[slot]
        return rec if int(rec[SLOT_FIELD]) else None

    def _blob(self, st: _FileState, f: YearFile | None, offset: int, nbytes: int,
              slot: int) -> bytes:
        pending = st.blobs.get(offset)
        if pending is not None:
            return pending[1]
        if f is None:
            raise CorruptFileError(f"tick blob at {offset} is missing")
        return _read_blob(f, offset, nbytes, slot)


def plan_ticks(planner: TickPlanner, key: BucketKey, schema: Schema, calendar: Calendar,
               epochs: np.ndarray, nanos: np.ndarray, columns: dict[str, np.ndarray],
               file_of: Any, data_start_of: Any) -> list[TickWrite]:
    """Split validated ticks by year file and interval and plan their blobs."""
    tf = schema.timeframe
    years, slots = calendar.slots(epochs, tf)
    labels = np.empty(len(epochs), dtype=np.int64)
    for y in np.unique(years).tolist():
        sel = years == y
        labels[sel] = calendar.labels(int(y), slots[sel], tf)
    ns = (epochs - labels) * NS + nanos.astype(np.int64)
    order = np.lexsort((ns, slots, years))  # stable: ties keep input order
    rows = np.empty(len(epochs), dtype=schema.row_dtype)
    for name, values in columns.items():
        rows[name] = values
    years, slots, ns, rows = years[order], slots[order], ns[order], rows[order]
    out: list[TickWrite] = []
    cuts = [0, *(np.flatnonzero(np.diff(years)) + 1).tolist(), len(years)]
    try:
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            y = int(years[a])
            out.append(planner.plan(key, schema, y, file_of(y), data_start_of(y), slots[a:b],
                                    ns[a:b], rows[a:b]))
    except BaseException:
        for w in reversed(out):  # a later year failed: the earlier plans will not be logged
            planner.discard(w)
        raise
    return out


def read_interval(f: YearFile, schema: Schema, slot: int, rec: np.void) -> IntervalRows:
    """All rows of one interval, oldest blob first, stably sorted by time."""
    head, head_bytes, nblobs = int(rec["head"]), int(rec["head_bytes"]), int(rec["nblobs"])
    parts: list[IntervalRows] = []
    for _ in range(nblobs):
        data, prev = decode_blob(_read_blob(f, head, head_bytes, slot), slot, schema, f.path)
        parts.append(data)
        head, head_bytes = prev[0], prev[1]
    if head_bytes or head:
        raise CorruptFileError(f"{f.path}: tick chain of slot {slot} is longer than its count")
    if not parts:
        return IntervalRows(np.zeros(0, np.int64), np.zeros(0, schema.row_dtype))
    if len(parts) == 1:
        out = parts[0]
    else:
        parts.reverse()
        out = parts[0]
        for p in parts[1:]:
            out = _merge(out, p)
    if len(out) != int(rec["nrows"]):
        raise CorruptFileError(f"{f.path}: slot {slot} says {int(rec['nrows'])} rows, found {len(out)}")
    return out


def tick_event_rows(w: TickWrite, schema: Schema) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slot, ns since label, row) of each tick a write added, for triggers. A replayed write
    knows only its blobs, so it reports every row of each touched interval's newest blob
    (a superset of what it added: triggers are at-least-once)."""
    if w.new_rows is not None:
        return w.new_slots, w.new_ns, w.new_rows
    slots, ns, rows = [], [], []
    for slot, rec in zip(w.slots.tolist(), w.records, strict=True):
        start = int(rec["head"]) - w.offset
        data, _ = decode_blob(w.region[start : start + int(rec["head_bytes"])], slot, schema,
                              f"log record for {w.key}/{w.year}")
        slots.append(np.full(len(data), slot, dtype=np.int64))
        ns.append(data.ns)
        rows.append(data.rows)
    if not slots:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, schema.row_dtype)
    return np.concatenate(slots), np.concatenate(ns), np.concatenate(rows)


def compact_year_file(fs: Any, f: YearFile, schema: Schema, tmp_path: str) -> None:
    """Write a copy of `f` with one blob per interval and no garbage to `tmp_path`, synced.

    The caller renames it over the original and fsyncs the directory."""
    h = f.header
    out = fs.open(tmp_path, create=True)
    try:
        out.pwrite(f.read(0, h.header_size), 0)
        out.truncate(h.file_size)
        idx = np.flatnonzero(f.slots[SLOT_FIELD])
        recs = np.array(f.slots[idx])
        pos = h.file_size
        blobs: list[bytes] = []
        for i, slot in enumerate(idx.tolist()):
            data = read_interval(f, schema, slot, recs[i])
            blob = encode_blob(slot, data, (0, 0, 0))
            recs[i]["head"] = pos
            recs[i]["head_bytes"] = len(blob)
            recs[i]["head_rows"] = len(data)
            recs[i]["nblobs"] = 1
            recs[i]["total_bytes"] = len(blob)
            blobs.append(blob)
            pos += len(blob)
            if len(blobs) >= 4096:
                region = b"".join(blobs)
                out.pwrite(region, pos - len(region))
                blobs.clear()
        if blobs:
            region = b"".join(blobs)
            out.pwrite(region, pos - len(region))
        YearFile(tmp_path, h, out).write_slots(idx, recs.data.cast("B"))
        out.sync()
    finally:
        out.close()
