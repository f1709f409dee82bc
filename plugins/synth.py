"""Deterministic, realistic synthetic market data: 1Min OHLCV bars during exchange hours
(09:30-16:00 New York, weekdays, common holidays closed, a few missing minutes) and trades,
prices on the $0.01 grid as real US equity prices are.

Used by the demo, the `feed` example worker and the benchmarks. Pure numpy; same seed,
same data.
"""

from __future__ import annotations

import datetime as _dt
import zlib
import zoneinfo

import numpy as np

from mkts.engine import NS

__all__ = ["BAR_DTYPE", "TICK_DTYPE", "CENT", "session_minutes", "on_cents", "minute_bars", "ticks",
           "symbols"]

BAR_DTYPE = np.dtype([("Epoch", "<i8"), ("Open", "<f4"), ("High", "<f4"), ("Low", "<f4"),
                      ("Close", "<f4"), ("Volume", "<i8")])
TICK_DTYPE = np.dtype([("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8"),
                       ("Size", "<i8")])
_NY = zoneinfo.ZoneInfo("America/New_York")
_HOLIDAYS = {(1, 1), (7, 4), (12, 25), (6, 19), (11, 11)}
CENT = 0.01  # the price grid of bars and trades


def symbols(n: int) -> list[str]:
    """`n` distinct ticker-like names, stable across calls."""
    base = ["AAPL", "MSFT", "AMZN", "GOOG", "META", "NVDA", "TSLA", "JPM", "V", "XOM"]
    out = base[:n]
    i = 0
    while len(out) < n:
        out.append(f"S{i:03d}")
        i += 1
    return out


def session_minutes(start: _dt.date, end: _dt.date) -> np.ndarray:
    """Epoch seconds of every regular-session minute from `start` to `end` (inclusive)."""
    days = []
    d = start
    while d <= end:
        if d.weekday() < 5 and (d.month, d.day) not in _HOLIDAYS:
            open_ = int(_dt.datetime(d.year, d.month, d.day, 9, 30, tzinfo=_NY).timestamp())
            days.append(open_)
        d += _dt.timedelta(days=1)
    if not days:
        return np.zeros(0, dtype=np.int64)
    opens = np.array(days, dtype=np.int64)
    return (opens[:, None] + np.arange(390, dtype=np.int64)[None, :] * 60).ravel()


def _rng(symbol: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(symbol.encode())])


def on_cents(prices: np.ndarray) -> np.ndarray:
    """Prices rounded to whole cents, at least one cent: US equities trade on a $0.01 grid
    (above $1), so a real feed never carries a price between two cents."""
    return np.maximum(np.round(prices, 2), CENT)


def minute_bars(symbol: str, start: _dt.date, end: _dt.date, *, seed: int = 7,
                gap_rate: float = 0.01) -> np.ndarray:
    """1Min bars for one symbol: a random walk with intraday volume smile and gaps.

    Prices sit on the cent grid (`on_cents`; as float32, the nearest float32 to each cent
    value) and each bar is consistent: Low <= min(Open, Close) <= max(Open, Close) <= High,
    Open = the previous Close."""
    rng = _rng(symbol, seed)
    minutes = session_minutes(start, end)
    keep = rng.random(len(minutes)) >= gap_rate
    minutes = minutes[keep]
    n = len(minutes)
    price0 = 20.0 + (zlib.crc32(symbol.encode()) % 480)
    rets = rng.normal(0.0, 0.0008, n)
    walk = price0 * np.exp(np.cumsum(rets))
    close = on_cents(walk)
    open_ = np.empty(n)
    open_[:1] = on_cents(np.array([price0]))
    open_[1:] = close[:-1]
    # Rounding is monotonic, so the bounds stay bounds in float32 as in float64.
    spread = np.round(np.abs(rng.normal(0.0, 0.0006, n)) * walk, 2)
    high = np.maximum(open_, close) + spread
    low = np.maximum(np.minimum(open_, close) - spread, CENT)
    minute_of_day = ((minutes - minutes.min()) // 60) % 390 if n else minutes
    smile = 1.0 + 2.5 * (np.abs(minute_of_day - 195) / 195.0) ** 3
    volume = (rng.gamma(2.0, 800.0, n) * smile).astype(np.int64) + 100
    out = np.empty(n, dtype=BAR_DTYPE)
    out["Epoch"] = minutes
    out["Open"] = open_
    out["High"] = high
    out["Low"] = low
    out["Close"] = close
    out["Volume"] = volume
    return out


def ticks(symbol: str, day: _dt.date, count: int, *, seed: int = 7) -> np.ndarray:
    """`count` trades during one session, exact to the nanosecond, bursty like real trading."""
    rng = _rng(symbol, seed + day.toordinal())
    open_ = int(_dt.datetime(day.year, day.month, day.day, 9, 30, tzinfo=_NY).timestamp())
    session_ns = 390 * 60 * NS
    # Exponential gaps with clustered intensity give realistic bursts.
    weights = rng.gamma(0.5, 2.0, count)
    offsets = np.cumsum(weights)
    offsets = (offsets / offsets[-1] * (session_ns - 1)).astype(np.int64) if count else offsets
    ns = open_ * NS + offsets.astype(np.int64)
    price0 = 20.0 + (zlib.crc32(symbol.encode()) % 480)
    price = on_cents(price0 * np.exp(np.cumsum(rng.normal(0.0, 0.00005, count))))
    out = np.empty(count, dtype=TICK_DTYPE)
    out["Epoch"] = ns // NS
    out["Nanoseconds"] = ns % NS
    out["Price"] = price
    out["Size"] = rng.choice([1, 10, 50, 100, 100, 100, 200, 500], count)
    return out
