"""Tick (variable) buckets: planning appends and compaction. Any number of rows per interval,
exact nanosecond times.

A write's rows go into new blocks (engine/tickblock.py) appended to the year file's data
region, each holding many intervals; every touched slot then points to its newest block, and
each block's directory points, per interval, to the block before (a chain). Appends merge
the newest pieces of a chain while they are no larger than the new one, so a chain stays
O(log n) long. Reads: engine/tickread.py. Layout and rules: docs/format.md "Tick buckets".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mkts.engine.keys import BucketKey
from mkts.engine.schema import Schema
from mkts.engine.tickblock import IntervalRows
from mkts.engine.tickcompact import compact_bucket as compact_bucket
from mkts.engine.tickcompact import compact_year_file as compact_year_file
from mkts.engine.tickcompact import tick_usage as tick_usage
from mkts.engine.tickplanner import TickPlanner as TickPlanner
from mkts.engine.tickplanner import _merge as _merge
from mkts.engine.tickread import read_interval
from mkts.engine.tickwrite import TickWrite as TickWrite
from mkts.engine.tickwrite import build_blocks as build_blocks
from mkts.engine.tickwrite import tick_event_rows as tick_event_rows
from mkts.engine.timeutil import NS, Calendar
from mkts.engine.uniq import unique

__all__ = ["TickWrite", "TickPlanner", "IntervalRows", "plan_ticks", "read_interval",
           "tick_event_rows", "tick_usage", "compact_bucket", "compact_year_file", "build_blocks"]


def plan_ticks(planner: TickPlanner, key: BucketKey, schema: Schema, calendar: Calendar,
               epochs: np.ndarray, nanos: np.ndarray, columns: dict[str, np.ndarray],
               file_of: Any, data_start_of: Any) -> list[TickWrite]:
    """Split validated ticks by year file and interval and plan their blocks."""
    tf = schema.timeframe
    lo, hi = (int(epochs[0]), int(epochs[0])) if len(epochs) == 1 else \
        (int(epochs.min()), int(epochs.max()))
    y0 = calendar.year_of_one(lo)
    if len(epochs) > 1 and not tf.is_daily and calendar.year_of_one(hi) == y0:
        # One year of fixed-length intervals (the bulk case): plain arithmetic.
        since = epochs - calendar.year_start(y0)
        slots = since // tf.seconds
        ns = (since - slots * tf.seconds) * NS + nanos.astype(np.int64)
        return _plan_year(planner, key, schema, y0, epochs, nanos, slots, ns, columns,
                          file_of, data_start_of)
    years, slots = calendar.slots(epochs, tf)
    if len(epochs) == 1:  # the single-tick append: skip the sorting machinery
        y = int(years[0])
        label = int(calendar.labels(y, slots, tf)[0])
        ns1 = np.array([(int(epochs[0]) - label) * NS + int(nanos[0])], dtype=np.int64)
        row = np.empty(1, dtype=schema.row_dtype)
        for name, values in columns.items():
            row[name] = values
        return [planner.plan(key, schema, y, file_of(y), data_start_of(y), slots, ns1, row)]
    one_year = int(years.min()) == int(years.max())
    if one_year:
        labels = calendar.labels(int(years[0]), slots, tf)
    else:
        uyears = unique(years)
        labels = np.empty(len(epochs), dtype=np.int64)
        for y in uyears.tolist():
            sel = years == y
            labels[sel] = calendar.labels(int(y), slots[sel], tf)
    ns = (epochs - labels) * NS + nanos.astype(np.int64)
    if one_year:
        return _plan_year(planner, key, schema, int(years[0]), epochs, nanos, slots, ns,
                          columns, file_of, data_start_of)
    rows = np.empty(len(epochs), dtype=schema.row_dtype)
    for name, values in columns.items():
        rows[name] = values
    order = np.lexsort((ns, slots, years))  # stable: ties keep input order
    years, slots, ns, rows = years[order], slots[order], ns[order], rows[order]
    out: list[TickWrite] = []
    cuts = [0, *(np.flatnonzero(years[1:] != years[:-1]) + 1).tolist(), len(years)]
    try:
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            y = int(years[a])
            out.append(planner.plan(key, schema, y, file_of(y), data_start_of(y), slots[a:b],
                                    ns[a:b], rows[a:b]))
    except BaseException:
        for w in reversed(out):  # a later year failed: the earlier plans will not be logged
            planner.discard(w)
        raise
    return out


def _plan_year(planner: TickPlanner, key: BucketKey, schema: Schema, year: int,
               epochs: np.ndarray, nanos: np.ndarray, slots: np.ndarray, ns: np.ndarray,
               columns: dict[str, np.ndarray], file_of: Any, data_start_of: Any
               ) -> list[TickWrite]:
    """plan_ticks for rows of one year: order by time alone (slots follow time), and skip
    the sort when the input is already in order."""
    rows = np.empty(len(epochs), dtype=schema.row_dtype)
    for name, values in columns.items():
        rows[name] = values
    t = epochs * NS + nanos
    if len(t) > 1 and not bool((t[1:] >= t[:-1]).all()):
        order = np.argsort(t, kind="stable")  # stable: ties keep input order
        slots, ns, rows = slots[order], ns[order], rows[order]
    return [planner.plan(key, schema, year, file_of(year), data_start_of(year), slots, ns,
                         rows)]
