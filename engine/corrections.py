"""Range deletes, range replaces (`update`) and transactions that mix them with writes:
validation, the default range of an update, and the per-year plan of a delete as physical
redo (docs/format.md "Deletes and updates"; records in engine/clears.py).

A correction is planned on the commit leader with every earlier transaction applied
(engine/commit.py `commit_exclusive`), so it sees exactly which slots hold rows and whether
a year is left empty. Writes are validated by engine/writepath.py as `write_many`'s are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.engine import ingest, journal
from mkts.engine.catalog import Bucket
from mkts.engine.clears import (
    CLEAR_TOMBSTONE,
    CLEAR_ZERO,
    FILE_BIN,
    FILE_OVERLAY,
    FILE_SEALED,
    ClearWrite,
    DropYear,
)
from mkts.engine.contracts import Write, Writes
from mkts.engine.errors import BucketNotFoundError, InvalidInputError, SchemaError
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.plan import RowWrite, SlotWrite
from mkts.engine.schema import TICK_SLOT_DTYPE, VARIABLE, Schema
from mkts.engine.sealread import merged_fixed
from mkts.engine.ticks import IntervalRows, TickWrite, plan_ticks
from mkts.engine.timeutil import NS, to_epoch_ns
from mkts.engine.writepath import WritePath
from mkts.engine.yearfile import YearFile
from mkts.wal.format import Payload

__all__ = ["Changes", "Correction", "prepare", "plan_fixed", "year_range", "LIVE", "SEALED"]

# the states of a year (docs/format.md "The three states of a year")
LIVE = "live"
SEALED = "sealed"


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


@dataclass
class _Context:
    """What a transaction planned so far, so its later steps see its earlier ones."""

    path: WritePath
    views: dict[tuple[BucketKey, int], np.ndarray] = field(default_factory=dict)
    written: dict[tuple[BucketKey, int], list[np.ndarray]] = field(default_factory=dict)
    dropped: set[tuple[BucketKey, int]] = field(default_factory=set)
    tokens: list[TickWrite] = field(default_factory=list)
    tick_years: set[tuple[BucketKey, int]] = field(default_factory=set)
    pins: dict[tuple[BucketKey, int], YearFile | None] = field(default_factory=dict)

    def file(self, bucket: Bucket, year: int) -> YearFile | None:
        """The year file as the log will leave it so far (None: absent or dropped), open
        until `release`."""
        at = (bucket.key, year)
        if at in self.dropped:
            return None
        if at not in self.pins:
            self.pins[at] = self.path.catalog.acquire(bucket, year)
        return self.pins[at]

    def release(self) -> None:
        for f in self.pins.values():
            if f is not None:
                self.path.catalog.release(f)
        self.pins.clear()

    def note_fixed(self, w: SlotWrite | RowWrite) -> None:
        at = (w.key, w.year)
        if at in self.views:
            self.views[at] = np.union1d(self.views[at], w.slots)
        else:
            self.written.setdefault(at, []).append(w.slots)

    def fixed_view(self, bucket: Bucket, year: int) -> np.ndarray:
        """Occupied slots of a fixed bucket's year, this transaction's writes included."""
        at = (bucket.key, year)
        view = self.views.get(at)
        if view is None:
            if year in bucket.sealed:  # the sealed rows merged with the overlay's
                nslots = self.path.catalog.year_header(bucket, year).nslots
                occ = merged_fixed(self.path.catalog, bucket, year, 0, nslots - 1, [])[0]
            else:
                f = self.file(bucket, year)
                occ = np.zeros(0, np.int64) if f is None else np.array(f.occupied(), np.int64)
            for s in self.written.pop(at, []):
                occ = np.union1d(occ, s)
            view = self.views[at] = occ
        return view

    def drop(self, key: BucketKey, year: int) -> None:
        self.dropped.add((key, year))
        self.views[(key, year)] = np.zeros(0, np.int64)
        self.written.pop((key, year), None)
        self.path.ticks.forget(key, year)

    def plan_ticks(self, key: BucketKey, schema: Schema, batch: ingest.Batch
                   ) -> list[TickWrite]:
        path = self.path
        bucket = path.catalog.get(key)
        assert batch.nanos is not None
        out = plan_ticks(path.ticks, key, schema, path.calendar, batch.epochs, batch.nanos,
                         batch.columns, lambda y: self.file(bucket, y),
                         lambda y: path.catalog.year_header(bucket, y).file_size)
        self.tokens.extend(out)
        self.tick_years.update((key, w.year) for w in out)
        return out


# -- the plan of one delete ---------------------------------------------------------------

YearPlan = Callable[[_Context, Bucket, int, int, int], tuple[list[Write], int]]


def year_state(bucket: Bucket, year: int) -> str:
    """The state of a year of the bucket (docs/format.md "The three states of a year"):
    sealed (with or without an overlay) or live; its plan is in `_YEAR_PLANS`."""
    return SEALED if year in bucket.sealed else LIVE


def plan_delete(ctx: _Context, key: BucketKey, start_ns: int | None, end_ns: int | None
                ) -> tuple[list[Write], int]:
    """The records that remove `key`'s rows in [start_ns, end_ns] (None: open), and how
    many rows they remove: per year the range touches, the plan for that year's state."""
    path = ctx.path
    bucket = path.catalog.get(key)
    cal = path.calendar
    s = cal.min_epoch * NS if start_ns is None else max(start_ns, cal.min_epoch * NS)
    e = cal.max_epoch * NS - 1 if end_ns is None else min(end_ns, cal.max_epoch * NS - 1)
    if s > e:
        return [], 0
    y0, y1 = cal.year_of_one(s // NS), cal.year_of_one(e // NS)
    years = {y for y in bucket.years if y0 <= y <= y1}
    years |= {y for (k, y) in [*ctx.views, *ctx.written, *ctx.tick_years]
              if k == key and y0 <= y <= y1}
    out: list[Write] = []
    total = 0
    for y in sorted(years):
        lo = max(s, cal.year_start(y) * NS)
        hi = min(e, cal.year_start(y + 1) * NS - 1)
        # a year this transaction dropped is written again as a live file
        state = LIVE if (key, y) in ctx.dropped else year_state(bucket, y)
        ops, n = _YEAR_PLANS[state](ctx, bucket, y, lo, hi)
        out.extend(ops)
        total += n
    return out, total


def year_range(ctx: _Context, bucket: Bucket, year: int, s: int, e: int
               ) -> tuple[bool, bool, int, int, np.ndarray]:
    """(whole year in range, the year has files, first slot, last slot, ns labels of the
    first, the last and the next interval) of [s, e] within one year."""
    cal = ctx.path.calendar
    tf = bucket.schema.timeframe
    whole = s == cal.year_start(year) * NS and e == cal.year_start(year + 1) * NS - 1
    exists = (bucket.key, year) not in ctx.dropped and year in bucket.years
    sa = cal.slot_of(s // NS, tf)[1]
    sb = cal.slot_of(e // NS, tf)[1]
    edges = cal.labels(year, np.array([sa, sb, sb + 1], dtype=np.int64), tf) * NS
    return whole, exists, sa, sb, edges


def _plan_live(ctx: _Context, bucket: Bucket, year: int, s: int, e: int
               ) -> tuple[list[Write], int]:
    """A live year: clear slots, rewrite cut tick intervals, or drop the file."""
    whole, exists, sa, sb, edges = year_range(ctx, bucket, year, s, e)
    if bucket.schema.kind == VARIABLE:
        return _plan_ticks(ctx, bucket, year, s, e, whole, exists, sa, sb, edges)
    return plan_fixed(ctx, bucket, year, s, e, whole, exists, sa, sb, edges, sealed=False)


def plan_fixed(ctx: _Context, bucket: Bucket, year: int, s: int, e: int, whole: bool,
               exists: bool, sa: int, sb: int, edges: np.ndarray, *, sealed: bool
               ) -> tuple[list[Write], int]:
    """A fixed year: clear the occupied slots in range (live: zeros; sealed: tombstones in
    its overlay, from the first to the last row removed), or drop the year's files."""
    if int(edges[0]) < s:
        sa += 1  # fixed rows go by their label: the first interval starts before s
    view = ctx.fixed_view(bucket, year)
    a, b = (int(x) for x in np.searchsorted(view, [sa, sb + 1]))
    n = b - a
    if whole or (n and n == len(view)):
        if not n and not exists:
            return [], 0
        ctx.drop(bucket.key, year)
        files = FILE_SEALED | FILE_OVERLAY if sealed else FILE_BIN
        return [DropYear(bucket.key, year, s, e, files, removed_rows=n)], n
    if not n:
        return [], 0
    ctx.views[(bucket.key, year)] = np.concatenate((view[:a], view[b:]))
    if sealed:
        sa, sb = int(view[a]), int(view[b - 1])
    return [ClearWrite(bucket.key, year, sa, sb, s, e, bucket.schema.record_dtype.itemsize,
                       CLEAR_TOMBSTONE if sealed else CLEAR_ZERO, removed_rows=n)], n


def _plan_ticks(ctx: _Context, bucket: Bucket, year: int, s: int, e: int, whole: bool,
                exists: bool, sa: int, sb: int, edges: np.ndarray
                ) -> tuple[list[Write], int]:
    """A live tick year: intervals wholly in [s, e] are cleared; an interval the range cuts
    keeps its other rows in a new chain of one block."""
    path = ctx.path
    key, schema = bucket.key, bucket.schema
    f = ctx.file(bucket, year)
    data_start = path.catalog.year_header(bucket, year).file_size
    occ, recs = path.ticks.view(key, year, f, data_start)
    a, b = (int(x) for x in np.searchsorted(occ, [sa, sb + 1]))
    inside, irecs = occ[a:b], recs[a:b]
    cut_a = s > int(edges[0])  # the first interval starts before the range
    cut_b = e < int(edges[2]) - 1  # the last one ends after it
    clear = np.ones(len(inside), dtype=bool)
    keep: dict[int, IntervalRows] = {}
    cut = ((inside == sa) & cut_a) | ((inside == sb) & cut_b)
    n = int(irecs["nrows"][~cut].sum())
    for i in np.flatnonzero(cut).tolist():  # at most the first and the last interval
        slot = int(inside[i])
        rows = path.ticks.rows_of(key, schema, year, f, slot, irecs[i])
        label = int(path.calendar.labels(year, np.array([slot]), schema.timeframe)[0]) * NS
        t = label + rows.ns
        stay = (t < s) | (t > e)
        gone = len(t) - int(stay.sum())
        n += gone
        if stay.all():
            clear[i] = False
        elif stay.any():
            clear[i] = False
            keep[slot] = IntervalRows(rows.ns[stay], rows.rows[stay])
    if whole or (n and int(clear.sum()) == len(occ)):
        if not n and not exists:
            return [], 0
        ctx.drop(key, year)
        return [DropYear(key, year, s, e, removed_rows=n)], n
    if not n:
        return [], 0
    gone_slots = inside[clear]
    first = int(gone_slots[0]) if len(gone_slots) else 0
    last = int(gone_slots[-1]) if len(gone_slots) else first - 1
    token = None
    if len(gone_slots):
        token = path.ticks.clear(key, year, f, data_start, gone_slots)
        ctx.tokens.append(token)
    ops: list[Write] = [ClearWrite(key, year, first, last, s, e, TICK_SLOT_DTYPE.itemsize,
                                   removed_rows=n, token=token)]
    for slot, rows in keep.items():
        w = path.ticks.rewrite(key, schema, year, f, data_start, slot, rows)
        ctx.tokens.append(w)
        ops.append(w)
    return ops, n


def _plan_sealed(ctx: _Context, bucket: Bucket, year: int, s: int, e: int
                 ) -> tuple[list[Write], int]:
    """A sealed year (engine/sealdelete.py): tombstones and replacing slots in its overlay,
    or both files dropped."""
    from mkts.engine.sealdelete import plan_sealed

    return plan_sealed(ctx, bucket, year, s, e)


_YEAR_PLANS: dict[str, YearPlan] = {LIVE: _plan_live, SEALED: _plan_sealed}
