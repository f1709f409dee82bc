"""The read path: plan which year files and slots a range covers, slice, shape the result.

Ranges are inclusive at interval granularity: a row is returned when
floor(start) <= label <= end. With a limit, rows come from the end unless limit_from_start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from engine.catalog import Bucket, Catalog
from engine.errors import CorruptFileError, UnknownColumnError
from engine.result import Result
from engine.schema import SLOT_FIELD
from engine.tickread import BlockSource, read_rows
from engine.timeutil import NS, Calendar
from engine.yearfile import YearFile

__all__ = ["read_fixed", "read_ticks", "read_bucket", "resolve_columns"]


def resolve_columns(bucket: Bucket, columns: Sequence[str] | None) -> list[str]:
    """The result's columns: Epoch first, then the requested (or all) columns, de-duplicated."""
    names = bucket.schema.names
    if columns is None:
        tail = ["Nanoseconds"] if bucket.schema.kind == "variable" else []
        return ["Epoch", *names, *tail]
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
            raise UnknownColumnError(
                f"column {c!r} is not in bucket {bucket.key}; it has {', '.join(names)}"
            )
        out.append(c)
    if bucket.schema.kind == "variable" and "Nanoseconds" not in out:
        out.append("Nanoseconds")  # tick times are exact only with it (MarketStore order)
    return out


def _slot_range(calendar: Calendar, bucket: Bucket, start_ns: int | None, end_ns: int | None
                ) -> tuple[tuple[int, int], tuple[int, int]]:
    tf = bucket.schema.timeframe
    lo = calendar.min_epoch if start_ns is None else max(start_ns // NS, calendar.min_epoch)
    hi = calendar.max_epoch - 1 if end_ns is None else min(end_ns // NS, calendar.max_epoch - 1)
    return calendar.slot_of(lo, tf), calendar.slot_of(hi, tf)


def _years_in_range(catalog: Catalog, bucket: Bucket, start_ns: int | None,
                    end_ns: int | None, backwards: bool
                    ) -> Iterator[tuple[int, YearFile, np.ndarray]]:
    """(year, file, occupied slots inside the range) for each year file the range overlaps,
    in read order; lazy, so a reader that has its limit stops before the next file."""
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        return
    (y0, s0), (y1, s1) = _slot_range(catalog.calendar, bucket, start_ns, end_ns)
    years = [y for y in bucket.sorted_years() if y0 <= y <= y1]
    if backwards:
        years.reverse()
    for y in years:
        f = catalog.year_file(bucket, y)
        if f is None:  # pragma: no cover - years come from the catalog
            continue
        yield y, f, f.occupied_in(s0 if y == y0 else 0, s1 + 1 if y == y1 else f.header.nslots)


def _check_slots(f: YearFile, stored: np.ndarray, idx: np.ndarray) -> None:
    """Every gathered record must carry its own slot number + 1 (docs/format.md "Slots")."""
    if len(idx) and bool((stored != idx + 1).any()):
        raise CorruptFileError(
            f"{f.path}: a record's slot number does not match its position; the file is damaged"
        )


def _gather(slots: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """slots[idx] as a new array; copies whole records as raw words (numpy's structured
    fancy indexing copies field by field, several times slower)."""
    size = slots.dtype.itemsize
    if size % 8 == 0:
        words = slots.view(np.int64).reshape(len(slots), size // 8)
        return np.take(words, idx, axis=0).view(slots.dtype).reshape(len(idx))
    return np.asarray(slots[idx])


def _result(bucket: Bucket, chunks: list[np.ndarray], cols: list[str], full: list[str],
            tz: str) -> Result:
    """Join the per-year chunks (already in ascending order) and project."""
    if not chunks:
        data = np.zeros(0, dtype=bucket.schema.result_dtype)
    elif len(chunks) == 1:
        data = chunks[0]
    else:
        data = np.concatenate(chunks)
    if cols != full:
        data = data[cols]
    return Result(str(bucket.key), data, cols, tz)


def read_fixed(catalog: Catalog, bucket: Bucket, start_ns: int | None, end_ns: int | None, *,
               limit: int | None = None, limit_from_start: bool = False,
               columns: Sequence[str] | None = None) -> Result:
    calendar = catalog.calendar
    schema = bucket.schema
    cols = resolve_columns(bucket, columns)
    backwards = limit is not None and not limit_from_start
    chunks: list[np.ndarray] = []
    remaining = limit
    for y, f, idx in _years_in_range(catalog, bucket, start_ns, end_ns, backwards):
        if remaining is not None and len(idx) > remaining:
            idx = idx[len(idx) - remaining :] if backwards else idx[:remaining]
        # Gather whole records as rows of 8-byte words (a copy: the file may change after
        # we return); word 0 is `_slot`, checked, then overwritten with the Epoch.
        words = np.take(f.words, idx, axis=0)
        stored = words[:, 0]
        _check_slots(f, stored, idx)
        stored[:] = calendar.labels(y, idx, schema.timeframe)
        chunks.append(words.view(schema.result_dtype).reshape(len(idx)))
        if remaining is not None:
            remaining -= len(idx)
            if remaining <= 0:
                break
    if backwards:
        chunks.reverse()
    return _result(bucket, chunks, cols, schema.result_names, calendar.tz)


def read_ticks(catalog: Catalog, bucket: Bucket, start_ns: int | None, end_ns: int | None, *,
               limit: int | None = None, limit_from_start: bool = False,
               columns: Sequence[str] | None = None) -> Result:
    """Tick rows with start_ns <= time <= end_ns (to the nanosecond), limit counting rows.

    Each year file is read in one pass over its slots (engine/tickread.py); with a limit, only
    as many intervals as the limit needs (by their row counts), widened if the range's edge
    intervals held fewer rows inside the range."""
    calendar = catalog.calendar
    schema = bucket.schema
    tf = schema.timeframe
    # Nanoseconds last even when it is requested earlier (MarketStore's column order).
    cols = [c for c in resolve_columns(bucket, columns) if c != "Nanoseconds"] + ["Nanoseconds"]
    backwards = limit is not None and not limit_from_start
    chunks: list[np.ndarray] = []
    remaining = limit
    for y, f, idx in _years_in_range(catalog, bucket, start_ns, end_ns, backwards):
        recs = _gather(f.slots, idx)
        _check_slots(f, recs[SLOT_FIELD], idx)
        src = BlockSource(f, schema, f.path)
        k = len(idx)
        if remaining is not None:
            counts = recs["nrows"][::-1] if backwards else recs["nrows"]
            k = min(len(idx), int(np.searchsorted(np.cumsum(counts), remaining)) + 1)
        while True:
            part = slice(len(idx) - k, len(idx)) if backwards else slice(0, k)
            sl, nrows = idx[part], recs["nrows"][part].astype(np.int64)
            # 1Sec: offsets are below 10^9 and go straight into the Nanoseconds column.
            out, ns = read_rows(src, sl, recs[part], schema.result_dtype,
                                "Nanoseconds" if tf.seconds == 1 else None)
            labels = calendar.labels(y, sl, tf)
            # Only the first and the last interval can reach outside [start_ns, end_ns].
            a, b = 0, len(ns)
            if start_ns is not None and len(sl):
                n0 = int(nrows[0])
                a = int(np.searchsorted(labels[0] * NS + ns[:n0], start_ns, "left"))
            if end_ns is not None and len(sl):
                n1 = int(nrows[-1])
                b = len(ns) - n1 + int(np.searchsorted(labels[-1] * NS + ns[len(ns) - n1 :],
                                                       end_ns, "right"))
            b = max(a, b)
            if remaining is None or b - a >= remaining or k == len(idx):
                break
            k = min(len(idx), 2 * k + 1)
        if remaining is not None and b - a > remaining:
            a, b = (b - remaining, b) if backwards else (a, a + remaining)
        epochs = np.repeat(labels, nrows)
        if tf.seconds > 1 and len(ns) and int(ns.max()) >= NS:  # offsets past a second
            q, ns = np.divmod(ns, NS)
            epochs += q
        if (a, b) != (0, len(ns)):
            out, epochs, ns = out[a:b], epochs[a:b], ns[a:b]
        out["Epoch"] = epochs
        if tf.seconds != 1:
            out["Nanoseconds"] = ns
        if len(out):
            chunks.append(out)
        if remaining is not None:
            remaining -= len(out)
            if remaining <= 0:
                break
    if backwards:
        chunks.reverse()
    return _result(bucket, chunks, cols, schema.result_names, calendar.tz)


def read_bucket(catalog: Catalog, bucket: Bucket, start_ns: int | None, end_ns: int | None, *,
                limit: int | None = None, limit_from_start: bool = False,
                columns: Sequence[str] | None = None) -> Result:
    fn = read_ticks if bucket.schema.kind == "variable" else read_fixed
    return fn(catalog, bucket, start_ns, end_ns, limit=limit, limit_from_start=limit_from_start,
              columns=columns)
