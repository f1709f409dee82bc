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
        with lk._cond:
            while lk._writer or lk._waiting_writers:
                lk._cond.wait()
            lk._readers += 1

    def __exit__(self, *exc: object) -> None:
        lk = self._lock
        with lk._cond:
            lk._readers -= 1
            if not lk._readers:
                lk._cond.notify_all()


class _Write:
    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lk = self._lock
        with lk._cond:
            lk._waiting_writers += 1
            while lk._writer or lk._readers:
                lk._cond.wait()
            lk._waiting_writers -= 1
            lk._writer = True

    def __exit__(self, *exc: object) -> None:
        lk = self._lock
        with lk._cond:
            lk._writer = False
            lk._cond.notify_all()


class RWLock:
    """`with lock.read():` shares; `with lock.write():` excludes everyone else."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._read = _Read(self)
        self._write = _Write(self)

    def read(self) -> _Read:
        return self._read

    def write(self) -> _Write:
        return self._write
