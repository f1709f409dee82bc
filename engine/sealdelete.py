"""The plan of a range delete in a sealed year (docs/format.md "Deletes and updates", the
sealed rows of its table): tombstones (WAL op 3 mode 1) and, for ticks, replacing overlay
slots holding what is left of a cut interval; or, when nothing is left, op 5 removing
`<YYYY>.sealed` and `<YYYY>.overlay`. The sealed file itself is never written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mkts.engine.catalog import Bucket
from mkts.engine.clears import CLEAR_TOMBSTONE, FILE_OVERLAY, FILE_SEALED, ClearWrite, DropYear
from mkts.engine.contracts import Write
from mkts.engine.deleteplan import plan_fixed, year_range
from mkts.engine.schema import (
    SLOT_FIELD,
    TICK_BLOCK_COUNT,
    TICK_REPLACING,
    TICK_SLOT_DTYPE,
    VARIABLE,
)
from mkts.engine.sealread import sealed_columns
from mkts.engine.ticks import IntervalRows
from mkts.engine.timeutil import NS
from mkts.engine.yearfile import YearFile

if TYPE_CHECKING:
    from mkts.engine.deleteplan import _Context

__all__ = ["plan_sealed"]


def plan_sealed(ctx: _Context, bucket: Bucket, year: int, s: int, e: int
                ) -> tuple[list[Write], int]:
    """The records removing the rows of sealed `year` in [s, e] (ns), and how many."""
    whole, exists, sa, sb, edges = year_range(ctx, bucket, year, s, e)
    if bucket.schema.kind != VARIABLE:
        return plan_fixed(ctx, bucket, year, s, e, whole, exists, sa, sb, edges, sealed=True)
    return _plan_ticks(ctx, bucket, year, s, e, whole, exists, sa, sb, edges)


def _plan_ticks(ctx: _Context, bucket: Bucket, year: int, s: int, e: int, whole: bool,
                exists: bool, sa: int, sb: int, edges: np.ndarray
                ) -> tuple[list[Write], int]:
    """Ticks: intervals wholly in range become tombstones; an interval the range cuts gets a
    replacing overlay slot with its remaining rows (sealed and overlay rows merged)."""
    path = ctx.path
    cat, cal = path.catalog, path.calendar
    key, schema, tf = bucket.key, bucket.schema, bucket.schema.timeframe
    f = ctx.file(bucket, year)  # the overlay, if the year has one
    data_start = cat.year_header(bucket, year).file_size
    occ, recs = path.ticks.view(key, year, f, data_start)  # this transaction's plans too
    stored = recs[SLOT_FIELD]
    hide = occ[(stored < 0) | ((stored > 0) & ((recs["nblobs"] & TICK_REPLACING) != 0))]
    live = stored > 0
    # Rows per interval of the whole year as the log will leave it: visible sealed rows
    # plus the overlay's.
    y0, y1 = cal.year_start(year) * NS, cal.year_start(year + 1) * NS - 1
    skeys = sealed_columns(cat, bucket, year, y0, y1, [])[0]
    sslots = cal.slots(skeys // NS, tf)[1].astype(np.int64) if len(skeys) else \
        np.zeros(0, np.int64)
    sslots = sslots[~np.isin(sslots, hide)]
    slots = np.concatenate((sslots, occ[live]))
    counts = np.concatenate((np.ones(len(sslots), np.int64),
                             recs["nrows"][live].astype(np.int64)))
    uslots, where = np.unique(slots, return_inverse=True)
    per = np.bincount(where, weights=counts, minlength=len(uslots)).astype(np.int64)
    total = int(per.sum())
    a, b = (int(x) for x in np.searchsorted(uslots, [sa, sb + 1]))
    inside, n_inside = uslots[a:b], per[a:b]
    cut_a = s > int(edges[0])  # the first interval starts before the range
    cut_b = e < int(edges[2]) - 1  # the last one ends after it
    cut = ((inside == sa) & cut_a) | ((inside == sb) & cut_b)
    n = int(n_inside[~cut].sum())
    gone = list(inside[~cut].tolist())
    keep: dict[int, IntervalRows] = {}
    for slot in inside[cut].tolist():  # at most the first and the last interval
        rows = _interval_rows(ctx, bucket, year, f, slot, occ, recs, hide)
        label = int(cal.labels(year, np.array([slot]), tf)[0]) * NS
        t = label + rows.ns
        stay = (t < s) | (t > e)
        n += len(t) - int(stay.sum())
        if not stay.any():
            gone.append(slot)
        elif not stay.all():
            keep[slot] = IntervalRows(rows.ns[stay], rows.rows[stay])
    if whole or (n and n == total):
        if not n and not exists:
            return [], 0
        ctx.drop(key, year)
        return [DropYear(key, year, s, e, FILE_SEALED | FILE_OVERLAY, removed_rows=n)], n
    if not n:
        return [], 0
    # One op 3 carries the removed range (what triggers hear) and the tombstones over the
    # intervals that lose every row (none: an empty slot range), then the cut intervals.
    first, last, token = 0, -1, None
    if gone:
        tomb = np.array(sorted(gone), dtype=np.int64)
        token = path.ticks.tombstone(key, year, f, data_start, tomb)
        ctx.tokens.append(token)
        first, last = int(tomb[0]), int(tomb[-1])
    ops: list[Write] = [ClearWrite(key, year, first, last, s, e, TICK_SLOT_DTYPE.itemsize,
                                   CLEAR_TOMBSTONE, removed_rows=n, token=token)]
    for slot, rows in keep.items():
        w = path.ticks.rewrite(key, schema, year, f, data_start, slot, rows, TICK_REPLACING)
        ctx.tokens.append(w)
        ops.append(w)
    ctx.tick_years.add((key, year))
    return ops, n


def _interval_rows(ctx: _Context, bucket: Bucket, year: int, f: YearFile | None,
                   slot: int, occ: np.ndarray, recs: np.ndarray, hide: np.ndarray
                   ) -> IntervalRows:
    """The rows of one interval of a sealed year as a read sees them: its sealed rows (unless
    the overlay hides them), then the overlay's, in time order (sealed first on a tie)."""
    path = ctx.path
    cal, schema = path.calendar, bucket.schema
    label = int(cal.labels(year, np.array([slot]), schema.timeframe)[0]) * NS
    nxt = int(cal.labels(year, np.array([slot + 1]), schema.timeframe)[0]) * NS
    ns_parts: list[np.ndarray] = []
    row_parts: list[np.ndarray] = []
    if slot not in set(hide.tolist()):
        keys, cols = sealed_columns(path.catalog, bucket, year, label, nxt - 1,
                                    list(schema.names))
        rows = np.zeros(len(keys), dtype=schema.row_dtype)
        for name in schema.names:
            rows[name] = cols[name]
        ns_parts.append(keys - label)
        row_parts.append(rows)
    i = int(np.searchsorted(occ, slot))
    if i < len(occ) and int(occ[i]) == slot and int(recs[SLOT_FIELD][i]) > 0:
        rec = recs[i].copy()
        rec["nblobs"] &= TICK_BLOCK_COUNT
        got = path.ticks.rows_of(bucket.key, schema, year, f, slot, rec)
        ns_parts.append(got.ns.astype(np.int64))
        row_parts.append(got.rows)
    if not ns_parts:
        return IntervalRows(np.zeros(0, np.int64), np.zeros(0, schema.row_dtype))
    ns = np.concatenate(ns_parts)
    rows = np.concatenate(row_parts)
    order = np.argsort(ns, kind="stable")
    return IntervalRows(ns[order], rows[order])
