"""Reads of sealed years: a slot or time range of `<YYYY>.sealed`, merged with the year's
overlay (`<YYYY>.overlay`: replaced, added and deleted rows), as the same structured rows a
read of a live year file returns. Layout and merge rules: docs/format.md "The three states of
a year", "Deletes and updates", "Sealed file (`MKTSSEAL`, version 1)".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.columns import source_names, translate, translate_columns
from mkts.engine.errors import CorruptFileError
from mkts.engine.schema import SLOT_FIELD, TICK_BLOCK_COUNT, TICK_REPLACING
from mkts.engine.sealfile import SealedSpan
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.timeutil import NS
from mkts.engine.yearfile import YearFile

__all__ = ["SealedRows", "sealed_fixed_rows", "read_sealed_ticks", "merged_fixed", "merged_ticks",
           "sealed_columns"]

_LAST = np.iinfo(np.int64).max
_FIRST = np.iinfo(np.int64).min


def _take(n: int, remaining: int | None, backwards: bool) -> slice:
    if remaining is None or n <= remaining:
        return slice(0, n)
    return slice(n - remaining, n) if backwards else slice(0, remaining)


def _rows(dtype: np.dtype, n: int, every_field: bool) -> np.ndarray:
    """An array for `n` result rows: uninitialised when every field will be written and the
    dtype has no padding (the common full read), else zeros (no stray bytes)."""
    fields: Any = dtype.fields or {}
    dense = sum(f[0].itemsize for f in fields.values()) == dtype.itemsize
    return (np.empty if every_field and dense else np.zeros)(n, dtype=dtype)


def _overlay_records(f: YearFile, idx: np.ndarray) -> np.ndarray:
    """The overlay's slot records of `idx`, each `_slot` checked: slot + 1 (a row) or
    -(slot + 1) (a tombstone); anything else is damage."""
    recs = np.asarray(f.slots[idx]) if len(idx) else np.zeros(0, f.slots.dtype)
    stored = recs[SLOT_FIELD]
    bad = (stored != idx + 1) & (stored != -(idx + 1))
    if bool(bad.any()):
        raise CorruptFileError(f"{f.path}: overlay slot {int(idx[np.flatnonzero(bad)[0]])} "
                               "holds another slot's record; the file is damaged")
    return recs


def _merge(keys: np.ndarray, cols: dict[str, np.ndarray], keep: np.ndarray | None,
           okeys: np.ndarray, ocols: dict[str, np.ndarray]
           ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sealed rows (those `keep` selects) and overlay rows in key order; on equal keys the
    sealed row first (it was written first)."""
    if keep is not None:
        keys = keys[keep]
        cols = {n: c[keep] for n, c in cols.items()}
    if not len(okeys):
        return keys, cols
    allkeys = np.concatenate([keys, okeys])
    order = np.argsort(allkeys, kind="stable")
    return allkeys[order], {n: np.concatenate([c, ocols[n]])[order] for n, c in cols.items()}


def sealed_columns(catalog: Catalog, bucket: Bucket, year: int, lo: int, hi: int,
                   names: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(keys, columns) of the sealed file's rows with lo <= key <= hi, as the bucket's
    columns `names`: a file sealed before a column change is translated by column id
    (engine/columns.py; an added column reads its fill). Chunks come through the
    catalog's block cache (engine/blockcache.py), the overlay's rows never do."""
    r = catalog.sealed_reader(bucket, year)
    m = r.meta
    if m.schema_version == bucket.schema_version:
        return r.read(lo, hi, names, catalog.block_cache)
    src, dst = (m.schema, m.columns), (bucket.schema, bucket.columns)
    keys, cols = r.read(lo, hi, source_names(src, dst, names), catalog.block_cache)
    return keys, translate_columns(cols, len(keys), src, dst, names)


def _overlay_rows(f: YearFile, bucket: Bucket, recs: np.ndarray) -> np.ndarray:
    """Overlay records of a fixed bucket in the bucket's columns (an overlay written before
    a column change reads translated until a write migrates it)."""
    h = f.header
    if h.schema_version == bucket.schema_version:
        return recs
    return translate(recs, (h.schema, h.columns), (bucket.schema, bucket.columns),
                     bucket.schema.record_dtype)


def merged_fixed(catalog: Catalog, bucket: Bucket, year: int, lo: int, hi: int,
                 names: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(slots, columns) of the rows in slots lo..hi (inclusive): the sealed rows, with the
    overlay's records replacing or adding rows and its tombstones removing them."""
    keys, cols = sealed_columns(catalog, bucket, year, lo, hi, names)
    if year not in bucket.overlays:
        return keys, cols
    f = catalog.acquire(bucket, year)
    if f is None:  # pragma: no cover - overlays come from the catalog
        return keys, cols
    try:
        idx = f.occupied_in(max(lo, 0), min(hi, f.header.nslots - 1) + 1)
        recs = _overlay_rows(f, bucket, _overlay_records(f, idx))
    finally:
        catalog.release(f)
    if not len(idx):
        return keys, cols
    rows = recs[SLOT_FIELD] > 0
    keep = ~np.isin(keys, idx)
    return _merge(keys, cols, keep, idx[rows], {n: recs[n][rows] for n in names})


def merged_ticks(catalog: Catalog, bucket: Bucket, year: int, start_ns: int, end_ns: int,
                 names: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(times in ns, columns) of the ticks with start_ns <= time <= end_ns: the sealed
    rows, without the intervals the overlay tombstones or replaces, and the overlay's rows."""
    schema = bucket.schema
    keys, cols = sealed_columns(catalog, bucket, year, start_ns, end_ns, names)
    if year not in bucket.overlays:
        return keys, cols
    f = catalog.acquire(bucket, year)
    if f is None:  # pragma: no cover - overlays come from the catalog
        return keys, cols
    try:
        idx = f.occupied()
        recs = _overlay_records(f, idx)
        f.verify_slots(idx, recs)
        stored = recs[SLOT_FIELD]
        live = stored > 0
        hide = idx[(stored < 0) | (live & ((recs["nblobs"] & TICK_REPLACING) != 0))]
        if len(live) and bool(live.any()):
            part = recs[live].copy()
            part["nblobs"] &= TICK_BLOCK_COUNT
            h = f.header  # an overlay of before a column change decodes as written
            rows, ns = read_rows(BlockSource(f, h.schema, f.path), idx[live], part,
                                 h.schema.row_dtype)
            if h.schema_version != bucket.schema_version:
                rows = translate(rows, (h.schema, h.columns), (schema, bucket.columns),
                                 schema.row_dtype)
            labels = catalog.calendar.labels(year, idx[live], schema.timeframe)
            okeys = np.repeat(labels * NS, part["nrows"].astype(np.int64)) + ns
        else:
            rows, okeys = np.zeros(0, schema.row_dtype), np.zeros(0, np.int64)
    finally:
        catalog.release(f)
    inside = (okeys >= start_ns) & (okeys <= end_ns)
    keep = None
    if len(hide) and len(keys):
        _, slots = catalog.calendar.slots(keys // NS, schema.timeframe)
        keep = ~np.isin(slots, hide)
    return _merge(keys, cols, keep, okeys[inside], {n: rows[n][inside] for n in names})


class SealedRows:
    """The rows of a sealed year in a range, a `join.Part` whose `fill` writes each column
    straight into its field of the result: decoded from the file's chunks (a `SealedSpan`:
    no overlay, no column change) or copied from columns merged and translated before."""

    __slots__ = ("labels", "cols", "span")

    def __init__(self, labels: np.ndarray, cols: dict[str, np.ndarray],
                 span: SealedSpan | None = None) -> None:
        self.labels, self.cols, self.span = labels, cols, span

    @property
    def rows(self) -> int:
        return len(self.labels)

    def own_layout(self, bucket: Bucket) -> bool:
        return True

    def own_epochs(self) -> np.ndarray:
        """The labels, made for this read alone: a lone part's Epoch column as it is."""
        return self.labels

    def chunk(self, bucket: Bucket, cols: list[str]) -> np.ndarray:
        out = np.empty(self.rows, dtype=bucket.schema.result_dtype)
        self.fill(out, None)
        return out

    def fill(self, out: np.ndarray, epochs: np.ndarray | None) -> None:
        span = self.span
        jobs = []
        for name in out.dtype.names or ():
            if name == "Epoch":
                if epochs is None:
                    out[name] = self.labels
            elif span is not None and name in span.columns:
                jobs.append((name, out[name]))
            elif name in self.cols:
                out[name] = self.cols[name]
            else:  # a column the read does not return: no stray bytes
                out[name] = 0
        if epochs is not None and epochs is not self.labels:
            epochs[:] = self.labels
        if jobs:
            assert span is not None
            span.fill_many(jobs)


def _plain_span(catalog: Catalog, bucket: Bucket, year: int, lo: int, hi: int,
                names: Sequence[str]) -> SealedSpan | None:
    """The span of a sealed year read as it is stored (no overlay, the bucket's columns),
    else None (the rows are merged or translated first)."""
    if year in bucket.overlays:
        return None
    r = catalog.sealed_reader(bucket, year)
    if r.meta.schema_version != bucket.schema_version:
        return None
    return r.span(lo, hi, names, catalog.block_cache)


def sealed_fixed_rows(catalog: Catalog, bucket: Bucket, year: int, lo: int, hi: int,
                      remaining: int | None, backwards: bool, names: Sequence[str]
                      ) -> SealedRows:
    """The rows in slots [lo, hi) (hi < 0: to the end of the year), at most `remaining`
    (from the end when `backwards`), as a `join.Part` with their Epoch labels; only the
    columns of `names` are decoded, each when the part fills the result."""
    schema = bucket.schema
    want = [n for n in names if n != "Epoch"]
    last = _LAST if hi < 0 else hi - 1
    span = _plain_span(catalog, bucket, year, lo, last, want)
    if span is not None:
        span.narrow(_take(span.rows, remaining, backwards))
        tf = schema.timeframe
        if tf.is_daily:
            return SealedRows(catalog.calendar.labels(year, span.keys, tf), {}, span)
        labels = span.keys  # the span's own: slots become labels in place, no new array
        labels *= tf.seconds
        labels += catalog.calendar.year_start(year)
        return SealedRows(labels, {}, span)
    keys, cols = merged_fixed(catalog, bucket, year, lo, last, want)
    part = _take(len(keys), remaining, backwards)
    if part != slice(0, len(keys)):
        keys = keys[part]
        cols = {n: c[part] for n, c in cols.items()}
    return SealedRows(catalog.calendar.labels(year, keys, schema.timeframe), cols)


def read_sealed_ticks(catalog: Catalog, bucket: Bucket, year: int, start_ns: int | None,
                      end_ns: int | None, remaining: int | None, backwards: bool,
                      names: Sequence[str]) -> np.ndarray:
    """Ticks of the sealed year with start_ns <= time <= end_ns, as a read of the live file
    returns them (Epoch, the columns, Nanoseconds)."""
    schema = bucket.schema
    want = [n for n in names if n not in ("Epoch", "Nanoseconds")]
    lo = _FIRST if start_ns is None else start_ns
    hi = _LAST if end_ns is None else end_ns
    span = _plain_span(catalog, bucket, year, lo, hi, want)
    cols: dict[str, np.ndarray] = {}
    if span is not None:
        span.narrow(_take(span.rows, remaining, backwards))
        keys = span.keys
    else:
        keys, cols = merged_ticks(catalog, bucket, year, lo, hi, want)
        part = _take(len(keys), remaining, backwards)
        keys = keys[part]
        cols = {n: c[part] for n, c in cols.items()}
    out = _rows(schema.result_dtype, len(keys), len(want) == len(schema.columns))
    secs, nanos = np.divmod(keys, NS)
    out["Epoch"] = secs
    out["Nanoseconds"] = nanos
    if span is not None:
        span.fill_many([(n, out[n]) for n in want])
    for n in cols:
        out[n] = cols[n]
    return out
