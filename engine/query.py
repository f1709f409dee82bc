"""The read path: plan which year files and slots a range covers, slice, shape the result.

Ranges are inclusive at interval granularity: a row is returned when
floor(start) <= label <= end. With a limit, rows come from the end unless limit_from_start.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.catalog import Bucket, Catalog
from engine.errors import CorruptFileError, SchemaError
from engine.result import Result
from engine.schema import SLOT_FIELD
from engine.timeutil import NS, Calendar

__all__ = ["read_fixed", "resolve_columns"]


def resolve_columns(bucket: Bucket, columns: Sequence[str] | None) -> list[str]:
    """The result's columns: Epoch first, then the requested (or all) columns, de-duplicated."""
    names = bucket.schema.names
    if columns is None:
        return ["Epoch", *names]
    if isinstance(columns, str):
        columns = [columns]
    out = ["Epoch"]
    for c in columns:
        if c in ("Epoch",) or c in out:
            continue
        if c == "Nanoseconds" and bucket.schema.kind == "variable":
            out.append(c)
            continue
        if c not in names:
            raise SchemaError(
                f"column {c!r} is not in bucket {bucket.key}; it has {', '.join(names)}"
            )
        out.append(c)
    return out


def _slot_range(calendar: Calendar, bucket: Bucket, start_ns: int | None, end_ns: int | None
                ) -> tuple[tuple[int, int], tuple[int, int]]:
    tf = bucket.schema.timeframe
    lo = calendar.min_epoch if start_ns is None else max(start_ns // NS, calendar.min_epoch)
    hi = calendar.max_epoch - 1 if end_ns is None else min(end_ns // NS, calendar.max_epoch - 1)
    return calendar.slot_of(lo, tf), calendar.slot_of(hi, tf)


def read_fixed(catalog: Catalog, bucket: Bucket, start_ns: int | None, end_ns: int | None, *,
               limit: int | None = None, limit_from_start: bool = False,
               columns: Sequence[str] | None = None) -> Result:
    calendar = catalog.calendar
    schema = bucket.schema
    cols = resolve_columns(bucket, columns)
    chunks: list[np.ndarray] = []
    if start_ns is None or end_ns is None or start_ns <= end_ns:
        (y0, s0), (y1, s1) = _slot_range(calendar, bucket, start_ns, end_ns)
        years = [y for y in bucket.sorted_years() if y0 <= y <= y1]
        if limit is not None and not limit_from_start:
            years.reverse()
        remaining = limit
        for y in years:
            if remaining is not None and remaining <= 0:
                break
            f = catalog.year_file(bucket, y)
            if f is None:  # pragma: no cover - years come from the catalog
                continue
            lo = s0 if y == y0 else 0
            hi = s1 + 1 if y == y1 else f.header.nslots
            view = f.slots[lo:hi]
            stored = view[SLOT_FIELD]
            idx = np.flatnonzero(stored)
            if remaining is not None and len(idx) > remaining:
                idx = idx[:remaining] if limit_from_start else idx[len(idx) - remaining :]
            rows = view[idx]  # a copy: the file may change after we return
            if len(rows) and not np.array_equal(rows[SLOT_FIELD], idx + (lo + 1)):
                raise CorruptFileError(
                    f"{f.path}: a record's slot number does not match its position; "
                    "the file is damaged"
                )
            rows = rows.view(schema.result_dtype)
            rows["Epoch"] = calendar.labels(y, idx + lo, schema.timeframe)
            chunks.append(rows)
            if remaining is not None:
                remaining -= len(rows)
        if limit is not None and not limit_from_start:
            chunks.reverse()
    if not chunks:
        data = np.zeros(0, dtype=schema.result_dtype)
    elif len(chunks) == 1:
        data = chunks[0]
    else:
        data = np.concatenate(chunks)
    if cols != ["Epoch", *schema.names]:
        data = data[cols]
    return Result(str(bucket.key), data, cols, calendar.tz)
