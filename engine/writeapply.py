"""The commit pipeline's target (stages 4-5 of the write path, docs/design.md §4): admitting
logged transactions, applying their writes to the data files, publishing them to the trigger
dispatcher, and replaying the log at open. Planning is engine/writepath.py's.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from mkts.engine import alter, journal
from mkts.engine.bulkload import BulkLoads, TickIngestWrite, remove_ingests
from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.clears import CLEAR_TOMBSTONE, ClearWrite, DropYear
from mkts.engine.columns import SchemaWrite
from mkts.engine.commit import CommitPipeline
from mkts.engine.contracts import Writes
from mkts.engine.dispatch import Dispatcher
from mkts.engine.errors import BucketNotFoundError, SchemaError
from mkts.engine.events import WriteEvent
from mkts.engine.keys import BucketKey
from mkts.engine.plan import IngestWrite, RowWrite
from mkts.engine.rwlock import RWLock
from mkts.engine.sealing import apply_tombstones
from mkts.engine.sealswap import SealYear, apply_seal, replay_floors, superseded
from mkts.engine.ticks import TickPlanner, TickWrite
from mkts.wal import WriteAheadLog

__all__ = ["ApplyTarget"]

log = logging.getLogger("mkts.engine")


class ApplyTarget:
    """The apply, publish and replay half of `WritePath` (engine/writepath.py mixes it in)."""

    catalog: Catalog
    ticks: TickPlanner
    bulk: BulkLoads
    _dispatcher: Dispatcher

    if TYPE_CHECKING:
        def forget(self, key: BucketKey) -> None: ...

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
        # is there (docs/wal.md §10, "Replay floors"): one walk of the operation heads first
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
