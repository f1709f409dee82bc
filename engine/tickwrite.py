"""A tick write: the blocks it appends (`build_blocks`: intervals cut into blocks of about
BLOCK_TARGET bytes, encoded by engine/tickblock.py), its `TickWrite` redo record for one year
file, and the rows it added as triggers see them. Planning is engine/tickplanner.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.engine.errors import CorruptFileError
from mkts.engine.keys import BucketKey
from mkts.engine.schema import Schema
from mkts.engine.tickblock import (
    BLOCK_TARGET,
    ENTRY_DTYPE,
    MAX_BLOCK,
    apportion,
    decode_blocks,
    encode_blocks,
)
from mkts.engine.uniq import unique_first

__all__ = ["TickWrite", "build_blocks", "tick_event_rows"]


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
