"""Stage 2 of the write path: turn validated rows into slot writes, one per year file.

Pure numpy; the result is what the log records and what apply writes (docs/format.md "Slots").
"""

from __future__ import annotations

import numpy as np

from mkts.engine.ingest import Batch
from mkts.engine.keys import BucketKey
from mkts.engine.schema import SLOT_FIELD, Schema
from mkts.engine.timeutil import Calendar

__all__ = ["SlotWrite", "IngestWrite", "RowWrite", "plan_fixed", "split_years", "last_wins_order"]


class SlotWrite:
    """Records for ascending, unique slots of one year file of one bucket."""

    __slots__ = ("key", "year", "slots", "records")

    def __init__(self, key: BucketKey, year: int, slots: np.ndarray, records: np.ndarray) -> None:
        self.key = key
        self.year = year
        self.slots = slots  # int64, ascending, unique
        self.records = records  # the bucket's record dtype, one per slot, `_slot` = slot + 1

    @property
    def nbytes(self) -> int:
        return int(self.records.nbytes)

    @property
    def dtype(self) -> np.dtype:
        """The bucket's record dtype (as RowWrite.dtype)."""
        return self.records.dtype

    def __repr__(self) -> str:
        return f"SlotWrite({self.key}, {self.year}, {len(self.slots)} slots)"


class IngestWrite(SlotWrite):
    """A bulk load of a year the bucket does not hold (docs/format.md "Bulk loads"): its rows
    are in `<YYYY>.sealed.<id>.ingest`, written and fsynced before the transaction is logged;
    the log carries only this record (WAL op 7). Applying it renames the file to
    `<YYYY>.sealed`. `slots`/`records` hold the rows for triggers while the writer has them
    (empty when decoded from the log)."""

    __slots__ = ("ingest_id", "size", "footer_crc", "generation")

    def __init__(self, key: BucketKey, year: int, slots: np.ndarray, records: np.ndarray,
                 ingest_id: int, size: int, footer_crc: int, generation: int = 1) -> None:
        super().__init__(key, year, slots, records)
        self.ingest_id = ingest_id
        self.size = size
        self.footer_crc = footer_crc
        self.generation = generation

    @property
    def nbytes(self) -> int:
        return 64  # what the log carries

    def __repr__(self) -> str:
        return f"IngestWrite({self.key}, {self.year}, id {self.ingest_id:016x})"


class RowWrite:
    """One record for one slot, kept as its bytes (the 1-row append of the fast path,
    engine/fastpath.py). Reads like a SlotWrite of one slot for triggers and subscribers."""

    __slots__ = ("key", "year", "slot", "record", "dtype")

    def __init__(self, key: BucketKey, year: int, slot: int, record: bytes,
                 dtype: np.dtype) -> None:
        self.key = key
        self.year = year
        self.slot = slot
        self.record = record  # the stored bytes, `_slot` = slot + 1
        self.dtype = dtype  # the bucket's record dtype

    @property
    def slots(self) -> np.ndarray:
        return np.array([self.slot], dtype=np.int64)

    @property
    def records(self) -> np.ndarray:
        """A fresh, writable array (as a SlotWrite's records are) of the one record."""
        return np.frombuffer(bytearray(self.record), dtype=self.dtype)

    @property
    def nbytes(self) -> int:
        return len(self.record)

    def __repr__(self) -> str:
        return f"RowWrite({self.key}, {self.year}, slot {self.slot})"


def plan_fixed(key: BucketKey, schema: Schema, batch: Batch, calendar: Calendar) -> list[SlotWrite]:
    """One SlotWrite per year touched; within the batch the last row of an interval wins."""
    n = len(batch)
    if n == 0:
        return []
    years, slots = calendar.slots(batch.epochs, schema.timeframe)
    order = last_wins_order(years, slots)
    if order is not None:
        years, slots = years[order], slots[order]
    rec = np.zeros(len(slots), dtype=schema.record_dtype)
    rec[SLOT_FIELD] = slots + 1
    for name, values in batch.columns.items():
        rec[name] = values if order is None else values[order]
    return split_years(key, years, slots, rec)


def split_years(key: BucketKey, years: np.ndarray, slots: np.ndarray, rec: np.ndarray
                ) -> list[SlotWrite]:
    """One SlotWrite per run of equal years (rows sorted by year, then slot)."""
    if years[0] == years[-1]:
        return [SlotWrite(key, int(years[0]), slots, rec)]
    cuts = np.flatnonzero(np.diff(years)) + 1
    bounds = [0, *cuts.tolist(), len(years)]
    return [SlotWrite(key, int(years[a]), slots[a:b], rec[a:b])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def last_wins_order(years: np.ndarray, slots: np.ndarray) -> np.ndarray | None:
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
