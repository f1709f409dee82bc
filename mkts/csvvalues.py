"""CSV import, the values: parsing one chunk of a column's text into times (epoch seconds,
ISO-8601, --time-format) or numbers and text, and collecting bad rows (`CsvProblem`, the
first `MAX_REPORTED` by line). The header is csvheader's, the file csvreader's."""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

import numpy as np

from mkts.engine.timeutil import MAX_YEAR, MIN_YEAR, NS, parse_time_text, to_epoch_ns, wall_to_utc

MAX_REPORTED = 20  # bad rows listed before the rest are only counted
_CHUNK_ROWS = 65_536
_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": NS}


_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_TIME_HINT = "epoch seconds, or pass --time-format"


class CsvProblem(Exception):
    """The file cannot be imported; `problems` lists what is wrong, line by line."""

    def __init__(self, summary: str, problems: list[str] | None = None, bad_rows: int = 0) -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = problems or []
        self.bad_rows = bad_rows


@dataclass
class CsvData:
    """Validated columns: `epoch_ns` (int64 nanoseconds UTC) and the value columns."""

    epoch_ns: np.ndarray
    columns: dict[str, np.ndarray]
    time_column: str

    def __len__(self) -> int:
        return len(self.epoch_ns)


class _Problems:
    """Bad rows; the first MAX_REPORTED problems in line order (then header column order)."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int, str]] = []
        self.bad_rows: set[int] = set()

    def add(self, line: int, text: str, order: int = 0) -> None:
        self.bad_rows.add(line)
        self.entries.append((line, order, text))
        if len(self.entries) > 4 * MAX_REPORTED + _CHUNK_ROWS:
            self.trim()

    def trim(self) -> None:
        self.entries.sort(key=lambda e: (e[0], e[1]))
        del self.entries[MAX_REPORTED:]

    @property
    def lines(self) -> list[str]:
        self.trim()
        return [f"line {line}: {text}" for line, _, text in self.entries]

    def raise_if_any(self, path: str) -> None:
        if self.bad_rows:
            n = len(self.bad_rows)
            raise CsvProblem(f"{n} bad row{'s' if n != 1 else ''} in {path}; nothing was "
                             "written", self.lines, n)


def _parse_times(values: list[str], lines: list[int], time_format: str | None,
                 zone: zoneinfo.ZoneInfo, epoch_unit: str, problems: _Problems,
                 name: str) -> np.ndarray:
    """Epoch nanoseconds (UTC) of each value; bad values are reported and set to 0."""
    out = np.zeros(len(values), dtype=np.int64)
    naive = np.zeros(len(values), dtype=bool)
    unit = _UNITS[epoch_unit]
    lo_ns = to_epoch_ns(_dt.date(MIN_YEAR, 1, 1))
    hi_ns = to_epoch_ns(_dt.date(MAX_YEAR + 1, 1, 1)) - 1
    for i, raw in enumerate(values):
        s = raw.strip()
        try:
            if time_format is not None:
                ns, is_naive = _strptime(s, time_format)
            elif _INT.match(s):
                v = int(s)
                if unit == 1 and abs(v) > 99_999_999_999:
                    raise ValueError(f"{s} is too large for epoch seconds; if it is in "
                                     "milliseconds, pass --epoch-unit ms")
                ns, is_naive = v * (NS // unit), False
            elif _FLOAT.match(s):
                f = float(s)
                if not math.isfinite(f):
                    raise ValueError(f"{s!r} is not a time")
                ns, is_naive = int(round(f * (NS // unit))), False
            else:
                ns, is_naive = parse_time_text(s, _TIME_HINT)
        except ValueError as exc:
            problems.add(lines[i], f"column {name!r}: {exc}")
            continue
        if not lo_ns <= ns <= hi_ns:
            problems.add(lines[i], f"column {name!r}: {s!r} is outside the supported years "
                                   f"{MIN_YEAR}-{MAX_YEAR}")
            continue
        out[i] = ns
        naive[i] = is_naive
    if naive.any() and zone.key != "UTC":
        out[naive] = wall_to_utc(out[naive], zone)
    return out


def _strptime(s: str, fmt: str) -> tuple[int, bool]:
    try:
        t = _dt.datetime.strptime(s, fmt)
    except ValueError:
        raise ValueError(f"{s!r} does not match --time-format {fmt!r}") from None
    return to_epoch_ns(t), t.utcoffset() is None  # naive: the wall-clock time as if UTC


def _parse_column(values: list[str], lines: list[int], name: str, want: Any,
                  problems: _Problems, order: int = 0) -> np.ndarray:
    """`values` (stripped) as `want`, or inferred: i8 if every value is an integer, f8 if
    every value is a number, else text as wide as the longest value (empty values are
    errors in number columns)."""
    if want is not None:
        dt = np.dtype(want)
        if dt.kind == "U":
            width = dt.itemsize // 4
            for i, v in enumerate(values):
                if len(v) > width:
                    problems.add(lines[i], f"column {name!r}: {v!r} has {len(v)} characters; "
                                 f"the bucket stores at most {width} (U{width})", order)
            return np.array(values, dtype=dt)
        return _numbers(values, lines, name, dt, problems, order)
    if all(_INT.match(v) for v in values):
        return _numbers(values, lines, name, np.dtype(np.int64), problems, order)
    if values and not any(_is_number(v) for v in values):
        width = max(1, max(len(v) for v in values))
        return np.array(values, dtype=f"<U{width}")
    return _numbers(values, lines, name, np.dtype(np.float64), problems, order)


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _whole(v: str) -> int | None:
    """The integer a number text stands for exactly (`100`, `100.0`, `1e3`), else None."""
    if _INT.match(v):
        return int(v)
    if not _FLOAT.match(v):
        return None
    try:
        d = decimal.Decimal(v)
    except decimal.InvalidOperation:
        return None
    return int(d) if d == d.to_integral_value() else None


def _numbers(values: list[str], lines: list[int], name: str, dt: np.dtype,
             problems: _Problems, order: int = 0) -> np.ndarray:
    try:
        if dt.kind in "iu":
            if all(_INT.match(v) for v in values):
                ints = [int(v) for v in values]
                info = np.iinfo(dt)
                if ints and (min(ints) < info.min or max(ints) > info.max):
                    raise OverflowError
                return np.array(values, dtype=np.int64 if dt.kind == "i" else np.uint64) \
                    .astype(dt)
            raise ValueError
        return np.array(values, dtype=dt)
    except (ValueError, OverflowError):
        pass
    out = np.zeros(len(values), dtype=dt)
    for i, v in enumerate(values):
        if dt.kind in "iu":
            whole = _whole(v)
            if whole is not None:
                info = np.iinfo(dt)
                if not info.min <= whole <= info.max:
                    problems.add(lines[i], f"column {name!r}: {v} does not fit "
                                           f"{dt.str.lstrip('<|')} ({info.min}..{info.max})",
                                 order)
                    continue
                out[i] = whole
                continue
            what = "an integer" if not _is_number(v) or not v else \
                "an integer (the column stores integers and the value has a fraction)"
        else:
            try:
                out[i] = float(v)
                continue
            except ValueError:
                pass
            what = "a number"
        shown = "an empty value" if not v else repr(v)
        problems.add(lines[i], f"column {name!r}: {shown} is not {what}", order)
    return out
