"""Sealing as a database operation: which years to seal, building each sealed file from a
snapshot of its live file without holding writers, and the swap under the locks
(docs/format.md "Sealing, re-sealing and the swap"). Called by `Database.seal` and by the
checkpoint thread for years closed for `seal_after_days`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from mkts.engine import journal
from mkts.engine.catalog import Bucket
from mkts.engine.errors import CorruptFileError, InvalidInputError
from mkts.engine.keys import parse_key
from mkts.engine.rootmeta import use_format_3
from mkts.engine.schema import FIXED
from mkts.engine.sealfile import SealMeta
from mkts.engine.sealing import live_rows, sealed_name, write_sealed
from mkts.engine.sealread import merged_fixed, merged_ticks
from mkts.engine.sealswap import rename_sealed

if TYPE_CHECKING:
    from mkts.engine.commit import CommitPipeline
    from mkts.engine.database import Database

__all__ = ["seal_years", "due_years", "AutoSealer", "retire_seal_records"]

log = logging.getLogger("mkts.engine")
# pipelines whose log holds seal records no checkpoint retired yet (see `_seal_one`)
_unretired: weakref.WeakKeyDictionary[CommitPipeline, int] = weakref.WeakKeyDictionary()
_FIRST, _LAST = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
# A closed year written less than this long ago is not sealed by itself yet: a write into a
# sealed year rebuilds its live file, so sealing in the middle of a backfill would repeat.
QUIET_S = 3600.0


def _closed_before(db: Database, now: float, days: float) -> int:
    """Years that ended at least `days` ago in the database's zone are those below this."""
    cal = db.catalog.calendar
    y = cal.year_of_one(int(now - days * 86_400))
    return y  # year y itself is still open (or closed less than `days` ago)


def due_years(db: Database, days: float, quiet_s: float = QUIET_S
              ) -> list[tuple[Bucket, int]]:
    """(bucket, year) of every live year closed for at least `days` days and not written
    for `quiet_s` seconds (a backfill into a closed year is not sealed under its feet)."""
    limit = _closed_before(db, time.time(), days)
    recent = time.monotonic() - quiet_s
    out: list[tuple[Bucket, int]] = []
    with db._meta_lock:  # buckets come and go under it
        buckets = [db.catalog.buckets[k] for k in sorted(db.catalog.buckets)]
    for b in buckets:
        out.extend((b, y) for y in b.sorted_years() if y < limit and _open(b, y)
                   and b.last_write.get(y, -1e300) < recent)
    return out


def seal_years(db: Database, pipeline: CommitPipeline, key: str | None, year: int | None
               ) -> list[str]:
    """`Database.seal`: a checkpoint (every acknowledged write applied and durable, so the
    years it created are seen), the years to seal, then each one (see `seal_one`)."""
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise InvalidInputError(f"year must be an integer like 2023, not {year!r}")
    pipeline.checkpoint()
    with db._meta_lock:
        if key is not None:
            buckets = [db.catalog.get(parse_key(key))]
        else:
            buckets = [db.catalog.buckets[k] for k in sorted(db.catalog.buckets)]
        if key is not None and year is not None and year not in buckets[0].years:
            raise InvalidInputError(
                f"bucket {key} has no year {year} to seal; it has {buckets[0].sorted_years()}")
    current = db.catalog.calendar.year_of_one(int(time.time()))
    todo = [(b, y) for b in buckets for y in b.sorted_years()
            if _open(b, y) and (y == year if year is not None else y < current)]
    return [f"{b.key}/{y}" for b, y in todo if seal_one(db, pipeline, b, y)]


def retire_seal_records(pipeline: CommitPipeline) -> None:
    """At close: one checkpoint retires the seal records swaps left in the log since the
    last checkpoint (each needed none of its own, see `_seal_one`), so a clean close leaves
    an empty log and the next open replays nothing. Nothing to do without such records."""
    if _unretired.pop(pipeline, None) is None or pipeline.failed is not None:
        return
    with pipeline.quiesced():
        if pipeline.checkpointed_txn != pipeline.applied_txn:
            return  # a write since: any checkpoint retires them with it
        pipeline.checkpointed_txn -= 1  # so that the checkpoint below is not skipped
    pipeline.checkpoint()


def _open(bucket: Bucket, year: int) -> bool:
    """Whether the year has something to seal: it is live, or sealed with an overlay."""
    return year not in bucket.sealed or year in bucket.overlays


def seal_one(db: Database, pipeline: CommitPipeline, bucket: Bucket, year: int) -> bool:
    """Seal one live year, or re-seal a sealed year with its overlay into the next
    generation. The new sealed file is built from the year as a checkpoint left it, with
    writers running; the swap (rename, directory fsync, WAL op 6, removal of the live file
    or the overlay) happens with writers held, and only if no write reached the year
    meanwhile (False then: nothing changed). One seal runs at a time."""
    with db._seal_lock:
        return _seal_one(db, pipeline, bucket, year)


def _seal_one(db: Database, pipeline: CommitPipeline, bucket: Bucket, year: int) -> bool:
    cat = db.catalog
    with db._meta_lock:
        if cat.buckets.get(bucket.key) is not bucket or not _open(bucket, year) or \
                year not in bucket.years:
            return False
        resealing = year in bucket.sealed
        if not resealing and year in bucket.stale:  # written before a column change
            db._migrate(pipeline, [(bucket, year)])
        with pipeline.quiesced():  # the live file is complete and durable; the log retired
            before = bucket.written.get(year, 0)
    tmp = os.path.join(bucket.path, sealed_name(year) + ".tmp")
    try:
        if resealing:
            old = cat.sealed_reader(bucket, year).meta
            # re-sealing writes the bucket's current columns (docs/format.md "Column changes")
            meta = replace(old, schema=bucket.schema, generation=old.generation + 1,
                           schema_version=bucket.schema_version, ids=bucket.columns.ids)
            names = bucket.schema.names
            if bucket.schema.kind == FIXED:
                keys, cols = merged_fixed(cat, bucket, year, 0, old.nslots - 1, names)
            else:
                keys, cols = merged_ticks(cat, bucket, year, _FIRST, _LAST, names)
        else:
            with cat.pinned(bucket, year) as f:
                if f is None:
                    return False
                h = f.header
                meta = SealMeta(bucket.schema, year, h.nslots, h.year_start, h.timezone,
                                schema_version=bucket.schema_version, ids=bucket.columns.ids)
                keys, cols = live_rows(f, bucket.schema, cat.calendar)
    except CorruptFileError:
        if bucket.written.get(year, 0) != before:
            return False  # a write raced the snapshot: try again another time
        raise
    # mkts.root says database format 2 before the first sealed file: an older mkts refuses the
    # root instead of reading it without its sealed years (docs/format.md "Format 3: corrections,
    # column changes and sealed years")
    use_format_3(db._fs, db.root, db.timezone)
    write_sealed(db._fs, tmp, meta, keys, cols)
    with db._meta_lock, pipeline.quiesced():
        with db._rw.write():
            if cat.buckets.get(bucket.key) is not bucket or \
                    bucket.written.get(year, 0) != before or (year in bucket.sealed) != resealing:
                db._fs.unlink(tmp)
                return False
            record = rename_sealed(cat, bucket, year, tmp)
            db._writes.forget(bucket.key)
        # WAL op 6, fsynced; applying it removes the live file or the merged overlay (the
        # pipeline holds readers out meanwhile). A crash before it is durable leaves them
        # for the open-time rules.
        txn = pipeline.commit_quiesced(journal.encode([record]), [record])
        if pipeline.checkpointed_txn == txn - 1:
            # applied and durable (its unlinks fsynced), and applying it again changes
            # nothing: it needs no checkpoint of its own (the next seal's would write a new
            # log base for it alone); the next checkpoint after a write, or the one of
            # `retire_seal_records` at close, retires it
            pipeline.checkpointed_txn = txn
            _unretired[pipeline] = txn
        bucket.touched.add(year)  # the file record names the sealed file (and its checksum)
        cat.record_files([bucket], settle=True)
    return True


class AutoSealer:
    """The `mkts-seal` thread: after a checkpoint (`kick`), seals every live year closed for
    `days` days, one at a time, each with writers held only for its swap. A failure is
    logged and tried again after a later checkpoint; `stop` waits for the year in hand."""

    def __init__(self, db: Database, pipeline: CommitPipeline, days: float) -> None:
        self._db = db
        self._pipeline = pipeline
        self._days = days
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.quiet_s = QUIET_S
        self.sealed = 0

    def kick(self) -> None:
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            if not due_years(self._db, self._days, self.quiet_s):
                return
            self._thread = threading.Thread(target=self._run, name="mkts-seal", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            for bucket, year in due_years(self._db, self._days, self.quiet_s):
                if self._stop.is_set() or self._pipeline.failed is not None:
                    break
                if seal_one(self._db, self._pipeline, bucket, year):
                    self.sealed += 1
                    log.info("sealed %s/%d (closed for %g days or more)", bucket.key, year,
                             self._days)
        except Exception:
            log.exception("sealing closed years failed; it is tried again after a later "
                          "checkpoint")

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            t = self._thread
        if t is not None:
            t.join()
