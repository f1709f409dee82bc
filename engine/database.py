"""`Database`: the public handle. A thin facade over the catalog, the commit pipeline and
the read path; opening takes the lock and replays the log (docs/design.md §6).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from mkts.engine import fastpath, ingest, journal, query
from mkts.engine.catalog import Bucket, Catalog, any_bucket
from mkts.engine.commit import SYNC_MODES, CommitPipeline
from mkts.engine.dispatch import Dispatcher, Subscription
from mkts.engine.errors import (
    BucketExistsError,
    BucketNotFoundError,
    ClosedError,
    InvalidInputError,
    LockedError,
    MktsError,
    ReadOnlyError,
    RootNotFoundError,
    SchemaError,
    StoreFailedError,
)
from mkts.engine.events import WriteEvent, event_records, merged_records
from mkts.engine.header import same_schema
from mkts.engine.keys import BucketKey, parse_key, parse_pattern
from mkts.engine.plan import RowWrite, SlotWrite, plan_fixed
from mkts.engine.result import Result
from mkts.engine.rootmeta import check_root_dir, lock_holder, root_timezone
from mkts.engine.rwlock import RWLock
from mkts.engine.schema import FIXED, VARIABLE, Schema
from mkts.engine.ticks import (
    TickPlanner,
    TickWrite,
    compact_year_file,
    plan_ticks,
)
from mkts.engine.timeutil import get_calendar, to_epoch_ns
from mkts.engine.yearfile import YearFile
from mkts.wal import WriteAheadLog
from mkts.wal.format import Payload
from mkts.wal.fs import FileSystem, OsFileSystem

__all__ = ["Database", "open_database", "WriteEvent"]

log = logging.getLogger("mkts.engine")

MAX_TXN_BYTES = 1 << 30
RECOVERY_MODES = ("tolerate_torn_tail", "point_in_time")


def open_database(
    root: str | os.PathLike[str],
    *,
    timezone: str | None = None,
    readonly: bool = False,
    sync: str = "always",
    sync_interval_ms: int = 100,
    checkpoint_interval_s: float = 60.0,
    max_wal_mb: int = 256,
    recovery: str = "tolerate_torn_tail",
    fs: FileSystem | None = None,
    triggers: Sequence[tuple[str, Any]] = (),
    workers: Sequence[Any] = (),
    create: bool = True,
    max_open_files: int | None = None,
) -> Database:
    """Open the database at `root`, creating the directory if it is missing and `create` is
    true (a read-only open never creates; otherwise a missing root is `RootNotFoundError`).

    `timezone` defaults to the root's own (UTC for a new root); opening an existing root
    with a different zone is an error, because slot positions depend on it.
    `triggers` is a list of (key glob, trigger): each trigger's optional `start(db)` is
    called once, then `fire(key_path, records)` for every matching write, replayed ones
    included, on the trigger thread. `workers` are background workers: after replay each
    one's optional `start(db)` is called and its `run()` starts on a thread of its own; at
    close its optional `stop()` is called. A worker that raises is logged, not fatal.
    `max_open_files` bounds the year files kept open (None: derived from the process's
    RLIMIT_NOFILE, see engine/filecache.py); more are opened and closed as needed.
    """
    return Database(os.fspath(root), timezone=timezone, readonly=readonly, sync=sync,
                    sync_interval_ms=sync_interval_ms, checkpoint_interval_s=checkpoint_interval_s,
                    max_wal_mb=max_wal_mb, recovery=recovery, fs=fs, triggers=triggers,
                    workers=workers, create=create, max_open_files=max_open_files)


class Database:
    """A handle on one database root. Thread-safe; use as a context manager or call close().

    Guarantees: one write() / write_many() call is one transaction, visible and durable
    all-or-nothing; with sync="always" it is durable (fsynced to the log) when the call
    returns. Readers never see part of a transaction.
    """

    def __init__(self, root: str, *, timezone: str | None, readonly: bool, sync: str,
                 sync_interval_ms: int, checkpoint_interval_s: float, max_wal_mb: int,
                 recovery: str, fs: FileSystem | None,
                 triggers: Sequence[tuple[str, Any]], workers: Sequence[Any] = (),
                 create: bool = True, max_open_files: int | None = None) -> None:
        if sync not in SYNC_MODES:
            raise InvalidInputError(f"sync={sync!r} must be one of {', '.join(SYNC_MODES)}")
        if recovery not in RECOVERY_MODES:
            raise InvalidInputError(f"recovery={recovery!r} must be one of {', '.join(RECOVERY_MODES)}")
        if sync_interval_ms <= 0:
            raise InvalidInputError(f"sync_interval_ms={sync_interval_ms} must be positive")
        if max_open_files is not None and (isinstance(max_open_files, bool)
                                           or not isinstance(max_open_files, int)
                                           or max_open_files < 1):
            raise InvalidInputError(f"max_open_files={max_open_files!r} must be a positive "
                                    "integer or None")
        self._max_open_files = max_open_files
        self.root = os.path.abspath(root)
        self.readonly = readonly
        self.sync_mode = sync
        self._fs: FileSystem = fs or OsFileSystem()
        self._closed = False
        self._lock_handle: int | None = None
        self._create = create and not readonly
        if readonly and triggers:
            raise InvalidInputError("triggers need a writable database; readonly=True was given")
        self._dispatcher = Dispatcher(
            self, triggers, lambda ev: event_records(self.catalog, self.calendar, ev),
            lambda evs: merged_records(self.catalog, self.calendar, evs))
        if readonly and workers:
            raise InvalidInputError("background workers need a writable database")
        for w in workers:
            if not callable(getattr(w, "run", None)):
                raise InvalidInputError(f"background worker {w!r} has no run() method")
        self._workers = list(workers)
        self._worker_threads: list[threading.Thread] = []
        self.worker_errors = 0
        self._rw = RWLock()
        self._ticks = TickPlanner()
        self._fast: dict[str, fastpath.InputPlan] = {}  # key text -> plan of its last input
        self._meta_lock = threading.RLock()  # create/destroy and catalog changes
        self._stop = threading.Event()
        self._bg: threading.Thread | None = None
        self._log: Any = None
        self._pipeline: CommitPipeline | None = None
        try:
            self._open(timezone, recovery, sync_interval_ms, checkpoint_interval_s, max_wal_mb)
        except BaseException:
            self._release()
            raise

    # -- opening ---------------------------------------------------------------------------
    def _open(self, timezone: str | None, recovery: str, sync_interval_ms: int,
              checkpoint_interval_s: float, max_wal_mb: int) -> None:
        fs, root = self._fs, self.root
        if timezone is not None:
            get_calendar(timezone)  # a bad zone is an error before anything is created
        if not fs.isdir(root):
            if not self._create:
                why = "a read-only open" if self.readonly else "an open with create=False"
                raise RootNotFoundError(
                    f"database root {root} does not exist; check the path ({why} never "
                    "creates a database)")
            parent = os.path.dirname(root)
            if not fs.isdir(parent):
                raise InvalidInputError(f"cannot create database root {root}: {parent} does not exist")
            fs.mkdir(root)
            fs.fsync_dir(parent)
        else:
            check_root_dir(fs, root, has_buckets=lambda: any_bucket(fs, root))
        if not self.readonly:
            lock_path = os.path.join(root, "LOCK")
            try:
                self._lock_handle = fs.lock(lock_path)
            except BlockingIOError:
                holder = lock_holder(fs, lock_path)
                raise LockedError(
                    f"database root {root} is in use by pid {holder}; close that handle first "
                    "or open with readonly=True"
                ) from None
        # The buckets' own headers say which zone their slots were laid out in: load them
        # first (loading needs no calendar), so a lost or edited mkts.root is caught.
        self.catalog = Catalog(fs, root, get_calendar("UTC"), readonly=self.readonly,
                               max_open_files=self._max_open_files,
                               on_sync_error=self._data_sync_failed)
        self.catalog.load()
        self.timezone = root_timezone(
            self._fs, self.root, timezone, readonly=self.readonly,
            bucket_zones={b.timezone for b in self.catalog.buckets.values()})
        self.calendar = self.catalog.calendar = get_calendar(self.timezone)
        if self.readonly:
            return
        self._log = WriteAheadLog.open(os.path.join(root, "wal"), fs, recovery=recovery)
        replayed = self._replay()
        self._pipeline = CommitPipeline(
            self._log, apply=self._apply, publish=self._publish, sync_data=self._sync_data,
            rwlock=self._rw, sync=self.sync_mode, max_log_bytes=max_wal_mb << 20,
            can_retire=self._dispatcher.idle, admit=self._admit,
        )
        if replayed and not self._dispatcher.triggers:
            self._pipeline.checkpoint()
        elif replayed:
            # Keep the replayed records until the triggers have processed them: a crash
            # before that replays (and fires) them again. The background checkpoint retires
            # them once the trigger queue is drained.
            pass
        else:
            self._pipeline.checkpointed_txn = self._log.last_txn
        self._dispatcher.start()
        for w in self._workers:
            start = getattr(w, "start", None)
            if callable(start):
                start(self)
        for w in self._workers:
            t = threading.Thread(target=self._run_worker, args=(w,), daemon=True,
                                 name=f"mkts-worker-{type(w).__name__}")
            t.start()
            self._worker_threads.append(t)
        self._interval_s = sync_interval_ms / 1000.0
        self._checkpoint_s = checkpoint_interval_s
        self._bg = threading.Thread(target=self._background, name="mkts-sync", daemon=True)
        self._bg.start()

    def _run_worker(self, worker: Any) -> None:
        try:
            worker.run()
        except Exception:
            self.worker_errors += 1
            log.exception("background worker %r failed; the database keeps running", worker)

    def _replay(self) -> int:
        count = 0
        started = time.monotonic()
        for rec in self._log.records():
            if count == 0:
                # WAL before data holds for replay too (docs/design.md §9 R3): after a kill -9
                # the log's tail may still be only in the page cache. Make it durable before
                # any of it reaches a year file, or a power loss during this replay could keep
                # data whose log record is lost (a torn transaction).
                self._log.sync()
            writes = journal.decode(rec.payload, self._schema_of,
                                    f"txn {rec.txn} in {rec.segment} at offset {rec.offset}")
            self._apply(writes)
            self._publish(rec.txn, writes, True)
            count += 1
            if count % 10_000 == 0:
                log.info("replayed %d transactions (%.1f s)", count, time.monotonic() - started)
        if count:
            log.info("replayed %d transactions from the log in %.2f s", count,
                     time.monotonic() - started)
        return count

    def _data_sync_failed(self, exc: BaseException) -> None:
        """An evicted year file's fsync failed: fail the handle like a checkpoint would."""
        if self._pipeline is not None:
            self._pipeline._fail(exc)

    def _schema_of(self, key: BucketKey) -> Schema:
        return self.catalog.get(key).schema

    # -- the pipeline's callbacks ----------------------------------------------------------
    def _apply(self, writes: Sequence[SlotWrite | RowWrite | TickWrite]) -> None:
        catalog = self.catalog
        for w in writes:
            bucket = catalog.buckets.get(w.key) or catalog.get(w.key)
            f = catalog.acquire(bucket, w.year, create=True)
            assert f is not None
            try:
                if type(w) is RowWrite:
                    f.write_row(w.slot, w.record)
                elif isinstance(w, TickWrite):
                    if w.region:
                        f.write_region(w.offset, w.region)
                    f.write_slots(w.slots, np.ascontiguousarray(w.records).data.cast("B"))
                    self._ticks.applied(w)
                else:
                    f.write_slots(w.slots, np.ascontiguousarray(w.records).data.cast("B"))
            finally:
                catalog.release(f)

    def _admit(self, writes: Sequence[SlotWrite | RowWrite | TickWrite]) -> None:
        """Before a transaction is logged (on the commit leader, which destroy and compact
        exclude): every fixed write's bucket must still be the one it was planned for. A
        destroy between planning and commit would otherwise log records that no bucket can
        replay, or records of the old size into a recreated bucket."""
        buckets = self.catalog.buckets
        for w in writes:
            if isinstance(w, TickWrite):
                continue  # planned by the leader itself, in commit order
            bucket = buckets.get(w.key)
            if bucket is None:
                raise BucketNotFoundError(
                    f"bucket {w.key} was destroyed while this write to it was being committed"
                )
            want = bucket.schema.record_dtype
            have = w.dtype
            if have is not want and have != want:
                raise SchemaError(
                    f"bucket {w.key} was destroyed and created again with other columns while "
                    "this write to it was being committed; write it again"
                )

    def _sync_data(self) -> None:
        self.catalog.sync_dirty()

    def _publish(self, txn: int, writes: Sequence[SlotWrite | RowWrite | TickWrite],
                 replayed: bool) -> None:
        if self._dispatcher.wants():
            self._dispatcher.publish(WriteEvent(txn, writes, replayed))

    def _background(self) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        tick = self._interval_s if self.sync_mode == "interval" else min(1.0, self._checkpoint_s)
        last_checkpoint = time.monotonic()
        while not self._stop.wait(tick):
            try:
                if self.sync_mode == "interval":
                    pipeline.flush_interval()
                due = time.monotonic() - last_checkpoint >= self._checkpoint_s
                if due or pipeline.checkpointed_txn < 0:
                    if pipeline.failed is None:
                        self._dispatcher.flush(timeout=tick)
                        if pipeline.checkpoint(force=False):
                            last_checkpoint = time.monotonic()
            except Exception:
                log.exception("background sync or checkpoint failed; the handle refuses writes")

    # -- helpers ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.root} is closed")

    def _check_writable(self) -> CommitPipeline:
        self._check_open()
        if self.readonly or self._pipeline is None:
            raise ReadOnlyError(f"database {self.root} was opened readonly; writes are refused")
        self._pipeline.check()
        return self._pipeline

    @contextmanager
    def _fatal_io(self, what: str) -> Iterator[None]:
        """An OS error while changing files outside the log (bucket directories, headers,
        compaction) leaves their durability unknown: fail the handle like a log error."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc, MktsError):
                raise  # a damaged file, not a failed write
            if self._pipeline is not None:
                self._pipeline._fail(exc)
            raise StoreFailedError(
                f"{what} failed ({exc}); this handle now refuses writes: close it and open "
                "the database again"
            ) from exc

    def _visible(self) -> None:
        if self._pipeline is not None:
            self._pipeline.make_visible()

    # -- writing ---------------------------------------------------------------------------
    def write(self, key: str, data: Any, *, variable: bool | None = None) -> int:
        """Write rows to one bucket (created from the data's columns on first write).

        One call is one transaction. Returns its transaction number (0 if there were no rows).
        """
        if variable is None or variable is False:
            txn = None
            if type(data) is np.ndarray:
                txn = self._write_fast(key, data.dtype, data)
            elif type(data) is dict:
                txn = self._write_fast(key, None, data)
            if txn is not None:
                return txn
        return self.write_many({key: data}, variable=variable)

    def _write_fast(self, key: str, dtype: np.dtype | None, data: Any) -> int | None:
        """The fast path (engine/fastpath.py) for a structured array (`dtype` its dtype) or a
        dict of numpy columns (`dtype` None) whose fields have the bucket's types; None when
        the general path must run (it also raises the errors)."""
        n = 0
        if dtype is None:
            got = fastpath.columns_dtype(data)
            if got is None:
                return None
            dtype, n = got
        elif data.ndim != 1:
            return None
        else:
            n = len(data)
        plan = self._fast_plan(key, dtype)
        if plan is None:
            return None
        pipeline = self._pipeline
        if self._closed or pipeline is None or pipeline.failed is not None:
            return None
        if type(data) is dict:
            data = fastpath.pack_columns(data, dtype, n)
            built = plan.one(data) if n == 1 else plan.rows(data)
        else:
            built = plan.one(data.tobytes()) if n == 1 else plan.rows(data)
        if built is None:
            return None
        return pipeline.commit_built(built[0], built[1])

    def _fast_plan(self, key: str, dtype: np.dtype) -> fastpath.InputPlan | None:
        """The fast-path plan for rows of `dtype` into the existing fixed bucket `key`
        (cached per key text until the dtype or the bucket changes), or None."""
        plan = self._fast.get(key) if type(key) is str else None
        if plan is not None and (plan.dtype is dtype or plan.dtype == dtype) \
                and self.catalog.buckets.get(plan.key) is plan.bucket:
            return plan
        if type(key) is not str or self._closed or self.readonly:
            return None
        try:
            k = parse_key(key)
        except MktsError:
            return None
        bucket = self.catalog.buckets.get(k)
        if bucket is None:
            return None
        plan = fastpath.input_plan(k, bucket.schema, dtype, self.calendar, MAX_TXN_BYTES,
                                   bucket)
        if plan is not None:
            if len(self._fast) >= 4096:
                self._fast.clear()
            self._fast[key] = plan
        return plan

    def _many_fast(self, key: str, data: np.ndarray) -> Sequence[SlotWrite | RowWrite] | None:
        """write_many's share of the fast path: the writes for `data` when `key` names an
        existing fixed bucket and the rows have its types (the plan cached as for write()),
        else None (the general path judges the rows and raises the errors)."""
        plan = self._fast_plan(key, data.dtype)
        if plan is None:
            return None
        if len(data) == 1:
            built = plan.one(data.tobytes())
            return None if built is None else built[1]
        return plan.plan(data)

    def write_many(self, items: Mapping[str, Any], *, variable: bool | None = None) -> int:
        """Write to several buckets as one transaction: all of it becomes visible and durable
        together, or none of it; invalid input anywhere writes nothing."""
        pipeline = self._check_writable()
        if not isinstance(items, Mapping):
            raise InvalidInputError("write_many() takes a dict {bucket key: data}")
        with self._meta_lock:
            plans: list[SlotWrite | RowWrite] = []
            ticks: list[tuple[BucketKey, Schema, ingest.Batch]] = []
            creates: list[tuple[BucketKey, Schema]] = []
            size = 0
            for key_text, data in items.items():
                if type(data) is np.ndarray and data.ndim == 1 and len(data) and not variable:
                    known = self._many_fast(key_text, data)
                    if known is not None:  # an existing bucket, rows of its own types
                        plans.extend(known)
                        size += sum(p.nbytes for p in known)
                        continue
                key = parse_key(key_text)
                cols = ingest.raw_columns(data, str(key))
                bucket = self.catalog.buckets.get(key)
                if bucket is None:
                    kind = VARIABLE if variable else FIXED
                    schema = ingest.infer_schema(key.tf, kind, cols, str(key))
                else:
                    schema = bucket.schema
                    if variable is not None and (schema.kind == VARIABLE) != variable:
                        raise SchemaError(
                            f"write to {key}: variable={variable} but the bucket is "
                            f"{schema.kind}; leave variable unset to follow the bucket"
                        )
                fast = None
                if bucket is None and type(data) is np.ndarray and schema.kind == FIXED:
                    # A bucket's first write, from an array: records by byte copies
                    # (engine/fastpath.py), or None when the general path must judge them.
                    # (Existing buckets were offered to _many_fast above.)
                    fp = fastpath.input_plan(key, schema, data.dtype, self.calendar,
                                             MAX_TXN_BYTES)
                    fast = None if fp is None else fp.plan(data)
                if fast is not None:
                    if bucket is None:
                        creates.append((key, schema))
                    plans.extend(fast)
                    size += sum(p.nbytes for p in fast)
                    continue
                batch = ingest.prepare(cols, schema, self.calendar, str(key))
                if len(batch) == 0:
                    continue
                if bucket is None:
                    creates.append((key, schema))
                if schema.kind == VARIABLE:
                    ticks.append((key, schema, batch))
                    size += len(batch) * (8 + schema.row_dtype.itemsize)
                else:
                    planned = plan_fixed(key, schema, batch, self.calendar)
                    plans.extend(planned)
                    size += sum(p.nbytes for p in planned)
            if not plans and not ticks:
                return 0
            if size > MAX_TXN_BYTES:
                raise InvalidInputError(
                    f"one transaction of {size >> 20} MiB is over the {MAX_TXN_BYTES >> 20} MiB "
                    "limit; split the write into several calls"
                )
            if creates:
                with self._rw.write(), self._fatal_io("creating a bucket"):
                    for key, schema in creates:
                        self.catalog.create(key, schema)

        def build() -> tuple[Payload, list[Any]]:
            writes: list[Any] = list(plans)
            planned: list[TickWrite] = []
            try:
                for key, schema, batch in ticks:
                    tick_writes = self._plan_ticks(key, schema, batch)
                    planned.extend(tick_writes)
                    writes.extend(tick_writes)
                return journal.encode_parts(writes), writes
            except BaseException:
                # Nothing of this transaction will be logged: undo its tick plans, newest
                # first, so later writes never merge rows that were not written.
                for w in reversed(planned):
                    self._ticks.discard(w)
                raise

        return pipeline.commit(build)

    def _plan_ticks(self, key: BucketKey, schema: Schema, batch: ingest.Batch) -> list[TickWrite]:
        """Runs on the commit leader, in commit order (blob offsets depend on earlier ones)."""
        bucket = self.catalog.get(key)
        assert batch.nanos is not None
        pinned: list[YearFile] = []  # the files the plan reads, open until it is done

        def file_of(y: int) -> YearFile | None:
            f = self.catalog.acquire(bucket, y)
            if f is not None:
                pinned.append(f)
            return f

        try:
            return plan_ticks(
                self._ticks, key, schema, self.calendar, batch.epochs, batch.nanos,
                batch.columns, file_of, lambda y: self.catalog.year_header(bucket, y).file_size,
            )
        finally:
            for f in pinned:
                self.catalog.release(f)

    def create(self, key: str, columns: Any, *, variable: bool = False) -> None:
        """Create an empty bucket; columns as {"Open": "f4", ...} or a structured dtype.

        Creating a bucket that exists with the same definition is a no-op."""
        self._check_writable()
        k = parse_key(key)
        schema = Schema.from_spec(k.tf, VARIABLE if variable else FIXED, columns)
        with self._meta_lock:
            existing = self.catalog.buckets.get(k)
            if existing is not None:
                if same_schema(existing.schema, schema):
                    return
                raise BucketExistsError(
                    f"bucket {k} already exists with columns {existing.schema.describe()} "
                    f"({existing.schema.kind}); destroy it first to change its definition"
                )
            with self._rw.write(), self._fatal_io(f"creating bucket {k}"):
                self.catalog.create(k, schema)

    def destroy(self, key: str) -> None:
        """Delete a bucket and all its data, durably."""
        pipeline = self._check_writable()
        k = parse_key(key)
        self._dispatcher.flush()  # triggered work for earlier writes first (at-least-once)
        with self._meta_lock:
            self.catalog.get(k)
            # Checkpoint first so that no log record refers to the bucket any more.
            with pipeline.exclusive():
                pipeline._checkpoint_locked()
                with self._rw.write(), self._fatal_io(f"destroying bucket {k}"):
                    self.catalog.destroy(k)

    def compact(self, key: str) -> dict[str, int]:
        """Rewrite a tick bucket's year files without garbage (one blob per interval).

        Each file is replaced atomically: a crash leaves the old or the new file, never a mix.
        Returns {"before": bytes, "after": bytes} of the data regions."""
        pipeline = self._check_writable()
        k = parse_key(key)
        before = after = 0
        self._dispatcher.flush()
        with self._meta_lock:
            bucket = self.catalog.get(k)
            if bucket.schema.kind != VARIABLE:
                return {"before": 0, "after": 0}  # fixed buckets hold no garbage
            # Checkpoint first: no log record may refer to offsets in the old files.
            with pipeline.exclusive():
                pipeline._checkpoint_locked()
                with self._rw.write(), self._fatal_io(f"compacting bucket {k}"):
                    for y in bucket.sorted_years():
                        with self.catalog.pinned(bucket, y) as f:
                            assert f is not None
                            before += f.size() - f.data_start
                            path, tmp = f.path, f.path + ".tmp"
                            if self._fs.exists(tmp):
                                self._fs.unlink(tmp)
                            compact_year_file(self._fs, f, bucket.schema, tmp)
                        self.catalog.cache.drop(bucket.files, y)
                        self._fs.replace(tmp, path)
                        self._fs.fsync_dir(bucket.path)
                        with self.catalog.pinned(bucket, y) as g:
                            assert g is not None
                            after += g.size() - g.data_start
                    self._ticks.forget(k)
        return {"before": before, "after": after}

    def checkpoint(self) -> None:
        """Make every applied write durable in the data files and retire the log (after
        waiting for triggered work, so no trigger loses its input)."""
        pipeline = self._check_writable()
        self._dispatcher.flush()
        pipeline.checkpoint()

    # -- reading ---------------------------------------------------------------------------
    def read(self, key: str, start: Any = None, end: Any = None, *, limit: int | None = None,
             limit_from_start: bool = False, columns: Sequence[str] | None = None) -> Result:
        """Rows of one bucket whose interval overlaps [start, end] (both inclusive)."""
        self._check_open()
        k = parse_key(key)
        start_ns, end_ns, limit = _range_args(start, end, limit)
        self._visible()
        with self._rw.read():
            bucket = self.catalog.get(k)
            fn = query.read_ticks if bucket.schema.kind == VARIABLE else query.read_fixed
            return fn(self.catalog, bucket, start_ns, end_ns, limit=limit,
                      limit_from_start=limit_from_start, columns=columns)

    def query(self, pattern: str, start: Any = None, end: Any = None, *,
              limit: int | None = None, limit_from_start: bool = False,
              columns: Sequence[str] | None = None) -> dict[str, Result]:
        """Read every bucket matching `SYM[,SYM...]/TF/ATTR` (`*` = all); {key: Result}
        in request order (symbols as listed, or sorted for `*`). Unknown symbols are absent."""
        self._check_open()
        pat = parse_pattern(pattern)
        start_ns, end_ns, limit = _range_args(start, end, limit)
        self._visible()
        out: dict[str, Result] = {}
        with self._rw.read():
            keys = [k for k in self.catalog.buckets if pat.matches(k)]
            if pat.symbols is not None:
                order = {s: i for i, s in enumerate(pat.symbols)}
                keys.sort(key=lambda k: (order[k.symbol], k.timeframe, k.attrgroup))
            else:
                keys.sort()
            for k in keys:
                bucket = self.catalog.buckets[k]
                out[str(k)] = query.read_bucket(self.catalog, bucket, start_ns, end_ns,
                                               limit=limit, limit_from_start=limit_from_start,
                                               columns=columns)
        return out

    def list_keys(self) -> list[str]:
        self._check_open()
        with self._meta_lock:
            return sorted(str(k) for k in self.catalog.buckets)

    def list_symbols(self) -> list[str]:
        self._check_open()
        with self._meta_lock:
            return sorted({k.symbol for k in self.catalog.buckets})

    def info(self, key: str) -> dict[str, Any]:
        """{"timeframe", "columns" ({name: dtype}, Epoch first), "kind", "years"}."""
        self._check_open()
        self._visible()  # interval mode: "years" must include this handle's own writes
        k = parse_key(key)
        with self._meta_lock:
            bucket: Bucket = self.catalog.get(k)
            out: dict[str, Any] = {
                "key": str(k),
                "timeframe": k.timeframe,
                "columns": bucket.schema.describe(),
                "kind": bucket.schema.kind,
                "years": bucket.sorted_years(),
            }
            if bucket.schema.kind == VARIABLE:
                self._visible()
                live = garbage = rows = 0
                with self._rw.read():
                    for y in bucket.sorted_years():
                        with self.catalog.pinned(bucket, y) as f:
                            assert f is not None
                            occupied = f.slots[f.occupied()]
                            used = int(occupied["total_bytes"].sum())
                            live += used
                            rows += int(occupied["nrows"].sum())
                            garbage += f.size() - f.data_start - used
                out.update(live_bytes=live, garbage_bytes=garbage, rows=rows)
            return out

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every triggered action (and the writes triggers made) is done.

        Returns False if `timeout` seconds passed first."""
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._visible()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._dispatcher.flush(left):
                return False
            # With sync="interval" a write a trigger made is logged but applied (and handed
            # to triggers) only at the next fsync: make it visible and wait for its triggers.
            p = self._pipeline
            if (p is None or p.sync_mode != "interval" or p.failed is not None
                    or p.applied_txn >= self._log.last_txn):
                return True

    def subscribe(self, pattern: str, callback: Callable[[str, dict[str, Any]], Any], *,
                  max_pending: int = 10_000) -> Subscription:
        """Call `callback(key, columns)` for each batch of rows newly written to buckets
        matching `pattern` (`*` matches one key part), on a thread of its own. A subscriber
        more than `max_pending` batches behind loses the oldest ones; writers never wait."""
        self._check_open()
        return self._dispatcher.subscribe(pattern, callback, max_pending)

    @property
    def triggers(self) -> list[Any]:
        return self._dispatcher.triggers

    def stats(self) -> dict[str, Any]:
        p = self._pipeline
        return {
            "triggers_fired": self._dispatcher.fired,
            "trigger_errors": self._dispatcher.errors,
            "worker_errors": self.worker_errors,
            "sync": self.sync_mode,
            "last_txn": self._log.last_txn if self._log is not None else 0,
            "applied_txn": p.applied_txn if p is not None else 0,
            "wal_bytes": self._log.size_bytes if self._log is not None else 0,
            "failed": None if p is None or p.failed is None else str(p.failed),
            "open_files": len(self.catalog.cache),
            "max_open_files": self.catalog.cache.capacity,
            "file_evictions": self.catalog.cache.evictions,
        }

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint, stop background work and release the lock. Closing twice is harmless."""
        if self._closed:
            return
        for w in self._workers:
            stop = getattr(w, "stop", None)
            if callable(stop):
                try:
                    stop()
                except Exception:
                    log.exception("background worker %r failed to stop", w)
        for t in self._worker_threads:
            t.join(timeout=10)
            if t.is_alive():
                log.warning("background worker thread %s did not stop within 10 s", t.name)
        try:  # drain triggers first: their own writes must still be accepted
            self._dispatcher.stop()
        except Exception:
            log.exception("stopping triggers failed")
        self._closed = True
        self._stop.set()
        if self._bg is not None:
            self._bg.join()
        try:
            if self._pipeline is not None and self._pipeline.failed is None:
                self._pipeline.checkpoint()
        finally:
            self._release()

    def _release(self) -> None:
        catalog = getattr(self, "catalog", None)
        if catalog is not None:
            catalog.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._lock_handle is not None:
            self._fs.unlock(self._lock_handle)
            self._lock_handle = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else f"sync={self.sync_mode}"
        return f"<mkts.Database {self.root} {mode}{' closed' if self._closed else ''}>"


def _range_args(start: Any, end: Any, limit: int | None) -> tuple[int | None, int | None, int | None]:
    start_ns = None if start is None else to_epoch_ns(start, "start")
    end_ns = None if end is None else to_epoch_ns(end, "end")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInputError(f"limit={limit!r} must be a non-negative integer or None")
    return start_ns, end_ns, limit
