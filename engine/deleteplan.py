"""The plan of one range delete as physical redo (docs/format.md "Deletes and updates"): per
year, the plan for its state (live here, sealed in engine/sealdelete.py), with the `_Context`
that shows a transaction's later steps its earlier ones; the steps are engine/corrections.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mkts.engine import ingest
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
from mkts.engine.contracts import Write
from mkts.engine.keys import BucketKey
from mkts.engine.plan import RowWrite, SlotWrite
from mkts.engine.schema import TICK_SLOT_DTYPE, VARIABLE, Schema
from mkts.engine.sealread import merged_fixed
from mkts.engine.ticks import IntervalRows, TickWrite, plan_ticks
from mkts.engine.timeutil import NS
from mkts.engine.writepath import WritePath
from mkts.engine.yearfile import YearFile

__all__ = ["plan_delete", "plan_fixed", "year_range", "year_state", "LIVE", "SEALED"]

# the states of a year (docs/format.md "The three states of a year")
LIVE = "live"
SEALED = "sealed"


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
