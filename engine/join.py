"""Joining the per-year parts of one read into a single result with one allocation.

Owns the output buffer of a read: the reader first learns how many rows each year file
contributes (a `Part`), then one array is allocated and each part writes its rows into its
own slice. What a year file holds and how its rows are found belong to engine/query.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["Part", "fill_parts", "concat_rows"]


class Part(Protocol):
    """The rows one year file contributes to a read, counted but not yet copied.

    `rows` is final once the part exists (limits are applied before it is made). `fill`
    writes exactly `rows` rows, in ascending time order, into `out` (a slice of the
    result, the read's result dtype, writable, contiguous), and their Epoch labels into
    `epochs` when it is given (then `out["Epoch"]` may be left unwritten; see Result),
    else into `out["Epoch"]`. `fill` is called at most once, by the reading thread, while
    the reader still holds whatever the part needs (a pinned year file)."""

    @property
    def rows(self) -> int: ...

    def fill(self, out: np.ndarray, epochs: np.ndarray | None) -> None: ...


def fill_parts(parts: Sequence[Part], dtype: np.dtype, separate_epochs: bool
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows, epochs): one `dtype` array holding every part's rows, parts in the order
    given, and, if `separate_epochs`, their Epoch column as an int64 array of its own.

    A read over several years thus costs what a read of one costs per row: each row is
    copied once, from the year file into its final place, where joining per-year chunks
    copied it twice (and numpy copies structured arrays field by field)."""
    total = sum(p.rows for p in parts)
    out = np.empty(total, dtype=dtype)
    epochs = np.empty(total, dtype=np.int64) if separate_epochs else None
    pos = 0
    for p in parts:
        n = p.rows
        if n:
            p.fill(out[pos : pos + n], None if epochs is None else epochs[pos : pos + n])
            pos += n
    return out, epochs


def concat_rows(chunks: Sequence[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The chunks (each a contiguous `dtype` array) one after the other in a new array,
    copied as raw bytes: numpy's concatenate of structured arrays converts field by field,
    about 15x slower than moving the same bytes."""
    if not chunks:
        return np.zeros(0, dtype=dtype)
    if len(chunks) == 1:
        return chunks[0]
    out = np.empty(sum(len(c) for c in chunks), dtype=dtype)
    raw = out.view(np.uint8)
    pos = 0
    for c in chunks:
        b = np.ascontiguousarray(c).view(np.uint8)
        raw[pos : pos + len(b)] = b
        pos += len(b)
    return out
