"""`Database`: the public handle, a facade over the parts of the engine. Opening takes the
root and replays the log (docs/design.md §6); writes go through the write path (engine/writepath.py)
and the commit pipeline (engine/commit.py), reads through engine/query.py, triggers through
engine/dispatch.py, and the sync, checkpoint and worker threads are engine/background.py's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mkts.engine import alter, corrections, journal, query
from mkts.engine import functions as _functions
from mkts.engine.background import Background
from mkts.engine.backup import BackupResult, backup_root
from mkts.engine.blockcache import BlockCache
from mkts.engine.catalog import Bucket, Catalog, any_bucket
from mkts.engine.columns import SchemaWrite
from mkts.engine.commit import CommitPipeline
from mkts.engine.contracts import BgWorker, Trigger, Write
from mkts.engine.dispatch import Dispatcher, Subscription
from mkts.engine.errors import (
    BucketExistsError,
    BucketNotFoundError,
    ClosedError,
    InvalidInputError,
    ReadOnlyError,
    SchemaError,
)
from mkts.engine.events import WriteEvent, event_records, merged_records
from mkts.engine.header import same_schema
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.options import DEFAULTS, RECOVERY_MODES, SYNC_MODES
from mkts.engine.patterns import parse_pattern
from mkts.engine.plan import IngestWrite
from mkts.engine.result import Result
from mkts.engine.rootmeta import (
    ROOT_FORMAT,
    ROOT_FORMAT_3,
    root_timezone,
    take_root,
    use_format_3,
)
from mkts.engine.rwlock import RWLock
from mkts.engine.schema import FIXED, VARIABLE, Schema
from mkts.engine.sealjob import AutoSealer, retire_seal_records, seal_years
from mkts.engine.sealread import merged_fixed
from mkts.engine.ticks import compact_bucket, tick_usage
from mkts.engine.timeutil import get_calendar, to_epoch_ns
from mkts.engine.writepath import WritePath
from mkts.wal import WriteAheadLog
from mkts.wal.fs import BackupFileSystem, FileSystem, OsFileSystem

__all__ = ["Database", "open_database", "WriteEvent"]

log = logging.getLogger("mkts.engine")

# How long a read of a bucket a trigger maintains waits, at most, for the trigger's work on
# the writes acknowledged before it (a stuck trigger must not hang readers for ever).
READ_SETTLE_S = 60




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


class Database:
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

    def _visible(self) -> None:
        if self._pipeline is not None:
            self._pipeline.make_visible()

    # -- writing ---------------------------------------------------------------------------
    def write(self, key: str, data: Any, *, variable: bool | None = None) -> int:
        """Write rows to one bucket (created from the data's columns on first write).

        One call is one transaction. Returns its transaction number: the write-ahead log's
        number for it, an int >= 1 that increases with every transaction (across reopens
        too), or 0 when `data` held no rows and nothing was written. When it returns, the
        rows are readable and as durable as the sync mode promises (README.md "Durability").
        """
        if variable is None or variable is False:
            pipeline = self._pipeline
            if pipeline is not None and pipeline.failed is None and not self._closed:
                built = self._writes.fast(key, data)
                if built is not None:
                    writes: list[Write] = list(self._writes.bulk.fixed(list(built[1])))
                    if any(type(w) is IngestWrite for w in writes):  # a bulk load
                        return pipeline.commit_built(journal.encode_parts(writes), writes)
                    return pipeline.commit_built(built[0], built[1])
        return self.write_many({key: data}, variable=variable)

    def write_many(self, items: Mapping[str, Any], *, variable: bool | None = None) -> int:
        """Write to several buckets as one transaction: all of it becomes visible and durable
        together, or none of it; invalid input anywhere writes nothing.

        Returns the transaction number, as `write` does (one number for all the buckets; 0
        when no bucket got a row). To mix writes with deletes and updates in one
        transaction, use `transaction()`."""
        pipeline = self._check_writable()
        if not isinstance(items, Mapping):
            raise InvalidInputError("write_many() takes a dict {bucket key: data}")
        with self._meta_lock:
            txn = self._writes.plan(items, variable)
            if txn is None:
                return 0
            if txn.creates:
                with self._rw.write(), pipeline.fatal_io("creating a bucket"):
                    for key, schema in txn.creates:
                        self.catalog.create(key, schema)
            stale = self._writes.stale_targets(txn)
            if stale:  # year files of before a column change: migrate them first
                self._migrate(pipeline, stale)
        # Bulk loads write their sealed files here, outside the lock (docs/format.md
        # "Bulk loads": a write that reached the year first is merged at apply).
        txn.fixed = self._writes.bulk.fixed(txn.fixed)
        # tick bulk loads: the commit leader decides op 7 or ticks (Transaction.build)
        txn.bulk, txn.ticks = self._writes.bulk.split_ticks(txn.ticks, self._dispatcher.wants())
        return pipeline.commit(txn.build)

    def delete(self, key: str, start: Any = None, end: Any = None) -> int:
        """Remove the rows of bucket `key` with start <= time <= end, as one transaction;
        returns how many rows were removed.

        Times follow the read rules (`read`); both ends are optional. A fixed bucket's rows
        go by their interval label (deleting from 10:02 keeps the 10:00 bar of a 5Min
        bucket), a tick bucket's by their nanosecond time. A year file left without rows
        is removed. Durable as the sync mode promises, and applied when it returns (also
        with sync="interval"); triggers hear which range was removed (`Records.removed`)."""
        with self.transaction() as tx:
            tx.delete(key, start, end)
        return sum(tx.removed.values())

    def update(self, key: str, data: Any, *, start: Any = None, end: Any = None,
               variable: bool | None = None) -> int:
        """Replace the rows of bucket `key` in [start, end] by `data`, atomically: the
        delete of that range (`delete`; by default from the first to the last row of
        `data`) and the write of `data` are one transaction, and no reader sees the range
        half-replaced. Returns the transaction number (0 when nothing changed)."""
        with self.transaction() as tx:
            tx.update(key, data, start=start, end=end, variable=variable)
        return tx.txn

    def transaction(self) -> _TransactionScope:
        """`with db.transaction() as tx:` gathers `tx.write(key, data)`,
        `tx.delete(key, start, end)` and `tx.update(key, data, start=, end=)` across
        buckets, in call order, and commits them as one transaction when the block ends
        without an exception (nothing is written if it raises, or if any step is invalid).
        Afterwards `tx.txn` is its number and `tx.removed` the rows each bucket's deletes
        removed ({key: rows})."""
        self._check_writable()
        return _TransactionScope(self)

    def _commit_changes(self, changes: corrections.Changes) -> None:
        pipeline = self._check_writable()
        with self._meta_lock:
            plan = corrections.prepare(self._writes, changes, self.timezone)
            if plan is None:
                return
            if plan.creates:
                with self._rw.write(), pipeline.fatal_io("creating a bucket"):
                    for key, schema in plan.creates:
                        if key not in self.catalog.buckets:
                            self.catalog.create(key, schema)
            # year files of before a column change are migrated first: a delete plans and
            # clears their slots in the bucket's current layout (docs/format.md "Column changes")
            stale = [(b, y) for k in sorted(plan.keys(), key=str)
                     if (b := self.catalog.buckets.get(k)) is not None for y in sorted(b.stale)]
            if stale:
                self._migrate(pipeline, stale)
        changes.txn = pipeline.commit_exclusive(plan.build)
        changes.removed = plan.removed

    def create(self, key: str, columns: Any, *, variable: bool = False) -> None:
        """Create an empty bucket; columns as {"Open": "f4", ...} or a structured dtype.

        Creating a bucket that exists with the same definition is a no-op."""
        pipeline = self._check_writable()
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
            with self._rw.write(), pipeline.fatal_io(f"creating bucket {k}"):
                self.catalog.create(k, schema)

    def destroy(self, key: str) -> list[str]:
        """Delete a bucket and all its data, durably, together with the buckets an attached
        trigger maintains from it (ondiskagg's bars of a 1Min bucket; a trigger's optional
        `sources`, docs/plugins.md "Buckets a trigger maintains"): all of them or none,
        across crashes too. Returns the keys destroyed, `key` first."""
        pipeline = self._check_writable()
        k = parse_key(key)
        self._dispatcher.flush()  # triggered work for earlier writes first (at-least-once)
        with self._meta_lock:
            self.catalog.get(k)
            keys = [k, *self._dispatcher.derived(k, sorted(self.catalog.buckets))]
            # Checkpoint first so that no log record refers to the buckets any more.
            with pipeline.quiesced(), self._rw.write(), \
                    pipeline.fatal_io(f"destroying bucket {k}"):
                self.catalog.destroy_all(keys)
        return [str(x) for x in keys]

    def compact(self, key: str) -> dict[str, int]:
        """Rewrite a tick bucket's year files without garbage (one blob per interval).

        Each file is replaced atomically: a crash leaves the old or the new file, never a mix.
        Returns {"before": bytes, "after": bytes} of the data regions."""
        pipeline = self._check_writable()
        k = parse_key(key)
        self._dispatcher.flush()
        with self._meta_lock:
            bucket = self.catalog.get(k)
            if bucket.schema.kind != VARIABLE:
                return {"before": 0, "after": 0}  # fixed buckets hold no garbage
            # Checkpoint first: no log record may refer to offsets in the old files.
            with pipeline.quiesced(), self._rw.write(), \
                    pipeline.fatal_io(f"compacting bucket {k}"):
                before, after = compact_bucket(self._fs, self.catalog, bucket)
                self._writes.forget(k)
                bucket.touched.update(bucket.years)  # new contents: new checksums
                self.catalog.record_files([bucket], settle=True)
        return {"before": before, "after": after}

    # -- column changes (docs/format.md "Column changes") ----------------------------------
    def add_column(self, key: str, name: str, dtype: Any, fill: Any = 0) -> int:
        """Add column `name` of type `dtype` (as in `create`) to bucket `key`, last; rows
        written before it read `fill` (a number the type holds exactly; "" for strings).
        Returns the transaction number. See `rename_column` for what every change promises."""
        return self._alter(key, "add", (name, dtype, fill))

    def drop_column(self, key: str, name: str) -> int:
        """Remove column `name` from bucket `key` (not Epoch, not Nanoseconds, not the last
        one); its values are no longer read. Returns the transaction number."""
        return self._alter(key, "drop", (name,))

    def rename_column(self, key: str, old: str, new: str) -> int:
        """Rename column `old` of bucket `key` to `new`. Returns the transaction number.

        A column change is one transaction, durable in the log when the call returns (in
        every sync mode), and costs the same whatever the bucket holds: no data file is
        rewritten. Every year file, live or not, reads in the new columns at once. Later
        writes must carry the new columns (or leave some out with
        `allow_missing_columns=True`); the first write into a year file written before the
        change rewrites that file once. A bad name or type, a name taken, an unknown column
        or a fill the type cannot hold raise SchemaError (UnknownColumnError for an unknown
        column) and change nothing."""
        return self._alter(key, "rename", (old, new))

    def _alter(self, key: str, op: str, args: tuple[Any, ...]) -> int:
        pipeline = self._check_writable()
        k = parse_key(key)
        self._dispatcher.flush()  # triggered work for earlier writes, with the old columns
        with self._meta_lock:
            changes = self._column_changes(k, op, args)
            # Checkpoint first: no log record may refer to the old columns (replay decodes
            # every record with the bucket's schema as bucket.hdr and op 4 records leave it).
            with pipeline.quiesced():
                with pipeline.fatal_io(f"changing the columns of {k}"):
                    use_format_3(self._fs, self.root, self.timezone)
                return pipeline.commit_quiesced(journal.encode(changes), changes)

    def _column_changes(self, k: BucketKey, op: str, args: tuple[Any, ...]
                        ) -> list[SchemaWrite]:
        """The change of `k` and those the triggers make to the buckets they maintain from
        it (one transaction); SchemaError when a maintained bucket is changed directly."""
        bucket = self.catalog.get(k)
        makers = self._dispatcher.sources_of(k) if self._dispatcher.maintaining else ()
        if makers:
            raise SchemaError(
                f"{k} is maintained by a trigger from its base bucket(s); change the columns "
                "of the base instead (the trigger changes this bucket with it)")
        changes = [alter.plan_change(bucket, op, args)]
        for key_text, dop, dargs in self._dispatcher.column_changes(k, bucket.schema.names,
                                                                    op, args):
            derived = self.catalog.buckets.get(parse_key(key_text))
            if derived is None or derived.key == k:
                continue
            names = derived.schema.names
            if (dop == "drop" and dargs[0] not in names) or (dop == "add" and dargs[0] in names):
                continue  # already as the change would make it
            changes.append(alter.plan_change(derived, dop, dargs))
        return changes

    def _migrate(self, pipeline: CommitPipeline, targets: list[tuple[Bucket, int]]) -> None:
        """Rewrite year files of before a column change in their bucket's columns, each
        swapped in atomically, after a checkpoint (docs/format.md "Column changes")."""
        with pipeline.quiesced(), self._rw.write(), \
                pipeline.fatal_io(f"migrating year files of {targets[0][0].key}"):
            migrated = []
            for bucket, year in targets:
                if year in bucket.stale:
                    alter.migrate_year(self.catalog, bucket, year)
                    self._writes.forget(bucket.key)
                    migrated.append(bucket)
            # no log record says a file was migrated: record the new bytes now, as
            # compaction does, or a crash before the next checkpoint leaves a stale record
            if migrated:
                self.catalog.record_files(list({id(b): b for b in migrated}.values()),
                                          settle=True)

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

    # -- reading ---------------------------------------------------------------------------
    def read(self, key: str, start: Any = None, end: Any = None, *, limit: int | None = None,
             limit_from_start: bool = False, columns: Sequence[str] | None = None,
             functions: Sequence[str] | None = None) -> Result:
        """Rows of one bucket whose interval overlaps [start, end] (both inclusive).

        `functions` (MarketStore's call strings, e.g.
        ``["candlecandler('1H',Open,High,Low,Close,Sum::Volume)"]``) run left to right on
        the rows after the range, limit and projection, each on the previous one's output
        (docs/plugins.md "Query functions"); a bad call is a FunctionError before any read."""
        self._check_open()
        k = parse_key(key)
        start_ns, end_ns, limit = _range_args(start, end, limit, self.timezone)
        chain = _functions.prepare(functions) if functions else None
        self._visible()
        if self._dispatcher.maintaining:
            self._settle(k)
        with self._rw.read():
            bucket = self.catalog.get(k)
            result = query.read_bucket(self.catalog, bucket, start_ns, end_ns, limit=limit,
                                       limit_from_start=limit_from_start, columns=columns)
        return result if chain is None else self._apply(chain, result)

    def query(self, pattern: str, start: Any = None, end: Any = None, *,
              limit: int | None = None, limit_from_start: bool = False,
              columns: Sequence[str] | None = None,
              functions: Sequence[str] | None = None) -> dict[str, Result]:
        """Read every bucket matching the key pattern (`AAPL,MSFT/1Min/OHLCV`,
        `AA*/1Min/*`; engine.patterns); {key: Result} in request order (symbols as listed,
        sorted within a glob or `*`). Unknown symbols are absent. `functions` run on each
        bucket's rows separately, as in `read`."""
        self._check_open()
        pat = parse_pattern(pattern)
        start_ns, end_ns, limit = _range_args(start, end, limit, self.timezone)
        chain = _functions.prepare(functions) if functions else None
        self._visible()
        if self._dispatcher.maintaining:
            named = pat.keys()  # a list of names: buckets the triggers may not have made yet
            for k in named if named is not None else pat.select(list(self.catalog.buckets)):
                self._settle(k)
        out: dict[str, Result] = {}
        with self._rw.read():
            for k in pat.select(self.catalog.buckets):
                bucket = self.catalog.buckets[k]
                out[str(k)] = query.read_bucket(self.catalog, bucket, start_ns, end_ns,
                                               limit=limit, limit_from_start=limit_from_start,
                                               columns=columns)
        if chain is not None:
            out = {k: self._apply(chain, r) for k, r in out.items()}
        return out

    def resample(self, key: str, timeframe: str, start: Any = None, end: Any = None, *,
                 calendar: str | None = None, price: str | None = None,
                 volume: str | None = None) -> Result:
        """OHLCV bars of any length (`N` x `Sec|Min|H|D|W|M`, stored or not) from a bar
        bucket (Open/High/Low/Close) or a tick bucket (`price`, default Price), Volume the
        exact sum of `volume` (default Volume, or Size for ticks). Equal to pandas'
        ``resample(tf, label="left", closed="left")`` on the same rows in the database zone
        (boundaries: docs/plugins.md "Candle boundaries"); empty bars are omitted. With
        `calendar` (an exchange calendar such as "XNYS"), only rows inside its sessions
        count."""
        self._check_open()
        bucket = self.catalog.get(parse_key(key))
        calls = _functions.resample_calls(bucket.schema.names, timeframe, calendar=calendar,
                                          price=price, volume=volume)
        return self.read(key, start, end, functions=calls)

    def _apply(self, chain: Sequence[_functions.Function], result: Result) -> Result:
        ctx = _functions.FunctionContext(result.key, self.calendar, self._read_all)
        return _functions.apply_functions(chain, result, ctx)

    def _read_all(self, key: str) -> dict[str, Any] | None:
        """Every row of another bucket as columns, for a function (adjust's actions)."""
        try:
            return _functions.columns_of(self.read(key))
        except BucketNotFoundError:
            return None

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

    def list_keys(self) -> list[str]:
        self._check_open()
        with self._meta_lock:
            return sorted(str(k) for k in self.catalog.buckets)

    def list_symbols(self) -> list[str]:
        self._check_open()
        with self._meta_lock:
            return sorted({k.symbol for k in self.catalog.buckets})

    def info(self, key: str, *, rows: bool = True) -> dict[str, Any]:
        """{"key", "timeframe", "columns" ({name: dtype}, Epoch first), "kind", "years",
        "sealed" (the sealed years), "rows"}; tick buckets add "live_bytes" and
        "garbage_bytes" (engine.ticks.tick_usage). `rows=False` leaves out "rows" and the tick
        byte counts, which look at every year file's slots; the rest comes from the catalog
        (what planning a scan needs)."""
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
                "sealed": sorted(bucket.sealed),  # docs/format.md "The three states of a year"
            }
            if not rows:
                return out
            with self._rw.read():
                if bucket.schema.kind == VARIABLE:
                    out.update(tick_usage(self.catalog, bucket))
                else:  # one record per occupied slot
                    count = 0
                    for y in out["years"]:
                        if y in bucket.sealed:  # its keys only, merged with its overlay
                            count += len(merged_fixed(self.catalog, bucket, y, 0, 2**62,
                                                      [])[0])
                            continue
                        with self.catalog.pinned(bucket, y) as f:
                            count += 0 if f is None else len(f.occupied())
                    out["rows"] = count
            return out

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

    def _settle(self, key: BucketKey) -> None:
        """A read of a bucket a trigger maintains sees the trigger's work for every write
        acknowledged before it (README.md "Python API"; engine.dispatch `settle`)."""
        if not self._dispatcher.settle(key, READ_SETTLE_S):
            log.warning("reading %s: its trigger is still busy with earlier writes after %d s; "
                        "reading what is there", key, READ_SETTLE_S)

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


class _TransactionScope(corrections.Changes):
    """What `Database.transaction()` returns: the steps, committed when the block ends."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self._db = db

    def __enter__(self) -> _TransactionScope:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self._db._commit_changes(self)


def _range_args(start: Any, end: Any, limit: int | None, tz: str
                ) -> tuple[int | None, int | None, int | None]:
    """Times without an offset are in the database's zone; a date-only end is its whole day
    (`to_epoch_ns`)."""
    start_ns = None if start is None else to_epoch_ns(start, "start", tz)
    end_ns = None if end is None else to_epoch_ns(end, "end", tz, end=True)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInputError(f"limit={limit!r} must be a non-negative integer or None")
    return start_ns, end_ns, limit
