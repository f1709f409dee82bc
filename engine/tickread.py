"""Reading tick intervals: walk the chains of many slots level by level, decode each block
they touch once (one batched decompression), and lay the rows out in slot order, sorted by
time with ties in write order. Python loops run per block or per run of rows, never per
interval. Layout: docs/format.md "Tick buckets".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mkts.engine.errors import CorruptFileError
from mkts.engine.schema import Schema
from mkts.engine.tickblock import BLOCK_HEADER, Block, IntervalRows, decode_blocks
from mkts.engine.uniq import unique_inverse
from mkts.engine.yearfile import YearFile

__all__ = ["BlockSource", "read_rows", "read_interval"]

_MAX_RUNS = 256  # above this many copy runs, one gather per column is cheaper


class BlockSource:
    """Decoded blocks of one year file by offset: pending ones (planned, not yet written) are
    looked up first, then the file; pointers outside the data region are damage."""

    def __init__(self, f: YearFile | None, schema: Schema, where: str,
                 pending: dict[int, tuple[object, bytes]] | None = None,
                 nslots: int | None = None) -> None:
        self.f = f
        self.schema = schema
        self.where = where
        self.pending = pending or {}
        self.nslots = nslots if nslots is not None or f is None else f.header.nslots
        self.cache: dict[int, Block] = {}

    def load_one(self, off: int, nbytes: int, slot: int) -> Block:
        """The block at `off` (a scalar `load`, for the planner's merges)."""
        b = self.cache.get(off)
        if b is not None:
            return b
        pend = self.pending.get(off)
        if pend is not None:
            buf: bytes = pend[1]
            what = f"the pending tick block at offset {off} (slot {slot})"
        else:
            f = self.f
            if f is None or off < f.data_start or nbytes < BLOCK_HEADER.size:
                raise CorruptFileError(
                    f"{self.where}: tick chain of slot {slot} points outside the data region "
                    f"({nbytes} bytes at offset {off})")
            buf = f.read(off, nbytes)
            what = f"the tick block at offset {off} (chain of slot {slot})"
        (b,) = decode_blocks([(off, buf)], self.schema, self.where, [what], self.nslots)
        self.cache[off] = b
        return b

    def load(self, offs: np.ndarray, nbytes: np.ndarray, slots: np.ndarray) -> list[Block]:
        """The blocks at distinct offsets `offs` (sizes `nbytes`); `slots[i]` is a slot whose
        chain points there (named in errors)."""
        want = [i for i, o in enumerate(offs.tolist()) if o not in self.cache]
        bufs: list[tuple[int, bytes | memoryview]] = []
        what: list[str] = []
        f = self.f
        data_start = f.data_start if f is not None else 0
        # Coalesce neighbouring blocks of the file into one read.
        span: list[int] = []
        for i in want + [-1]:
            if span and (i < 0 or int(offs[i]) != int(offs[span[-1]]) + int(nbytes[span[-1]])
                         or int(offs[i]) in self.pending):
                a = int(offs[span[0]])
                b = int(offs[span[-1]]) + int(nbytes[span[-1]])
                assert f is not None
                data = memoryview(f.read(a, b - a))
                for j in span:
                    o = int(offs[j])
                    bufs.append((o, data[o - a : o - a + int(nbytes[j])]))
                    what.append(f"the tick block at offset {o} (chain of slot {int(slots[j])})")
                span = []
            if i < 0:
                break
            o, n, s = int(offs[i]), int(nbytes[i]), int(slots[i])
            pend = self.pending.get(o)
            if pend is not None:
                bufs.append((o, pend[1]))
                what.append(f"the pending tick block at offset {o} (slot {s})")
                continue
            if f is None or o < data_start or n < BLOCK_HEADER.size:
                raise CorruptFileError(
                    f"{self.where}: tick chain of slot {s} points outside the data region "
                    f"({n} bytes at offset {o})")
            span.append(i)
        for blk in decode_blocks(bufs, self.schema, self.where, what, self.nslots):
            self.cache[blk.offset] = blk
        return [self.cache[o] for o in offs.tolist()]


def _walk(src: BlockSource, idx: np.ndarray, recs: np.ndarray
          ) -> tuple[list[Block], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (slot position, chain level, block, first row, rows) piece of the slots' chains."""
    where = src.where
    nb = recs["nblobs"].astype(np.int64)
    if len(nb) and int(nb.min()) < 1:
        s = int(idx[np.flatnonzero(nb < 1)[0]])
        raise CorruptFileError(f"{where}: tick slot {s} is occupied but has no blocks")
    pos = np.arange(len(idx), dtype=np.int64)
    off = recs["head"].astype(np.int64)
    nbytes = recs["head_bytes"].astype(np.int64)
    rows = recs["head_rows"].astype(np.int64)
    blocks: list[Block] = []
    ids: dict[int, int] = {}
    p_pos, p_lvl, p_blk, p_start, p_n = [], [], [], [], []
    level = 0
    while len(pos):
        order: np.ndarray | None = None
        if len(off) < 2 or bool((off[1:] >= off[:-1]).all()):
            # The usual case (blocks written in slot order): group by runs, no sort.
            first = np.concatenate(([0], np.flatnonzero(off[1:] != off[:-1]) + 1))
            bounds = np.concatenate((first, [len(off)]))
            inv = np.repeat(np.arange(len(first)), np.diff(bounds))
        else:
            _, first, inv = unique_inverse(off, first=True)
            order = np.argsort(inv, kind="stable")
            bounds = np.searchsorted(inv[order], np.arange(len(first) + 1))
        if bool((nbytes != nbytes[first][inv]).any()):
            s = int(idx[pos[np.flatnonzero(nbytes != nbytes[first][inv])[0]]])
            raise CorruptFileError(f"{where}: tick chain of slot {s} gives a wrong size for "
                                   "a block other slots share")
        loaded = src.load(off[first], nbytes[first], idx[pos[first]])
        blk = np.empty(len(pos), dtype=np.int64)
        start = np.empty(len(pos), dtype=np.int64)
        cnt = np.empty(len(pos), dtype=np.int64)
        prev = np.empty(len(pos), dtype=np.int64)
        prev_b = np.empty(len(pos), dtype=np.int64)
        prev_r = np.empty(len(pos), dtype=np.int64)
        for j, b in enumerate(loaded):
            sel: Any = (slice(int(bounds[j]), int(bounds[j + 1])) if order is None
                        else order[bounds[j] : bounds[j + 1]])
            k = b.find(idx[pos[sel]], where)
            bid = ids.get(b.offset)
            if bid is None:
                bid = ids[b.offset] = len(blocks)
                blocks.append(b)
            blk[sel] = bid
            start[sel] = b.starts[k]
            cnt[sel] = b.counts[k]
            prev[sel] = b.prev[k]
            prev_b[sel] = b.prev_bytes[k]
            prev_r[sel] = b.prev_rows[k]
        bad = cnt != rows
        if bool(bad.any()):
            i = int(np.flatnonzero(bad)[0])
            raise CorruptFileError(
                f"{where}: tick chain of slot {int(idx[pos[i]])} expects {int(rows[i])} rows in "
                f"the block at offset {int(off[i])}, which holds {int(cnt[i])}")
        last = level + 1 >= nb[pos]
        bad = (last & ((prev != 0) | (prev_b != 0))) | (~last & ((prev <= 0) | (prev >= off)))
        if bool(bad.any()):
            i = int(np.flatnonzero(bad)[0])
            how = "longer than its count" if last[i] else "broken (shorter than its count)"
            raise CorruptFileError(f"{where}: tick chain of slot {int(idx[pos[i]])} is {how}")
        p_pos.append(pos)
        p_lvl.append(np.full(len(pos), level, dtype=np.int64))
        p_blk.append(blk)
        p_start.append(start)
        p_n.append(cnt)
        keep = ~last
        pos, off, nbytes, rows = pos[keep], prev[keep], prev_b[keep], prev_r[keep]
        level += 1
    cat = [np.concatenate(p) if p else np.zeros(0, np.int64)
           for p in (p_pos, p_lvl, p_blk, p_start, p_n)]
    return blocks, cat[0], cat[1], cat[2], cat[3], cat[4]


def read_rows(src: BlockSource, idx: np.ndarray, recs: np.ndarray, dtype: np.dtype,
              ns_field: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All rows of slots `idx` (ascending; `recs` their slot records): (rows of `dtype` with
    the bucket's columns filled, nanoseconds since each row's label). Rows are grouped by slot
    in `idx` order, each slot's `nrows` of them, sorted by time, ties in write order.

    The offsets are an int64 array, or with `ns_field` written straight into that field of the
    rows and returned as a view of it (for offsets that fit the field: 1Sec buckets)."""
    schema = src.schema
    names = schema.names
    blocks, pos, lvl, blk, start, cnt = _walk(src, idx, recs)
    nrows = recs["nrows"].astype(np.int64)
    single = len(pos) == len(idx)  # every chain is one block long: pieces in slot order
    found = cnt if single else np.bincount(pos, weights=cnt, minlength=len(idx)).astype(np.int64)
    if bool((found != nrows).any()):
        i = int(np.flatnonzero(found != nrows)[0])
        raise CorruptFileError(
            f"{src.where}: slot {int(idx[i])} says {int(nrows[i])} rows, found {int(found[i])}")
    if not single:
        order = np.lexsort((-lvl, pos))  # slot order; in a slot, oldest block first
        blk, start, cnt = blk[order], start[order], cnt[order]
    total = int(cnt.sum())
    out = np.empty(total, dtype=dtype)
    ns = out[ns_field] if ns_field is not None else np.empty(total, dtype=np.int64)
    if total:
        brk = np.flatnonzero((blk[1:] != blk[:-1]) | (start[1:] != start[:-1] + cnt[:-1])) + 1
        firsts = np.concatenate(([0], brk))
        ends = np.concatenate((brk, [len(cnt)]))
        dst = np.zeros(len(cnt) + 1, dtype=np.int64)
        np.cumsum(cnt, out=dst[1:])
        if len(firsts) <= max(_MAX_RUNS, 4 * len(blocks)):
            for r0, r1 in zip(firsts.tolist(), ends.tolist(), strict=True):
                b = blocks[int(blk[r0])]
                s, d, n = int(start[r0]), int(dst[r0]), int(dst[r1] - dst[r0])
                ns[d : d + n] = b.ns[s : s + n]
                for name in names:
                    out[name][d : d + n] = b.columns[name][s : s + n]
        else:
            base = np.zeros(len(blocks) + 1, dtype=np.int64)
            np.cumsum([len(b.ns) for b in blocks], out=base[1:])
            src_idx = np.repeat(base[blk] + start - dst[:-1], cnt) + np.arange(total)
            ns[:] = np.concatenate([b.ns.astype(np.int64) for b in blocks])[src_idx]
            for name in names:
                out[name] = np.concatenate([b.columns[name] for b in blocks])[src_idx]
    if not single:
        multi = np.zeros(len(idx), dtype=bool)
        multi[pos[lvl > 0]] = True
        # Slots with older blocks: their pieces lie oldest first; a stable sort by (slot, ns)
        # interleaves them by time and keeps ties in write order.
        which = np.flatnonzero(multi)
        first = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(nrows, out=first[1:])
        lens = nrows[which]
        at = np.zeros(len(which) + 1, dtype=np.int64)
        np.cumsum(lens, out=at[1:])
        sub = np.repeat(first[which] - at[:-1], lens) + np.arange(int(at[-1]))
        perm = sub[np.lexsort((ns[sub], np.repeat(which, lens)))]
        out[sub] = out[perm]
        if ns_field is None:
            ns[sub] = ns[perm]
    return out, ns


def read_interval(f: YearFile, schema: Schema, slot: int, rec: Any) -> IntervalRows:
    """All rows of one interval, stably sorted by time (ties in write order)."""
    src = BlockSource(f, schema, f.path)
    rows, ns = read_rows(src, np.array([slot], dtype=np.int64), np.array([rec]).reshape(1),
                         schema.row_dtype)
    return IntervalRows(ns, rows)
