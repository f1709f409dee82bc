"""Stage 2 of the write path: turn validated rows into slot writes, one per year file.

Pure numpy; the result is what the log records and what apply writes (docs/format.md "Slots").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.ingest import Batch
from engine.keys import BucketKey
from engine.schema import SLOT_FIELD, Schema
from engine.timeutil import Calendar

__all__ = ["SlotWrite", "plan_fixed"]


@dataclass
class SlotWrite:
    """Records for ascending, unique slots of one year file of one bucket."""

    key: BucketKey
    year: int
    slots: np.ndarray  # int64, ascending, unique
    records: np.ndarray  # the bucket's record dtype, one per slot, `_slot` = slot + 1

    @property
    def nbytes(self) -> int:
        return int(self.records.nbytes)


def plan_fixed(key: BucketKey, schema: Schema, batch: Batch, calendar: Calendar) -> list[SlotWrite]:
    """One SlotWrite per year touched; within the batch the last row of an interval wins."""
    n = len(batch)
    if n == 0:
        return []
    years, slots = calendar.slots(batch.epochs, schema.timeframe)
    order = _last_wins_order(years, slots)
    if order is not None:
        years, slots = years[order], slots[order]
    rec = np.zeros(len(slots), dtype=schema.record_dtype)
    rec[SLOT_FIELD] = slots + 1
    for name, values in batch.columns.items():
        rec[name] = values if order is None else values[order]
    out = []
    if years[0] == years[-1]:
        return [SlotWrite(key, int(years[0]), slots, rec)]
    cuts = np.flatnonzero(np.diff(years)) + 1
    bounds = [0, *cuts.tolist(), len(years)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        out.append(SlotWrite(key, int(years[a]), slots[a:b], rec[a:b]))
    return out


def _last_wins_order(years: np.ndarray, slots: np.ndarray) -> np.ndarray | None:
    """Indices that sort rows by (year, slot) keeping only the last row of each slot;
    None when the input is already strictly increasing (the common, fast case)."""
    if len(years) < 2:
        return None
    combined = (years - years.min()) * (1 << 40) + slots
    if bool((combined[1:] > combined[:-1]).all()):
        return None
    order = np.argsort(combined, kind="stable")
    sorted_keys = combined[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    return order[last]
