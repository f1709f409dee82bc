"""`Database`: the public handle, a thin facade over the parts of the engine. This module
owns opening (take the root, load the catalog, replay the log: docs/design.md §6), the
checkpoint, backup, seal and trigger calls, statistics and closing; the read calls are
engine/dbread.py's, the write calls engine/dbwrite.py's, over the state in engine/dbstate.py.
Writes go through the write path (engine/writepath.py) and the commit pipeline
(engine/commit.py), reads through engine/query.py, triggers through engine/dispatch.py, and
the sync, checkpoint and worker threads are engine/background.py's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from mkts.engine.background import Background
from mkts.engine.backup import BackupResult, backup_root
from mkts.engine.blockcache import BlockCache
from mkts.engine.catalog import Catalog, any_bucket
from mkts.engine.commit import CommitPipeline
from mkts.engine.contracts import BgWorker, Trigger
from mkts.engine.dbread import ReadAPI
from mkts.engine.dbwrite import WriteAPI
from mkts.engine.dispatch import Dispatcher, Subscription
from mkts.engine.errors import InvalidInputError
from mkts.engine.events import WriteEvent, event_records, merged_records
from mkts.engine.options import DEFAULTS, RECOVERY_MODES, SYNC_MODES
from mkts.engine.result import Result
from mkts.engine.rootmeta import ROOT_FORMAT, ROOT_FORMAT_3, root_timezone, take_root
from mkts.engine.rwlock import RWLock
from mkts.engine.sealjob import AutoSealer, retire_seal_records, seal_years
from mkts.engine.timeutil import get_calendar
from mkts.engine.writepath import WritePath
from mkts.wal import WriteAheadLog
from mkts.wal.fs import BackupFileSystem, FileSystem, OsFileSystem

__all__ = ["Database", "open_database", "WriteEvent"]


def open_database(
    root: str | os.PathLike[str],
    *,
    timezone: str | None = DEFAULTS.timezone,
    readonly: bool = False,
    sync: str = DEFAULTS.sync,
    sync_interval_ms: int = DEFAULTS.sync_interval_ms,
    checkpoint_interval_s: float = DEFAULTS.checkpoint_interval_s,
    max_wal_mb: int = DEFAULTS.max_wal_mb,
    recovery: str = DEFAULTS.recovery,
    fs: FileSystem | None = None,
    triggers: Sequence[tuple[str, Trigger]] = (),
    workers: Sequence[BgWorker] = (),
    create: bool = True,
    max_open_files: int | None = DEFAULTS.max_open_files,
    allow_missing_columns: bool = DEFAULTS.allow_missing_columns,
    seal_after_days: float = DEFAULTS.seal_after_days,
    bulk_load_rows: int = DEFAULTS.bulk_load_rows,
    block_cache_mb: int = DEFAULTS.block_cache_mb,
) -> Database:
    """Open the database at `root`, creating the directory if it is missing and `create` is
    true (a read-only open never creates; otherwise a missing root is `RootNotFoundError`).

    `timezone` defaults to the root's own (UTC for a new root); opening an existing root
    with a different zone is an error, because slot positions depend on it. The defaults of
    the settings are `engine.options.DEFAULTS` (the same as mkts.yml's).
    `triggers` is a list of (key pattern, trigger): each trigger's optional `start(db)` is
    called once, then `fire(key_path, records)` for every matching write, replayed ones
    included, on the trigger thread. `workers` are background workers: after replay each
    one's optional `start(db)` is called and its `run()` starts on a thread of its own; at
    close its optional `stop()` is called. A worker that raises is logged, not fatal.
    `max_open_files` bounds the year files kept open (None: derived from the process's
    RLIMIT_NOFILE, see docs/format.md "Open files"); more are opened and closed as needed.
    `allow_missing_columns`: a write may leave out columns of an existing bucket, which then
    take their fill value (README.md "Changing columns"); otherwise that is a SchemaError.
    `block_cache_mb`: MiB of decoded chunks of sealed years this handle keeps for repeated
    reads (docs/format.md "The decoded block cache"; 0: none).
    """
    return Database(os.fspath(root), timezone=timezone, readonly=readonly, sync=sync,
                    sync_interval_ms=sync_interval_ms, checkpoint_interval_s=checkpoint_interval_s,
                    max_wal_mb=max_wal_mb, recovery=recovery, fs=fs, triggers=triggers,
                    workers=workers, create=create, max_open_files=max_open_files,
                    allow_missing_columns=allow_missing_columns,
                    seal_after_days=seal_after_days, bulk_load_rows=bulk_load_rows,
                    block_cache_mb=block_cache_mb)


class Database(ReadAPI, WriteAPI):
    """A handle on one database root. Thread-safe; use as a context manager or call close().

    Guarantees: one write() / write_many() call is one transaction, visible and durable
    all-or-nothing; with sync="always" it is durable (fsynced to the log) when the call
    returns. Readers never see part of a transaction.
    """

    def __init__(self, root: str, *, timezone: str | None, readonly: bool, sync: str,
                 sync_interval_ms: int, checkpoint_interval_s: float, max_wal_mb: int,
                 recovery: str, fs: FileSystem | None,
                 triggers: Sequence[tuple[str, Trigger]],
                 workers: Sequence[BgWorker] = (), create: bool = True,
                 max_open_files: int | None = None, allow_missing_columns: bool = False,
                 seal_after_days: float = DEFAULTS.seal_after_days,
                 bulk_load_rows: int = DEFAULTS.bulk_load_rows,
                 block_cache_mb: int = DEFAULTS.block_cache_mb) -> None:
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
        if isinstance(seal_after_days, bool) or not isinstance(seal_after_days, (int, float)) \
                or not seal_after_days >= 0:
            raise InvalidInputError(f"seal_after_days={seal_after_days!r} must be a number of "
                                    "days >= 0 (0: never seal by itself)")
        if isinstance(bulk_load_rows, bool) or not isinstance(bulk_load_rows, int) \
                or bulk_load_rows < 0:
            raise InvalidInputError(f"bulk_load_rows={bulk_load_rows!r} must be an integer "
                                    ">= 0 (0: never write a bulk load sealed)")
        if isinstance(block_cache_mb, bool) or not isinstance(block_cache_mb, int) \
                or block_cache_mb < 0:
            raise InvalidInputError(f"block_cache_mb={block_cache_mb!r} must be an integer "
                                    ">= 0 (MiB of decoded sealed chunks kept; 0: none)")
        self._block_cache_mb = block_cache_mb
        self._bulk_load_rows = bulk_load_rows
        self._max_open_files = max_open_files
        self._allow_missing = bool(allow_missing_columns)
        self._sealer: AutoSealer | None = None
        self._seal_after_days = float(seal_after_days)
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
        self._background = Background(self._dispatcher, workers)
        self._rw = RWLock()
        self._meta_lock = threading.RLock()  # create/destroy and catalog changes
        self._seal_lock = threading.Lock()  # one seal at a time (engine/sealjob.py)
        self._log: WriteAheadLog | None = None
        self._pipeline: CommitPipeline | None = None
        try:
            self._open(timezone, recovery, sync_interval_ms, checkpoint_interval_s, max_wal_mb)
        except BaseException:
            self._release()
            raise

    def _open(self, timezone: str | None, recovery: str, sync_interval_ms: int,
              checkpoint_interval_s: float, max_wal_mb: int) -> None:
        if timezone is not None:
            get_calendar(timezone)  # a bad zone is an error before anything is created
        fs, root = self._fs, self.root
        self._lock_handle = take_root(fs, root, readonly=self.readonly, create=self._create,
                                      has_buckets=lambda: any_bucket(fs, root))
        # The buckets' own headers say which zone their slots were laid out in: load them
        # first (loading needs no calendar), so a lost or edited mkts.root is caught.
        self.catalog = Catalog(fs, root, get_calendar("UTC"), readonly=self.readonly,
                               max_open_files=self._max_open_files,
                               on_sync_error=self._data_sync_failed)
        if self._block_cache_mb:
            self.catalog.block_cache = BlockCache(self._block_cache_mb << 20, fs)
        self.catalog.load()
        self.timezone = root_timezone(
            fs, root, timezone, readonly=self.readonly,
            bucket_zones={b.timezone for b in self.catalog.buckets.values()},
            root_format=ROOT_FORMAT_3 if any(b.table is not None
                                             for b in self.catalog.buckets.values())
            else ROOT_FORMAT)
        self.calendar = self.catalog.calendar = get_calendar(self.timezone)
        self._writes = WritePath(self.catalog, self.calendar, self._dispatcher,
                                 allow_missing_columns=self._allow_missing,
                                 bulk_load_rows=self._bulk_load_rows)
        if self.readonly:
            return
        self._log = WriteAheadLog.open(os.path.join(root, "wal"), fs, recovery=recovery)
        self._pipeline = self._writes.recover(self._log, rwlock=self._rw, sync=self.sync_mode,
                                              max_log_bytes=max_wal_mb << 20)
        if self._seal_after_days > 0:
            self._sealer = AutoSealer(self, self._pipeline, self._seal_after_days)
        self._background.start(self, self._pipeline, sync_interval_s=sync_interval_ms / 1000,
                               checkpoint_interval_s=checkpoint_interval_s,
                               after_checkpoint=None if self._sealer is None
                               else self._sealer.kick)

    def backup(self, dest: str | os.PathLike[str]) -> BackupResult:
        """Copy the database into the directory `dest` while writers keep writing
        (docs/backup.md): the copy holds it as of one transaction (`result.txn`: every
        transaction up to it, none after) and opens like any root (restore = open the
        copy). Starts with a checkpoint (writers wait as for any checkpoint), then copies
        files without blocking anyone. A later backup into the same `dest` copies only the
        files that changed; an interrupted one leaves `dest` as it was."""
        self._check_open()
        if self._pipeline is not None:
            self.checkpoint()
        return backup_root(self.root, os.fspath(dest), fs=self._fs
                           if isinstance(self._fs, BackupFileSystem) else None)

    def seal(self, key: str | None = None, year: int | None = None) -> list[str]:
        """Seal year files (docs/format.md "The three states of a year"): every closed year
        (before the current one in the database's zone) of every bucket, or of `key`, or
        just `year` (the current year too). Returns "KEY/YEAR" of each year sealed now.
        Reads return exactly what they returned before; a later write into a sealed year
        goes to its overlay, which the next seal of the year merges. Checkpoints first,
        like `checkpoint()`; writers wait only for the swap (engine/sealjob.py)."""
        pipeline = self._check_writable()
        self._dispatcher.flush()
        return seal_years(self, pipeline, key, year)

    def checkpoint(self) -> None:
        """Make every write that returned before this call durable in the data files, in
        every sync mode, and retire the write-ahead log.

        First waits as `wait_for_triggers()` does, so that the writes the triggers make for
        those writes are included and no trigger loses its input. When it returns, the year
        files written so far are fsynced (their writes survive a power failure even with
        sync="interval" or "off") and the log is retired up to its last transaction, so an
        open after a crash replays nothing older. Writers wait while it runs. Raises
        ReadOnlyError on a readonly handle and StoreFailedError on a failed one; an fsync
        error here is raised and fails the handle. Checkpoints also run by themselves every
        `checkpoint_interval_s`, when the log grows past `max_wal_mb`, and at close."""
        pipeline = self._check_writable()
        self.wait_for_triggers()
        pipeline.checkpoint()

    def sql(self, statement: str) -> Result:
        """Run one SQL SELECT with DuckDB (`pip install 'mkts[sql]'`) over the buckets: a
        bucket key in double quotes is a table (`SELECT * FROM "AAPL/1Min/OHLCV"`) with the
        columns a read returns (Epoch int64 seconds first; a tick bucket's Nanoseconds
        last). `Epoch` bounds ANDed in the WHERE clause limit the year files and slots read.
        Returns the rows as a Result keyed "SQL" (`to_arrow()`, `to_polars()`,
        `to_pandas()`); each bucket is read as `read()` would, not as one snapshot of all."""
        from mkts.engine.sql import run_sql

        self._check_open()
        return run_sql(self, statement)


    # -- triggers --------------------------------------------------------------------------
    def wait_for_triggers(self, timeout: float | None = None) -> bool:
        """Block until the triggers are done with every write that returned before this call.

        When it returns True, every `fire` for those transactions has returned, and so has
        every `fire` for the writes the triggers made meanwhile (and theirs in turn), in
        every sync mode; what they wrote (ondiskagg's bars) is readable. Coalescing windows
        are cut short. Returns False if `timeout` seconds passed first. Subscriber callbacks
        run on threads of their own and are not waited for.

        It is not a durability barrier: what survives a power failure stays what the sync
        mode promises (with sync="off", none of those writes, the triggers' included, before
        a checkpoint); `checkpoint()` makes them durable. Called inside a trigger's `fire`
        it does not wait for the triggers (it would wait for itself)."""
        self._check_open()
        return self._background.wait_for_triggers(self._pipeline, timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """`wait_for_triggers()` under its older name, kept as an alias. Despite the name it
        syncs nothing to disk: `checkpoint()` does."""
        return self.wait_for_triggers(timeout)

    def subscribe(self, pattern: str, callback: Callable[[str, dict[str, Any]], Any], *,
                  max_pending: int = 10_000) -> Subscription:
        """Call `callback(key, columns)` for each batch of rows newly written to buckets
        matching the key pattern `pattern` (engine.patterns), on a thread of its own. A subscriber
        more than `max_pending` batches behind loses the oldest ones; writers never wait."""
        self._check_open()
        return self._dispatcher.subscribe(pattern, callback, max_pending)

    @property
    def triggers(self) -> list[Trigger]:
        return self._dispatcher.triggers

    @property
    def worker_errors(self) -> int:
        """Exceptions raised by background workers' run() (each logged)."""
        return self._background.workers.errors

    def stats(self) -> dict[str, Any]:
        p, wal = self._pipeline, self._log
        return {
            "triggers_fired": self._dispatcher.fired,
            "trigger_errors": self._dispatcher.errors,
            "trigger_lag_s": self._dispatcher.lag_s(),
            "worker_errors": self.worker_errors,
            "sync": self.sync_mode,
            "last_txn": wal.last_txn if wal is not None else 0,
            "applied_txn": p.applied_txn if p is not None else 0,
            "wal_bytes": wal.size_bytes if wal is not None else 0,
            "failed": None if p is None or p.failed is None else str(p.failed),
            "open_files": len(self.catalog.cache),
            "max_open_files": self.catalog.cache.capacity,
            "file_evictions": self.catalog.cache.evictions,
            **self._block_cache_stats(),
        }

    def _block_cache_stats(self) -> dict[str, int]:
        """The decoded block cache's figures (docs/format.md "The decoded block cache"),
        all 0 when it is off."""
        bc = self.catalog.block_cache
        s = bc.stats() if bc is not None else None
        return {"block_cache_" + k: getattr(s, k) if s is not None else 0
                for k in ("hits", "misses", "evictions", "entries", "bytes", "capacity")}

    def _data_sync_failed(self, exc: BaseException) -> None:
        """An evicted year file's fsync failed: fail the handle like a checkpoint would."""
        if self._pipeline is not None:
            self._pipeline.fail(exc)

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the workers, drain the triggers, checkpoint and release the lock. Closing
        twice is harmless."""
        if self._closed:
            return
        self._background.drain()  # triggers' own writes must still be accepted meanwhile
        self._closed = True
        self._background.stop()
        if self._sealer is not None:
            self._sealer.stop()
        try:
            if self._pipeline is not None and self._pipeline.failed is None:
                retire_seal_records(self._pipeline)  # WAL op 6 records (engine/sealjob.py)
                self._pipeline.checkpoint()
                # the checksums of closed years written lately (docs/format.md "File record")
                with self._pipeline.fatal_io("recording the data files"):
                    self.catalog.record_files(settle=True)
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
