"""The exchange-session filter of on-disk aggregation: which epochs lie inside a trading
session of an exchange calendar (`session_filter("XNYS")`, via exchange_calendars), one
shared filter per calendar. The bar math is in plugins.aggfuncs."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np

_ALIASES = {"nasdaq": "XNAS", "nyse": "XNYS"}


class SessionFilter:
    """Which epochs fall inside a session of one exchange calendar (exchange_calendars).

    A time t counts when session open <= t < session close, outside any lunch break; early
    closes and holidays come from the calendar. Thread-safe; schedules are built lazily,
    a decade at a time, for the years asked about."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._years: tuple[int, int] | None = None
        self._opens = self._closes = np.zeros(0, dtype=np.int64)
        self._breaks: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"SessionFilter({self.name!r})"

    def mask(self, epochs: np.ndarray) -> np.ndarray:
        """Boolean array: True where the epoch (seconds) is inside a session."""
        epochs = np.asarray(epochs, dtype=np.int64)
        if not len(epochs):
            return np.zeros(0, dtype=bool)
        opens, closes, breaks = self._schedule(int(epochs.min()), int(epochs.max()))
        i = np.searchsorted(opens, epochs, side="right") - 1
        ok = i >= 0
        i = np.maximum(i, 0)
        if not len(opens):
            return np.zeros(len(epochs), dtype=bool)
        ok &= epochs < closes[i]
        if breaks is not None:
            bs, be = breaks
            ok &= ~((epochs >= bs[i]) & (epochs < be[i]))
        return ok

    def _schedule(self, lo: int, hi: int
                  ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        y0, y1 = _year(lo), _year(hi)
        with self._lock:
            have = self._years
            if have is None or y0 < have[0] or y1 > have[1]:
                first = min(y0, have[0]) if have else y0
                last = max(y1, have[1]) if have else y1
                first, last = first - first % 10, last - last % 10 + 9
                self._build(first, last)
            return self._opens, self._closes, self._breaks

    def _build(self, first: int, last: int) -> None:
        import exchange_calendars as xcals

        start = first
        while True:
            try:
                with warnings.catch_warnings():
                    # exchange_calendars trips pandas deprecation warnings; not ours to fix
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                    cal = xcals.get_calendar(self.name, start=f"{start}-01-01",
                                             end=f"{last}-12-31")
                break
            except ValueError:  # before the calendar's earliest year: those rows are closed
                if start >= last:
                    raise
                start += 10
        self._opens = _seconds(cal.opens)
        self._closes = _seconds(cal.closes)
        bs, be = _seconds(cal.break_starts), _seconds(cal.break_ends)
        has = bs != _NAT
        self._breaks = (np.where(has, bs, 0), np.where(has, be, 0)) if has.any() else None
        self._years = (first, last)


_NAT = np.iinfo(np.int64).min
_filters: dict[str, SessionFilter] = {}
_filters_lock = threading.Lock()


def session_filter(name: str) -> SessionFilter:
    """The shared SessionFilter for an exchange calendar name: `XNAS`, `XNYS`, any other
    exchange_calendars name or alias, or MarketStore's `nasdaq`. Raises ValueError for an
    unknown name and ImportError when exchange_calendars is not installed."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"filter must be an exchange calendar name like 'XNYS', not {name!r}")
    try:
        import exchange_calendars as xcals
    except ImportError as exc:
        raise ImportError(
            f"filter {name!r} needs exchange_calendars: pip install 'mkts[calendars]'"
        ) from exc
    known = set(xcals.get_calendar_names(include_aliases=True))
    canonical = _ALIASES.get(name.lower(), name)
    if canonical not in known and canonical.upper() in known:
        canonical = canonical.upper()
    if canonical not in known:
        raise ValueError(
            f"filter {name!r} is not an exchange calendar; use a name such as XNAS, XNYS, "
            "XLON (see exchange_calendars.get_calendar_names()) or 'nasdaq'"
        )
    with _filters_lock:
        f = _filters.get(canonical)
        if f is None:
            f = _filters[canonical] = SessionFilter(canonical)
        return f


def _year(epoch: int) -> int:
    return int(np.datetime64(epoch, "s").astype("datetime64[Y]").astype(np.int64)) + 1970


def _seconds(series: Any) -> np.ndarray:
    """A pandas datetime Series (UTC, may hold NaT) as int64 epoch seconds (NaT kept)."""
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert(None)
    values: np.ndarray = series.to_numpy(dtype="datetime64[ns]").astype("datetime64[s]")
    return values.astype(np.int64)
