"""Range deletes, range replaces (`update`) and transactions that mix them with writes:
validation and the default range of an update (docs/format.md "Deletes and updates"); the
per-year plan of a delete as physical redo is engine/deleteplan.py's (records in
engine/clears.py).

A correction is planned on the commit leader with every earlier transaction applied
(engine/commit.py `commit_exclusive`), so it sees exactly which slots hold rows and whether
a year is left empty. Writes are validated by engine/writepath.py as `write_many`'s are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mkts.engine import ingest, journal
from mkts.engine.contracts import Write, Writes
from mkts.engine.deleteplan import LIVE as LIVE
from mkts.engine.deleteplan import SEALED as SEALED
from mkts.engine.deleteplan import _Context, plan_delete
from mkts.engine.deleteplan import plan_fixed as plan_fixed
from mkts.engine.deleteplan import year_range as year_range
from mkts.engine.errors import BucketNotFoundError, InvalidInputError, SchemaError
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.plan import RowWrite, SlotWrite
from mkts.engine.schema import Schema
from mkts.engine.timeutil import NS, to_epoch_ns
from mkts.engine.writepath import WritePath
from mkts.wal.format import Payload

__all__ = ["Changes", "Correction", "prepare", "plan_fixed", "year_range", "LIVE", "SEALED"]


@dataclass
class _Delete:
    key: BucketKey
    start_ns: int | None
    end_ns: int | None
    label: str  # the caller's words for this step, for `removed`


@dataclass
class _WriteStep:
    fixed: list[SlotWrite | RowWrite]
    ticks: list[tuple[BucketKey, Schema, ingest.Batch]]


class Changes:
    """The steps of one transaction in call order (`Database.transaction()`): `write`,
    `delete` and `update`, committed together by the database, all or nothing."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, tuple[Any, ...]]] = []
        self.txn = 0
        self.removed: dict[str, int] = {}  # bucket key -> rows its deletes removed

    def write(self, key: str, data: Any, *, variable: bool | None = None) -> None:
        """Write rows to `key` (as `Database.write`)."""
        self.steps.append(("write", (key, data, variable)))

    def delete(self, key: str, start: Any = None, end: Any = None) -> None:
        """Remove `key`'s rows with start <= time <= end (as `Database.delete`)."""
        self.steps.append(("delete", (key, start, end)))

    def update(self, key: str, data: Any, *, start: Any = None, end: Any = None,
               variable: bool | None = None) -> None:
        """Replace `key`'s rows in [start, end] (default: the span of `data`) by `data`."""
        self.steps.append(("update", (key, data, start, end, variable)))


class Correction:
    """A validated transaction of writes and deletes; `build` plans it on the leader."""

    def __init__(self, path: WritePath, steps: list[_Delete | _WriteStep],
                 creates: list[tuple[BucketKey, Schema]]) -> None:
        self._path = path
        self.steps = steps
        self.creates = creates
        self.removed: dict[str, int] = {}

    def keys(self) -> set[BucketKey]:
        """The buckets this transaction deletes from or writes to."""
        out: set[BucketKey] = set()
        for step in self.steps:
            if isinstance(step, _Delete):
                out.add(step.key)
            else:
                out.update(w.key for w in step.fixed)
                out.update(k for k, _, _ in step.ticks)
        return out

    def build(self) -> tuple[Payload, Writes]:
        """(log payload, writes): the pipeline's `Build`, run under its commit lock."""
        ctx = _Context(self._path)
        writes: list[Write] = []
        self.removed = {}
        try:
            for step in self.steps:
                if isinstance(step, _Delete):
                    ops, n = plan_delete(ctx, step.key, step.start_ns, step.end_ns)
                    writes.extend(ops)
                    self.removed[step.label] = self.removed.get(step.label, 0) + n
                    continue
                for w in step.fixed:
                    ctx.note_fixed(w)
                writes.extend(step.fixed)
                for key, schema, batch in step.ticks:
                    writes.extend(ctx.plan_ticks(key, schema, batch))
            return journal.encode_parts(writes), writes
        except BaseException:
            for tok in reversed(ctx.tokens):  # nothing of it will be logged
                self._path.ticks.discard(tok)
            raise
        finally:
            ctx.release()


def prepare(path: WritePath, changes: Changes, tz: str) -> Correction | None:
    """Validate every step (nothing is written when one is wrong) and plan the writes;
    None when the transaction changes nothing. The caller holds the catalog lock."""
    steps: list[_Delete | _WriteStep] = []
    creates: dict[BucketKey, Schema] = {}
    calendar = path.calendar
    for kind, args in changes.steps:
        if kind == "delete":
            key_text, start, end = args
            key = parse_key(key_text)
            if key not in path.catalog.buckets and key not in creates:
                raise BucketNotFoundError(f"delete from bucket {key}: it does not exist")
            s, e = _bounds(start, end, tz)
            steps.append(_Delete(key, s, e, str(key)))
            continue
        if kind == "write":
            key_text, data, variable = args
            start = end = None
        else:
            key_text, data, start, end, variable = args
        key = parse_key(key_text)
        # rows an earlier step of this transaction wrote count as existing (call order)
        existed = key in path.catalog.buckets or key in creates
        txn = path.plan({key_text: data}, variable, creates)
        step = _WriteStep([], []) if txn is None else _WriteStep(txn.fixed, txn.ticks)
        for k, schema in () if txn is None else txn.creates:
            if k in creates and creates[k] != schema:
                raise SchemaError(f"transaction writes bucket {k} twice with other columns")
            creates[k] = schema
        if kind == "update":
            s, e = _bounds(start, end, tz)
            first, last = _span(step, calendar)
            s = first if s is None else s
            e = last if e is None else e
            if s is not None and e is not None and existed:
                steps.append(_Delete(key, s, e, str(key)))
        steps.append(step)
    if not any(isinstance(s, _Delete) or s.fixed or s.ticks for s in steps):
        return None
    return Correction(path, steps, list(creates.items()))


def _bounds(start: Any, end: Any, tz: str) -> tuple[int | None, int | None]:
    """A delete's range as nanoseconds, with the read rules (engine/timeutil.py)."""
    s = None if start is None else to_epoch_ns(start, "start", tz)
    e = None if end is None else to_epoch_ns(end, "end", tz, end=True)
    if s is not None and e is not None and s > e:
        raise InvalidInputError(f"delete range: start {start!r} is after end {end!r}")
    return s, e


def _span(step: _WriteStep, calendar: Any) -> tuple[int | None, int | None]:
    """The first and last time (ns; interval labels for fixed rows) of a write's rows."""
    lo: list[int] = []
    hi: list[int] = []
    for w in step.fixed:
        slots = w.slots
        labels = calendar.labels(w.year, np.array([slots[0], slots[-1]], dtype=np.int64),
                                 w.key.tf)
        lo.append(int(labels[0]) * NS)
        hi.append(int(labels[1]) * NS)
    for _, _, batch in step.ticks:
        assert batch.nanos is not None
        t = batch.epochs.astype(np.int64) * NS + batch.nanos.astype(np.int64)
        lo.append(int(t.min()))
        hi.append(int(t.max()))
    if not lo:
        return None, None
    return min(lo), max(hi)
