"""Stages 1-2 of the write path for the common case: rows for an existing fixed bucket given
as a numpy structured array (or a dict of numpy columns) whose fields already have the
bucket's types.

Such rows need no casting, so a record is the row's bytes rearranged (a cached plan per
input dtype); a 1-row write touches numpy only for `tobytes`. The fast path accepts only what
the general path (engine/ingest.py, engine/plan.py) accepts and yields the same log payload
and the same records; for anything else, or any doubt (an epoch outside the supported
years, too many rows), it answers None and the general path runs and raises its errors.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from mkts.engine import journal
from mkts.engine.catalog import Bucket
from mkts.engine.ingest import MAX_ROWS
from mkts.engine.keys import BucketKey
from mkts.engine.plan import RowWrite, SlotWrite, last_wins_order, split_years
from mkts.engine.schema import FIXED, SLOT_FIELD, Schema
from mkts.engine.timeutil import Calendar
from mkts.wal.format import Payload

__all__ = ["InputPlan", "input_plan", "columns_dtype", "pack_columns"]

_I8 = struct.Struct("<q")
_EPOCH = np.dtype("<i8")
_packed: dict[tuple[tuple[str, np.dtype], ...], np.dtype] = {}


def columns_dtype(cols: dict[Any, Any]) -> tuple[np.dtype, int] | None:
    """For a dict of 1-D numpy arrays of one length: the packed structured dtype of its
    columns in dict order (what a structured array of the same rows would have) and the row
    count; None for any other dict (the general path judges it)."""
    sig = []
    n = -1
    for name, values in cols.items():
        if type(name) is not str or type(values) is not np.ndarray or values.ndim != 1:
            return None
        if n < 0:
            n = len(values)
        elif len(values) != n:
            return None
        sig.append((name, values.dtype))
    key = tuple(sig)
    dtype = _packed.get(key)
    if dtype is None:
        try:
            dtype = np.dtype(list(key))
        except (TypeError, ValueError):
            return None
        if len(_packed) < 1024:
            _packed[key] = dtype
    return dtype, n


def pack_columns(cols: dict[str, np.ndarray], dtype: np.dtype, n: int) -> np.ndarray | bytes:
    """The rows of `cols` (which columns_dtype gave `dtype` and `n`): one row as its bytes,
    several as a structured array (each column copied once, bytes unchanged)."""
    if n == 1:
        return b"".join([v.tobytes() for v in cols.values()])
    out = np.empty(n, dtype=dtype)
    for name, values in cols.items():
        out[name] = values
    return out


def input_plan(key: BucketKey, schema: Schema, dtype: np.dtype, calendar: Calendar,
               max_bytes: int, bucket: Bucket | None = None) -> InputPlan | None:
    """The plan for writing rows of `dtype` into a bucket of `schema` (`bucket`, when given,
    is the one the plan is cached for), or None when such rows need the general path: the
    bucket holds ticks, Epoch is not little-endian int64 seconds, or the fields are not
    exactly Epoch plus the bucket's columns with the bucket's types."""
    fields = dtype.fields
    if schema.kind != FIXED or fields is None or dtype.names is None or not schema.columns:
        return None  # (a bucket of Epoch alone takes the general path)
    epoch = fields.get("Epoch")
    if epoch is None or epoch[0] != _EPOCH or len(dtype.names) != len(schema.columns) + 1:
        return None
    rec = schema.record_dtype
    assert rec.fields is not None
    runs: list[tuple[int, int, int]] = []  # (input offset, record offset, length)
    for name, want in schema.columns:
        field = fields.get(name)
        if field is None or field[0] != want:
            return None
        src, dst, length = field[1], rec.fields[name][1], want.itemsize
        if runs and runs[-1][0] + runs[-1][2] == src and runs[-1][1] + runs[-1][2] == dst:
            a, b, n = runs[-1]
            runs[-1] = (a, b, n + length)
        else:
            runs.append((src, dst, length))
    return InputPlan(key, schema, bucket, dtype, epoch[1], runs, calendar, max_bytes)


class InputPlan:
    """How rows of one input dtype become the log payload and writes of one bucket."""

    __slots__ = ("key", "bucket", "dtype", "_epoch_at", "_runs", "_calendar", "_tf",
                 "_tf_s", "_daily", "_rec", "_rs", "_pad", "_slices", "_max_bytes", "_year")

    def __init__(self, key: BucketKey, schema: Schema, bucket: Bucket | None, dtype: np.dtype,
                 epoch_at: int, runs: list[tuple[int, int, int]], calendar: Calendar,
                 max_bytes: int) -> None:
        self.key = key
        self.bucket = bucket
        self.dtype = dtype
        self._epoch_at = epoch_at
        self._runs = runs
        self._calendar = calendar
        self._tf = schema.timeframe
        self._tf_s = schema.timeframe.seconds
        self._daily = schema.timeframe.is_daily
        self._rec = schema.record_dtype
        self._rs = schema.record_dtype.itemsize
        # Records are `_slot` then the columns packed in order, then zero padding
        # (engine/schema.py): a 1-row record is slot + 1, the runs' bytes, the padding.
        end = runs[-1][1] + runs[-1][2]
        self._pad = bytes(self._rs - end)
        self._slices = [slice(a, a + n) for a, _, n in runs]
        self._max_bytes = max_bytes
        self._year: tuple[int, int, int, bytes] = (0, 0, 0, b"")  # start, end, year, prefix

    def rows(self, data: np.ndarray) -> tuple[Payload, Sequence[SlotWrite | RowWrite]] | None:
        """(log payload, writes) for `data` (1-D, of this plan's dtype), or None for the
        general path. A payload of several rows is a tuple of buffers (wal/format.py
        `Payload`): the records are logged from where they are, not copied into one."""
        if len(data) == 1:
            return self.one(data.tobytes())
        writes = self.plan(data)
        if writes is None:
            return None
        if len(writes) == 1:  # encode() of one slot write, without its general loop
            w = writes[0]
            prefix = journal.fixed_prefix(self.key, w.year, self._rs, len(w.records))
            return (prefix, w.records.data.cast("B")), writes
        return journal.encode_parts(list(writes)), writes

    def one(self, raw: bytes) -> tuple[Payload, Sequence[SlotWrite | RowWrite]] | None:
        """rows() of one row, given as its bytes (`tobytes()` of a 1-row array)."""
        e = _I8.unpack_from(raw, self._epoch_at)[0]
        start, end, year, prefix = self._year
        if not start <= e < end:
            cal = self._calendar
            if not cal.min_epoch <= e < cal.max_epoch:
                return None  # the general path names the error
            start, end, year, prefix = self._remember(cal.slot_of(e, self._tf)[0])
        if self._daily:
            slot = self._calendar.slot_of(e, self._tf)[1]
        else:
            slot = (e - start) // self._tf_s
        sl = self._slices
        if len(sl) == 1:
            rec = _I8.pack(slot + 1) + raw[sl[0]] + self._pad
        else:
            rec = b"".join([_I8.pack(slot + 1), *(raw[s] for s in sl), self._pad])
        return prefix + rec, [RowWrite(self.key, year, slot, rec, self._rec)]

    def plan(self, data: np.ndarray) -> list[SlotWrite] | None:
        """The slot writes for `data` (1-D, of this plan's dtype): what plan_fixed makes of
        it after ingest.prepare, or None for the general path (no rows, too many, an epoch
        outside the supported years, a transaction over the size limit)."""
        n = len(data)
        if n == 0 or n > MAX_ROWS:
            return None
        src = np.ascontiguousarray(data)
        epochs = src["Epoch"]
        cal = self._calendar
        lo, hi = int(epochs.min()), int(epochs.max())
        if lo < cal.min_epoch or hi >= cal.max_epoch:
            return None
        start, end, year, _ = self._year
        if not start <= lo <= hi < end and not self._daily:
            year = cal.slot_of(lo, self._tf)[0]
            if cal.slot_of(hi, self._tf)[0] == year:  # all rows in one year: remember it
                start, end, year, _ = self._remember(year)
        if start <= lo and hi < end and not self._daily:  # one year, the cached one
            slots = (epochs - start) // self._tf_s  # Calendar.slots within one year
            if bool((slots[1:] > slots[:-1]).all()):
                years = None  # sorted and unique: last_wins_order would say so too
            else:
                years = np.full(n, year, dtype=np.int64)
        else:
            years, slots = cal.slots(epochs, self._tf)
        if years is not None:
            order = last_wins_order(years, slots)
            if order is not None:
                years, slots, src = years[order], slots[order], src[order]
        m = len(slots)
        if m * self._rs > self._max_bytes:
            return None
        rec = np.zeros(m, dtype=self._rec)
        for a, b, length in self._runs:  # each run as one opaque item: a plain strided copy
            whole = np.dtype(f"V{length}")
            np.ndarray((m,), whole, rec, b, (self._rs,))[...] = np.ndarray(
                (m,), whole, src, a, (src.dtype.itemsize,))
        rec[SLOT_FIELD] = slots + 1
        if years is None:
            return [SlotWrite(self.key, year, slots, rec)]
        if years[0] == years[-1]:
            self._remember(int(years[0]))
        return split_years(self.key, years, slots, rec)

    def _remember(self, year: int) -> tuple[int, int, int, bytes]:
        """Cache the bounds (and the 1-row payload prefix) of `year`: most writes to a
        bucket go to the year of the write before."""
        cal = self._calendar
        cached = (cal.year_start(year), cal.year_start(year + 1), year,
                  journal.fixed_prefix(self.key, year, self._rs, 1))
        self._year = cached
        return cached
