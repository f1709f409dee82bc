"""The read path: plan which year files and slots a range covers, slice, shape the result.

Ranges are inclusive at interval granularity: a row is returned when
floor(start) <= label <= end. With a limit, rows come from the end unless limit_from_start.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.errors import CorruptFileError, UnknownColumnError
from mkts.engine.result import Result
from mkts.engine.schema import SLOT_FIELD
from mkts.engine.sealread import read_sealed_fixed, read_sealed_ticks
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.timeframes import Timeframe
from mkts.engine.timeutil import NS, Calendar
from mkts.engine.yearfile import YearFile

__all__ = ["read_fixed", "read_ticks", "read_bucket", "resolve_columns"]

# Ranges up to this many bytes of slots are read with one pread (see _gather_span).
SMALL_READ_BYTES = 1 << 17
# Up to this many rows a read chunk is "small" for _to_epochs.
SMALL_ROWS = 4096


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


_BOUNDS: dict[Calendar, tuple[int, int]] = {}  # (min_epoch, max_epoch - 1) per calendar


def _slot_range(calendar: Calendar, bucket: Bucket, start_ns: int | None, end_ns: int | None
                ) -> tuple[tuple[int, int], tuple[int, int]]:
    tf = bucket.schema.timeframe
    bounds = _BOUNDS.get(calendar)
    if bounds is None:
        bounds = _BOUNDS[calendar] = (calendar.min_epoch, calendar.max_epoch - 1)
    first, last = bounds
    lo = first if start_ns is None else max(start_ns // NS, first)
    hi = last if end_ns is None else min(end_ns // NS, last)
    return calendar.slot_of(lo, tf), calendar.slot_of(hi, tf)


def _check_slots(f: YearFile, stored: np.ndarray, expected: np.ndarray) -> None:
    """Every gathered record must carry its own slot number + 1 (`expected`, as
    docs/format.md "Slots" says). For a few rows comparing the bytes is cheaper than numpy's
    elementwise compare (int64 in native order on both sides); the answer is the same."""
    if len(expected) <= SMALL_ROWS:
        same = stored.tobytes() == expected.tobytes()
    else:
        same = not bool((stored != expected).any())
    if not same:
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
            tz: str, epochs: list[np.ndarray | None] | None = None) -> Result:
    """Join the per-year chunks (already in ascending order) and project. `epochs`, if
    given, has per chunk its Epoch column when that is not yet written into the chunk
    (see Result), else None."""
    separate = [e for e in epochs or () if e is not None]
    if separate and len(separate) < len(chunks):  # mixed: write them all into the chunks
        for c, e in zip(chunks, epochs or (), strict=True):
            if e is not None:
                c["Epoch"] = e
        separate = []
    ep: np.ndarray | None = None
    if not chunks:
        data = np.zeros(0, dtype=bucket.schema.result_dtype)
    elif len(chunks) == 1:
        data = chunks[0]
        ep = separate[0] if separate else None
    else:
        data = np.concatenate(chunks)
        ep = np.concatenate(separate) if separate else None
    if cols is not full and cols != full:
        data = data[cols]
    return Result(str(bucket.key), data, cols, tz, epochs=ep)


def _year_spans(calendar: Calendar, bucket: Bucket, start_ns: int | None, end_ns: int | None,
                 backwards: bool) -> list[tuple[int, int, int]]:
    """(year, lo, hi) for each year of the bucket the range overlaps, in read order: slots
    [lo, hi) of that year, hi = -1 meaning "to the end of the year file"."""
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        return []
    (y0, s0), (y1, s1) = _slot_range(calendar, bucket, start_ns, end_ns)
    if y0 == y1:  # the common case: no need to sort the bucket's years
        return [(y0, s0, s1 + 1)] if y0 in bucket.years else []
    spans = [(y, s0 if y == y0 else 0, s1 + 1 if y == y1 else -1)
             for y in bucket.sorted_years() if y0 <= y <= y1]
    if backwards:
        spans.reverse()
    return spans


def _take(idx: np.ndarray, remaining: int | None, backwards: bool) -> np.ndarray:
    if remaining is not None and len(idx) > remaining:
        return idx[len(idx) - remaining :] if backwards else idx[:remaining]
    return idx


def _gather_span(f: YearFile, lo: int, hi: int, remaining: int | None, backwards: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(slots, words): the occupied slots in [lo, hi) (at most `remaining`, from the end when
    `backwards`) and their records as a private (n, record words) int64 array.

    A small range is read with one pread of exactly its slots and its occupancy taken from
    their `_slot` words: no whole-file occupancy index, so a cold read costs one I/O of the
    range, and it always sees the file's current content. A larger range uses the file's
    occupancy (yearfile.py) and gathers from the mapping. Both see the same bytes: the file
    is the only state (docs/format.md "Slots": a slot is occupied iff its `_slot` is not 0).
    """
    if (hi - lo) * f.header.record_size <= SMALL_READ_BYTES:
        block = f.read_words(lo, hi)
        idx = _take((block[:, 0] != 0).nonzero()[0], remaining, backwards)
        words = block.take(idx, axis=0)
        idx += lo
        return idx, words
    idx = _take(f.occupied_in(lo, hi), remaining, backwards)
    return idx, f.words.take(idx, axis=0)


def _to_epochs(f: YearFile, calendar: Calendar, year: int, tf: Timeframe, idx: np.ndarray,
               words: np.ndarray) -> np.ndarray | None:
    """Check that word 0 of every gathered record is its slot + 1 (docs/format.md "Slots"),
    then compute the slots' labels, the Epoch column of the result. For up to SMALL_ROWS
    rows they overwrite word 0 in place (returns None); for more they are returned as a
    contiguous array and word 0 is left as is: writing it is a strided pass over every row,
    which Result does only if the structured array is asked for."""
    stored = words[:, 0]
    expected = idx + 1
    _check_slots(f, stored, expected)
    small = len(idx) <= SMALL_ROWS
    out = stored if small else expected  # equal now
    if tf.is_daily:
        out[:] = calendar.labels(year, idx, tf)
    else:  # label = year start + slot x seconds = (slot + 1) x seconds + year start - seconds
        np.multiply(out, tf.seconds, out=out)
        out += calendar.year_start(year) - tf.seconds
    return None if small else expected


def read_fixed(catalog: Catalog, bucket: Bucket, start_ns: int | None, end_ns: int | None, *,
               limit: int | None = None, limit_from_start: bool = False,
               columns: Sequence[str] | None = None) -> Result:
    calendar = catalog.calendar
    schema = bucket.schema
    full = schema.result_names
    cols = full if columns is None else resolve_columns(bucket, columns)
    backwards = limit is not None and not limit_from_start
    chunks: list[np.ndarray] = []
    epochs: list[np.ndarray | None] = []
    remaining = limit
    for y, lo, hi in _year_spans(calendar, bucket, start_ns, end_ns, backwards):
        if bucket.sealed and y in bucket.sealed:
            rows = read_sealed_fixed(catalog, bucket, y, lo, hi, remaining, backwards, cols)
            if len(rows):
                chunks.append(rows)
                epochs.append(None)
            if remaining is not None:
                remaining -= len(rows)
                if remaining <= 0:
                    break
            continue
        # Year files open lazily: a read that has its limit stops before the next one.
        f = catalog.acquire(bucket, y, reads=(lo, hi))
        if f is None:  # pragma: no cover - years come from the catalog
            continue
        try:  # pinned: the open-file cache closes no file in use
            # Whole records are gathered as rows of 8-byte words (a copy: the file may
            # change after we return); word 0 is `_slot`, checked; the Epochs are a column
            # of their own.
            idx, words = _gather_span(f, lo, f.header.nslots if hi < 0 else hi, remaining,
                                      backwards)
            if len(idx):
                epochs.append(_to_epochs(f, calendar, y, schema.timeframe, idx, words))
                chunks.append(words.view(schema.result_dtype).reshape(len(idx)))
        finally:
            catalog.release(f)
        if remaining is not None:
            remaining -= len(idx)
            if remaining <= 0:
                break
    if backwards:
        chunks.reverse()
        epochs.reverse()
    return _result(bucket, chunks, cols, full, calendar.tz, epochs)


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
    for y, lo, hi in _year_spans(calendar, bucket, start_ns, end_ns, backwards):
        if bucket.sealed and y in bucket.sealed:
            out = read_sealed_ticks(catalog, bucket, y, start_ns, end_ns, remaining, backwards,
                                    cols)
            if len(out):
                chunks.append(out)
            if remaining is not None:
                remaining -= len(out)
                if remaining <= 0:
                    break
            continue
        f = catalog.acquire(bucket, y)
        if f is None:  # pragma: no cover - years come from the catalog
            continue
        try:  # pinned: the open-file cache closes no file in use
            idx = f.occupied_in(lo, f.header.nslots if hi < 0 else hi)
            recs = _gather(f.slots, idx)
            _check_slots(f, recs[SLOT_FIELD], idx + 1)
            f.verify_slots(idx, recs)
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
        finally:
            catalog.release(f)
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
