"""What a committed transaction hands to stage 5 (triggers, subscribers), and its decoding.

A `WriteEvent` carries the planned writes of one transaction as the log recorded them;
`event_records` turns one into the `Records` a trigger's `fire` receives, and
`merged_records` turns several into one `Records` per year file (what `Records.merge` of
theirs gives) without building each event's first: the dispatcher's path when every
trigger takes merged records.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mkts.engine.catalog import Catalog
from mkts.engine.clears import ClearWrite, DropYear
from mkts.engine.columns import SchemaWrite
from mkts.engine.contracts import Writes
from mkts.engine.dispatch import Records
from mkts.engine.plan import RowWrite, SlotWrite
from mkts.engine.schema import Schema
from mkts.engine.sealswap import SealYear
from mkts.engine.ticks import TickWrite, tick_event_rows
from mkts.engine.timeutil import NS, Calendar

__all__ = ["WriteEvent", "event_records", "merged_records", "removal_records"]


class WriteEvent:
    """What a committed (or replayed) transaction wrote: one entry per year file touched."""

    __slots__ = ("txn", "writes", "replayed", "published")

    def __init__(self, txn: int, writes: Writes, replayed: bool) -> None:
        self.txn = txn
        self.writes = writes
        self.replayed = replayed
        self.published = time.monotonic()  # for the dispatcher's lag (`Dispatcher.lag_s`)

    def __repr__(self) -> str:
        return f"<WriteEvent txn={self.txn} files={len(self.writes)} replayed={self.replayed}>"


def event_records(catalog: Catalog, calendar: Calendar, event: WriteEvent) -> list[Records]:
    """The records of one transaction, one `Records` per year file, in write order."""
    out = []
    for w in event.writes:
        schema = catalog.get(w.key).schema
        if isinstance(w, (ClearWrite, DropYear)):
            out.append(removal_records(w, schema, calendar, event.txn, event.replayed))
            continue
        if isinstance(w, TickWrite):
            out.append(_tick_records(w, schema, calendar, event.txn, event.replayed))
            continue
        if isinstance(w, (SchemaWrite, SealYear)):  # pragma: no cover - never published
            continue
        epochs = calendar.labels(w.year, w.slots, schema.timeframe)
        out.append(Records(w.key, w.year, event.txn, event.replayed, w.slots, w.records,
                           epochs, schema.names))
    return out


def merged_records(catalog: Catalog, calendar: Calendar, events: Sequence[WriteEvent]) -> list[Records]:
    """The records of consecutive transactions, one `Records` per year file (and replayed
    flag and row type) in the order files first appear, rows in write order; `txn` is the
    last transaction that wrote the file."""
    fixed: dict[tuple[Any, ...], list[tuple[int, SlotWrite | RowWrite]]] = {}
    ticks: list[Records] = []
    removals: list[Records] = []
    for event in events:
        for w in event.writes:
            if isinstance(w, (ClearWrite, DropYear)):
                schema = catalog.get(w.key).schema
                removals.append(removal_records(w, schema, calendar, event.txn, event.replayed))
                continue
            if isinstance(w, TickWrite):
                schema = catalog.get(w.key).schema
                ticks.append(_tick_records(w, schema, calendar, event.txn, event.replayed))
                continue
            if isinstance(w, (SchemaWrite, SealYear)):  # pragma: no cover - never published
                continue
            fixed.setdefault((w.key, w.year, event.replayed, w.dtype), []).append((event.txn, w))
    out = []
    for (key, year, replayed, dtype), group in fixed.items():
        schema = catalog.get(key).schema
        writes = [w for _, w in group]
        if len(writes) == 1:
            slots, rows = writes[0].slots, writes[0].records
        elif all(type(w) is RowWrite for w in writes):  # 1-row appends: no per-row arrays
            slots = np.array([w.slot for w in writes], dtype=np.int64)  # type: ignore[union-attr]
            rows = np.frombuffer(b"".join(w.record for w in writes),  # type: ignore[union-attr]
                                 dtype=dtype).copy()
        else:
            slots = np.concatenate([w.slots for w in writes])
            rows = np.concatenate([w.records for w in writes])
        epochs = calendar.labels(year, slots, schema.timeframe)
        out.append(Records(key, year, group[-1][0], replayed, slots, rows, epochs, schema.names))
    if ticks:
        out.extend(Records.merge(ticks))
    out.extend(removals)  # triggers recompute from the database: order does not matter
    return out


def removal_records(w: ClearWrite | DropYear, schema: Schema, calendar: Calendar, txn: int,
                    replayed: bool) -> Records:
    """The `Records` of a range delete in one year file: no rows, `removed` = the inclusive
    range of nanoseconds whose rows are gone."""
    removed = (w.start_ns, w.end_ns)
    variable = schema.kind == "variable"
    empty = np.zeros(0, dtype=np.int64)
    rows = np.zeros(0, dtype=schema.row_dtype if variable else schema.record_dtype)
    return Records(w.key, w.year, txn, replayed, empty, rows, empty, schema.names,
                   np.zeros(0, dtype=np.int32) if variable else None, removed)


def _tick_records(w: TickWrite, schema: Schema, calendar: Calendar, txn: int,
                  replayed: bool) -> Records:
    slots, ns, rows = tick_event_rows(w, schema)
    labels = calendar.labels(w.year, slots, schema.timeframe)
    return Records(w.key, w.year, txn, replayed, slots, rows, labels + ns // NS,
                   schema.names, (ns % NS).astype(np.int32))
