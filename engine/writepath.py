"""The write path behind `Database.write` / `write_many` (docs/design.md §4): stages 1-2, and what
stages 4-5 do to the data files and the trigger dispatcher.

`WritePath.fast` is the one dispatch to the fast path (engine/fastpath.py) for rows that
already have their bucket's types; `WritePath.plan` validates (engine/ingest.py) and plans
(engine/plan.py, engine/ticks.py) everything else. As the commit pipeline's `CommitTarget`
it admits, applies and publishes logged transactions, and it replays the log at open; when
and in which order is the pipeline's (engine/commit.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mkts.engine import alter, fastpath, ingest, journal
from mkts.engine.bulkload import BulkLoads, TickBulk, TickIngestWrite, remove_ingests
from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.clears import CLEAR_TOMBSTONE, ClearWrite, DropYear
from mkts.engine.columns import ColumnTable, SchemaWrite, fill_values
from mkts.engine.commit import CommitPipeline
from mkts.engine.contracts import Write, Writes
from mkts.engine.dispatch import Dispatcher
from mkts.engine.errors import (
    BucketNotFoundError,
    InvalidInputError,
    MktsError,
    SchemaError,
)
from mkts.engine.events import WriteEvent
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.plan import IngestWrite, RowWrite, SlotWrite, plan_fixed
from mkts.engine.rwlock import RWLock
from mkts.engine.schema import FIXED, VARIABLE, Schema
from mkts.engine.sealing import apply_tombstones
from mkts.engine.sealswap import SealYear, apply_seal, replay_floors, superseded
from mkts.engine.ticks import TickPlanner, TickWrite, plan_ticks
from mkts.engine.timeutil import Calendar
from mkts.engine.yearfile import YearFile
from mkts.wal import WriteAheadLog
from mkts.wal.format import Payload

__all__ = ["WritePath", "Transaction", "MAX_TXN_BYTES"]

log = logging.getLogger("mkts.engine")

MAX_TXN_BYTES = 1 << 30
_MAX_CACHED_PLANS = 4096

FixedWrites = Sequence[SlotWrite | RowWrite]


class Transaction:
    """One validated write_many() call. Its fixed writes are planned; its tick batches are
    planned by `build`, on the commit leader, in commit order (blob offsets depend on the
    transactions before), and so is the choice between op 7 and ordinary ticks for its tick
    bulk loads (`bulk`). `creates` are the buckets it writes first (the caller creates
    them before committing)."""

    __slots__ = ("fixed", "ticks", "creates", "bulk", "_path")

    def __init__(self, path: WritePath, fixed: list[SlotWrite | RowWrite],
                 ticks: list[tuple[BucketKey, Schema, ingest.Batch]],
                 creates: list[tuple[BucketKey, Schema]]) -> None:
        self._path = path
        self.fixed = fixed
        self.ticks = ticks
        self.creates = creates
        self.bulk: list[TickBulk] = []

    def build(self) -> tuple[Payload, Writes]:
        """(log payload, writes): the pipeline's `Build`."""
        writes: list[Write] = list(self.fixed)
        planned: list[TickWrite] = []
        accepted: list[TickIngestWrite] = []
        try:
            for b in self.bulk:
                if self._path.bulk.accept(b, self._path.ticks):
                    accepted.append(b.write)
                    writes.append(b.write)
                else:  # the year got rows meanwhile: its ticks go through the log
                    tick_writes = self._path.plan_ticks(b.write.key, b.schema, b.batch)
                    planned.extend(tick_writes)
                    writes.extend(tick_writes)
            for key, schema, batch in self.ticks:
                tick_writes = self._path.plan_ticks(key, schema, batch)
                planned.extend(tick_writes)
                writes.extend(tick_writes)
            return journal.encode_parts(writes), writes
        except BaseException:
            # Nothing of this transaction will be logged: undo its tick plans, newest
            # first, so later writes never merge rows that were not written.
            for w in reversed(planned):
                self._path.ticks.discard(w)
            for a in accepted:
                self._path.bulk.discard(a)
            raise


class WritePath:
    """Planning, applying and publishing for one open, writable root."""

    def __init__(self, catalog: Catalog, calendar: Calendar, dispatcher: Dispatcher, *,
                 allow_missing_columns: bool = False, bulk_load_rows: int = 0) -> None:
        self.catalog = catalog
        self.calendar = calendar
        self._dispatcher = dispatcher
        # docs/format.md "Column changes": a write may leave out columns, which take their
        # fill value (README "Changing columns")
        self.allow_missing_columns = allow_missing_columns
        self.ticks = TickPlanner()
        self._fast: dict[str, fastpath.InputPlan] = {}  # key text -> plan of its last input
        # docs/format.md "Bulk loads": a write of at least this many rows into a closed year
        # its bucket does not hold is written sealed first; the log carries op 7 (0: off)
        self.bulk = BulkLoads(catalog, calendar, bulk_load_rows)

    # -- stages 1-2 --------------------------------------------------------------------
    def fast(self, key: str, data: object) -> tuple[Payload, FixedWrites] | None:
        """(log payload, writes) for rows of the existing fixed bucket `key` given as a 1-D
        structured array or a dict of 1-D numpy columns whose fields have the bucket's types;
        None when the general path must judge them (it also raises the errors)."""
        if type(data) is np.ndarray:
            if data.ndim != 1:
                return None
            plan = self._input_plan(key, data.dtype)
            if plan is None:
                return None
            built = plan.one(data.tobytes()) if len(data) == 1 else plan.rows(data)
        elif type(data) is dict:
            got = fastpath.columns_dtype(data)
            if got is None:
                return None
            plan = self._input_plan(key, got[0])
            if plan is None:
                return None
            rows = fastpath.pack_columns(data, *got)
            built = plan.one(rows) if isinstance(rows, bytes) else plan.rows(rows)
        else:
            return None
        stale = None if plan.bucket is None else plan.bucket.stale
        if built is not None and stale and any(w.year in stale for w in built[1]):
            return None  # a year file to migrate first: the general path does (write_many)
        return built

    def _input_plan(self, key: str, dtype: np.dtype) -> fastpath.InputPlan | None:
        """The fast-path plan for rows of `dtype` into the existing fixed bucket `key`
        (cached per key text until the dtype or the bucket changes), or None."""
        plan = self._fast.get(key) if type(key) is str else None
        if plan is not None and (plan.dtype is dtype or plan.dtype == dtype) \
                and self.catalog.buckets.get(plan.key) is plan.bucket:
            return plan
        if type(key) is not str:
            return None
        try:
            k = parse_key(key)
        except MktsError:
            return None
        bucket = self.catalog.buckets.get(k)
        if bucket is None:
            return None
        plan = fastpath.input_plan(k, bucket.schema, dtype, self.calendar, MAX_TXN_BYTES, bucket)
        if plan is not None:
            if len(self._fast) >= _MAX_CACHED_PLANS:
                self._fast.clear()
            self._fast[key] = plan
        return plan

    def plan(self, items: Mapping[str, Any], variable: bool | None,
             pending: Mapping[BucketKey, Schema] | None = None) -> Transaction | None:
        """Validate and plan a write_many() call, the caller holding the catalog lock; None
        when there are no rows. Invalid input anywhere raises, and nothing is written.
        `pending`: buckets an earlier step of the same transaction creates, written as if
        they existed (with their initial fills)."""
        fixed: list[SlotWrite | RowWrite] = []
        ticks: list[tuple[BucketKey, Schema, ingest.Batch]] = []
        creates: list[tuple[BucketKey, Schema]] = []
        size = 0
        for key_text, data in items.items():
            built = None if variable else self.fast(key_text, data)
            if built is not None:  # an existing bucket, rows of its own types
                fixed.extend(built[1])
                size += sum(w.nbytes for w in built[1])
                continue
            key = parse_key(key_text)
            cols = ingest.raw_columns(data, str(key))
            bucket = self.catalog.buckets.get(key)
            created = None if bucket is not None or pending is None else pending.get(key)
            if created is not None:
                schema = created
                if variable is not None and (schema.kind == VARIABLE) != variable:
                    raise SchemaError(
                        f"write to {key}: variable={variable} but an earlier step of the "
                        f"transaction made it {schema.kind}; leave variable unset to follow it")
            elif bucket is None:
                kind = VARIABLE if variable else FIXED
                schema = ingest.infer_schema(key.tf, kind, cols, str(key),
                                             nanos_column=variable is False)
            else:
                schema = bucket.schema
                if variable is not None and (schema.kind == VARIABLE) != variable:
                    raise SchemaError(
                        f"write to {key}: variable={variable} but the bucket is "
                        f"{schema.kind}; leave variable unset to follow the bucket"
                    )
            if bucket is None and created is None and type(data) is np.ndarray \
                    and schema.kind == FIXED:
                # A bucket's first write, from an array: the fast path's plan for the schema
                # the rows create (not cached: the bucket does not exist yet).
                fp = fastpath.input_plan(key, schema, data.dtype, self.calendar, MAX_TXN_BYTES)
                first = None if fp is None else fp.plan(data)
                if first is not None:
                    creates.append((key, schema))
                    fixed.extend(first)
                    size += sum(w.nbytes for w in first)
                    continue
            fills = None
            if self.allow_missing_columns and bucket is not None:
                fills = fill_values(schema, bucket.columns)
            elif self.allow_missing_columns and created is not None:
                fills = fill_values(schema, ColumnTable.initial(schema))
            batch = ingest.prepare(cols, schema, self.calendar, str(key), fills=fills)
            if len(batch) == 0:
                continue
            if bucket is None:
                creates.append((key, schema))
            if schema.kind == VARIABLE:
                ticks.append((key, schema, batch))
                size += len(batch) * (8 + schema.row_dtype.itemsize)
            else:
                planned = plan_fixed(key, schema, batch, self.calendar)
                fixed.extend(planned)
                size += sum(w.nbytes for w in planned)
        if not fixed and not ticks:
            return None
        if size > MAX_TXN_BYTES:
            raise InvalidInputError(
                f"one transaction of {size >> 20} MiB is over the {MAX_TXN_BYTES >> 20} MiB "
                "limit; split the write into several calls"
            )
        return Transaction(self, fixed, ticks, creates)

    def stale_targets(self, txn: Transaction) -> list[tuple[Bucket, int]]:
        """(bucket, year) of the year files `txn` writes that have an older schema than their
        bucket: each must be migrated (engine/alter.py) before the transaction is logged."""
        out: list[tuple[Bucket, int]] = []
        buckets = self.catalog.buckets
        for w in txn.fixed:
            b = buckets.get(w.key)
            if b is not None and w.year in b.stale and (b, w.year) not in out:
                out.append((b, w.year))
        for key, schema, batch in txn.ticks:
            b = buckets.get(key)
            if b is None or not b.stale or not len(batch):
                continue
            y0 = self.calendar.slot_of(int(batch.epochs.min()), schema.timeframe)[0]
            y1 = self.calendar.slot_of(int(batch.epochs.max()), schema.timeframe)[0]
            out.extend((b, y) for y in alter.stale_years(b, range(y0, y1 + 1)))
        return out

    def plan_ticks(self, key: BucketKey, schema: Schema, batch: ingest.Batch) -> list[TickWrite]:
        """Runs on the commit leader, in commit order (blob offsets depend on earlier ones)."""
        bucket = self.catalog.get(key)
        assert batch.nanos is not None
        if bucket.schema is not schema:
            raise SchemaError(f"the columns of {key} changed while this write to it was being "
                              "committed; write it again with the new columns")
        pinned: list[YearFile] = []  # the files the plan reads, open until it is done

        def file_of(y: int) -> YearFile | None:
            if y in bucket.stale:  # pragma: no cover - migrated before commit (write_many)
                raise SchemaError(f"year {y} of {key} has the columns of before a column "
                                  "change; write it again")
            f = self.catalog.acquire(bucket, y)
            if f is not None:
                pinned.append(f)
            return f

        try:
            return plan_ticks(
                self.ticks, key, schema, self.calendar, batch.epochs, batch.nanos,
                batch.columns, file_of, lambda y: self.catalog.year_header(bucket, y).file_size,
            )
        finally:
            for f in pinned:
                self.catalog.release(f)

    # -- the commit pipeline's target (stages 4-5) ---------------------------------------
    def admit(self, writes: Writes) -> None:
        """Every fixed write's bucket must still be the one it was planned for. A destroy
        between planning and commit would otherwise log records that no bucket can replay,
        or records of the old size into a recreated bucket."""
        buckets = self.catalog.buckets
        for w in writes:
            if isinstance(w, (TickWrite, SchemaWrite, ClearWrite, DropYear, SealYear)):
                continue  # planned by the leader itself, in commit order / under the commit lock
            bucket = buckets.get(w.key)
            if bucket is None:
                raise BucketNotFoundError(
                    f"bucket {w.key} was destroyed while this write to it was being committed"
                )
            want = bucket.schema.record_dtype
            have = w.dtype
            if have is not want and have != want or (bucket.stale and w.year in bucket.stale):
                raise SchemaError(
                    f"the columns of bucket {w.key} changed (or it was destroyed and created "
                    "again) while this write to it was being committed; write it again"
                )

    def apply(self, writes: Writes) -> None:
        catalog = self.catalog
        for w in writes:
            if type(w) is SchemaWrite:  # op 4: bucket.hdr, durably (docs/format.md)
                alter.apply_change(catalog, w)
                self.forget(w.key)
                continue
            bucket = catalog.buckets.get(w.key) or catalog.get(w.key)
            if isinstance(w, (ClearWrite, DropYear)):
                # a seal built from the year before this is not installed (engine/sealjob.py)
                bucket.written[w.year] = bucket.written.get(w.year, 0) + 1
                self._apply_clear(bucket, w)
                continue
            if type(w) is IngestWrite or type(w) is TickIngestWrite:
                self.bulk.install(bucket, w)
                continue
            if type(w) is SealYear:  # op 6 (docs/format.md "Sealing, re-sealing and the swap")
                apply_seal(catalog, bucket, w)
                self.ticks.forget(w.key, w.year)
                continue
            f = catalog.acquire(bucket, w.year, create=True)  # pinned while written
            assert f is not None
            bucket.touched.add(w.year)
            try:
                if type(w) is RowWrite:
                    f.write_row(w.slot, w.record)
                elif isinstance(w, TickWrite):
                    if w.region:
                        f.write_region(w.offset, w.region)
                    f.write_slots(w.slots, np.ascontiguousarray(w.records).data.cast("B"))
                    self.ticks.applied(w)
                else:
                    assert not isinstance(w, (SchemaWrite, SealYear))
                    f.write_slots(w.slots, np.ascontiguousarray(w.records).data.cast("B"))
            finally:
                catalog.release(f)

    def _apply_clear(self, bucket: Bucket, w: ClearWrite | DropYear) -> None:
        """Ops 3 and 5 (docs/wal.md §10): zero the occupied slots of a range, or remove a
        year file; both leave the same bytes when applied again."""
        if isinstance(w, DropYear):
            self.catalog.drop_year(bucket, w.year, w.files)
            self.ticks.forget(w.key, w.year)
            self.bulk.dropped(w.key, w.year)
            return
        if w.token is not None:
            self.ticks.applied(w.token)
        # Mode 0 clears a live file, mode 1 writes tombstones into a sealed year's overlay
        # (created if need be). A year in the other state when the record is replayed was
        # dropped by a later record of the log (a year changes state only by op 5 or by a
        # seal, which checkpoints first): nothing to do.
        tomb = w.mode == CLEAR_TOMBSTONE
        if w.year not in bucket.years or w.last < w.first or (w.year in bucket.sealed) != tomb:
            return
        f = self.catalog.acquire(bucket, w.year, create=tomb)
        if f is None:
            return
        bucket.touched.add(w.year)  # new contents: the file record's checksum is redone
        try:
            if tomb:
                apply_tombstones(f, w.first, w.last)
            else:
                f.clear_range(w.first, w.last)
        finally:
            self.catalog.release(f)

    def publish(self, txn: int, writes: Writes, replayed: bool) -> None:
        if self._dispatcher.wants():
            if any(type(w) in (SchemaWrite, SealYear) for w in writes):  # these fire nothing
                writes = [w for w in writes if type(w) not in (SchemaWrite, SealYear)]
                if not writes:
                    return
            if replayed and any(type(w) is IngestWrite or type(w) is TickIngestWrite
                                for w in writes):
                # A replayed bulk load's rows are in the file it installed, not in its
                # record: read back now (a later record of the log may remove the file).
                writes = [r for w in writes if (r := self.bulk.replayed_rows(w)) is not None]
                if not writes:
                    return
            self._dispatcher.publish(WriteEvent(txn, writes, replayed))

    def sync_data(self) -> None:
        self.bulk.sync()  # the renames of op 7 (engine/bulkload.py)
        self.catalog.sync_dirty()
        self.catalog.record_files()

    def can_retire(self) -> bool:
        return self._dispatcher.idle()

    def forget(self, key: BucketKey) -> None:
        """Drop what is cached about `key`'s files (after they were rewritten) and its
        columns (after they changed)."""
        self.ticks.forget(key)
        self._fast.clear()

    # -- opening -----------------------------------------------------------------------
    def recover(self, wal: WriteAheadLog, *, rwlock: RWLock, sync: str,
                max_log_bytes: int) -> CommitPipeline:
        """Replay the log (docs/design.md §6 steps 6-7), then the pipeline that commits after it."""
        self.bulk.replaying = True
        try:
            replayed = self.replay(wal)
        finally:
            self.bulk.replaying = False
        self.bulk.end_replay()  # an op 7 whose file is gone and no later op 5 explains
        remove_ingests(self.catalog)  # bulk loads no log record names (docs/format.md)
        pipeline = CommitPipeline(wal, self, rwlock=rwlock, sync=sync,
                                  max_log_bytes=max_log_bytes)
        if not replayed:
            pipeline.checkpointed_txn = wal.last_txn
        elif not self._dispatcher.triggers:
            pipeline.checkpoint()
        # else keep the replayed records until the triggers have processed them: a crash
        # before that replays (and fires) them again. The background checkpoint retires
        # them once the trigger queue is drained.
        return pipeline

    def replay(self, wal: WriteAheadLog) -> int:
        """Apply and publish (as replayed) every transaction of the log; their number."""
        count = 0
        started = time.monotonic()
        # writes to a year before its last drop, or before the seal or bulk load whose file
        # is there (docs/wal.md §10, "Replay floors"): one walk
        # of the operation heads first
        floors = replay_floors(self.catalog, ((rec.txn, *m) for rec in wal.records()
                                              for m in journal.year_marks(rec.payload)))
        for rec in wal.records():
            if count == 0:
                # WAL before data holds for replay too (docs/design.md §9 R3): after a kill -9
                # the log's tail may still be only in the page cache. Make it durable before
                # any of it reaches a year file, or a power loss during this replay could keep
                # data whose log record is lost (a torn transaction).
                wal.sync()
            writes = journal.decode(rec.payload, lambda k: self.catalog.get(k).schema,
                                    f"txn {rec.txn} in {rec.segment} at offset {rec.offset}")
            self.apply(superseded(rec.txn, writes, floors))
            self.publish(rec.txn, writes, True)
            count += 1
            if count % 10_000 == 0:
                log.info("replayed %d transactions (%.1f s)", count, time.monotonic() - started)
        if count:
            log.info("replayed %d transactions from the log in %.2f s", count,
                     time.monotonic() - started)
        return count
