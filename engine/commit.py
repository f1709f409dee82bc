"""Stages 3-5 of the write path: log, apply, publish, with group commit and sync modes.

A writer that finds no commit in progress leads: it logs its transaction and every one
queued behind it in one append, makes them durable with one fsync, applies them in log
order, hands them to the publisher, wakes their writers and passes the lead to the first
writer that queued meanwhile. Writers build their payloads before queueing where they can
(`commit_built`), so that work overlaps the leader's fsync. An I/O error is fatal for the
handle (docs/wal.md §11).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from mkts.engine.errors import StoreFailedError
from mkts.engine.options import DEFAULTS, SYNC_MODES
from mkts.engine.rwlock import RWLock
from mkts.wal.format import Payload

__all__ = ["CommitPipeline", "SYNC_MODES"]  # SYNC_MODES lives in engine/options.py


class _Entry:
    """One writer's transaction in the commit queue."""

    __slots__ = ("build", "payload", "writes", "txn", "done", "error", "wake", "lead")

    def __init__(self, build: Callable[[], tuple[Payload, Any]] | None, payload: Payload,
                 writes: Any) -> None:
        self.build = build  # None when the writer built payload and writes itself
        self.payload = payload
        self.writes = writes
        self.txn = 0
        self.done = False
        self.error: BaseException | None = None
        self.wake: threading.Lock | None = None  # held while a follower waits
        self.lead = False  # a follower promoted to lead the next batch


class CommitPipeline:
    def __init__(
        self,
        log: Any,
        *,
        apply: Callable[[Any], None],
        publish: Callable[[int, Any, bool], None],
        sync_data: Callable[[], None],
        rwlock: RWLock,
        sync: str = DEFAULTS.sync,
        max_log_bytes: int = 256 << 20,
        can_retire: Callable[[], bool] = lambda: True,
        admit: Callable[[Any], None] | None = None,
    ) -> None:
        self._log = log
        self._apply = apply
        self._publish = publish
        self._sync_data = sync_data
        self._rw = rwlock
        self.sync_mode = sync
        self.max_log_bytes = max_log_bytes
        self._can_retire = can_retire  # False while triggers still owe work for logged txns
        # Raises when a transaction's writes no longer fit the catalog (a bucket destroyed
        # after they were planned); called by the leader, under the commit lock, before
        # anything is logged.
        self._admit = admit
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
    def commit(self, build: Callable[[], tuple[Payload, Any]]) -> int:
        """Log and apply one transaction; returns its number once the sync mode allows.

        `build()` returns (log payload, writes to apply). The leader calls it in commit
        order, so a plan that depends on earlier transactions (tick blob offsets) sees them.
        """
        return self._commit(_Entry(build, b"", None))

    def commit_built(self, payload: Payload, writes: Any) -> int:
        """`commit` of a transaction whose payload and writes depend on no earlier one."""
        return self._commit(_Entry(None, payload, writes))

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
                    except Exception:  # recorded in self.failed; this write is already safe
                        pass
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
        if self.failed is not None:
            raise StoreFailedError(
                f"this handle stopped accepting writes after an I/O error ({self.failed}); "
                "close it and open the database again (the log is replayed at open)"
            )

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc

    def _process(self, batch: list[_Entry]) -> None:
        if self.failed is not None:
            self._refuse(batch, f"write refused after an earlier I/O error: {self.failed}")
            return
        built: list[_Entry] = []
        admit = self._admit
        for e in batch:
            try:
                if e.build is not None:
                    e.payload, e.writes = e.build()
                if admit is not None:
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
            self._fail(exc)
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
                self._fail(exc)
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
        with self._rw.write():
            for e in entries:
                try:
                    self._apply(e.writes)
                except BaseException as exc:
                    self._fail(exc)
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
            self._publish(e.txn, e.writes, False)

    # -- interval mode and checkpoints -----------------------------------------------------
    def make_visible(self) -> None:
        """Apply transactions still waiting for the interval fsync (read-your-writes): every
        write that returned before this call is applied when it returns, also while another
        thread's flush has taken them off the queue but not yet applied them."""
        if self._unapplied or self.applied_txn < self._logged_txn:
            with self._io:
                self._flush_locked()

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
            self._fail(exc)
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
        if not force and not self._can_retire():
            return False
        try:
            self._sync_data()
            self._log.checkpoint(self._log.last_txn)
        except BaseException as exc:
            self._fail(exc)
            raise
        self.checkpointed_txn = self._log.last_txn
        return True

    def exclusive(self) -> threading.Lock:
        """The commit lock, for operations that must not interleave with commits."""
        return self._io
