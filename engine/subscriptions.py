"""Subscribers (`Database.subscribe`): each one's queue of batches, bounded by `max_pending`
(the oldest dropped), and the thread that calls its callback; `Subscription` is the handle
returned to the caller. Which batches reach them is engine/dispatch.py's.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from mkts.engine.patterns import KeyPattern

__all__ = ["Subscription"]

log = logging.getLogger("mkts.triggers")


class _Subscription:
    def __init__(self, pattern: KeyPattern, callback: Callable[[str, dict[str, np.ndarray]], Any],
                 max_pending: int) -> None:
        self.pattern = pattern
        self.callback = callback
        self.max_pending = max_pending
        self.queue: deque[tuple[str, dict[str, np.ndarray]]] = deque()
        self.cond = threading.Condition()
        self.dropped = 0
        self.active = True
        self.thread = threading.Thread(target=self._run, name="mkts-subscriber", daemon=True)
        self.thread.start()

    def offer(self, key: str, cols: dict[str, np.ndarray]) -> None:
        with self.cond:
            if len(self.queue) >= self.max_pending:
                self.queue.popleft()
                self.dropped += 1
            self.queue.append((key, cols))
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while self.active and not self.queue:
                    self.cond.wait()
                if not self.active:
                    return
                key, cols = self.queue.popleft()
            try:
                self.callback(key, cols)
            except Exception:
                log.exception("subscriber %r failed", self.callback)

    def cancel(self) -> None:
        with self.cond:
            self.active = False
            self.cond.notify()


class _Owner(Protocol):
    """What a `Subscription` needs of the dispatcher that made it (engine/dispatch.py)."""

    def _unsubscribe(self, sub: _Subscription) -> None: ...


class Subscription:
    """Returned by `Database.subscribe`; call `unsubscribe()` (or use as a context manager)."""

    def __init__(self, dispatcher: _Owner, sub: _Subscription) -> None:
        self._dispatcher = dispatcher
        self._sub = sub

    @property
    def dropped(self) -> int:
        """Batches dropped because this subscriber fell more than max_pending behind."""
        return self._sub.dropped

    def unsubscribe(self) -> None:
        self._dispatcher._unsubscribe(self._sub)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()
