"""The readers-writer lock that keeps readers from seeing half a transaction: readers share,
a writer excludes everyone, a waiting writer holds back new readers, and a writer that
gives up waiting does not leave readers blocked."""

from __future__ import annotations

import threading
import time

import pytest
from harness.waiting import wait_until

from mkts.engine.rwlock import RWLock


def _start(fn: object) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)  # type: ignore[arg-type]
    t.start()
    return t


def test_readers_hold_the_lock_together() -> None:
    lock = RWLock()
    inside = threading.Barrier(3, timeout=5)

    def reader() -> None:
        with lock.read():
            inside.wait()  # all three readers are inside at once, or this times out

    threads = [_start(reader) for _ in range(2)]
    with lock.read():
        inside.wait()
    for t in threads:
        t.join(5)
        assert not t.is_alive()


def test_a_writer_excludes_readers_and_writers() -> None:
    lock = RWLock()
    state = {"writers": 0, "readers": 0, "bad": 0}
    guard = threading.Lock()

    def writer() -> None:
        for _ in range(200):
            with lock.write():
                with guard:
                    state["writers"] += 1
                    if state["writers"] != 1 or state["readers"]:
                        state["bad"] += 1
                time.sleep(0)  # let other threads run while the lock is held
                with guard:
                    state["writers"] -= 1

    def reader() -> None:
        for _ in range(400):
            with lock.read():
                with guard:
                    state["readers"] += 1
                    if state["writers"]:
                        state["bad"] += 1
                time.sleep(0)  # let other threads run while the lock is held
                with guard:
                    state["readers"] -= 1

    threads = [_start(writer) for _ in range(2)] + [_start(reader) for _ in range(3)]
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    assert state == {"writers": 0, "readers": 0, "bad": 0}


def test_a_waiting_writer_goes_before_new_readers() -> None:
    lock = RWLock()
    order: list[str] = []
    first_reader_in = threading.Event()
    release_first = threading.Event()

    def first_reader() -> None:
        with lock.read():
            first_reader_in.set()
            release_first.wait(5)

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    r1 = _start(first_reader)
    assert first_reader_in.wait(5)
    w = _start(writer)
    assert wait_until(lambda: lock._waiting_writers), "the writer never started waiting"
    r2 = _start(late_reader)
    time.sleep(0.05)  # a window in which a late reader that jumped the queue would get in
    assert order == []  # the late reader waits behind the waiting writer
    release_first.set()
    for t in (r1, w, r2):
        t.join(5)
        assert not t.is_alive()
    assert order == ["writer", "late reader"]


def test_a_writer_interrupted_while_waiting_lets_readers_in() -> None:
    lock = RWLock()
    held = threading.Event()
    release = threading.Event()

    def reader_holding() -> None:
        with lock.read():
            held.set()
            release.wait(5)

    r1 = _start(reader_holding)
    assert held.wait(5)
    real_wait = lock._cond.wait
    calls = []

    def interrupted_wait(timeout: float | None = None) -> bool:
        calls.append(timeout)
        raise KeyboardInterrupt

    lock._cond.wait = interrupted_wait  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        with lock.write():
            pass
    lock._cond.wait = real_wait  # type: ignore[method-assign]
    assert calls and lock._waiting_writers == 0 and not lock._writer
    got_in = threading.Event()

    def reader() -> None:
        with lock.read():
            got_in.set()

    r2 = _start(reader)
    assert got_in.wait(5)  # not held back by a writer that is gone
    release.set()
    for t in (r1, r2):
        t.join(5)
    with lock.write():  # and the lock is free again
        pass
