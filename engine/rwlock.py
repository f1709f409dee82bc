"""A readers-writer lock: many concurrent readers, or one writer (writers get preference)."""

from __future__ import annotations

import threading

__all__ = ["RWLock"]


class _Read:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lk = self._lock
        with lk._mu:
            if lk._writer or lk._waiting_writers:
                lk._sleepers += 1
                try:
                    while lk._writer or lk._waiting_writers:
                        lk._cond.wait()
                finally:
                    lk._sleepers -= 1
            lk._readers += 1

    def __exit__(self, *exc: object) -> None:
        lk = self._lock
        with lk._mu:
            lk._readers -= 1
            if not lk._readers and lk._sleepers:
                lk._cond.notify_all()


class _Write:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lk = self._lock
        with lk._mu:
            if lk._writer or lk._readers:
                lk._waiting_writers += 1
                lk._sleepers += 1
                try:
                    while lk._writer or lk._readers:
                        lk._cond.wait()
                finally:
                    lk._sleepers -= 1
                    lk._waiting_writers -= 1
            lk._writer = True

    def __exit__(self, *exc: object) -> None:
        lk = self._lock
        with lk._mu:
            lk._writer = False
            if lk._sleepers:
                lk._cond.notify_all()


class RWLock:
    """`with lock.read():` shares; `with lock.write():` excludes everyone else.

    Waiters sleep on one condition; it is notified only when someone sleeps on it."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._cond = threading.Condition(self._mu)
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._sleepers = 0  # threads inside wait() (readers and writers)
        self._read = _Read(self)
        self._write = _Write(self)

    def read(self) -> _Read:
        return self._read

    def write(self) -> _Write:
        return self._write
