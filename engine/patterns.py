"""Key patterns: the one language that selects buckets, wherever buckets are selected.

`db.query`, `db.subscribe`, a trigger's `on:`, the stream hub, the CLI (`mkts query`, `list`,
`export`) and the server (`/rpc` Query destinations, `/ws` streams) all parse patterns here;
the user's guide to the language is README.md "Key patterns". Pure, no I/O.

    PATTERN     = PART "/" PART "/" PART        symbol / timeframe / attribute group
    PART        = ALTERNATIVE ("," ALTERNATIVE)*
    ALTERNATIVE = "*" | NAME | GLOB
    NAME        = a key part as written in keys (AAPL, 1Min, OHLCV)
    GLOB        = a NAME with "*" in it; each "*" matches any run of characters (also none)

A key matches when each of its parts matches one alternative of that part. Matching is
anchored and never crosses a "/": `AA*/1Min/OHLCV` matches `AAPL/1Min/OHLCV`, not
`XAAPL/1Min/OHLCV` nor `AAPL/1Min/OHLCV2`. Spaces around an alternative are ignored; control
characters are refused like any other character keys cannot hold.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from mkts.engine.errors import InvalidKeyError
from mkts.engine.keys import MAX_PART, PART_CHARS, BucketKey, check_part, parse_key
from mkts.engine.timeframes import parse_timeframe

__all__ = ["KeyPattern", "parse_pattern", "WILDCARD"]

WILDCARD = "*"
_PART_NAMES = ("symbol", "timeframe", "attribute group")
_GLOB_CHARS = re.compile(f"[{PART_CHARS}*]*")  # fullmatch: `$` matches before a final newline
_K = TypeVar("_K", str, BucketKey)


class _Part:
    """One part of a pattern: every value (`*`), a set of names, and globs."""

    __slots__ = ("every", "names", "globs", "alternatives")

    def __init__(self, text: str, what: str, pattern: str) -> None:
        alternatives: list[tuple[str, re.Pattern[str] | None]] = []
        for raw in text.split(","):
            alt = raw.strip(" ")  # "AAPL, MSFT"; never "AAPL\n"
            _check_alternative(alt, what, pattern, text)
            glob = None
            if WILDCARD in alt and alt != WILDCARD:
                glob = re.compile(".*".join(re.escape(p) for p in alt.split(WILDCARD)))
            alternatives.append((alt, glob))
        self.alternatives = tuple(alternatives)
        self.every = any(alt == WILDCARD for alt, _ in alternatives)
        self.names = frozenset(alt for alt, g in alternatives if g is None and alt != WILDCARD)
        self.globs = tuple(g for _, g in alternatives if g is not None)

    def matches(self, value: str) -> bool:
        if self.every or value in self.names:
            return True
        return any(g.fullmatch(value) is not None for g in self.globs)

    def first_alternative(self, value: str) -> int:
        """Index of the first alternative that `value` matches (for request order)."""
        for i, (alt, glob) in enumerate(self.alternatives):
            if alt == WILDCARD or alt == value or (
                    glob is not None and glob.fullmatch(value) is not None):
                return i
        return len(self.alternatives)


def _check_alternative(alt: str, what: str, pattern: str, part: str) -> None:
    if not alt:
        where = "is empty" if part.strip() == "" else f"{part!r} has an empty name between commas"
        raise InvalidKeyError(
            f"key pattern {pattern!r}: the {what} part {where}; write a name, a glob like AA* "
            "or * for any")
    if alt == WILDCARD:
        return
    if not _GLOB_CHARS.fullmatch(alt):
        raise InvalidKeyError(
            f"key pattern {pattern!r}: the {what} part {alt!r} has a character that is not "
            "allowed (use letters, digits and _ ^ = + @ # $ & ! ~ % . -, and * for any run "
            "of characters; list alternatives with commas)")
    if len(alt) > MAX_PART:
        raise InvalidKeyError(
            f"key pattern {pattern!r}: the {what} part {alt[:20]!r}... is longer than "
            f"{MAX_PART} characters")
    if WILDCARD in alt:
        return
    check_part(alt, what, pattern, label="key pattern")
    if what == "timeframe":
        try:
            parse_timeframe(alt)
        except InvalidKeyError as exc:
            raise InvalidKeyError(f"key pattern {pattern!r}: the timeframe part: {exc}") from None


class KeyPattern:
    """A parsed pattern (the language is in the module docstring). Immutable and hashable;
    `matches` one key, `select` the matching keys in request order."""

    __slots__ = ("pattern", "_symbol", "_timeframe", "_attrgroup")

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str):
            raise InvalidKeyError(f"key pattern must be a string like 'AAPL/1Min/OHLCV' or "
                                  f"'*/1Min/OHLCV', not {type(pattern).__name__}")
        parts = pattern.split("/")
        if len(parts) != 3:
            raise InvalidKeyError(
                f"key pattern {pattern!r} must have three parts separated by '/': "
                "SYMBOL/TIMEFRAME/ATTRGROUP (each a name, a glob like AA*, a comma list, or * "
                "for any)")
        self.pattern = pattern
        self._symbol, self._timeframe, self._attrgroup = (
            _Part(text, what, pattern) for text, what in zip(parts, _PART_NAMES, strict=True))

    def matches(self, key: BucketKey | str) -> bool:
        """Whether the bucket key (a BucketKey or `SYM/TF/ATTR` text) matches."""
        if isinstance(key, tuple):
            sym, tf, attr = key
        else:
            parts = key.split("/")
            if len(parts) != 3:
                return False
            sym, tf, attr = parts
        return (self._symbol.matches(sym) and self._timeframe.matches(tf)
                and self._attrgroup.matches(attr))

    def select(self, keys: Iterable[_K]) -> list[_K]:
        """The matching keys in request order: symbols in the order their alternatives are
        listed, sorted within one alternative (a glob or `*`); each key once."""
        found = sorted((k for k in keys if self.matches(k)), key=_sort_key)
        if len(self._symbol.alternatives) > 1:
            first = self._symbol.first_alternative
            found.sort(key=lambda k: first(_sort_key(k)[0]))  # stable: sorted within
        return found

    @property
    def exact(self) -> bool:
        """True when the pattern names one bucket (no alternatives, no globs)."""
        return all(len(p.alternatives) == 1 and not p.every and not p.globs
                   for p in (self._symbol, self._timeframe, self._attrgroup))

    def keys(self) -> list[BucketKey] | None:
        """The keys the pattern names when every part is a list of names (no `*`, no globs),
        whether or not those buckets exist, in request order; None otherwise."""
        parts = (self._symbol, self._timeframe, self._attrgroup)
        if any(p.every or p.globs for p in parts):
            return None
        out: list[BucketKey] = []
        for sym, _ in self._symbol.alternatives:
            for tf, _ in self._timeframe.alternatives:
                for attr, _ in self._attrgroup.alternatives:
                    try:
                        key = parse_key(f"{sym}/{tf}/{attr}")
                    except InvalidKeyError:
                        continue  # a reserved symbol: no bucket can have it
                    if key not in out:
                        out.append(key)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __str__(self) -> str:
        return self.pattern

    def __repr__(self) -> str:
        return f"KeyPattern({self.pattern!r})"


def _sort_key(key: Any) -> tuple[str, ...]:
    return tuple(key) if isinstance(key, tuple) else tuple(key.split("/"))


def parse_pattern(pattern: str | KeyPattern) -> KeyPattern:
    """Parse (and validate) a key pattern; InvalidKeyError names the part that is wrong."""
    if isinstance(pattern, KeyPattern):
        return pattern
    if not isinstance(pattern, str):
        return KeyPattern(pattern)  # raises, naming the type
    return _parse_cached(pattern)


@functools.lru_cache(maxsize=4096)
def _parse_cached(pattern: str) -> KeyPattern:
    return KeyPattern(pattern)
