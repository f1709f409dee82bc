"""`read_dask`: buckets as a Dask DataFrame, partitions of (bucket, year file) pieces.

Owns the partition plan handed to Dask (`dask.dataframe.from_map`): how pieces are grouped
into partitions, their divisions and meta, and the function a worker runs for one partition:
read its pieces through the worker's read-only handle, return one pandas frame. Which
pieces a pattern and range cover is `mkts.scale`; scheduling, retries and data movement are
Dask's. Contract and limits: docs/scale.md.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from mkts import engine
from mkts.engine.timeutil import NS
from mkts.scale import Piece, plan_pieces, time_arg

__all__ = ["read_dask", "group_size", "SYMBOL"]

log = logging.getLogger("mkts.dask")

SYMBOL = "Symbol"  # the column naming each row's symbol
_LABEL = "mkts-read"  # task-name prefix of the partitions in the Dask graph
HANDLE_TTL_S = 5.0  # how long a worker reuses one read-only handle (see _Handles)
MIN_PARTITIONS = 16  # several buckets: pieces are grouped down to about this many partitions
MAX_GROUP = 16  # ... with at most this many pieces in one (see group_size)

# What a worker receives per piece of a partition (pickled into the graph): nothing but these.
_Spec = tuple[str, str, int, int, int]  # root, key, year, start_ns, end_ns (inclusive)


def read_dask(root: str | os.PathLike[str], pattern: str, start: Any = None, end: Any = None,
              *, columns: Sequence[str] | None = None,
              pieces_per_partition: int | None = None) -> Any:
    """A `dask.dataframe.DataFrame` of every bucket matching `pattern` over [start, end].

    `pattern` is a key pattern (`MSFT,AA*/1Min/OHLCV`; engine.patterns) and must name one
    timeframe and attribute group, whose buckets share their columns. `start`/`end` follow
    `db.read` (inclusive; at interval granularity for fixed buckets, to the nanosecond for
    ticks; a time without an offset is in the database's zone, a date-only `end` its whole
    day); `columns` projects like `db.read(columns=)`.

    Guarantees:
    - the pieces, one per (bucket, year file) overlapping the range, buckets in pattern
      order, years ascending, each equal to `db.read(key, ...).to_pandas()` over that year
      with a `Symbol` column first (tick pieces keep `Nanoseconds`, last), come in
      partitions of `pieces_per_partition` consecutive pieces (the last may hold fewer).
      By default (None) that is 1 when the pattern matches one bucket and, for several
      buckets, npieces // MIN_PARTITIONS (at least 1, at most MAX_GROUP; `group_size`),
      about MIN_PARTITIONS partitions: every task costs the scheduler and the workers
      about as much as reading a small piece;
    - the index is `Epoch`, a DatetimeIndex in the database's time zone (UTC unless the root
      was created with another), exact to the nanosecond for ticks;
    - when the pattern matches one bucket, divisions are known (the year starts of each
      partition's first piece, clipped to the range), so `.loc` skips the partitions
      outside its slice without reading them; several
      buckets overlap in time, which Dask divisions cannot express, so their divisions are
      unknown (restrict time with `start`/`end`, which never plans the other partitions);
    - building the frame reads only the catalog; each partition is read when computed, by
      whichever process runs it, through that process's `engine.open(root, readonly=True)`
      (reused for up to HANDLE_TTL_S seconds): the graph holds only the root path, key, year
      and range, so the root must be at the same path on every worker (a shared
      filesystem). Read-only handles are not isolated from a writer.
    """
    try:
        import dask.dataframe
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("read_dask needs dask: pip install 'mkts[scale]'") from exc
    dd: Any = dask.dataframe  # partly typed; typed or not, mypy must pass either way
    root_path = os.path.abspath(os.fspath(root))
    time_arg(start, "start"), time_arg(end, "end")  # a bad time fails before the open
    if pieces_per_partition is not None and (
            isinstance(pieces_per_partition, bool) or not isinstance(pieces_per_partition, int)
            or pieces_per_partition < 1):
        raise engine.InvalidInputError(
            f"pieces_per_partition={pieces_per_partition!r}: give a whole number of at least "
            "1, or None for the default")
    with engine.open(root_path, readonly=True) as db:
        keys = engine.parse_pattern(pattern).select(db.list_keys())
        if not keys:
            raise engine.BucketNotFoundError(
                f"no bucket in {root_path} matches {pattern!r}; `mkts list --root "
                f"{root_path}` shows the keys")
        infos = {k: db.info(k, rows=False) for k in keys}  # no row counts: no scan
        tz = db.timezone
    start_ns, end_ns = time_arg(start, "start", tz), time_arg(end, "end", tz)
    _check_one_schema(pattern, keys, list(infos.values()))
    pieces = plan_pieces(engine.get_calendar(tz), infos, start_ns, end_ns)
    schema: dict[str, str] = infos[keys[0]]["columns"]
    ticks = infos[keys[0]]["kind"] == "variable"  # (a fixed bucket's Nanoseconds is data)
    names = _output_columns(keys[0], schema, columns, ticks)
    empty = np.zeros(0, dtype=[(n, t) for n, t in schema.items()])
    meta = _frame([("", engine.Result("", empty, list(schema), tz, ticks=ticks))], tz, None,
                  ticks)
    if not pieces:  # nothing in range: one empty partition with the right dtypes
        return dd.from_pandas(meta[names], npartitions=1, sort=False)
    g = group_size(len(pieces), len(keys), pieces_per_partition)
    groups = [pieces[i : i + g] for i in range(0, len(pieces), g)]
    specs: list[tuple[_Spec, ...]] = [
        tuple((root_path, p.key, p.year, p.start_ns, p.end_ns) for p in group)
        for group in groups]
    divisions = _divisions(groups, tz, pd) if len(keys) == 1 else None
    return dd.from_map(_read_pieces, specs, meta=meta, divisions=divisions, label=_LABEL,
                       enforce_metadata=False, columns=names)


def group_size(npieces: int, nkeys: int, requested: int | None) -> int:
    """Pieces per partition: `requested`, else 1 for one bucket (a partition per year keeps
    `.loc` pruning fine-grained) and, for several buckets, npieces // MIN_PARTITIONS
    clamped to [1, MAX_GROUP]."""
    if requested is not None:
        return requested
    if nkeys == 1:
        return 1
    return max(1, min(MAX_GROUP, npieces // MIN_PARTITIONS))


def _check_one_schema(pattern: str, keys: list[str], infos: list[dict[str, Any]]) -> None:
    first, info0 = keys[0], infos[0]
    for key, info in zip(keys[1:], infos[1:], strict=True):
        if key.split("/")[1:] != first.split("/")[1:]:
            raise engine.InvalidInputError(
                f"read_dask reads one timeframe and attribute group at a time; {pattern!r} "
                f"matches {first} and {key}: name the timeframe and group (e.g. '*/1Min/OHLCV')")
        if info["columns"] != info0["columns"] or info["kind"] != info0["kind"]:
            raise engine.SchemaError(
                f"{first} and {key} (both matched by {pattern!r}) have different columns "
                f"({_describe(info0)} vs {_describe(info)}); read them separately")
    if SYMBOL in info0["columns"]:
        raise engine.SchemaError(
            f"{first} has a column named {SYMBOL!r}, which read_dask adds itself; read it "
            "with db.read, or export it with export_parquet")


def _describe(info: dict[str, Any]) -> str:
    return ", ".join(f"{c} {t}" for c, t in info["columns"].items()) + f" ({info['kind']})"


def _output_columns(key: str, schema: dict[str, str], columns: Sequence[str] | None,
                    ticks: bool) -> list[str]:
    """Symbol first, then the requested (or all) columns, Nanoseconds last for ticks."""
    values = [c for c in schema if c != "Epoch" and not (ticks and c == "Nanoseconds")]
    if columns is None:
        chosen = values
    else:
        if isinstance(columns, str):
            columns = [columns]
        chosen = []
        for c in columns:
            if c in (SYMBOL, "Epoch") or (ticks and c == "Nanoseconds") or c in chosen:
                continue
            if c not in values:
                raise engine.UnknownColumnError(
                    f"column {c!r} is not in bucket {key}; it has {', '.join(values)}")
            chosen.append(c)
    return [SYMBOL, *chosen, *(["Nanoseconds"] if ticks else [])]


def _divisions(groups: list[list[Piece]], tz: str, pd: Any) -> tuple[Any, ...]:
    """Each partition's earliest possible row time (its first piece's), then the last
    one's latest: computed from the calendar (year starts clipped to the range), never
    from data."""
    def ts(ns: int) -> Any:
        return pd.Timestamp(ns, unit="ns", tz="UTC").tz_convert(tz)

    return (*(ts(g[0].first_ns) for g in groups), ts(groups[-1][-1].end_ns))


def _frame(parts: list[tuple[str, engine.Result]], tz: str, columns: Sequence[str] | None,
           ticks: bool) -> Any:
    """The reads of one partition's pieces, (symbol, result) in order, as one frame (also
    builds the meta from an empty result); `ticks`: Nanoseconds is part of the row times.
    Each column is copied once, straight from the results into one contiguous array that
    the frame takes over without a further copy."""
    import pandas as pd
    import pyarrow as pa

    names = parts[0][1].columns

    def column(name: str) -> np.ndarray:
        arrays = [r[name] for _, r in parts]
        return np.concatenate(arrays) if len(arrays) > 1 else np.array(arrays[0])

    ns = column("Epoch").astype(np.int64, copy=False)
    ns *= NS
    ticks = ticks and "Nanoseconds" in names
    if ticks:
        ns += column("Nanoseconds")
    index = pd.DatetimeIndex(ns.view("datetime64[ns]"), name="Epoch").tz_localize("UTC")
    if tz != "UTC":
        index = index.tz_convert(tz)
    if columns is None:
        columns = [SYMBOL,
                   *(n for n in names if n != "Epoch" and not (ticks and n == "Nanoseconds")),
                   *(["Nanoseconds"] if ticks else [])]
    data: dict[str, Any] = {}
    for c in columns:
        if c == SYMBOL:
            data[c] = pd.array(_symbols(pa, parts), dtype=pd.StringDtype("pyarrow"))
        else:
            data[c] = column(c)
    return pd.DataFrame(data, index=index, columns=list(columns), copy=False)


def _symbols(pa: Any, parts: list[tuple[str, engine.Result]]) -> Any:
    """The Symbol column as an Arrow large_string array (pandas' own storage for
    string[pyarrow]) built from its two buffers: each symbol's bytes repeated once per row
    of its piece, and the offsets. No Python string per row, no Arrow take (5x slower)."""
    encoded = [sym.encode() for sym, _ in parts]
    counts = [len(r) for _, r in parts]
    lengths = np.repeat(np.array([len(e) for e in encoded], dtype=np.int64), counts)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(e * n for e, n in zip(encoded, counts, strict=True))
    return pa.LargeStringArray.from_buffers(len(lengths), pa.py_buffer(offsets),
                                            pa.py_buffer(data))


def _read_pieces(specs: tuple[_Spec, ...], columns: Sequence[str] | None = None) -> Any:
    """Runs on a worker: one partition, its pieces read through the worker's read-only
    handle, one after the other.

    `columns` is the projection Dask pushes down (any subset of the frame's columns)."""
    wanted = None if columns is None else [c for c in columns if c != SYMBOL]
    parts: list[tuple[str, engine.Result]] = []
    tz, ticks = "UTC", False
    for root, key, year, start_ns, end_ns in specs:
        with _handles.use(root, key, year) as db:
            r = db.read(key, np.datetime64(start_ns, "ns"), np.datetime64(end_ns, "ns"),
                        columns=wanted)
            tz = db.timezone
        log.debug("read %s year %d: %d rows, columns %s", key, year, len(r), r.columns)
        parts.append((key.split("/", 1)[0], r))
        ticks = r.ticks
    return _frame(parts, tz, columns, ticks)


class _Handle:
    __slots__ = ("db", "opened", "users", "retired")

    def __init__(self, db: engine.Database) -> None:
        self.db = db
        self.opened = time.monotonic()
        self.users = 0
        self.retired = False


class _Handles:
    """The read-only handles of this process, one per root, shared by the partitions it
    reads for up to HANDLE_TTL_S seconds.

    Opening a handle loads the whole catalog (every bucket's header), so a handle per
    partition would cost O(buckets) per partition. A handle is replaced when it is older
    than the TTL or does not know the piece's bucket or year (created after it was opened),
    and closed once its last reader is done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, _Handle] = {}

    @contextmanager
    def use(self, root: str, key: str, year: int) -> Iterator[engine.Database]:
        with self._lock:
            h = self._current.get(root)
            if h is None or h.retired or time.monotonic() - h.opened > HANDLE_TTL_S or \
                    not _knows(h.db, key, year):
                fresh = _Handle(engine.open(root, readonly=True))  # may raise: nothing changed
                if h is not None:
                    self._retire(h)
                h = self._current[root] = fresh
                timer = threading.Timer(HANDLE_TTL_S, self._expire, (root, h))
                timer.daemon = True
                timer.start()
            h.users += 1
        try:
            yield h.db
        finally:
            with self._lock:
                h.users -= 1
                if h.retired and h.users == 0:
                    h.db.close()

    def _expire(self, root: str, h: _Handle) -> None:
        with self._lock:
            if self._current.get(root) is h:
                del self._current[root]
            self._retire(h)

    def _retire(self, h: _Handle) -> None:  # with the lock held
        if not h.retired:
            h.retired = True
            if h.users == 0:
                h.db.close()


def _knows(db: engine.Database, key: str, year: int) -> bool:
    bucket = db.catalog.buckets.get(engine.parse_key(key))
    return bucket is not None and year in bucket.years


_handles = _Handles()
