"""A readers-writer lock: many concurrent readers, or one writer (writers get preference).

State (`_readers`, `_writer`, `_waiting_writers`) changes only while holding `_mutex`, the
lock under the condition variable. A reader that finds no writer active or waiting enters
with one acquire/release of `_mutex` (the common case, no Python-level Condition calls);
otherwise it waits on the condition like before. A reader leaving wakes the waiters only
when it was the last reader and a writer waits (readers wait only while a writer is active
or waiting, and a writer leaving always wakes everyone), so no wake-up is ever lost.
"""

from __future__ import annotations

import threading

__all__ = ["RWLock"]


class _Read:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lk = self._lock
        with lk._mutex:
            if not (lk._writer or lk._waiting_writers):
                lk._readers += 1
                return
            while lk._writer or lk._waiting_writers:
                lk._cond.wait()
            lk._readers += 1

    def __exit__(self, *exc: object) -> None:
        lk = self._lock
        with lk._mutex:
            lk._readers -= 1
            if not lk._readers and lk._waiting_writers:
                lk._cond.notify_all()


class _Write:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lk = self._lock
        with lk._mutex:
            lk._waiting_writers += 1
            try:
                while lk._writer or lk._readers:
                    lk._cond.wait()
            except BaseException:  # interrupted while waiting: let held-back readers in
                lk._waiting_writers -= 1
                lk._cond.notify_all()
                raise
            lk._waiting_writers -= 1
            lk._writer = True

    def __exit__(self, *exc: object) -> None:
        lk = self._lock
        with lk._mutex:
            lk._writer = False
            lk._cond.notify_all()


class RWLock:
    """`with lock.read():` shares; `with lock.write():` excludes everyone else."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._read = _Read(self)
        self._write = _Write(self)

    def read(self) -> _Read:
        return self._read

    def write(self) -> _Write:
        return self._write
