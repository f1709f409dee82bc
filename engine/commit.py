"""Stages 3-5 of the write path: log, apply, publish, with group commit and sync modes.

A writer that finds no commit in progress leads: it logs its transaction and every one
queued behind it in one append, makes them durable with one fsync, applies them in log
order, hands them to the publisher, wakes their writers and passes the lead to the first
writer that queued meanwhile. Writers build their payloads before queueing where they can
(`commit_built`), so that work overlaps the leader's fsync. An I/O error is fatal for the
handle (docs/wal.md §11).

What a transaction does to the data files and who hears of it is the `CommitTarget`'s
(engine/writepath.py); the pipeline decides only when, and in which order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from mkts.engine.contracts import Writes
from mkts.engine.errors import MktsError, StoreFailedError
from mkts.engine.options import DEFAULTS, SYNC_MODES
from mkts.engine.rwlock import RWLock
from mkts.wal import WriteAheadLog
from mkts.wal.format import Payload

__all__ = ["CommitPipeline", "CommitTarget", "Build", "SYNC_MODES"]  # SYNC_MODES: engine/options.py

log = logging.getLogger("mkts.engine")

Build = Callable[[], tuple[Payload, Writes]]
"""Plans a transaction on the commit leader: returns (log payload, writes to apply)."""


class CommitTarget(Protocol):
    """What the pipeline applies transactions to and publishes them with."""

    def admit(self, writes: Writes) -> None:
        """Raise if `writes` no longer fit the catalog (a bucket destroyed after they were
        planned). Called by the leader, under the commit lock, before anything is logged;
        the exception fails only this transaction."""

    def apply(self, writes: Writes) -> None:
        """Write one logged transaction into the data files (page cache, no fsync). Called
        under the write lock, in log order; an exception fails the handle."""

    def publish(self, txn: int, writes: Writes, replayed: bool) -> None:
        """Hand an applied transaction to triggers and subscribers (must not block)."""

    def sync_data(self) -> None:
        """Make everything applied so far durable in the data files (checkpoint)."""

    def can_retire(self) -> bool:
        """False while triggers still owe work for logged transactions: a checkpoint that
        is not forced then keeps the log (at-least-once delivery across a crash)."""


class _Entry:
    """One writer's transaction in the commit queue."""

    __slots__ = ("build", "payload", "writes", "txn", "done", "error", "wake", "lead")

    def __init__(self, build: Build | None, payload: Payload, writes: Writes) -> None:
        self.build = build  # None when the writer built payload and writes itself
        self.payload = payload
        self.writes = writes
        self.txn = 0
        self.done = False
        self.error: BaseException | None = None
        self.wake: threading.Lock | None = None  # held while a follower waits
        self.lead = False  # a follower promoted to lead the next batch


class CommitPipeline:
    """Group commit of transactions into `log`, applied to and published by `target`."""

    def __init__(self, log: WriteAheadLog, target: CommitTarget, *, rwlock: RWLock,
                 sync: str = DEFAULTS.sync, max_log_bytes: int = 256 << 20) -> None:
        self._log = log
        self._target = target
        self._rw = rwlock
        self.sync_mode = sync
        self.max_log_bytes = max_log_bytes
        self._io = threading.Lock()  # held by the leader: log, apply, checkpoint
        self._mu = threading.Lock()  # protects the queue
        self._queue: list[_Entry] = []  # followers waiting for the next batch
        self._leading = False  # a writer is leading a batch (or about to)
        self._grouping = False  # sync="always" and the last batch had several writers
        self._unapplied: list[_Entry] = []  # interval mode: logged, awaiting fsync + apply
        self.failed: BaseException | None = None
        self.applied_txn = log.last_txn
        self._logged_txn = log.last_txn  # interval mode: the last txn queued for apply
        self.checkpointed_txn = -1  # unknown until the first checkpoint

    # -- the write path --------------------------------------------------------------------
    def commit(self, build: Build) -> int:
        """Log and apply one transaction; returns its number once the sync mode allows.

        `build()` returns (log payload, writes to apply). The leader calls it in commit
        order, so a plan that depends on earlier transactions (tick blob offsets) sees them.
        """
        return self._commit(_Entry(build, b"", ()))

    def commit_built(self, payload: Payload, writes: Writes) -> int:
        """`commit` of a transaction whose payload and writes depend on no earlier one."""
        return self._commit(_Entry(None, payload, writes))

    def commit_exclusive(self, build: Build) -> int:
        """`commit` of a transaction whose plan reads the data files as every earlier
        transaction left them (deletes and updates: which slots hold rows, whether a year
        is left empty). It waits for the commit in progress, applies what the interval
        sync mode still holds back, then logs, syncs and applies this transaction alone;
        when it returns the transaction is applied in every sync mode (so its effects
        are known), and durable as the sync mode promises. A transaction that turns out to
        change nothing (a delete of an empty range) is not logged: 0 is returned."""
        with self._io:
            self.check()
            self._flush_locked()
            self.check()
            payload, writes = build()  # raises: nothing is logged
            if not writes:
                return 0
            entry = _Entry(None, payload, writes)
            self._process([entry])
            if entry.error is None and self.sync_mode == "interval":
                self._flush_locked()  # apply now: the caller reports what it removed
        if entry.error is not None:
            raise entry.error
        self.check()
        return entry.txn

    def _commit(self, entry: _Entry) -> int:
        mu = self._mu
        with mu:
            if self.failed is not None:
                self.check()
            if self._leading:  # follow: the leader (or the next one) logs this entry
                wake = entry.wake = threading.Lock()
                wake.acquire()
                self._queue.append(entry)
            else:
                self._leading = True
                wake = None
        if wake is not None:
            wake.acquire()  # released once the entry is done, or when it is to lead
            if not entry.lead:
                if entry.error is not None:
                    raise entry.error
                return entry.txn
        batch = [entry]
        try:
            with self._io:
                if self._grouping:
                    # The last batch had company: those writers were just woken and are
                    # building their next transaction. Let them queue (release the GIL
                    # once), or this fsync would cover one write and the next all others.
                    time.sleep(0)
                with mu:
                    batch.extend(self._queue)
                    self._queue = []
                self._grouping = len(batch) > 1 and self.sync_mode == "always"
                self._process(batch)
                if (
                    self.failed is None
                    and self.max_log_bytes
                    and self._log.size_bytes > self.max_log_bytes
                ):
                    try:
                        self._checkpoint_locked(force=False)
                    except Exception:  # this write is already safe; the handle has failed
                        log.exception("checkpoint after the log grew past %d MiB failed; "
                                      "this handle refuses further writes",
                                      self.max_log_bytes >> 20)
        finally:
            self._hand_over(batch)
        if entry.error is not None:
            raise entry.error
        return entry.txn

    def _hand_over(self, batch: list[_Entry]) -> None:
        """Wake the writers of a processed batch, and pass the lead to the first writer
        that queued since (or end the commit in progress)."""
        for e in batch[1:] if len(batch) > 1 else ():
            if not e.done:  # only when the leader was interrupted (KeyboardInterrupt)
                e.error = StoreFailedError("the commit leader was interrupted; the write "
                                           "was not acknowledged")
                e.done = True
            assert e.wake is not None
            e.wake.release()
        with self._mu:
            if self._queue:
                nxt = self._queue.pop(0)
                nxt.lead = True
                assert nxt.wake is not None
                nxt.wake.release()
            else:
                self._leading = False

    def check(self) -> None:
        """Raise StoreFailedError if the handle has failed (see `fail`)."""
        if self.failed is not None:
            raise StoreFailedError(
                f"this handle stopped accepting writes after an I/O error ({self.failed}); "
                "close it and open the database again (the log is replayed at open)"
            )

    def fail(self, exc: BaseException) -> None:
        """Stop accepting writes because of `exc`: an I/O error after which the durability
        of some change is unknown (a failed log append or fsync, a data file or directory
        that could not be written). From then on every commit and checkpoint raises
        StoreFailedError naming the first such error; nothing is retried, and the handle
        must be closed and the database opened again (the log is replayed at open)."""
        if self.failed is None:
            self.failed = exc

    @contextmanager
    def fatal_io(self, what: str) -> Iterator[None]:
        """For changes to files outside the log (bucket directories, headers, compaction):
        an OS error in the block leaves their durability unknown, so it fails the handle as
        a log error does (`fail`) and is raised as StoreFailedError naming `what`. Damaged
        files (MktsError) are raised as they are."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc, MktsError):
                raise  # a damaged file, not a failed write
            self.fail(exc)
            raise StoreFailedError(
                f"{what} failed ({exc}); this handle now refuses writes: close it and open "
                "the database again"
            ) from exc

    def _process(self, batch: list[_Entry]) -> None:
        if self.failed is not None:
            self._refuse(batch, f"write refused after an earlier I/O error: {self.failed}")
            return
        built: list[_Entry] = []
        admit = self._target.admit
        for e in batch:
            try:
                if e.build is not None:
                    e.payload, e.writes = e.build()
                admit(e.writes)
            except Exception as exc:  # invalid input found late: only this entry fails
                e.error = exc
                e.done = True
                continue
            built.append(e)
        batch = built
        if not batch:
            return
        try:
            last = self._log.append([e.payload for e in batch])
        except BaseException as exc:
            self.fail(exc)
            self._refuse(batch, f"the write could not be logged ({exc}); it was not acknowledged "
                                "and this handle now refuses writes: close and reopen the database")
            if not isinstance(exc, Exception):
                raise
            return
        if len(batch) == 1:
            batch[0].txn = last
        else:
            first = last - len(batch) + 1
            for i, e in enumerate(batch):
                e.txn = first + i
        if self.sync_mode == "always":
            try:
                self._log.sync()
            except BaseException as exc:
                self.fail(exc)
                self._refuse(batch, f"fsync of the log failed ({exc}); transaction {{txn}} may or "
                                    "may not survive a crash. This handle refuses further "
                                    "writes: close and reopen")
                if not isinstance(exc, Exception):
                    raise
                return
        if self.sync_mode == "interval":
            # WAL before data: apply only after the fsync that covers these transactions.
            self._unapplied.extend(batch)
            self._logged_txn = batch[-1].txn
            for e in batch:
                e.done = True
            return
        self._apply_entries(batch)

    @staticmethod
    def _refuse(batch: list[_Entry], message: str) -> None:
        """Answer every writer of the batch with StoreFailedError (`{txn}` in the message
        becomes the writer's transaction number)."""
        for e in batch:
            e.error = StoreFailedError(message.replace("{txn}", str(e.txn)))
            e.done = True

    def _apply_entries(self, entries: list[_Entry]) -> None:
        applied = 0
        target = self._target
        with self._rw.write():
            for e in entries:
                try:
                    target.apply(e.writes)
                except BaseException as exc:
                    self.fail(exc)
                    for rest in entries[applied:]:
                        if not rest.done:
                            rest.error = StoreFailedError(
                                f"transaction {rest.txn} is durable in the log but could not be "
                                f"applied to the data files ({exc}); it will be applied when the "
                                "database is opened again. This handle refuses further writes"
                            )
                        rest.done = True
                    if not isinstance(exc, Exception):
                        raise
                    break
                applied += 1
                self.applied_txn = e.txn
        for e in entries[:applied]:
            e.done = True
            target.publish(e.txn, e.writes, False)

    # -- interval mode and checkpoints -----------------------------------------------------
    def make_visible(self) -> None:
        """Apply transactions still waiting for the interval fsync (read-your-writes): every
        write that returned before this call is applied when it returns, also while another
        thread's flush has taken them off the queue but not yet applied them."""
        if self._unapplied or self.applied_txn < self._logged_txn:
            with self._io:
                self._flush_locked()

    def caught_up(self) -> bool:
        """Whether every logged transaction has been applied and published (under
        sync="interval" the ones logged since the last fsync are not, until it or
        `make_visible`); also True once the handle has failed, as no more ever will be."""
        return (self.sync_mode != "interval" or self.failed is not None
                or self.applied_txn >= self._log.last_txn)

    def flush_interval(self) -> None:
        with self._io:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._unapplied or self.failed is not None:
            return
        batch, self._unapplied = self._unapplied, []
        try:
            self._log.sync()
        except BaseException as exc:
            self.fail(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._apply_entries(batch)

    def checkpoint(self, *, force: bool = True) -> bool:
        """Sync the data files and retire the log. Unless `force`, skip (return False) while
        triggers still have logged transactions to process: retiring those records would
        lose the trigger work if the process crashed before it ran (at-least-once)."""
        with self._io:
            return self._checkpoint_locked(force=force)

    def _checkpoint_locked(self, *, force: bool = True) -> bool:
        self.check()
        self._flush_locked()
        self.check()
        if self.checkpointed_txn == self._log.last_txn:
            return True  # nothing was logged since the last checkpoint
        if not force and not self._target.can_retire():
            return False
        try:
            self._target.sync_data()
            self._log.checkpoint(self._log.last_txn)
        except BaseException as exc:
            self.fail(exc)
            raise
        self.checkpointed_txn = self._log.last_txn
        return True

    def commit_quiesced(self, payload: Payload, writes: Writes) -> int:
        """Inside `quiesced()`: log one transaction, fsync the log whatever the sync mode,
        apply and publish it; its number. For changes that must be durable when the call
        returns and that no other transaction may interleave with (column changes)."""
        self.check()
        self._target.admit(writes)
        try:
            txn = self._log.append([payload])
            self._log.sync()
        except BaseException as exc:
            self.fail(exc)
            raise
        entry = _Entry(None, payload, writes)
        entry.txn = self._logged_txn = txn
        self._apply_entries([entry])
        if entry.error is not None:
            raise entry.error
        return txn

    @contextmanager
    def quiesced(self) -> Iterator[None]:
        """Checkpoint, then hold the commit lock for the block: no transaction is logged
        meanwhile and no log record refers to the data files as they were before it. For
        changes that replaying the log must never meet (destroy, compaction)."""
        with self._io:
            self._checkpoint_locked()
            yield
