"""Reads of sealed years: a slot or time range of `<YYYY>.sealed` as the same structured rows
a read of the live year file returns (engine/query.py calls it per year; layout in
docs/format.md "Sealed file (`MKTSSEAL`, version 1)").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.timeutil import NS

__all__ = ["read_sealed_fixed", "read_sealed_ticks"]

_LAST = np.iinfo(np.int64).max
_FIRST = np.iinfo(np.int64).min


def _take(n: int, remaining: int | None, backwards: bool) -> slice:
    if remaining is None or n <= remaining:
        return slice(0, n)
    return slice(n - remaining, n) if backwards else slice(0, remaining)


def read_sealed_fixed(catalog: Catalog, bucket: Bucket, year: int, lo: int, hi: int,
                      remaining: int | None, backwards: bool, names: Sequence[str]
                      ) -> np.ndarray:
    """Rows of slots [lo, hi) (hi < 0: to the end of the year) in the result dtype, Epoch
    filled; at most `remaining` (from the end when `backwards`). Only `names` are decoded
    (the other columns are zeros, projected away by the caller)."""
    schema = bucket.schema
    r = catalog.sealed_reader(bucket, year)
    want = [n for n in names if n != "Epoch"]
    keys, cols = r.read(lo, _LAST if hi < 0 else hi - 1, want)
    part = _take(len(keys), remaining, backwards)
    keys = keys[part]
    out = np.zeros(len(keys), dtype=schema.result_dtype)
    out["Epoch"] = catalog.calendar.labels(year, keys, schema.timeframe)
    for n in want:
        out[n] = cols[n][part]
    return out


def read_sealed_ticks(catalog: Catalog, bucket: Bucket, year: int, start_ns: int | None,
                      end_ns: int | None, remaining: int | None, backwards: bool,
                      names: Sequence[str]) -> np.ndarray:
    """Ticks of the sealed year with start_ns <= time <= end_ns, as a read of the live file
    returns them (Epoch, the columns, Nanoseconds)."""
    schema = bucket.schema
    r = catalog.sealed_reader(bucket, year)
    want = [n for n in names if n not in ("Epoch", "Nanoseconds")]
    keys, cols = r.read(_FIRST if start_ns is None else start_ns,
                        _LAST if end_ns is None else end_ns, want)
    part = _take(len(keys), remaining, backwards)
    keys = keys[part]
    out = np.zeros(len(keys), dtype=schema.result_dtype)
    secs, nanos = np.divmod(keys, NS)
    out["Epoch"] = secs
    out["Nanoseconds"] = nanos
    for n in want:
        out[n] = cols[n][part]
    return out
