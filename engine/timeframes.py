"""Timeframe strings (`1Min`, `4H`, `1D`): parsing and validation. Pure, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mkts.engine.errors import InvalidKeyError

__all__ = ["Timeframe", "parse_timeframe", "DAY", "STANDARD_TIMEFRAMES"]

DAY = 86_400
_UNITS = {"Sec": 1, "Min": 60, "H": 3_600, "D": DAY}
_PATTERN = re.compile(r"([1-9][0-9]{0,5})(Sec|Min|H|D)")  # fullmatch ($ allows a final \n)
STANDARD_TIMEFRAMES = ("1Sec", "10Sec", "30Sec", "1Min", "5Min", "15Min", "30Min", "1H", "2H",
                       "4H", "1D")


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bucket's interval: `name` as written in the key, `seconds` its length."""

    name: str
    seconds: int

    @property
    def is_daily(self) -> bool:
        return self.seconds == DAY

    def __str__(self) -> str:
        return self.name


_cache: dict[str, Timeframe] = {}


def parse_timeframe(text: str) -> Timeframe:
    """Parse `N` x `Sec|Min|H|D`; the length must divide one day evenly."""
    tf = _cache.get(text)
    if tf is not None:
        return tf
    m = _PATTERN.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidKeyError(
            f"timeframe {text!r} is not valid: write N followed by Sec, Min, H or D, "
            f"e.g. one of {', '.join(STANDARD_TIMEFRAMES)}"
        )
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds > DAY or DAY % seconds:
        raise InvalidKeyError(
            f"timeframe {text!r} ({seconds} s) does not divide a day evenly; "
            "choose a length that does (1D is the longest)"
        )
    tf = Timeframe(text, seconds)
    _cache[text] = tf
    return tf
