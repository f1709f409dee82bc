"""Sort-based `np.unique` for the integer arrays the engine and plugins dedupe.

numpy 2.3+ answers `np.unique` through a hash table that, on this project's inputs (epoch
seconds, years, offsets), is 10-20x slower than sorting: about 0.7 ms for 20 000 int64
values, where `np.sort` plus one comparison takes 30 µs. These helpers give the same
results as `np.unique` (sorted values; first index; inverse) for integer arrays.
"""

from __future__ import annotations

from typing import overload

import numpy as np

__all__ = ["unique", "unique_first", "unique_inverse"]


def _starts(s: np.ndarray) -> np.ndarray:
    """True where a sorted array's value differs from the one before (and at 0)."""
    keep = np.empty(len(s), dtype=bool)
    if len(s):
        keep[0] = True
        np.not_equal(s[1:], s[:-1], out=keep[1:])
    return keep


def unique(a: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a 1-D array (`np.unique(a)`)."""
    a = np.asarray(a)
    if len(a) < 2:
        return a.copy()
    s = np.sort(a)
    out: np.ndarray = s[_starts(s)]
    return out


def unique_first(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, index of each value's first occurrence) (`np.unique(a, return_index=True)`)."""
    a = np.asarray(a)
    order = np.argsort(a, kind="stable")  # stable: equal values keep their order
    s = a[order]
    keep = _starts(s)
    return s[keep], order[keep]


@overload
def unique_inverse(a: np.ndarray, *, first: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
@overload
def unique_inverse(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def unique_inverse(a: np.ndarray, *, first: bool = False) -> tuple[np.ndarray, ...]:
    """(values, [first indexes,] inverse) with values[inverse] == a
    (`np.unique(a, return_index=first, return_inverse=True)`)."""
    a = np.asarray(a)
    order = np.argsort(a, kind="stable")
    s = a[order]
    keep = _starts(s)
    inverse = np.empty(len(a), dtype=np.intp)
    inverse[order] = np.cumsum(keep) - 1
    if first:
        return s[keep], order[keep], inverse
    return s[keep], inverse
