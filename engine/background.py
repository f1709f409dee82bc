"""The threads that run beside the writers of one handle: the trigger dispatcher's
(`mkts-triggers`), the background workers' (`mkts-worker-*`) and the sync and checkpoint
thread (`mkts-sync`).

Owns starting and stopping them in the order of docs/design.md §6; what a trigger round
does is engine/dispatch.py's, what a checkpoint does the commit pipeline's
(engine/commit.py), what a worker may do its contract (engine/contracts.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mkts.engine.commit import CommitPipeline
from mkts.engine.contracts import BgWorker
from mkts.engine.dispatch import Dispatcher
from mkts.engine.errors import InvalidInputError

if TYPE_CHECKING:
    from mkts.engine.database import Database

__all__ = ["Background", "Checkpointer", "Workers", "WORKER_JOIN_S"]

log = logging.getLogger("mkts.engine")

WORKER_JOIN_S = 10.0  # how long close waits for each worker's run() to return


class Background:
    """All of them for one handle. `start` runs once the log is replayed (writable handles
    only); at close `drain` stops the workers and delivers every queued trigger event
    (while writes are still accepted: triggers write), then `stop` ends the sync thread
    (before the final checkpoint, which is the caller's)."""

    def __init__(self, dispatcher: Dispatcher, workers: Sequence[BgWorker]) -> None:
        self._dispatcher = dispatcher
        self.workers = Workers(workers)
        self._checkpointer: Checkpointer | None = None

    def start(self, db: Database, pipeline: CommitPipeline, *, sync_interval_s: float,
              checkpoint_interval_s: float,
              after_checkpoint: Callable[[], None] | None = None) -> None:
        self._dispatcher.start()
        self.workers.start(db)
        self._checkpointer = Checkpointer(pipeline, self._dispatcher,
                                          sync_interval_s=sync_interval_s,
                                          checkpoint_interval_s=checkpoint_interval_s,
                                          after_checkpoint=after_checkpoint)
        self._checkpointer.start()

    def wait_for_triggers(self, pipeline: CommitPipeline | None, timeout: float | None) -> bool:
        """`Database.wait_for_triggers`: until the trigger thread is idle with every logged
        transaction applied (a trigger's own write under sync="interval" is applied, and
        handed to the triggers, only at the next fsync: make it visible and wait again)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if pipeline is not None:
                pipeline.make_visible()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._dispatcher.flush(left):
                return False
            if pipeline is None or pipeline.caught_up():
                return True

    def drain(self) -> None:
        self.workers.stop()
        try:
            self._dispatcher.stop()
        except Exception:
            log.exception("stopping triggers failed")

    def stop(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()


class Checkpointer:
    """The `mkts-sync` thread. With sync="interval" it fsyncs the log every interval (and
    then applies the transactions that fsync covers); in every mode it checkpoints every
    `checkpoint_interval_s`, once the triggers have caught up with the log (a checkpoint
    that would retire records whose triggered work is not done waits for the next tick)."""

    def __init__(self, pipeline: CommitPipeline, dispatcher: Dispatcher, *,
                 sync_interval_s: float, checkpoint_interval_s: float,
                 after_checkpoint: Callable[[], None] | None = None) -> None:
        self._pipeline = pipeline
        self._after = after_checkpoint  # e.g. starting the sealing of closed years
        self._dispatcher = dispatcher
        self._interval_s = sync_interval_s
        self._checkpoint_s = checkpoint_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mkts-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (the final checkpoint is the caller's)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        pipeline = self._pipeline
        interval = pipeline.sync_mode == "interval"
        tick = self._interval_s if interval else min(1.0, self._checkpoint_s)
        last_checkpoint = time.monotonic()
        while not self._stop.wait(tick):
            try:
                if interval:
                    pipeline.flush_interval()
                due = time.monotonic() - last_checkpoint >= self._checkpoint_s
                if due or pipeline.checkpointed_txn < 0:
                    if pipeline.failed is None:
                        self._dispatcher.flush(timeout=tick)
                        if pipeline.checkpoint(force=False):
                            last_checkpoint = time.monotonic()
                            if self._after is not None:
                                self._after()
            except Exception:
                log.exception("background sync or checkpoint failed; the handle refuses writes")


class Workers:
    """The background workers of one handle: each one's optional `start(db)`, then its
    `run()` on a thread of its own; at close its optional `stop()` and a bounded wait.
    An exception from `run()` is logged and counted in `errors`, never fatal."""

    def __init__(self, workers: Sequence[BgWorker]) -> None:
        for w in workers:
            if not callable(getattr(w, "run", None)):
                raise InvalidInputError(f"background worker {w!r} has no run() method")
        self._workers = list(workers)
        self._threads: list[threading.Thread] = []
        self.errors = 0

    def start(self, db: Database) -> None:
        for w in self._workers:
            start = getattr(w, "start", None)
            if callable(start):
                start(db)
        for w in self._workers:
            t = threading.Thread(target=self._run, args=(w,), daemon=True,
                                 name=f"mkts-worker-{type(w).__name__}")
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        for w in self._workers:
            stop = getattr(w, "stop", None)
            if callable(stop):
                try:
                    stop()
                except Exception:
                    log.exception("background worker %r failed to stop", w)
        for t in self._threads:
            t.join(timeout=WORKER_JOIN_S)
            if t.is_alive():
                log.warning("background worker thread %s did not stop within %g s", t.name,
                            WORKER_JOIN_S)

    def _run(self, worker: BgWorker) -> None:
        try:
            worker.run()
        except Exception:
            self.errors += 1
            log.exception("background worker %r failed; the database keeps running", worker)
