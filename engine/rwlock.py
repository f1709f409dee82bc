"""A readers-writer lock: many concurrent readers, or one writer (writers get preference).

State (`_readers`, `_writer`, `_waiting_writers`, `_sleepers`) changes only while holding
`_mu`, the lock under the condition variable. A thread that finds the lock free enters with
one acquire/release of `_mu` (no Condition calls); otherwise it sleeps on the condition and
counts itself in `_sleepers`. Whoever may free a sleeper (the last reader leaving, a writer
leaving, a waiting writer giving up) notifies when `_sleepers` is non-zero, so no wake-up
is lost and the uncontended case never notifies.
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
                except BaseException:  # interrupted while waiting: let held-back readers in
                    lk._sleepers -= 1
                    lk._waiting_writers -= 1
                    if lk._sleepers:
                        lk._cond.notify_all()
                    raise
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
    """`with lock.read():` shares; `with lock.write():` excludes everyone else."""

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
