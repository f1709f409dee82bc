"""The math of query-time candles: timeframe literals (`'4H'`, `'1W'`, `'3M'`), which candle a
row falls in, and rows to OHLC candles with summed and averaged columns. Pure numpy, no I/O;
the functions that call it (tickcandler, candlecandler, resample) are thin plugins around it.

Boundaries (docs/plugins.md "Candle boundaries"): lengths that divide a day are the database's
own intervals (engine calendar slots, the same as stored buckets and ondiskagg: from local
midnight); other fixed lengths count from local midnight of 1970-01-01; `N D` are local days,
`N W` weeks starting Monday local midnight, `N M` calendar months, `N Y` calendar years, each
counted from 1970. Candles are labelled by their left edge; empty ones do not exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mkts.engine import Calendar, FunctionError, Timeframe
from mkts.plugins.aggfuncs import bar_labels, volume_dtype

__all__ = ["Frame", "parse_frame", "candle_labels", "candle_edges", "time_order", "price_of",
           "make_candles"]

DAY = 86_400
_FRAME = re.compile(r"\s*([0-9]{1,6})(Sec|Min|H|D|W|M|Y)\s*")
_SECONDS = {"Sec": 1, "Min": 60, "H": 3_600, "D": DAY, "W": 7 * DAY}
_DAILY = Timeframe("1D", DAY)
_MONDAY_SHIFT = 3  # 1970-01-01 was a Thursday: day + 3 counts from Monday 1969-12-29


@dataclass(frozen=True)
class Frame:
    """A candle length: `n` x `unit` (Sec, Min, H, D, W, M or Y)."""

    text: str
    n: int
    unit: str

    @property
    def seconds(self) -> int | None:
        """Fixed length in seconds, None for months and years."""
        per = _SECONDS.get(self.unit)
        return None if per is None else self.n * per


def parse_frame(text: str) -> Frame:
    """`N` then `Sec`, `Min`, `H`, `D`, `W`, `M` (months) or `Y`, case-sensitive, N >= 1.
    The whole literal must be the timeframe (MarketStore takes the first match anywhere, so
    `'1MIN'` silently meant one month there; here it is an error)."""
    m = _FRAME.fullmatch(text)
    if m is None or int(m.group(1)) < 1:
        raise FunctionError(f'no suitable timeframe provided: timeframe not found in "{text}" '
                            "(write N followed by Sec, Min, H, D, W, M or Y, e.g. '5Min', "
                            "'1H', '1D', '1W', '1M'; N >= 1)")
    return Frame(text, int(m.group(1)), m.group(2))


# -- which candle a row falls in --------------------------------------------------------------


def _runs_unique(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique values, inverse) of `a`; a sorted `a` (the usual case) costs one pass."""
    if len(a) < 2 or bool((a[1:] >= a[:-1]).all()):
        change = np.empty(len(a), dtype=bool)
        change[:1] = True
        np.not_equal(a[1:], a[:-1], out=change[1:])
        return a[change], np.cumsum(change) - 1
    uniq, inverse = np.unique(a, return_inverse=True)
    return uniq, inverse


def _jan1_days(years: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of 1 January of each year."""
    return (years - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)


def _local_days(calendar: Calendar, epochs: np.ndarray) -> np.ndarray:
    """The local calendar day of each epoch second, as days since 1970-01-01."""
    years, slots = calendar.slots(epochs, _DAILY)
    days: np.ndarray = _jan1_days(years) + slots
    return days


def _midnights(calendar: Calendar, days: np.ndarray) -> np.ndarray:
    """Local midnight (epoch seconds) of each day (days since 1970-01-01)."""
    uniq, inverse = _runs_unique(days)
    years = uniq.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    doy = uniq - _jan1_days(years)
    out = np.empty(len(uniq), dtype=np.int64)
    for y in np.unique(years).tolist():
        sel = years == y
        out[sel] = calendar.day_starts(int(y))[doy[sel]]
    result: np.ndarray = out[inverse]
    return result


def _bucket_days(days: np.ndarray, frame: Frame) -> np.ndarray:
    """The first day (days since 1970-01-01) of the D/W/M/Y candle holding each day."""
    if frame.unit == "D":
        out: np.ndarray = days - days % frame.n
        return out
    if frame.unit == "W":
        weeks = 7 * frame.n
        out = days - (days + _MONDAY_SHIFT) % weeks
        return out
    k = frame.n * (12 if frame.unit == "Y" else 1)
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    first = (months - months % k).astype("datetime64[M]").astype("datetime64[D]")
    out = first.astype(np.int64)
    return out


def _divides_day(frame: Frame) -> bool:
    secs = frame.seconds
    return frame.unit in ("Sec", "Min", "H", "D") and secs is not None and DAY % secs == 0


def _origin(calendar: Calendar) -> int:
    """Local midnight of 1970-01-01: where lengths that do not divide a day count from."""
    return int(calendar.day_starts(1970)[0])


def candle_labels(calendar: Calendar, epochs: np.ndarray, frame: Frame) -> np.ndarray:
    """The label (left edge, epoch seconds) of the candle each epoch second falls in."""
    epochs = np.asarray(epochs, dtype=np.int64)
    if not len(epochs):
        return np.zeros(0, dtype=np.int64)
    secs = frame.seconds
    if _divides_day(frame):
        assert secs is not None
        return bar_labels(calendar, epochs, Timeframe(frame.text, secs))
    if frame.unit in ("Sec", "Min", "H"):
        assert secs is not None
        out: np.ndarray = epochs - (epochs - _origin(calendar)) % secs
        return out
    uniq, inverse = _runs_unique(epochs)
    first = _bucket_days(_local_days(calendar, uniq), frame)
    labels: np.ndarray = _midnights(calendar, first)[inverse]
    return labels


def candle_edges(calendar: Calendar, first: int, last: int, frame: Frame, max_edges: int
                 ) -> np.ndarray | None:
    """The labels of every candle from the one holding epoch `first` to the one holding
    `last`, ascending (candle i ends where candle i+1 starts), or None when there would be
    more than `max_edges` of them (then labelling each row is cheaper)."""
    secs = frame.seconds
    if secs is not None and (last - first) // secs > max_edges:
        return None
    if _divides_day(frame):
        assert secs is not None
        parts = []
        for y in range(calendar.year_of_one(first), calendar.year_of_one(last) + 1):
            ys, ye = calendar.year_start(y), calendar.year_start(y + 1)
            lo, hi = max(first, ys), min(last, ye - 1)
            if secs == DAY:
                ds = calendar.day_starts(y)
                i0 = int(np.searchsorted(ds, lo, "right")) - 1
                i1 = int(np.searchsorted(ds, hi, "right")) - 1
                parts.append(ds[i0 : i1 + 1])
            else:
                k0, k1 = (lo - ys) // secs, (hi - ys) // secs
                parts.append(ys + np.arange(k0, k1 + 1, dtype=np.int64) * secs)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
    if frame.unit in ("Sec", "Min", "H"):
        assert secs is not None
        start = first - (first - _origin(calendar)) % secs
        return np.arange(start, last + 1, secs, dtype=np.int64)
    d0, d1 = _local_days(calendar, np.array([first, last], dtype=np.int64)).tolist()
    if d1 - d0 > 100 * max(max_edges, 1):
        return None
    firsts, _ = _runs_unique(_bucket_days(np.arange(d0, d1 + 1, dtype=np.int64), frame))
    return _midnights(calendar, firsts)


# -- rows to candles ----------------------------------------------------------------------------


def time_order(columns: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The permutation that sorts the rows by time (Epoch, then Nanoseconds when present;
    ties keep their order), or None when they are sorted already (a read's rows are)."""
    ep = np.asarray(columns["Epoch"], dtype=np.int64)
    ns = columns.get("Nanoseconds")
    if len(ep) < 2:
        return None
    key = ep if ns is None else ep * 1_000_000_000 + np.asarray(ns, dtype=np.int64)
    if bool((key[1:] >= key[:-1]).all()):
        return None
    return np.argsort(key, kind="stable")


def column(columns: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A numeric input column, or MarketStore's error naming it."""
    col = columns.get(name)
    if col is None:
        raise FunctionError(f"unable to retrieve column named {name}")
    arr = np.asarray(col)
    if arr.dtype.kind not in "iuf":
        raise FunctionError(f"column {name} is {arr.dtype.str.lstrip('<>|=')}; candles need "
                            "a numeric column")
    return arr


def price_of(columns: Mapping[str, np.ndarray], names: Sequence[str], keep_int: bool = False
             ) -> np.ndarray:
    """One price series from the named columns: the column itself, or their elementwise
    mean when several are bound. Floats keep their type; integers become f8 unless
    `keep_int`."""
    arrs = [column(columns, n) for n in names]
    if len(arrs) == 1:
        a = arrs[0]
        return a if a.dtype.kind == "f" or keep_int else a.astype(np.float64)
    dt = np.result_type(np.float32, *arrs)
    mean: np.ndarray = np.mean(np.stack([a.astype(dt) for a in arrs]), axis=0, dtype=dt)
    return mean.astype(dt)


def _named(base: str, suffix: str, taken: set[str]) -> str:
    name = f"{base}_{suffix}"
    i = 0
    while name in taken:  # MarketStore's names for a column bound twice: _SUM0, _SUM1, ...
        name = f"{base}_{suffix}{i}"
        i += 1
    taken.add(name)
    return name


def make_candles(epochs: np.ndarray, edges: np.ndarray, ohlc: Sequence[np.ndarray],
                 sums: Sequence[tuple[str, np.ndarray]] = (),
                 avgs: Sequence[tuple[str, np.ndarray]] = (),
                 exact_sums: bool = False) -> dict[str, np.ndarray]:
    """Candles over rows in time order (`epochs`), cut at `edges` (ascending candle labels;
    rows before edges[1] are in the first candle, rows from the last edge on in the last):
    Epoch (the label), Open (the first row's open), High (max), Low (min), Close (the last
    row's close), as ondiskagg reduces bars (plugins/aggfuncs.py); then one `<col>_SUM` per
    summed column and one `<col>_AVG` per averaged one, f8 (integers are added as integers
    first: exact up to 2^53). With `exact_sums`, each summed column comes out under its own
    name in the type it is summed in (int64, uint64, f8). Candles without rows are left out."""
    o, h, low, c = ohlc
    n = len(epochs)
    edges = np.asarray(edges, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    bounds = np.empty(len(edges) + 1, dtype=np.intp)
    bounds[0], bounds[-1] = 0, n
    bounds[1:-1] = np.searchsorted(epochs, edges[1:], "left")
    starts, ends = bounds[:-1], bounds[1:]
    keep = ends > starts
    if not bool(keep.all()):
        edges, starts, ends = edges[keep], starts[keep], ends[keep]
    out: dict[str, np.ndarray] = {"Epoch": edges}
    if n:
        out["Open"] = o[starts]
        out["High"] = np.maximum.reduceat(h, starts)
        out["Low"] = np.minimum.reduceat(low, starts)
        out["Close"] = c[ends - 1]
    else:
        out.update(Open=o[:0], High=h[:0], Low=low[:0], Close=c[:0])
    taken = set(out)
    for suffix, cols in (("SUM", sums), ("AVG", avgs)):
        for name, values in cols:
            arr = np.asarray(values)
            wide = arr.astype(volume_dtype(arr.dtype), copy=False)
            total = np.add.reduceat(wide, starts) if n else wide[:0]
            if suffix == "SUM" and exact_sums:
                out[name] = total
            elif suffix == "SUM":
                out[_named(name, suffix, taken)] = total.astype(np.float64)
            else:
                out[_named(name, suffix, taken)] = total.astype(np.float64) / (ends - starts)
    return out
