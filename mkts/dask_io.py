"""`read_dask`: buckets as a Dask DataFrame, one partition per (bucket, year file).

Owns the partition plan handed to Dask (`dask.dataframe.from_map`), its divisions and meta,
and the function a worker runs for one partition: open the root read-only, read one piece,
return a pandas frame. Which pieces a pattern and range cover is `mkts.scale`; scheduling,
retries and data movement are Dask's. Contract and limits: docs/scale.md.
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

__all__ = ["read_dask", "SYMBOL"]

log = logging.getLogger("mkts.dask")

SYMBOL = "Symbol"  # the column naming each row's symbol
_LABEL = "mkts-read"  # task-name prefix of the partitions in the Dask graph
HANDLE_TTL_S = 5.0  # how long a worker reuses one read-only handle (see _Handles)

# What a worker receives for one partition (pickled into the graph): nothing but these.
_Spec = tuple[str, str, int, int, int]  # root, key, year, start_ns, end_ns (inclusive)


def read_dask(root: str | os.PathLike[str], pattern: str, start: Any = None, end: Any = None,
              *, columns: Sequence[str] | None = None) -> Any:
    """A `dask.dataframe.DataFrame` of every bucket matching `pattern` over [start, end].

    `pattern` is a key pattern (`MSFT,AA*/1Min/OHLCV`; engine.patterns) and must name one
    timeframe and attribute group, whose buckets share their columns. `start`/`end` follow
    `db.read` (inclusive; at interval granularity for fixed buckets, to the nanosecond for
    ticks; a time without an offset is in the database's zone, a date-only `end` its whole
    day); `columns` projects like `db.read(columns=)`.

    Guarantees:
    - one partition per (bucket, year file) overlapping the range, buckets in pattern order,
      years ascending; each partition equals `db.read(key, ...).to_pandas()` over that year
      with a `Symbol` column first (tick partitions keep `Nanoseconds`, last);
    - the index is `Epoch`, a DatetimeIndex in the database's time zone (UTC unless the root
      was created with another), exact to the nanosecond for ticks;
    - when the pattern matches one bucket, divisions are known (year starts, clipped to the
      range), so `.loc` skips the partitions outside its slice without reading them; several
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
    names = _output_columns(keys[0], schema, columns)
    empty = np.zeros(0, dtype=[(n, t) for n, t in schema.items()])
    meta = _frame(empty, tz, "", None)
    if not pieces:  # nothing in range: one empty partition with the right dtypes
        return dd.from_pandas(meta[names], npartitions=1, sort=False)
    specs: list[_Spec] = [(root_path, p.key, p.year, p.start_ns, p.end_ns) for p in pieces]
    divisions = _divisions(pieces, tz, pd) if len(keys) == 1 else None
    return dd.from_map(_read_piece, specs, meta=meta, divisions=divisions, label=_LABEL,
                       enforce_metadata=False, columns=names)


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


def _output_columns(key: str, schema: dict[str, str], columns: Sequence[str] | None
                    ) -> list[str]:
    """Symbol first, then the requested (or all) columns, Nanoseconds last for ticks."""
    values = [c for c in schema if c not in ("Epoch", "Nanoseconds")]
    ticks = "Nanoseconds" in schema
    if columns is None:
        chosen = values
    else:
        if isinstance(columns, str):
            columns = [columns]
        chosen = []
        for c in columns:
            if c in (SYMBOL, "Epoch", "Nanoseconds") or c in chosen:
                continue
            if c not in values:
                raise engine.UnknownColumnError(
                    f"column {c!r} is not in bucket {key}; it has {', '.join(values)}")
            chosen.append(c)
    return [SYMBOL, *chosen, *(["Nanoseconds"] if ticks else [])]


def _divisions(pieces: list[Piece], tz: str, pd: Any) -> tuple[Any, ...]:
    """Each partition's earliest possible row time, then the last one's latest: computed
    from the calendar (year starts clipped to the range), never from data."""
    def ts(ns: int) -> Any:
        return pd.Timestamp(ns, unit="ns", tz="UTC").tz_convert(tz)

    return (*(ts(p.first_ns) for p in pieces), ts(pieces[-1].end_ns))


def _frame(arr: np.ndarray, tz: str, symbol: str, columns: Sequence[str] | None) -> Any:
    """A result array as the frame of one partition (also builds the meta from an empty one)."""
    import pandas as pd
    import pyarrow as pa

    ns = arr["Epoch"].astype(np.int64) * NS
    names = arr.dtype.names or ()
    if "Nanoseconds" in names:
        ns += arr["Nanoseconds"]
    index = pd.DatetimeIndex(ns.view("datetime64[ns]"), name="Epoch").tz_localize("UTC")
    if tz != "UTC":
        index = index.tz_convert(tz)
    if columns is None:
        columns = [SYMBOL, *(n for n in names if n not in ("Epoch", "Nanoseconds")),
                   *(["Nanoseconds"] if "Nanoseconds" in names else [])]
    data: dict[str, Any] = {}
    for c in columns:
        if c == SYMBOL:  # one string repeated: an Arrow take, not len(arr) Python strings
            rep = pa.array([symbol]).take(pa.array(np.zeros(len(arr), dtype=np.int32)))
            data[c] = pd.array(rep, dtype=pd.StringDtype("pyarrow"))
        else:
            data[c] = np.array(arr[c])
    return pd.DataFrame(data, index=index, columns=list(columns))


def _read_piece(spec: _Spec, columns: Sequence[str] | None = None) -> Any:
    """Runs on a worker: one partition, read through the worker's read-only handle.

    `columns` is the projection Dask pushes down (any subset of the frame's columns)."""
    root, key, year, start_ns, end_ns = spec
    wanted = None if columns is None else [c for c in columns if c != SYMBOL]
    with _handles.use(root, key, year) as db:
        r = db.read(key, np.datetime64(start_ns, "ns"), np.datetime64(end_ns, "ns"),
                    columns=wanted)
        tz = db.timezone
    log.debug("read %s year %d: %d rows, columns %s", key, year, len(r), r.columns)
    return _frame(r.array, tz, key.split("/", 1)[0], columns)


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
