"""The read path: plan which year files and slots a range covers, slice, shape the result.

Ranges are inclusive at interval granularity: a row is returned when
floor(start) <= label <= end. With a limit, rows come from the end unless limit_from_start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.columns import translate, view_dtype
from mkts.engine.errors import CorruptFileError, UnknownColumnError
from mkts.engine.follow import read_following
from mkts.engine.header import Header
from mkts.engine.join import Part, concat_rows, fill_parts, take_limit, year_spans
from mkts.engine.result import Result
from mkts.engine.schema import SLOT_FIELD
from mkts.engine.sealread import SealedRows, read_sealed_ticks, sealed_fixed_rows
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.timeframes import Timeframe
from mkts.engine.timeutil import NS, Calendar
from mkts.engine.yearfile import YearFile

__all__ = ["read_fixed", "read_ticks", "read_bucket", "resolve_columns"]

# Ranges up to this many bytes of slots are read with one pread (see _LiveSlots).
SMALL_READ_BYTES = 1 << 17
# Up to this many rows a result is "small": Epochs go into the rows (see read_fixed).
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


def _project(bucket: Bucket, data: np.ndarray, cols: list[str], full: list[str], tz: str,
             epochs: np.ndarray | None = None) -> Result:
    """The joined rows as a Result of the requested columns (a view, no copy). `epochs`,
    if given, is the Epoch column, not yet written into `data` (see Result)."""
    if cols is not full and cols != full:
        data = data[cols]
    return Result(str(bucket.key), data, cols, tz, epochs=epochs,
                  ticks=bucket.schema.kind == "variable")

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
        if any(c.dtype != chunks[0].dtype for c in chunks):  # years before a column change
            chunks = [_packed(c, cols) for c in chunks]
        data = np.concatenate(chunks)
        ep = np.concatenate(separate) if separate else None
    if cols is not full and cols != full and data.dtype.names != tuple(cols):
        data = data[cols]
    return Result(str(bucket.key), data, cols, tz, epochs=ep,
                  ticks=bucket.schema.kind == "variable")


def _packed(rows: np.ndarray, cols: list[str]) -> np.ndarray:
    """The fields `cols` of `rows` as a packed array (chunks of several layouts: files
    written before and after a column change)."""
    fields: Mapping[str, Any] = rows.dtype.fields or {}
    out = np.empty(len(rows), dtype=[(n, fields[n][0]) for n in cols])
    for n in cols:
        out[n] = rows[n]
    return out


def _own_layout(f: YearFile, bucket: Bucket) -> bool:
    """The file's records have the bucket's current layout (no column change since)."""
    h = f.header
    return h.table is bucket.table or h.schema_version == bucket.schema_version


class _LiveSlots:
    """The occupied slots of one live year file in a range: a `join.Part`.

    Made while the file is pinned, before the result is allocated; `fill` copies the
    records (whole, as 8-byte words: the file may change after we return) into their place
    in the result, checks that word 0 of each is its slot + 1 (docs/format.md "Slots") and
    writes the slots' labels, the Epoch column."""

    __slots__ = ("f", "year", "idx", "block", "lo", "calendar", "tf")

    def __init__(self, f: YearFile, year: int, calendar: Calendar, tf: Timeframe, lo: int,
                 hi: int, remaining: int | None, backwards: bool) -> None:
        """Slots [lo, hi), at most `remaining` of them (from the end when `backwards`).

        A small range is read now with one pread of exactly its slots and its occupancy
        taken from their `_slot` words: no whole-file occupancy index, so a cold read costs
        one I/O of the range, and it always sees the file's current content. A larger range
        uses the file's occupancy (yearfile.py) and is gathered from the mapping by `fill`.
        Both see the same bytes: the file is the only state (docs/format.md "Slots": a slot
        is occupied iff its `_slot` is not 0)."""
        self.f, self.year, self.calendar, self.tf, self.lo = f, year, calendar, tf, lo
        self.block: np.ndarray | None = None
        if (hi - lo) * f.header.record_size <= SMALL_READ_BYTES:
            block = f.read_words(lo, hi)
            self.block = block
            self.idx = take_limit((block[:, 0] != 0).nonzero()[0], remaining, backwards) + lo
        else:
            self.idx = take_limit(f.occupied_in(lo, hi), remaining, backwards)

    @property
    def rows(self) -> int:
        return len(self.idx)

    def own_layout(self, bucket: Bucket) -> bool:
        return _own_layout(self.f, bucket)

    def chunk(self, bucket: Bucket, cols: list[str]) -> np.ndarray:
        """The rows on their own, Epoch written in, as the bucket's columns `cols` (a file
        written before a column change is translated: `_translated`)."""
        h = self.f.header
        rows = np.empty(self.rows, dtype=h.schema.result_dtype)
        self.fill(rows, None)
        if _own_layout(self.f, bucket):
            return rows
        return _translated(rows, h, bucket, cols)

    def fill(self, out: np.ndarray, epochs: np.ndarray | None) -> None:
        idx = self.idx
        words = out.view(np.int64).reshape(len(out), out.dtype.itemsize // 8)
        if self.block is not None:
            np.take(self.block, idx - self.lo, axis=0, out=words, mode="clip")
        else:
            np.take(self.f.words, idx, axis=0, out=words, mode="clip")
        stored = words[:, 0]
        if epochs is None:  # the labels overwrite word 0
            _check_slots(self.f, stored, idx + 1)
            labels = stored
        else:  # slot + 1 goes where the labels go, then becomes them: no temporary
            np.add(idx, 1, out=epochs)
            _check_slots(self.f, stored, epochs)
            labels = epochs
        tf = self.tf
        if tf.is_daily:
            labels[:] = self.calendar.labels(self.year, idx, tf)
        else:  # label = year start + slot x seconds = (slot + 1) x seconds + start - seconds
            labels *= tf.seconds
            labels += self.calendar.year_start(self.year) - tf.seconds


def read_fixed(catalog: Catalog, bucket: Bucket, start_ns: int | None, end_ns: int | None, *,
               limit: int | None = None, limit_from_start: bool = False,
               columns: Sequence[str] | None = None) -> Result:
    """Rows with floor(start) <= label <= end, limit counting from the end unless
    `limit_from_start`. Each year file in range first says which of its slots the read
    takes (a `_LiveSlots`; the limit is applied here, so a read that has its rows opens no
    further year), then one result is allocated and each year copies its rows into place
    (engine/join.py): a read across years costs per row what a read of one does."""
    calendar = catalog.calendar
    schema = bucket.schema
    full = schema.result_names
    cols = full if columns is None else resolve_columns(bucket, columns)
    backwards = limit is not None and not limit_from_start
    parts: list[_LiveSlots | SealedRows] = []
    pinned: list[YearFile] = []
    remaining = limit
    try:
        for y, lo, hi in year_spans(calendar, bucket, start_ns, end_ns, backwards):
            part: _LiveSlots | SealedRows
            if bucket.sealed and y in bucket.sealed:  # decoded and merged with its overlay
                part = sealed_fixed_rows(catalog, bucket, y, lo, hi, remaining, backwards,
                                         cols)
            else:
                # Year files open lazily; each stays pinned (the open-file cache closes no
                # file in use) until its rows are copied.
                f = catalog.acquire(bucket, y, reads=(lo, hi))
                if f is None:  # pragma: no cover - years come from the catalog
                    continue
                pinned.append(f)
                part = _LiveSlots(f, y, calendar, schema.timeframe, lo,
                                  f.header.nslots if hi < 0 else hi, remaining, backwards)
            if part.rows:
                parts.append(part)
            if remaining is not None:
                remaining -= part.rows
                if remaining <= 0:
                    break
        if backwards:
            parts.reverse()
        # Up to SMALL_ROWS rows the labels overwrite word 0 in place; for more they are a
        # contiguous column of their own and word 0 is left as is: writing it is a strided
        # pass over every row, which Result does only if the structured array is asked for.
        if not all(p.own_layout(bucket) for p in parts):
            # A year written before a column change (docs/format.md "Column changes"): its
            # rows are translated to the bucket's columns, year by year, then joined.
            return _result(bucket, [p.chunk(bucket, cols) for p in parts], cols, full,
                           calendar.tz)
        separate = sum(p.rows for p in parts) > SMALL_ROWS
        joined: list[Part] = list(parts)
        data, epochs = fill_parts(joined, schema.result_dtype, separate)
    finally:
        for f in pinned:
            catalog.release(f)
    return _project(bucket, data, cols, full, calendar.tz, epochs)


# (id of a file's header, bucket schema version, row size, columns) -> (that header, the
# view dtype or None): reads of an unchanged file through a changed schema plan once.
_VIEWS: dict[tuple[int, int, int, tuple[str, ...]], tuple[Header, np.dtype | None]] = {}


def _translated(rows: np.ndarray, h: Header, bucket: Bucket, cols: list[str]) -> np.ndarray:
    """Rows of a file written before a column change, as the bucket's columns `cols`: a view
    when the file has all of them (no copy), else a translated copy (engine/columns.py)."""
    src, dst = (h.schema, h.columns), (bucket.schema, bucket.columns)
    key = (id(h), bucket.schema_version, rows.dtype.itemsize, tuple(cols))
    hit = _VIEWS.get(key)
    if hit is None or hit[0] is not h:  # a view dtype per file, schema and columns read
        if len(_VIEWS) > 1024:
            _VIEWS.clear()
        names = ["Epoch", *(c for c in cols if c != "Epoch")]
        hit = _VIEWS[key] = (h, view_dtype(src, dst, names, rows.dtype))
    if hit[1] is not None:
        return rows.view(hit[1])
    return translate(rows, src, dst, bucket.schema.result_dtype)[cols]


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
    for y, lo, hi in year_spans(calendar, bucket, start_ns, end_ns, backwards):
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
            h = f.header
            # written before a column change: decode as written, then translate (below)
            own = h.table is bucket.table or h.schema_version == bucket.schema_version
            file_schema = schema if own else h.schema
            src = BlockSource(f, file_schema, f.path)
            k = len(idx)
            if remaining is not None:
                counts = recs["nrows"][::-1] if backwards else recs["nrows"]
                k = min(len(idx), int(np.searchsorted(np.cumsum(counts), remaining)) + 1)
            while True:
                part = slice(len(idx) - k, len(idx)) if backwards else slice(0, k)
                sl, nrows = idx[part], recs["nrows"][part].astype(np.int64)
                # 1Sec: offsets are below 10^9 and go straight into the Nanoseconds column.
                out, ns = read_rows(src, sl, recs[part], file_schema.result_dtype,
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
            if not own:
                out = _translated(out, h, bucket, cols)
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
    if all(c.dtype == schema.result_dtype for c in chunks):
        return _project(bucket, concat_rows(chunks, schema.result_dtype), cols,
                        schema.result_names, calendar.tz)
    # a year written before a column change came translated (a view of its columns)
    return _result(bucket, chunks, cols, schema.result_names, calendar.tz)


def read_bucket(catalog: Catalog, bucket: Bucket, start_ns: int | None, end_ns: int | None, *,
                limit: int | None = None, limit_from_start: bool = False,
                columns: Sequence[str] | None = None) -> Result:
    """The rows of any bucket (`read_ticks` or `read_fixed`); a read-only handle first
    follows what a writer did to the year files meanwhile (engine/follow.py)."""
    fn = read_ticks if bucket.schema.kind == "variable" else read_fixed

    def read() -> Result:
        return fn(catalog, bucket, start_ns, end_ns, limit=limit,
                  limit_from_start=limit_from_start, columns=columns)

    return read_following(catalog, bucket, read) if catalog.readonly else read()
