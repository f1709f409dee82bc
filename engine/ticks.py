"""Tick (variable) buckets: planning appends and compaction. Any number of rows per interval,
exact nanosecond times.

A write's rows go into new blocks (engine/tickblock.py) appended to the year file's data
region, each holding many intervals; every touched slot then points to its newest block, and
each block's directory points, per interval, to the block before (a chain). Appends merge
the newest pieces of a chain while they are no larger than the new one, so a chain stays
O(log n) long. Reads: engine/tickread.py. Layout and rules: docs/format.md "Tick buckets".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.columns import ColumnTable, translate
from mkts.engine.errors import CorruptFileError
from mkts.engine.header import decode_header, encode_header
from mkts.engine.keys import BucketKey
from mkts.engine.schema import (
    SLOT_FIELD,
    TICK_BLOCK_COUNT,
    TICK_REPLACING,
    TICK_SLOT_DTYPE,
    Schema,
)
from mkts.engine.sealread import merged_ticks
from mkts.engine.tickblock import (
    BLOCK_TARGET,
    ENTRY_DTYPE,
    MAX_BLOCK,
    IntervalRows,
    apportion,
    decode_blocks,
    encode_blocks,
)
from mkts.engine.tickread import BlockSource, read_interval, read_rows
from mkts.engine.timeutil import NS, Calendar
from mkts.engine.uniq import unique, unique_first
from mkts.engine.yearfile import YearFile
from mkts.wal.fs import FileSystem

__all__ = ["TickWrite", "TickPlanner", "IntervalRows", "plan_ticks", "read_interval",
           "tick_event_rows", "tick_usage", "compact_bucket", "compact_year_file", "build_blocks"]


def _merge(old: IntervalRows, new: IntervalRows) -> IntervalRows:
    """Older rows first, then newer, stably sorted by time: ties keep write order."""
    ns = np.concatenate((old.ns, new.ns))
    rows = np.concatenate((old.rows, new.rows))
    if len(old) and len(new) and new.ns[0] < old.ns[-1]:
        order = np.argsort(ns, kind="stable")
        ns, rows = ns[order], rows[order]
    return IntervalRows(ns, rows)


def build_blocks(schema: Schema, slots: np.ndarray, counts: np.ndarray, prev: np.ndarray,
                 prev_bytes: np.ndarray, prev_rows: np.ndarray, ns: np.ndarray,
                 rows: np.ndarray, where: str) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Cut intervals (ascending `slots`, `counts` rows each, rows grouped by interval) into
    blocks of about BLOCK_TARGET raw bytes, never splitting an interval, and encode them.
    Returns (blocks, block index of each interval, each interval's share of its block)."""
    row_at = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=row_at[1:])
    row_bytes = 8 + schema.row_dtype.itemsize
    if int(row_at[-1]) * row_bytes + len(slots) * ENTRY_DTYPE.itemsize <= BLOCK_TARGET:
        cuts = np.array([0, len(slots)], dtype=np.int64)  # one block (small writes)
        which = np.zeros(len(slots), dtype=np.int64)
    else:
        before = row_at[:-1] * row_bytes + np.arange(len(slots)) * ENTRY_DTYPE.itemsize
        which = before // BLOCK_TARGET
        brk = np.flatnonzero(which[1:] != which[:-1]) + 1
        cuts = np.concatenate(([0], brk, [len(slots)]))
        which = np.repeat(np.arange(len(cuts) - 1), cuts[1:] - cuts[:-1])
    items = []
    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        if int(row_at[b] - row_at[a]) * row_bytes + (b - a) * ENTRY_DTYPE.itemsize >= MAX_BLOCK:
            raise CorruptFileError(f"{where}: interval {int(slots[a])} would exceed {MAX_BLOCK} "
                                   "bytes in one tick block")
        e = np.empty(b - a, dtype=ENTRY_DTYPE)
        e["slot"] = slots[a:b]
        e["rows"] = counts[a:b]
        e["prev"] = prev[a:b]
        e["prev_bytes"] = prev_bytes[a:b]
        e["prev_rows"] = prev_rows[a:b]
        r0, r1 = int(row_at[a]), int(row_at[b])
        part = rows[r0:r1]
        items.append((e, ns[r0:r1], [part[name] for name in schema.names]))
    blocks = encode_blocks(schema, items)
    shares = np.empty(len(slots), dtype=np.int64)
    for i, (a, b) in enumerate(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True)):
        if len(blocks[i]) >= MAX_BLOCK:
            raise CorruptFileError(f"{where}: interval {int(slots[a])} would exceed {MAX_BLOCK} "
                                   "bytes in one tick block")
        shares[a:b] = apportion(len(blocks[i]), counts[a:b])
    return blocks, which, shares


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

    @property
    def nbytes(self) -> int:
        return len(self.region) + int(self.records.nbytes)


@dataclass
class _FileState:
    end: int  # next free byte of the data region, including planned writes
    # Writes planned but not yet applied, in plan order: their slot records overlay the file's.
    pending: list[TickWrite] = field(default_factory=list)
    blobs: dict[int, tuple[object, bytes]] = field(default_factory=dict)  # pending blocks


class TickPlanner:
    """Plans tick appends in commit order, seeing writes planned but not yet applied."""

    def __init__(self) -> None:
        self._files: dict[tuple[BucketKey, int], _FileState] = {}

    def _state(self, key: BucketKey, year: int, f: YearFile | None, data_start: int) -> _FileState:
        st = self._files.get((key, year))
        if st is None or not (st.pending or st.blobs):
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

    def waiting(self, key: BucketKey, year: int) -> bool:
        """Whether writes planned for the year file await apply (a bulk load then waits)."""
        st = self._files.get((key, year))
        return st is not None and bool(st.pending or st.blobs)

    def applied(self, w: TickWrite) -> None:
        st = self._files.get((w.key, w.year))
        if st is None:
            return
        st.pending = [p for p in st.pending if p is not w]
        for off in [o for o, (tok, _) in st.blobs.items() if tok is w]:
            del st.blobs[off]

    def discard(self, w: TickWrite) -> None:
        """Undo the plan of a write that will never be logged (its transaction failed to
        build); discard in reverse plan order."""
        st = self._files.get((w.key, w.year))
        if st is None:
            return
        st.pending = [p for p in st.pending if p is not w]
        for off in [o for o, (tok, _) in st.blobs.items() if tok is w]:
            del st.blobs[off]
        if st.end == w.offset + len(w.region):
            st.end = w.offset

    # -- range deletes (engine/corrections.py) -----------------------------------------
    def view(self, key: BucketKey, year: int, f: YearFile | None, data_start: int
             ) -> tuple[np.ndarray, np.ndarray]:
        """(occupied slots, their records) as the log will leave the file: the file's
        slots with the pending plans laid over them (a cleared slot is pending zeros)."""
        st = self._state(key, year, f, data_start)
        occ = np.zeros(0, np.int64) if f is None else np.array(f.occupied(), dtype=np.int64)
        for p in st.pending:
            occ = np.union1d(occ, p.slots)
        where = f.path if f is not None else f"{key}/{year}.bin"
        recs = self._current(st, f, occ, where)
        live = recs[SLOT_FIELD] != 0
        return occ[live], recs[live]

    def rows_of(self, key: BucketKey, schema: Schema, year: int, f: YearFile | None,
                slot: int, rec: np.ndarray) -> IntervalRows:
        """The rows of one interval (its record `rec` from `view`), pending blocks included."""
        st = self._files.get((key, year))
        src = BlockSource(f, schema, f.path if f is not None else f"{key}/{year}.bin",
                          None if st is None else st.blobs)
        rows, ns = read_rows(src, np.array([slot], dtype=np.int64), np.array([rec]).reshape(1),
                             schema.row_dtype)
        return IntervalRows(ns, rows)

    def clear(self, key: BucketKey, year: int, f: YearFile | None, data_start: int,
              slots: np.ndarray) -> TickWrite:
        """Plan the clearing of `slots` (pending zero records, so later plans of the same
        transaction start fresh chains there); the token is never logged itself."""
        st = self._state(key, year, f, data_start)
        w = TickWrite(key, year, st.end, b"", slots.astype(np.int64),
                      np.zeros(len(slots), TICK_SLOT_DTYPE))
        st.pending.append(w)
        return w

    def tombstone(self, key: BucketKey, year: int, f: YearFile | None, data_start: int,
                  slots: np.ndarray) -> TickWrite:
        """Plan tombstones over `slots` of a sealed year's overlay (pending records
        -(slot + 1), so later plans of the same transaction start replacing chains there);
        the token is never logged itself (op 3 mode 1 is)."""
        st = self._state(key, year, f, data_start)
        recs = np.zeros(len(slots), TICK_SLOT_DTYPE)
        recs[SLOT_FIELD] = -(slots.astype(np.int64) + 1)
        w = TickWrite(key, year, st.end, b"", slots.astype(np.int64), recs)
        st.pending.append(w)
        return w

    def rewrite(self, key: BucketKey, schema: Schema, year: int, f: YearFile | None,
                data_start: int, slot: int, data: IntervalRows, flags: int = 0) -> TickWrite:
        """Plan a chain of one block holding `data` for interval `slot` (what is left of an
        interval a delete cut; `flags` TICK_REPLACING in a sealed year's overlay: the
        sealed rows of the interval are hidden); triggers hear of it as no new rows."""
        st = self._state(key, year, f, data_start)
        where = f.path if f is not None else f"{key}/{year}.bin"
        one = np.array([slot], dtype=np.int64)
        zero = np.zeros(1, dtype=np.int64)
        blocks, _, shares = build_blocks(schema, one, np.array([len(data)], dtype=np.int64),
                                         zero, zero, zero, data.ns, data.rows, where)
        (block,) = blocks
        off = st.end
        recs = np.zeros(1, dtype=TICK_SLOT_DTYPE)
        recs[0] = (slot + 1, off, len(block), len(data), 1 | flags, 0, int(shares[0]),
                   len(data))
        w = TickWrite(key, year, off, block, one, recs, np.zeros(0, np.int64),
                      np.zeros(0, np.int64), np.zeros(0, schema.row_dtype))
        st.pending.append(w)
        st.blobs[off] = (w, block)
        st.end = off + len(block)
        return w

    def _current(self, st: _FileState, f: YearFile | None, uslots: np.ndarray,
                 where: str) -> np.ndarray:
        """The slot records of `uslots` as the log will leave them: pending heads first."""
        cur = np.zeros(len(uslots), dtype=TICK_SLOT_DTYPE)
        if f is not None:
            cur[:] = f.slots[uslots]
            stored = cur[SLOT_FIELD]
            # -(slot + 1): an overlay's tombstone (docs/format.md "Deletes and updates")
            bad = (stored != 0) & (stored != uslots + 1) & (stored != -(uslots + 1))
            if bool(bad.any()):
                raise CorruptFileError(
                    f"{where}: slot {int(uslots[np.flatnonzero(bad)[0]])} holds another slot's "
                    "record; the file is damaged")
            f.verify_slots(uslots, cur)
        for p in st.pending:  # oldest first: a newer plan's record wins
            at = np.minimum(np.searchsorted(p.slots, uslots), len(p.slots) - 1)
            hit = p.slots[at] == uslots
            if bool(hit.any()):
                cur[hit] = p.records[at[hit]]
        return cur

    def plan(self, key: BucketKey, schema: Schema, year: int, f: YearFile | None,
             data_start: int, slots: np.ndarray, ns: np.ndarray, rows: np.ndarray) -> TickWrite:
        """Rows sorted by (slot, ns) for one year file -> one TickWrite."""
        st = self._state(key, year, f, data_start)
        where = f.path if f is not None else f"{key}/{year}.bin"
        if slots[0] == slots[-1]:
            return self._plan_one(st, key, schema, year, f, where, int(slots[0]), ns, rows)
        w = TickWrite(key, year, st.end, b"", np.zeros(0, np.int64),
                      np.zeros(0, TICK_SLOT_DTYPE), slots, ns, rows)
        bounds = np.flatnonzero(slots[1:] != slots[:-1]) + 1
        starts = np.concatenate(([0], bounds)).astype(np.int64)
        ends = np.concatenate((bounds, [len(slots)])).astype(np.int64)
        uslots = slots[starts].astype(np.int64)
        counts = ends - starts
        cur = self._current(st, f, uslots, where)
        tomb = cur[SLOT_FIELD] < 0
        # An overlay's flags stay (an append after a tombstone replaces the sealed interval);
        # the chain arithmetic below sees the block count only.
        flags = np.where(tomb, TICK_REPLACING,
                         cur["nblobs"].astype(np.int64) & ~TICK_BLOCK_COUNT)
        if bool(tomb.any()):
            cur[tomb] = np.zeros(1, dtype=TICK_SLOT_DTYPE)
        cur["nblobs"] &= TICK_BLOCK_COUNT
        has = cur[SLOT_FIELD] != 0
        prev = np.where(has, cur["head"], 0).astype(np.int64)
        prev_b = np.where(has, cur["head_bytes"], 0).astype(np.int64)
        prev_r = np.where(has, cur["head_rows"], 0).astype(np.int64)
        nblobs = cur["nblobs"].astype(np.int64)
        total = cur["total_bytes"].astype(np.int64)
        nrows = cur["nrows"].astype(np.int64) + counts
        merge = np.flatnonzero(has & (prev_r <= counts))
        if len(merge):
            src = BlockSource(f, schema, where, st.blobs)
            ns_parts: list[np.ndarray] = []
            row_parts: list[np.ndarray] = []
            done = 0
            for i in merge.tolist():
                a, b = int(starts[i]), int(ends[i])
                data = self._merged(src, schema, int(uslots[i]), IntervalRows(ns[a:b], rows[a:b]),
                                    i, prev, prev_b, prev_r, nblobs, total)
                ns_parts += [ns[done:a], data.ns]
                row_parts += [rows[done:a], data.rows]
                counts[i] = len(data)
                done = b
            ns = np.concatenate([*ns_parts, ns[done:]])
            rows = np.concatenate([*row_parts, rows[done:]])
        blocks, which, shares = build_blocks(schema, uslots, counts, prev, prev_b, prev_r, ns,
                                             rows, where)
        sizes = np.array([len(b) for b in blocks], dtype=np.int64)
        offs = st.end + np.cumsum(sizes) - sizes
        recs = np.zeros(len(uslots), dtype=TICK_SLOT_DTYPE)
        recs[SLOT_FIELD] = uslots + 1
        recs["head"] = offs[which]
        recs["head_bytes"] = sizes[which]
        recs["head_rows"] = counts
        recs["nblobs"] = (nblobs + 1) | flags
        recs["total_bytes"] = total + shares
        recs["nrows"] = nrows
        w.region = blocks[0] if len(blocks) == 1 else b"".join(blocks)
        w.slots = uslots
        w.records = recs
        # Publish to the planner state only now: a plan that raised half-way (a damaged
        # block, an oversized interval) must leave no pending head behind, or a later write
        # would merge rows that were never logged.
        st.pending.append(w)
        st.blobs.update((int(o), (w, b)) for o, b in zip(offs.tolist(), blocks, strict=True))
        st.end = int(offs[-1] + sizes[-1])
        return w

    def _plan_one(self, st: _FileState, key: BucketKey, schema: Schema, year: int,
                  f: YearFile | None, where: str, slot: int, ns: np.ndarray,
                  rows: np.ndarray) -> TickWrite:
        """`plan` for rows of a single interval (the single-tick append), in scalars."""
        cur = None
        for p in reversed(st.pending):
            at = int(np.searchsorted(p.slots, slot))
            if at < len(p.slots) and int(p.slots[at]) == slot:
                cur = p.records[at].tolist()
                break
        if cur is not None:
            pass
        elif f is not None:
            cur = f.slots[slot].tolist()
            if cur[0] not in (0, slot + 1, -(slot + 1)):
                raise CorruptFileError(f"{where}: slot {slot} holds another slot's record; "
                                       "the file is damaged")
        else:
            cur = (0, 0, 0, 0, 0, 0, 0, 0)
        stored, head, hb, hr, nbl, _, tot, nrows = cur
        flags = TICK_REPLACING if stored < 0 else nbl & ~TICK_BLOCK_COUNT
        nbl &= TICK_BLOCK_COUNT
        if stored <= 0:
            head = hb = hr = nbl = tot = nrows = 0
        data = IntervalRows(ns, rows)
        if nbl and hr <= len(data):
            src = BlockSource(f, schema, where, st.blobs)
            data, head, hb, hr, nbl, tot = _merge_chain(src, schema, slot, data, head, hb, hr,
                                                        nbl, tot)
        if len(data) * (8 + schema.row_dtype.itemsize) + ENTRY_DTYPE.itemsize >= MAX_BLOCK:
            raise CorruptFileError(f"{where}: interval {slot} would exceed {MAX_BLOCK} bytes "
                                   "in one tick block")
        e = np.zeros(1, dtype=ENTRY_DTYPE)
        e[0] = (slot, len(data), head, hb, hr)
        (block,) = encode_blocks(schema, [(e, data.ns, [data.rows[n] for n in schema.names])])
        if len(block) >= MAX_BLOCK:
            raise CorruptFileError(f"{where}: interval {slot} would exceed {MAX_BLOCK} bytes "
                                   "in one tick block")
        off = st.end
        recs = np.zeros(1, dtype=TICK_SLOT_DTYPE)
        recs[0] = (slot + 1, off, len(block), len(data), (nbl + 1) | flags, 0, tot + len(block),
                   nrows + len(ns))
        w = TickWrite(key, year, off, block, np.array([slot], dtype=np.int64), recs,
                      np.full(len(ns), slot, dtype=np.int64), ns, rows)
        st.pending.append(w)
        st.blobs[off] = (w, block)
        st.end = off + len(block)
        return w

    @staticmethod
    def _merged(src: BlockSource, schema: Schema, slot: int, data: IntervalRows, i: int,
                prev: np.ndarray, prev_b: np.ndarray, prev_r: np.ndarray, nblobs: np.ndarray,
                total: np.ndarray) -> IntervalRows:
        """`_merge_chain` for entry `i` of the chain arrays (updated in place)."""
        data, head, hb, hr, n, tot = _merge_chain(
            src, schema, slot, data, int(prev[i]), int(prev_b[i]), int(prev_r[i]),
            int(nblobs[i]), int(total[i]))
        prev[i], prev_b[i], prev_r[i], nblobs[i], total[i] = head, hb, hr, n, tot
        return data


def _merge_chain(src: BlockSource, schema: Schema, slot: int, data: IntervalRows, head: int,
                 hb: int, hr: int, n: int, tot: int
                 ) -> tuple[IntervalRows, int, int, int, int, int]:
    """Merge the newest pieces of slot's chain (head block at `head`, `hb` bytes, `hr` rows;
    `n` pieces, `tot` live bytes) into `data` while they are no larger (a binary counter).
    Returns the merged rows and the chain that remains (head, bytes, rows, pieces, bytes)."""
    while n and hr <= len(data):
        blk = src.load_one(head, hb, slot)
        k = int(blk.find(np.array([slot], dtype=np.int64), src.where)[0])
        if int(blk.counts[k]) != hr:
            raise CorruptFileError(f"{src.where}: tick chain of slot {slot} expects {hr} rows "
                                   f"in the block at offset {head}, which holds "
                                   f"{int(blk.counts[k])}")
        data = _merge(blk.piece(k, schema), data)
        tot -= blk.share(k)
        n -= 1
        head, hb, hr = int(blk.prev[k]), int(blk.prev_bytes[k]), int(blk.prev_rows[k])
    if n == 0 and (head or hb):
        raise CorruptFileError(f"{src.where}: tick chain of slot {slot} is longer than its "
                               "count")
    return data, head, hb, hr, n, tot


def plan_ticks(planner: TickPlanner, key: BucketKey, schema: Schema, calendar: Calendar,
               epochs: np.ndarray, nanos: np.ndarray, columns: dict[str, np.ndarray],
               file_of: Any, data_start_of: Any) -> list[TickWrite]:
    """Split validated ticks by year file and interval and plan their blocks."""
    tf = schema.timeframe
    lo, hi = (int(epochs[0]), int(epochs[0])) if len(epochs) == 1 else \
        (int(epochs.min()), int(epochs.max()))
    y0 = calendar.year_of_one(lo)
    if len(epochs) > 1 and not tf.is_daily and calendar.year_of_one(hi) == y0:
        # One year of fixed-length intervals (the bulk case): plain arithmetic.
        since = epochs - calendar.year_start(y0)
        slots = since // tf.seconds
        ns = (since - slots * tf.seconds) * NS + nanos.astype(np.int64)
        return _plan_year(planner, key, schema, y0, epochs, nanos, slots, ns, columns,
                          file_of, data_start_of)
    years, slots = calendar.slots(epochs, tf)
    if len(epochs) == 1:  # the single-tick append: skip the sorting machinery
        y = int(years[0])
        label = int(calendar.labels(y, slots, tf)[0])
        ns1 = np.array([(int(epochs[0]) - label) * NS + int(nanos[0])], dtype=np.int64)
        row = np.empty(1, dtype=schema.row_dtype)
        for name, values in columns.items():
            row[name] = values
        return [planner.plan(key, schema, y, file_of(y), data_start_of(y), slots, ns1, row)]
    one_year = int(years.min()) == int(years.max())
    if one_year:
        labels = calendar.labels(int(years[0]), slots, tf)
    else:
        uyears = unique(years)
        labels = np.empty(len(epochs), dtype=np.int64)
        for y in uyears.tolist():
            sel = years == y
            labels[sel] = calendar.labels(int(y), slots[sel], tf)
    ns = (epochs - labels) * NS + nanos.astype(np.int64)
    if one_year:
        return _plan_year(planner, key, schema, int(years[0]), epochs, nanos, slots, ns,
                          columns, file_of, data_start_of)
    rows = np.empty(len(epochs), dtype=schema.row_dtype)
    for name, values in columns.items():
        rows[name] = values
    order = np.lexsort((ns, slots, years))  # stable: ties keep input order
    years, slots, ns, rows = years[order], slots[order], ns[order], rows[order]
    out: list[TickWrite] = []
    cuts = [0, *(np.flatnonzero(years[1:] != years[:-1]) + 1).tolist(), len(years)]
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


def _plan_year(planner: TickPlanner, key: BucketKey, schema: Schema, year: int,
               epochs: np.ndarray, nanos: np.ndarray, slots: np.ndarray, ns: np.ndarray,
               columns: dict[str, np.ndarray], file_of: Any, data_start_of: Any
               ) -> list[TickWrite]:
    """plan_ticks for rows of one year: order by time alone (slots follow time), and skip
    the sort when the input is already in order."""
    rows = np.empty(len(epochs), dtype=schema.row_dtype)
    for name, values in columns.items():
        rows[name] = values
    t = epochs * NS + nanos
    if len(t) > 1 and not bool((t[1:] >= t[:-1]).all()):
        order = np.argsort(t, kind="stable")  # stable: ties keep input order
        slots, ns, rows = slots[order], ns[order], rows[order]
    return [planner.plan(key, schema, year, file_of(year), data_start_of(year), slots, ns,
                         rows)]


def tick_event_rows(w: TickWrite, schema: Schema) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slot, ns since label, row) of each tick a write added, for triggers. A replayed write
    knows only its blocks, so it reports every row of each touched interval's newest piece
    (a superset of what it added: triggers are at-least-once)."""
    if w.new_rows is not None:
        return w.new_slots, w.new_ns, w.new_rows
    if not len(w.records):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, schema.row_dtype)
    heads, first = unique_first(w.records["head"])
    nbytes = w.records["head_bytes"][first]
    where = f"log record for {w.key}/{w.year}"
    bufs: list[tuple[int, bytes | memoryview]] = []
    view = memoryview(w.region)
    for h, n in zip(heads.tolist(), nbytes.tolist(), strict=True):
        a = h - w.offset
        if a < 0 or a + n > len(view):
            raise CorruptFileError(f"{where}: a slot points outside the logged region")
        bufs.append((h, view[a : a + n]))
    blocks = decode_blocks(bufs, schema, where, [f"the tick block at offset {h}"
                                                  for h in heads.tolist()])
    slots, ns, rows = [], [], []
    for b in blocks:
        slots.append(np.repeat(b.slots, b.counts))
        ns.append(b.ns.astype(np.int64))
        r = np.empty(len(b.ns), dtype=schema.row_dtype)
        for name, col in b.columns.items():
            r[name] = col
        rows.append(r)
    return np.concatenate(slots), np.concatenate(ns), np.concatenate(rows)


def tick_usage(catalog: Catalog, bucket: Bucket) -> dict[str, int]:
    """{"live_bytes", "garbage_bytes", "rows"} of the tick bucket's data regions (what
    `compact_bucket` would reclaim is the garbage)."""
    live = garbage = rows = 0
    for y in bucket.sorted_years():
        if y in bucket.sealed:  # sealed: dense, no garbage (an overlay's is not counted)
            live += catalog.sealed_reader(bucket, y).file_size
            rows += len(merged_ticks(catalog, bucket, y, -(2**63), 2**63 - 1, [])[0])
            continue
        with catalog.pinned(bucket, y) as f:
            assert f is not None
            occupied = f.slots[f.occupied()]
            used = int(occupied["total_bytes"].sum())
            live += used
            rows += int(occupied["nrows"].sum())
            garbage += f.size() - f.data_start - used
    return {"live_bytes": live, "garbage_bytes": garbage, "rows": rows}


def compact_bucket(fs: FileSystem, catalog: Catalog, bucket: Bucket) -> tuple[int, int]:
    """Rewrite every year file of the tick bucket `bucket` without garbage, each replaced
    atomically (a crash leaves the old or the new file, never a mix); the bytes of their
    data regions (before, after). The caller excludes commits meanwhile."""
    before = after = 0
    for y in bucket.sorted_years():
        if y in bucket.sealed:
            continue  # a sealed year holds no garbage
        with catalog.pinned(bucket, y) as f:
            assert f is not None
            before += f.size() - f.data_start
            path, tmp = f.path, f.path + ".tmp"
            if fs.exists(tmp):
                fs.unlink(tmp)
            compact_year_file(fs, f, bucket.schema, tmp, table=bucket.table)
        catalog.cache.drop(bucket.files, y)
        fs.replace(tmp, path)
        fs.fsync_dir(bucket.path)
        bucket.stale.pop(y, None)  # written in the bucket's current columns
        with catalog.pinned(bucket, y) as g:
            assert g is not None
            after += g.size() - g.data_start
    return before, after


def compact_year_file(fs: Any, f: YearFile, schema: Schema, tmp_path: str, *,
                      table: ColumnTable | None = None) -> None:
    """Write a copy of `f` whose intervals each have a chain of one block and no garbage to
    `tmp_path`, synced, in `schema` (the bucket's; with `table`, its format-3 column table:
    rows of a file written before a column change are translated, docs/format.md "Column
    changes"). The caller renames it over the original and fsyncs the directory."""
    h = f.header
    # A fresh header: the copy is written in the current format (version 2: checksummed
    # slots, or 3 after a column change), so compaction also upgrades a version-1 tick file.
    # an overlay (docs/format.md "The three states of a year") stays one: same base
    # generation, its tombstones copied as they are, a replacing chain keeps its flag
    head = encode_header(schema, h.year, h.nslots, h.year_start, h.timezone, table,
                         base_generation=h.base_generation)
    old = (h.schema, h.columns)
    same = table is None or h.columns.version == table.version
    new = decode_header(head, tmp_path)
    out = fs.open(tmp_path, create=True)
    try:
        out.pwrite(head, 0)
        out.truncate(new.file_size)
        idx = np.array(f.occupied(), dtype=np.int64)  # visits only the file's data
        recs = np.array(f.slots[idx])
        f.verify_slots(idx, recs)
        dead = recs[SLOT_FIELD] < 0  # overlay tombstones: no chain, copied as they are
        if bool(dead.any()):
            YearFile(tmp_path, new, out).write_slots(idx[dead], recs[dead].data.cast("B"))
            idx, recs = idx[~dead], recs[~dead]
        flags = recs["nblobs"].astype(np.int64) & ~TICK_BLOCK_COUNT
        recs["nblobs"] &= TICK_BLOCK_COUNT
        pos = new.file_size
        src = BlockSource(f, old[0], f.path)
        # Chunks of about a million rows: memory stays bounded on a large year.
        cum = np.cumsum(recs["nrows"].astype(np.int64))
        chunk = (cum - recs["nrows"]) // 1_000_000
        cuts = np.concatenate(([0], np.flatnonzero(np.diff(chunk)) + 1, [len(idx)]))
        zero = np.zeros(len(idx), dtype=np.int64)
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            if a == b:
                continue
            rows, ns = read_rows(src, idx[a:b], recs[a:b], old[0].row_dtype)
            src.cache.clear()
            if not same:
                assert table is not None
                rows = translate(rows, old, (schema, table), schema.row_dtype)
            counts = recs["nrows"][a:b].astype(np.int64)
            blocks, which, shares = build_blocks(schema, idx[a:b], counts, zero[a:b], zero[a:b],
                                                 zero[a:b], ns, rows, f.path)
            sizes = np.array([len(x) for x in blocks], dtype=np.int64)
            offs = pos + np.cumsum(sizes) - sizes
            part = recs[a:b]
            part["head"] = offs[which]
            part["head_bytes"] = sizes[which]
            part["head_rows"] = counts
            part["nblobs"] = 1 | flags[a:b]
            part["total_bytes"] = shares
            out.pwrite(b"".join(blocks), pos)
            pos += int(sizes.sum())
        YearFile(tmp_path, new, out).write_slots(idx, recs.data.cast("B"))
        out.sync()
    finally:
        out.close()
