"""Time: user values to epoch nanoseconds, and the database calendar (year files, slots).

Pure functions and a per-time-zone `Calendar`; no I/O. Intraday intervals are fixed-length
and counted from local midnight of 1 January; 1D slots are local calendar days; year files
follow the local calendar (docs/format.md "Which slot a time falls in").
"""

from __future__ import annotations

import bisect
import datetime as _dt
import functools
import re
import zoneinfo
from typing import Any, NamedTuple

import numpy as np

from mkts.engine.errors import InvalidInputError
from mkts.engine.timeframes import Timeframe
from mkts.engine.uniq import unique, unique_inverse

__all__ = ["to_epoch_ns", "parse_time_text", "ParsedTime", "wall_offset", "wall_to_utc",
           "Calendar", "MIN_YEAR", "MAX_YEAR", "MAX_DATETIME64_S", "NS", "get_calendar"]

NS = 1_000_000_000
MIN_YEAR = 1900
MAX_YEAR = 2261  # datetime64[ns] ends in April 2262
MAX_DATETIME64_S = 9_200_000_000  # |seconds| that still fit datetime64[ns] (2261 < year < 2262)


def to_epoch_ns(value: Any, what: str = "time", tz: str | None = None, *,
                end: bool = False) -> int:
    """Convert a user time to integer nanoseconds since 1970 UTC.

    Accepts epoch seconds (int or float), numpy.datetime64, datetime, date, pandas Timestamp
    and ISO-8601 strings (`parse_time_text`). **A time without an offset** — text without
    one, a naive datetime or Timestamp, a date — **is wall-clock time in `tz`** (an IANA
    zone, the database's; None: UTC); a time in a DST gap or overlap takes the offset before
    the transition (as CSV import does). Epoch numbers and datetime64 are instants (UTC), as
    `Result.timestamps` returns them. With `end=True` (the end of a range), a time without a
    time of day names a whole period and stands for its last nanosecond: a date or
    `2024-06-01` the whole day, `2024-06` the month, `2024` the year.
    """
    if isinstance(value, bool):
        raise InvalidInputError(f"{what}: {value!r} is not a time")
    if isinstance(value, (int, np.integer)):
        return int(value) * NS
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise InvalidInputError(f"{what}: {value!r} is not a finite time")
        return int(round(float(value) * NS))
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise InvalidInputError(f"{what}: NaT is not a time")
        return _datetime64_ns(value, what)
    # pandas Timestamp is a datetime subclass with nanoseconds; use them when present.
    asm8 = getattr(value, "asm8", None)
    if isinstance(value, _dt.datetime) and isinstance(asm8, np.datetime64):
        # asm8 is the UTC instant of an aware Timestamp, the wall-clock time (as if UTC) of
        # a naive one, in the Timestamp's own unit.
        ns = _datetime64_ns(asm8, what)
        return ns if value.tzinfo is not None else _wall_to_utc(ns, tz)
    if isinstance(value, _dt.datetime):
        aware = value.tzinfo is not None and value.utcoffset() is not None
        clock = value.replace(tzinfo=None) if aware else value
        delta = clock - _dt.datetime(1970, 1, 1)
        ns = (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000
        if aware:
            off = value.utcoffset()
            assert off is not None
            return ns - int(off.total_seconds()) * NS
        return _wall_to_utc(ns, tz)
    if isinstance(value, _dt.date):
        try:
            day = value + _dt.timedelta(days=1) if end else value
        except OverflowError:
            raise InvalidInputError(f"{what}: {value} is outside the supported years "
                                    f"{MIN_YEAR}-{MAX_YEAR}") from None
        ns = to_epoch_ns(_dt.datetime(day.year, day.month, day.day), what, tz)
        return ns - 1 if end else ns
    if isinstance(value, str):
        try:
            wall, offset, after = _parse_text(value, "epoch seconds, datetime or numpy.datetime64")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{what}: {exc}") from None
        last = end and after is not None
        if last:
            assert after is not None
            wall = after
        ns = _wall_to_utc(wall, tz) if offset is None else wall - offset * NS
        if last:
            ns -= 1
        if abs(ns // NS) > MAX_DATETIME64_S:
            raise InvalidInputError(f"{what}: {value!r} is outside the supported years "
                                    f"{MIN_YEAR}-{MAX_YEAR}")
        return ns
    raise InvalidInputError(
        f"{what}: {value!r} ({type(value).__name__}) is not a time; use epoch seconds, "
        "datetime, numpy.datetime64, pandas.Timestamp or an ISO-8601 string"
    )


_EPOCH_DT = _dt.datetime(1970, 1, 1)


def wall_offset(local_s: int, zone: zoneinfo.ZoneInfo) -> int:
    """The UTC offset in seconds of the wall-clock time `local_s` (seconds since 1970 read as
    if it were UTC) in `zone`; in a DST gap or overlap the offset before the transition
    (zoneinfo's fold=0). The one rule for every time without an offset."""
    off = (_EPOCH_DT + _dt.timedelta(seconds=local_s)).replace(tzinfo=zone).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def wall_to_utc(local_ns: np.ndarray, zone: zoneinfo.ZoneInfo) -> np.ndarray:
    """Wall-clock times in `zone` (ns, as if UTC) as UTC instants, `wall_offset` looked up
    once per distinct local hour (for the many rows of a CSV file)."""
    hours = local_ns // (3600 * NS)
    uniq, inverse = unique_inverse(hours)
    offsets = np.array([wall_offset(h * 3600, zone) for h in uniq.tolist()], dtype=np.int64)
    out: np.ndarray = local_ns - offsets[inverse] * NS
    return out


def _wall_to_utc(ns: int, tz: str | None) -> int:
    """A wall-clock time in `tz` (nanoseconds as if it were UTC) as the UTC instant
    (`wall_offset`)."""
    if tz is None or tz == "UTC":
        return ns
    try:
        return ns - wall_offset(ns // NS, zoneinfo.ZoneInfo(tz)) * NS
    except OverflowError:
        return ns  # outside datetime's years; the range check rejects it


def _datetime64_ns(value: np.datetime64, what: str) -> int:
    # Casting to [ns] wraps silently past April 2262; check the range in seconds first.
    if abs(int(value.astype("datetime64[s]").astype(np.int64))) > MAX_DATETIME64_S:
        raise InvalidInputError(f"{what}: {value} is outside the supported years {MIN_YEAR}-{MAX_YEAR}")
    return int(value.astype("datetime64[ns]").astype(np.int64))


_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_ISO = re.compile(
    r"^(\d{4})(?:[-/]?(\d{2})[-/]?(\d{2})|-(\d{2}))?"  # YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, YYYY-MM, YYYY
    r"(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?)?"  # T or space, HH[:MM[:SS[.f]]]
    r"\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$",  # Z, UTC, +HH, +HH:MM, +HHMM
    re.IGNORECASE,
)


class ParsedTime(NamedTuple):
    """A parsed time text: `ns` since 1970 (the UTC instant when the text has an offset, the
    wall-clock time read as if it were UTC when it has none) and whether it had none."""

    ns: int
    naive: bool


def parse_time_text(text: str, hint: str = "or epoch seconds") -> ParsedTime:
    """Parse an ISO-8601 time, the one parser for every time given as text (query ranges,
    the CLI, CSV import): `YYYY-MM-DD` (also `/` or no separators, `YYYY-MM`, `YYYY`),
    optionally `T` or a space and `HH[:MM[:SS[.fffffffff]]]` (also without colons; `.` or `,`
    before the fraction, exact to the nanosecond), optionally `Z`, `UTC` or `±HH[:MM]`.

    What a time without an offset means is the caller's rule (`naive` says which it is; for
    ranges and imports: the database's zone, `to_epoch_ns`). Raises InvalidInputError
    naming the text; `hint` ends the message of a text that is no time at all."""
    wall, offset, _ = _parse_text(text, hint)
    return ParsedTime(wall if offset is None else wall - offset * NS, offset is None)


def _parse_text(text: str, hint: str) -> tuple[int, int | None, int | None]:
    """(the wall-clock time as ns as if it were UTC, its offset in seconds or None without
    one, and for a text without a time of day the wall-clock ns at which the day, month or
    year it names ends, else None)."""
    s = text.strip()
    m = _ISO.match(s)
    if m is None:
        raise InvalidInputError(f"{text!r} is not a time; use ISO-8601 like 2024-01-02 09:30:00 "
                                f"or 2024-01-02T09:30:00-05:00, {hint}")
    y, mo, d, mo_only, hh, mi, ss, frac, tz = m.groups()
    try:
        day = _dt.date(int(y), int(mo or mo_only or 1), int(d or 1))
    except ValueError:
        raise InvalidInputError(f"{text!r} is not a valid date") from None
    h, mn, sec = int(hh or 0), int(mi or 0), int(ss or 0)
    if h > 23 or mn > 59 or sec > 59:
        raise InvalidInputError(f"{text!r} is not a valid time of day")
    seconds = (day.toordinal() - _EPOCH_ORDINAL) * 86_400 + h * 3600 + mn * 60 + sec
    ns = seconds * NS + (int((frac + "000000000")[:9]) if frac else 0)
    after = None
    if hh is None:
        if d is not None:
            nxt = day.toordinal() + 1
        elif mo_only is not None:
            nxt = (day.replace(day=28) + _dt.timedelta(days=4)).replace(day=1).toordinal()
        else:
            nxt = day.replace(month=12, day=31).toordinal() + 1
        after = (nxt - _EPOCH_ORDINAL) * 86_400 * NS
    if tz is None:
        return ns, None, after
    if tz.upper() in ("Z", "UTC"):
        return ns, 0, after
    digits = tz[1:].replace(":", "")
    off_h, off_m = int(digits[:2]), int(digits[2:4] or 0)
    if off_h > 23 or off_m > 59:
        raise InvalidInputError(f"{text!r} has an offset out of range (at most ±23:59)")
    off = (off_h * 3600 + off_m * 60) * (-1 if tz[0] == "-" else 1)
    return ns, off, after


class Calendar:
    """Year and slot arithmetic for one database time zone (vectorised with numpy)."""

    def __init__(self, tz: str) -> None:
        try:
            self.zone = zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInputError(
                f"timezone {tz!r} is not a known IANA time zone name (e.g. 'UTC', 'America/New_York')"
            ) from exc
        self.tz = tz
        years = range(MIN_YEAR, MAX_YEAR + 2)
        self._year_starts = np.array([self._local_midnight(y, 1, 1) for y in years], dtype=np.int64)
        self._day_starts: dict[int, np.ndarray] = {}
        self._year_list: list[int] = self._year_starts.tolist()
        self._day_lists: dict[int, list[int]] = {}

    def _local_midnight(self, y: int, m: int, d: int) -> int:
        return int(_dt.datetime(y, m, d, tzinfo=self.zone).timestamp())

    # -- years ---------------------------------------------------------------------------
    @property
    def min_epoch(self) -> int:
        return int(self._year_starts[0])

    @property
    def max_epoch(self) -> int:
        """First second after the last supported year."""
        return int(self._year_starts[-1])

    def year_start(self, year: int) -> int:
        return int(self._year_starts[year - MIN_YEAR])

    def year_of(self, epochs: np.ndarray) -> np.ndarray:
        """Local calendar year of each epoch second (int64 array)."""
        idx = np.searchsorted(self._year_starts, epochs, side="right") - 1
        return (idx + MIN_YEAR).astype(np.int64)

    def year_of_one(self, epoch: int) -> int:
        return int(self.year_of(np.array([epoch], dtype=np.int64))[0])

    def check_range(self, epochs: np.ndarray, what: str = "Epoch") -> None:
        if len(epochs) == 0:
            return
        if len(epochs) == 1:
            lo = hi = int(epochs[0])
        else:
            lo, hi = int(epochs.min()), int(epochs.max())
        if lo < self.min_epoch or hi >= self.max_epoch:
            bad = lo if lo < self.min_epoch else hi
            raise InvalidInputError(
                f"{what} value {bad} is outside the supported years {MIN_YEAR}-{MAX_YEAR}"
            )

    # -- days ----------------------------------------------------------------------------
    def day_starts(self, year: int) -> np.ndarray:
        """Local midnights of every day of `year`, plus 1 January of the next year."""
        ds = self._day_starts.get(year)
        if ds is None:
            first = _dt.date(year, 1, 1)
            ndays = (_dt.date(year + 1, 1, 1) - first).days
            days = [first + _dt.timedelta(days=i) for i in range(ndays)]
            ds = np.array(
                [self._local_midnight(d.year, d.month, d.day) for d in days]
                + [self.year_start(year + 1)],
                dtype=np.int64,
            )
            self._day_starts[year] = ds
        return ds

    # -- slots ---------------------------------------------------------------------------
    def nslots(self, year: int, tf: Timeframe) -> int:
        if tf.is_daily:
            return len(self.day_starts(year)) - 1
        length = self.year_start(year + 1) - self.year_start(year)
        return -(-length // tf.seconds)

    def slots(self, epochs: np.ndarray, tf: Timeframe) -> tuple[np.ndarray, np.ndarray]:
        """(year, slot) of each epoch second; slot i of a year covers interval i."""
        if len(epochs) == 1:  # the 1-row append: skip numpy's per-call overhead
            y, s = self.slot_of(int(epochs[0]), tf)
            return np.array([y], dtype=np.int64), np.array([s], dtype=np.int64)
        years = self.year_of(epochs)
        if tf.is_daily:
            slots = np.empty(len(epochs), dtype=np.int64)
            for y in unique(years):
                sel = years == y
                slots[sel] = np.searchsorted(self.day_starts(int(y)), epochs[sel], side="right") - 1
            return years, slots
        starts = self._year_starts[years - MIN_YEAR]
        return years, (epochs - starts) // tf.seconds

    def slot_of(self, epoch: int, tf: Timeframe) -> tuple[int, int]:
        """(year, slot) of one epoch second (scalar fast path of `slots`)."""
        year = bisect.bisect_right(self._year_list, epoch) - 1 + MIN_YEAR
        if tf.is_daily:
            days = self._day_lists.get(year)
            if days is None:
                days = self._day_lists[year] = self.day_starts(year).tolist()
            return year, bisect.bisect_right(days, epoch) - 1
        return year, (epoch - self._year_list[year - MIN_YEAR]) // tf.seconds

    def labels(self, year: int, slots: np.ndarray, tf: Timeframe) -> np.ndarray:
        """Epoch second at the start (label) of each slot of `year`."""
        if tf.is_daily:
            return np.asarray(self.day_starts(year)[slots], dtype=np.int64)
        return self.year_start(year) + slots.astype(np.int64) * tf.seconds


@functools.lru_cache(maxsize=16)
def get_calendar(tz: str) -> Calendar:
    """A shared Calendar per time zone (building one costs a few milliseconds)."""
    return Calendar(tz)
