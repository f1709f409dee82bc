"""The math of on-disk aggregation: bar alignment, OHLCV reduction, ticks to bars, and the
exchange-session filter. Pure numpy over arrays; reading and writing buckets is
`plugins.ondiskagg`'s job.

Alignment follows the database calendar (`db.calendar`, docs/format.md "Slots"): intraday
bars are fixed-length intervals counted from local midnight of 1 January; 1D bars are local
calendar days. Bars are labelled by their left edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mkts.engine import Timeframe, parse_timeframe
from mkts.engine.uniq import unique
from mkts.plugins.sessionfilter import SessionFilter, session_filter

__all__ = [
    "OHLC",
    "BARS",
    "TICKS",
    "as_timeframe",
    "base_kind",
    "bar_labels",
    "bar_bounds",
    "merge_ranges",
    "touched_bars",
    "reduce_spans",
    "volume_dtype",
    "reduce_bars",
    "reduce_ticks",
    "aggregate",
    "SessionFilter",
    "session_filter",
]

OHLC = ("Open", "High", "Low", "Close")
BARS = "bars"
TICKS = "ticks"


def as_timeframe(tf: Timeframe | str) -> Timeframe:
    return tf if isinstance(tf, Timeframe) else parse_timeframe(tf)


def base_kind(names: Any) -> str | None:
    """BARS when the columns hold Open, High, Low and Close; TICKS when they hold Price
    (ticks: Volume will be the sum of Size); None when they cannot be aggregated."""
    names = set(names)
    if all(c in names for c in OHLC):
        return BARS
    if "Price" in names:
        return TICKS
    return None


# -- alignment ---------------------------------------------------------------------------


def bar_labels(calendar: Any, epochs: np.ndarray, tf: Timeframe | str) -> np.ndarray:
    """The label (left edge, epoch seconds) of the `tf` bar that contains each epoch."""
    tf = as_timeframe(tf)
    epochs = np.asarray(epochs, dtype=np.int64)
    out = np.empty(len(epochs), dtype=np.int64)
    if not len(epochs):
        return out
    years, slots = calendar.slots(epochs, tf)
    for y in unique(years):
        sel = years == y
        out[sel] = calendar.labels(int(y), slots[sel], tf)
    return out


def bar_bounds(calendar: Any, labels: np.ndarray, tf: Timeframe | str
               ) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) in epoch seconds of the `tf` bars with these labels.

    A 1D bar ends at the next local midnight (23 or 25 hours on DST days); an intraday bar
    after `tf` seconds, or at the end of the local year if that comes first."""
    tf = as_timeframe(tf)
    labels = np.asarray(labels, dtype=np.int64)
    ends = np.empty(len(labels), dtype=np.int64)
    if not len(labels):
        return labels, ends
    years, slots = calendar.slots(labels, tf)
    for y in unique(years):
        sel = years == y
        nxt = calendar.labels(int(y), slots[sel] + 1, tf) if tf.is_daily else \
            calendar.year_start(int(y)) + (slots[sel] + 1) * tf.seconds
        ends[sel] = np.minimum(nxt, calendar.year_start(int(y) + 1))
    return labels, ends


def merge_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of half-open ranges [starts[i], ends[i]) as sorted, disjoint, non-touching runs."""
    if len(starts) <= 16:  # a few bars (one write's): cheaper in Python than in numpy
        runs: list[list[int]] = []
        for s, e in sorted(zip(np.asarray(starts).tolist(), np.asarray(ends).tolist(),
                                   strict=True)):
            if runs and s <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], e)
            else:
                runs.append([s, e])
        return (np.array([r[0] for r in runs], dtype=np.int64),
                np.array([r[1] for r in runs], dtype=np.int64))
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    first = np.flatnonzero(np.concatenate(([True], s[1:] > reach[:-1])))
    return s[first], np.maximum.reduceat(e, first)


# Up to this many distinct written epochs, touched bars are found with scalar arithmetic
# (a 1-row append costs microseconds); above it, with numpy over the whole batch.
SCALAR_EPOCHS = 32


def touched_bars(calendar: Any, epochs: np.ndarray, tfs: Sequence[Timeframe]
                 ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The [start, end) of every bar of each timeframe that contains one of `epochs`:
    (starts, ends, counts), the bars of tfs[0] first (counts[0] of them, sorted, unique),
    then those of tfs[1], ... The same bars as `bar_labels` + `bar_bounds` give."""
    epochs = np.asarray(epochs, dtype=np.int64)
    if len(epochs) > SCALAR_EPOCHS:
        written = unique(epochs)
        if len(written) > SCALAR_EPOCHS:
            pairs = [bar_bounds(calendar, unique(bar_labels(calendar, written, tf)), tf)
                     for tf in tfs]
            return (np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]),
                    [len(p[0]) for p in pairs])
        epochs = written
    uniq = sorted(set(epochs.tolist())) if len(epochs) > 1 else epochs.tolist()
    starts: list[int] = []
    ends: list[int] = []
    counts: list[int] = []
    for tf in tfs:
        spans: dict[int, int] = {}
        for e in uniq:
            year, slot = calendar.slot_of(e, tf)
            if tf.is_daily:
                days = calendar.day_starts(year)
                spans[int(days[slot])] = int(days[slot + 1])
            else:
                start = calendar.year_start(year) + slot * tf.seconds
                spans[start] = min(start + tf.seconds, calendar.year_start(year + 1))
        labels = sorted(spans) if len(spans) > 1 else list(spans)
        starts.extend(labels)
        ends.extend(spans[x] for x in labels)
        counts.append(len(labels))
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64), counts


def reduce_spans(kind: str, columns: Mapping[str, np.ndarray], starts: np.ndarray,
                 ends: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Bars for the spans [starts[i], ends[i]) (any order; they may overlap, e.g. the 5Min,
    1H and 1D bars around one minute), over rows sorted by time (ticks: ties in write order).

    Returns (bars, has_rows): one bar per span labelled by its start, as `reduce_bars` /
    `reduce_ticks` would give for the rows inside it, and a bool array saying which spans
    hold rows (the bars of the others are meaningless and must be dropped)."""
    epochs = np.asarray(columns["Epoch"], dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    k, n = len(starts), len(epochs)
    # Row bounds of the spans, interleaved: idx[2i] = first row of span i, idx[2i+1] = one
    # past its last. reduceat over idx then reduces rows idx[2i]:idx[2i+1] at entry 2i
    # whenever that is not empty (odd entries reduce the gaps and are thrown away).
    edges = np.empty(2 * k, dtype=np.int64)
    edges[0::2] = starts
    edges[1::2] = ends
    idx = np.searchsorted(epochs, edges)
    lo, hi = idx[0::2], idx[1::2]
    has = hi > lo
    if kind == BARS:
        o, h, low, c = (np.asarray(columns[name]) for name in OHLC)
        vol = columns.get("Volume")
    else:
        o = h = low = c = np.asarray(columns["Price"])
        vol = columns.get("Size")
    if not n:
        return _empty(columns, kind), has
    # reduceat needs every index below the array's length, and hi may be n: reduce over
    # arrays with one more (meaningless) row. Open/Close of empty spans are clipped reads.
    out: dict[str, np.ndarray] = {"Epoch": starts, "Open": o.take(lo, mode="clip")}
    high = np.concatenate((h, h[:1]))
    out["High"] = np.maximum.reduceat(high, idx)[0::2]
    out["Low"] = np.minimum.reduceat(high if low is h else np.concatenate((low, low[:1])),
                                     idx)[0::2]
    out["Close"] = c.take(hi - 1, mode="clip")
    if vol is not None:
        v = np.asarray(vol)
        out["Volume"] = np.add.reduceat(np.concatenate((v, v[:1]), dtype=volume_dtype(v.dtype)),
                                        idx)[0::2]
    return out, has


# -- reduction ---------------------------------------------------------------------------


def volume_dtype(dtype: np.dtype | type) -> np.dtype:
    """Volume sums are stored wide enough not to overflow: int64, uint64 or float64."""
    dt = np.dtype(dtype)
    if dt.kind == "u":
        return np.dtype(np.uint64)
    if dt.kind in "ib":
        return np.dtype(np.int64)
    return np.dtype(np.float64)


def _groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) row of each run of equal labels (labels sorted)."""
    cut = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate(([0], cut)).astype(np.intp)
    ends = np.concatenate((cut, [len(labels)])).astype(np.intp)
    return starts, ends


def _sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    return np.add.reduceat(values.astype(volume_dtype(values.dtype), copy=False), starts)


def reduce_bars(labels: np.ndarray, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bars to bars. Rows sorted by time, `labels` their destination labels (non-decreasing).

    Open = first, High = max, Low = min, Close = last (in the column's own type),
    Volume = sum (as `volume_dtype`) when a Volume column is present. Other columns are
    not carried over."""
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        return _empty(columns, BARS)
    starts, ends = _groups(labels)
    out: dict[str, np.ndarray] = {"Epoch": labels[starts]}
    out["Open"] = np.asarray(columns["Open"])[starts]
    out["High"] = np.maximum.reduceat(np.asarray(columns["High"]), starts)
    out["Low"] = np.minimum.reduceat(np.asarray(columns["Low"]), starts)
    out["Close"] = np.asarray(columns["Close"])[ends - 1]
    if "Volume" in columns:
        out["Volume"] = _sum(columns["Volume"], starts)
    return out


def reduce_ticks(labels: np.ndarray, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Trades to bars. Rows sorted by time (ties in write order), `labels` as in reduce_bars.

    Open/High/Low/Close from Price (first, max, min, last), Volume = sum of Size when a Size
    column is present."""
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        return _empty(columns, TICKS)
    starts, ends = _groups(labels)
    price = np.asarray(columns["Price"])
    out: dict[str, np.ndarray] = {"Epoch": labels[starts]}
    out["Open"] = price[starts]
    out["High"] = np.maximum.reduceat(price, starts)
    out["Low"] = np.minimum.reduceat(price, starts)
    out["Close"] = price[ends - 1]
    if "Size" in columns:
        out["Volume"] = _sum(columns["Size"], starts)
    return out


def _empty(columns: Mapping[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"Epoch": np.zeros(0, dtype=np.int64)}
    if kind == BARS:
        for c in OHLC:
            out[c] = np.asarray(columns[c])[:0]
        if "Volume" in columns:
            out["Volume"] = np.zeros(0, dtype=volume_dtype(np.asarray(columns["Volume"]).dtype))
    else:
        price = np.asarray(columns["Price"])
        for c in OHLC:
            out[c] = price[:0]
        if "Size" in columns:
            out["Volume"] = np.zeros(0, dtype=volume_dtype(np.asarray(columns["Size"]).dtype))
    return out


def aggregate(columns: Mapping[str, np.ndarray], calendar: Any, tf: Timeframe | str, *,
              session: SessionFilter | None = None) -> dict[str, np.ndarray]:
    """Aggregate base rows (any order) into `tf` bars, from scratch.

    `columns` has Epoch and either OHLC(+Volume) or Price(+Size) (+Nanoseconds for ticks).
    With `session`, only rows whose Epoch lies inside an exchange session count, and a bar
    without such rows is not produced. Returns {Epoch, Open, High, Low, Close[, Volume]}."""
    kind = base_kind(columns)
    if kind is None:
        raise ValueError("cannot aggregate: the columns need Open, High, Low and Close "
                         f"(bars) or Price (ticks); got {', '.join(columns)}")
    epochs = np.asarray(columns["Epoch"], dtype=np.int64)
    keep = np.ones(len(epochs), dtype=bool) if session is None else session.mask(epochs)
    if "Nanoseconds" in columns:
        order = np.lexsort((np.asarray(columns["Nanoseconds"]), epochs))
    else:
        order = np.argsort(epochs, kind="stable")
    order = order[keep[order]]
    rows = {name: np.asarray(col)[order] for name, col in columns.items()}
    labels = bar_labels(calendar, rows["Epoch"], tf)
    return reduce_bars(labels, rows) if kind == BARS else reduce_ticks(labels, rows)
