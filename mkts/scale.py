"""Pieces: the (bucket, year file) units both scale-out paths work on (docs/scale.md).

Owns cutting a time range at year-file boundaries, including the earliest time a piece can
hold (a Dask division). Pure functions over `db.info` and the engine's calendar; which
buckets a pattern selects is `engine.patterns`', reading is `mkts.dask_io`'s, writing
`mkts.export`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mkts import engine
from mkts.engine.timeutil import NS

__all__ = ["Piece", "plan_pieces", "year_bounds", "time_arg"]


@dataclass(frozen=True)
class Piece:
    """The rows of one bucket's year file inside a range: `db.read(key, start_ns, end_ns)`.

    `start_ns`/`end_ns` are the range clipped to the year (inclusive). `first_ns` is the
    earliest row time the piece can hold: `start_ns` for ticks, `start_ns` floored to its
    interval for fixed buckets (a read is inclusive at interval granularity).
    `whole_year` says the range does not cut the year.
    """

    key: str
    year: int
    start_ns: int
    end_ns: int
    first_ns: int
    whole_year: bool

    @property
    def symbol(self) -> str:
        return self.key.split("/", 1)[0]


def time_arg(value: Any, what: str, tz: str | None = None) -> int | None:
    """A user time (anything `engine.to_epoch_ns` takes) as epoch ns, as `db.read` reads it:
    without an offset in the database's zone `tz`, a date-only `end` its whole day; None
    stays None."""
    if value is None:
        return None
    return engine.to_epoch_ns(value, what, tz, end=what == "end")


def year_bounds(calendar: engine.Calendar, year: int) -> tuple[int, int]:
    """[first, last] nanosecond of a year file: local midnight of 1 January to the next."""
    return calendar.year_start(year) * NS, calendar.year_start(year + 1) * NS - 1


def plan_pieces(calendar: engine.Calendar, infos: Mapping[str, Mapping[str, Any]],
                start_ns: int | None, end_ns: int | None) -> list[Piece]:
    """One piece per (key, year file) overlapping [start_ns, end_ns], keys in `infos` order
    and years ascending. `infos` maps each key to its `db.info(key)`; no I/O."""
    out: list[Piece] = []
    for key, info in infos.items():
        fixed = info["kind"] != "variable"
        tf = engine.parse_timeframe(info["timeframe"])
        for year in info["years"]:
            ys, ye = year_bounds(calendar, year)
            lo = ys if start_ns is None else max(start_ns, ys)
            hi = ye if end_ns is None else min(end_ns, ye)
            if lo > hi:
                continue
            first = lo
            if fixed and lo != ys:
                y, slot = calendar.slot_of(lo // NS, tf)
                first = int(calendar.labels(y, np.array([slot]), tf)[0]) * NS
            out.append(Piece(key, year, lo, hi, first, lo == ys and hi == ye))
    return out
