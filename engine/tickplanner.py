"""`TickPlanner`: plans tick appends in commit order, seeing the writes planned but not yet
applied, and merges the newest pieces of an interval's chain while they are no larger than
the new one (so a chain stays O(log n) long). The blocks it plans are engine/tickwrite.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mkts.engine.errors import CorruptFileError
from mkts.engine.keys import BucketKey
from mkts.engine.schema import SLOT_FIELD, TICK_BLOCK_COUNT, TICK_REPLACING, TICK_SLOT_DTYPE, Schema
from mkts.engine.tickblock import ENTRY_DTYPE, MAX_BLOCK, IntervalRows, encode_blocks
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.tickwrite import TickWrite, build_blocks
from mkts.engine.yearfile import YearFile

__all__ = ["TickPlanner"]


def _merge(old: IntervalRows, new: IntervalRows) -> IntervalRows:
    """Older rows first, then newer, stably sorted by time: ties keep write order."""
    ns = np.concatenate((old.ns, new.ns))
    rows = np.concatenate((old.rows, new.rows))
    if len(old) and len(new) and new.ns[0] < old.ns[-1]:
        order = np.argsort(ns, kind="stable")
        ns, rows = ns[order], rows[order]
    return IntervalRows(ns, rows)


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
        self.applied(w)  # forget it as planned, then give its region back
        st = self._files.get((w.key, w.year))
        if st is None:
            return
        if st.end == w.offset + len(w.region):
            st.end = w.offset

    # -- range deletes (engine/deleteplan.py) ------------------------------------------
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
