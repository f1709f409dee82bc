"""Deterministic benchmark datasets, built once per process from a fixed seed.

Everything comes from `plugins.synth` (realistic 1Min OHLCV with market hours, holidays and
a few missing minutes; bursty trades exact to the nanosecond; every price on the $0.01 grid
since issue 17, raw float random walks before), so every engine in a run, and every run on
every machine, sees the same rows.

Sizes: `full` (the numbers in benchmarks/README.md), `quick` (`--quick`, < 2 min for the
side-by-side runner), `smoke` (CI: each scenario once on tiny data). Chosen with the
environment variable MKTS_BENCH_SIZE (default `full`) or `compare.py --size`.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from dataclasses import dataclass

import numpy as np

from mkts.plugins import synth

__all__ = ["SEED", "PRICES", "OLD_PRICES", "Size", "SIZES", "size_from_env", "bars", "bar_set",
           "trading_days", "tick_days", "tick_batches", "append_rows", "day_bounds", "BAR_DTYPE",
           "TICK_DTYPE", "BAR_KEY", "TICK_KEY", "multi_year_bars"]

SEED = 7
# What the bars' prices are, recorded with every comparison report (issue 17 moved them).
PRICES = "on the $0.01 grid"
OLD_PRICES = "raw float random walks, off the cent grid (the data before December 2026)"
BAR_DTYPE = synth.BAR_DTYPE
TICK_DTYPE = synth.TICK_DTYPE
BAR_KEY = "{}/1Min/OHLCV"
TICK_KEY = "{}/1Sec/TRADE"


@dataclass(frozen=True)
class Size:
    name: str
    symbols: int  # bulk write: symbols x one year of 1Min bars
    bar_start: dt.date
    bar_end: dt.date  # the "year" (one month in smoke)
    multi_symbols: int  # multi-symbol read: this many symbols ...
    multi_start: dt.date  # ... over this range (one month)
    multi_end: dt.date
    tick_days: int  # tick ingest: days x ticks_per_day ticks, in batches of tick_batch
    ticks_per_day: int
    tick_batch: int
    append_seconds: float  # small appends run for this long per variant
    reads_after: int  # appends before the "read after appends" check (issue 7: 3 000)
    day_reads: int  # one-day range reads per latency sample
    repeats: int  # runs per scenario; the median is reported
    single_ticks: int  # single-tick appends into one interval (issue 4: 10^5)
    replay_txns: tuple[int, ...]  # WAL sizes for replay time, in 1-month transactions
    agg_writes: int  # 1-row writes in the ondiskagg stream (issue 5)

    @property
    def total_ticks(self) -> int:
        return self.tick_days * self.ticks_per_day


SIZES = {
    "full": Size("full", 100, dt.date(2024, 1, 1), dt.date(2024, 12, 31), 20,
                 dt.date(2024, 3, 1), dt.date(2024, 3, 31), 10, 1_000_000, 100_000,
                 3.0, 3000, 200, 3, 100_000, (50, 200, 800), 2000),
    "quick": Size("quick", 10, dt.date(2024, 1, 1), dt.date(2024, 12, 31), 10,
                  dt.date(2024, 3, 1), dt.date(2024, 3, 31), 2, 100_000, 50_000,
                  0.4, 300, 50, 2, 5_000, (10, 40, 160), 500),
    "smoke": Size("smoke", 3, dt.date(2024, 1, 1), dt.date(2024, 1, 31), 3,
                  dt.date(2024, 1, 8), dt.date(2024, 1, 19), 2, 5_000, 2_500,
                  0.05, 30, 5, 1, 300, (2, 4, 8), 50),
}


def size_from_env(default: str = "full") -> Size:
    name = os.environ.get("MKTS_BENCH_SIZE", default)
    if name not in SIZES:
        raise ValueError(f"MKTS_BENCH_SIZE={name!r}: use one of {', '.join(SIZES)}")
    return SIZES[name]


@functools.lru_cache(maxsize=256)
def _bars(symbol: str, start: dt.date, end: dt.date) -> np.ndarray:
    out = synth.minute_bars(symbol, start, end, seed=SEED)
    out.flags.writeable = False
    return out


def bars(symbol: str, size: Size) -> np.ndarray:
    """One symbol's 1Min bars over the size's year (read-only, cached)."""
    return _bars(symbol, size.bar_start, size.bar_end)


@functools.lru_cache(maxsize=4)
def multi_year_bars(size: Size) -> np.ndarray:
    """The first symbol's 1Min bars over two year files: the year before the size's year
    (from the same month and day as the size's start) and the size's own range."""
    start = size.bar_start.replace(year=size.bar_start.year - 1)
    first = synth.minute_bars(synth.symbols(1)[0], start, start.replace(month=12, day=31),
                              seed=SEED)
    out = np.concatenate([first, bars(synth.symbols(1)[0], size)])
    out.flags.writeable = False
    return out


def bar_set(size: Size) -> dict[str, np.ndarray]:
    """{symbol: bars} for the bulk write: `size.symbols` symbols x one year."""
    return {s: bars(s, size) for s in synth.symbols(size.symbols)}


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """The session days synth generates between start and end (weekdays, not holidays)."""
    opens = synth.session_minutes(start, end)[::390]
    return [dt.datetime.fromtimestamp(int(t), dt.UTC).date() for t in opens]


def day_bounds(day: dt.date) -> tuple[int, int]:
    """[start, end] epoch seconds (inclusive) of one calendar day, UTC."""
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
    return start, start + 86_399


@functools.lru_cache(maxsize=4)
def tick_days(size: Size, symbol: str = "AAPL") -> tuple[tuple[dt.date, np.ndarray], ...]:
    """`size.tick_days` busy days of one symbol's trades, `ticks_per_day` each, in time order."""
    days = trading_days(dt.date(2024, 3, 4), dt.date(2024, 6, 28))[: size.tick_days]
    out = []
    for d in days:
        t = synth.ticks(symbol, d, size.ticks_per_day, seed=SEED)
        t.flags.writeable = False
        out.append((d, t))
    return tuple(out)


def tick_batches(size: Size, symbol: str = "AAPL") -> list[np.ndarray]:
    """All ticks of `tick_days` cut into batches of `size.tick_batch` rows, in time order."""
    allticks = np.concatenate([t for _, t in tick_days(size, symbol)])
    return [allticks[i : i + size.tick_batch] for i in range(0, len(allticks), size.tick_batch)]


def append_rows(start_epoch: int, n: int, *, step: int = 60, seed: int = SEED) -> np.ndarray:
    """`n` new 1Min bars after `start_epoch` (for the small-append scenarios)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=BAR_DTYPE)
    out["Epoch"] = start_epoch + step * np.arange(n, dtype=np.int64)
    close = synth.on_cents(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n))))
    out["Open"] = close
    out["High"] = synth.on_cents(close * 1.001)
    out["Low"] = synth.on_cents(close * 0.999)
    out["Close"] = close
    out["Volume"] = rng.integers(100, 5000, n)
    return out
