"""Reads across year files: which year files a range covers, in which order, and one
result from their parts with one allocation.

Owns the plan of a read over years (`year_spans`, the limit cut `take_limit`) and its output
buffer: the reader first learns how many rows each year file contributes (a `Part`), then
one array is allocated and each part writes its rows into its own slice. What a year file
holds and how its rows are found belong to engine/query.py (live files) and the readers of
other kinds of year file, each a `Part`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from mkts.engine.catalog import Bucket
from mkts.engine.timeutil import NS, Calendar

__all__ = ["Part", "fill_parts", "concat_rows", "year_spans", "take_limit"]


_BOUNDS: dict[Calendar, tuple[int, int]] = {}  # (min_epoch, max_epoch - 1) per calendar


def _slot_range(calendar: Calendar, bucket: Bucket, start_ns: int | None, end_ns: int | None
                ) -> tuple[tuple[int, int], tuple[int, int]]:
    tf = bucket.schema.timeframe
    bounds = _BOUNDS.get(calendar)
    if bounds is None:
        bounds = _BOUNDS[calendar] = (calendar.min_epoch, calendar.max_epoch - 1)
    first, last = bounds
    lo = first if start_ns is None else max(start_ns // NS, first)
    hi = last if end_ns is None else min(end_ns // NS, last)
    return calendar.slot_of(lo, tf), calendar.slot_of(hi, tf)


def year_spans(calendar: Calendar, bucket: Bucket, start_ns: int | None, end_ns: int | None,
               backwards: bool) -> list[tuple[int, int, int]]:
    """(year, lo, hi) for each year of the bucket the range overlaps, in read order: slots
    [lo, hi) of that year, hi = -1 meaning "to the end of the year file"."""
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        return []
    (y0, s0), (y1, s1) = _slot_range(calendar, bucket, start_ns, end_ns)
    if y0 == y1:  # the common case: no need to sort the bucket's years
        return [(y0, s0, s1 + 1)] if y0 in bucket.years else []
    spans = [(y, s0 if y == y0 else 0, s1 + 1 if y == y1 else -1)
             for y in bucket.sorted_years() if y0 <= y <= y1]
    if backwards:
        spans.reverse()
    return spans


def take_limit(idx: np.ndarray, remaining: int | None, backwards: bool) -> np.ndarray:
    """At most `remaining` of a year's ascending slots (None: all): the last ones when the
    read counts its limit from the end (`backwards`), else the first ones."""
    if remaining is not None and len(idx) > remaining:
        return idx[len(idx) - remaining :] if backwards else idx[:remaining]
    return idx


class Part(Protocol):
    """The rows one year file contributes to a read, counted but not yet copied.

    `rows` is final once the part exists (limits are applied before it is made). `fill`
    writes exactly `rows` rows, in ascending time order, into `out` (a slice of the
    result, the read's result dtype, writable, contiguous), and their Epoch labels into
    `epochs` when it is given (then `out["Epoch"]` may be left unwritten; see Result),
    else into `out["Epoch"]`. `fill` is called at most once, by the reading thread, while
    the reader still holds whatever the part needs (a pinned year file)."""

    @property
    def rows(self) -> int: ...

    def fill(self, out: np.ndarray, epochs: np.ndarray | None) -> None: ...


def fill_parts(parts: Sequence[Part], dtype: np.dtype, separate_epochs: bool
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows, epochs): one `dtype` array holding every part's rows, parts in the order
    given, and, if `separate_epochs`, their Epoch column as an int64 array of its own.

    A read over several years thus costs what a read of one costs per row: each row is
    copied once, from the year file into its final place, where joining per-year chunks
    copied it twice (and numpy copies structured arrays field by field). A lone part with an
    `own_epochs()` (its labels: a contiguous int64 array made for this read alone) gives
    that array as the Epoch column (its `fill` then gets that same array as `epochs`)."""
    total = sum(p.rows for p in parts)
    out = np.empty(total, dtype=dtype)
    own = getattr(parts[0], "own_epochs", None) if separate_epochs and len(parts) == 1 else None
    if own is not None:  # one part that made its labels for this read: no copy of them
        epochs: np.ndarray | None = own()
        parts[0].fill(out, epochs)
        return out, epochs
    epochs = np.empty(total, dtype=np.int64) if separate_epochs else None
    pos = 0
    for p in parts:
        n = p.rows
        if n:
            p.fill(out[pos : pos + n], None if epochs is None else epochs[pos : pos + n])
            pos += n
    return out, epochs


def concat_rows(chunks: Sequence[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The chunks (each a contiguous `dtype` array) one after the other in a new array,
    copied as raw bytes: numpy's concatenate of structured arrays converts field by field,
    about 15x slower than moving the same bytes."""
    if not chunks:
        return np.zeros(0, dtype=dtype)
    if len(chunks) == 1:
        return chunks[0]
    out = np.empty(sum(len(c) for c in chunks), dtype=dtype)
    raw = out.view(np.uint8)
    pos = 0
    for c in chunks:
        b = np.ascontiguousarray(c).view(np.uint8)
        raw[pos : pos + len(b)] = b
        pos += len(b)
    return out
