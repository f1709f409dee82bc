"""Bucket keys `SYMBOL/TIMEFRAME/ATTRGROUP`, validated before any path use. Patterns that
match keys (`AA*,MSFT/1Min/*`) are engine.patterns'."""

from __future__ import annotations

import re
from typing import NamedTuple

from mkts.engine.errors import InvalidKeyError
from mkts.engine.timeframes import Timeframe, parse_timeframe

__all__ = ["BucketKey", "parse_key", "check_part", "PART_CHARS", "MAX_PART", "MAX_ATTR",
           "MAX_KEY"]

# Each key part is a directory name: at most 255 bytes in one path component (ext4, XFS,
# APFS, NTFS, ZFS); the characters allowed are ASCII, so characters = bytes. The attribute
# group leaves room for the name destroy renames its directory to (`.<attr>.destroying`,
# engine/catalog.py DESTROYING).
MAX_PART = 255
MAX_ATTR = MAX_PART - len("..destroying")
MAX_KEY = 2 * MAX_PART + MAX_ATTR + 2
# Letters, digits and the punctuation real tickers use (BRK.B, BTC-USD, ^GSPC, ES=F).
# Excluded: path separators, NUL, whitespace and every other control character, ',' (symbol
# lists), '*' (wildcard), ':' (TBK). Always fullmatch: `$` would match before a final newline.
PART_CHARS = "A-Za-z0-9_^=+@#$&!~%.\\-"  # a regular-expression character class body
_PART = re.compile(f"[{PART_CHARS}]+")
# Names the database itself uses inside the root.
_RESERVED = {"wal", "lock", "mkts.root", "damaged"}


class BucketKey(NamedTuple):
    symbol: str
    timeframe: str
    attrgroup: str

    def __str__(self) -> str:
        return f"{self.symbol}/{self.timeframe}/{self.attrgroup}"

    @property
    def tf(self) -> Timeframe:
        return parse_timeframe(self.timeframe)


def check_part(part: str, what: str, key: str, label: str = "bucket key") -> None:
    """Raise InvalidKeyError unless `part` is a valid `what` part ("symbol", "timeframe",
    "attribute group") of a key; the message starts with `label` and `key`."""
    if not part:
        raise InvalidKeyError(f"{label} {key!r}: the {what} part is empty; use SYMBOL/TIMEFRAME/ATTRGROUP")
    most = MAX_ATTR if what == "attribute group" else MAX_PART
    if len(part) > most:
        raise InvalidKeyError(
            f"{label} {key[:40]!r}...: the {what} part has {len(part)} characters; at most "
            f"{most}, as a directory name is at most {MAX_PART} bytes"
            + (" with room for .<name>.destroying" if most != MAX_PART else ""))
    if part in (".", "..") or part.startswith("."):
        raise InvalidKeyError(f"{label} {key!r}: the {what} part {part!r} may not start with '.'")
    if not _PART.fullmatch(part):
        raise InvalidKeyError(
            f"{label} {key!r}: the {what} part {part!r} has a character that is not allowed "
            "(use letters, digits and _ ^ = + @ # $ & ! ~ % . -)"
        )


_parsed: dict[str, BucketKey] = {}


def parse_key(key: str | BucketKey) -> BucketKey:
    """Validate `SYMBOL/TIMEFRAME/ATTRGROUP` and return it as a BucketKey."""
    if isinstance(key, BucketKey):
        return key
    hit = _parsed.get(key) if isinstance(key, str) else None
    if hit is not None:
        return hit
    parsed = _parse_key(key)
    if len(_parsed) < 100_000:
        _parsed[key] = parsed
    return parsed


def _parse_key(key: str) -> BucketKey:
    if not isinstance(key, str):
        raise InvalidKeyError(f"bucket key must be a string like 'AAPL/1Min/OHLCV', not {type(key).__name__}")
    if len(key) > MAX_KEY:
        raise InvalidKeyError(f"bucket key {key[:40]!r}... is longer than {MAX_KEY} characters "
                              f"(each part is a directory name of at most {MAX_PART} bytes)")
    parts = key.split("/")
    if len(parts) != 3:
        raise InvalidKeyError(f"bucket key {key!r} must have three parts: SYMBOL/TIMEFRAME/ATTRGROUP")
    sym, tf, attr = parts
    check_part(sym, "symbol", key)
    check_part(tf, "timeframe", key)
    check_part(attr, "attribute group", key)
    if sym.lower() in _RESERVED:
        raise InvalidKeyError(f"bucket key {key!r}: symbol {sym!r} is reserved by mkts; choose another name")
    parse_timeframe(tf)
    return BucketKey(sym, tf, attr)
