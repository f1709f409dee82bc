"""harness/waiting.py: wait_until returns as soon as the condition holds, and gives up (False)
at its deadline."""

from __future__ import annotations

import threading
import time

from harness.waiting import wait_until


def test_returns_true_at_once_when_the_condition_already_holds() -> None:
    calls = []
    assert wait_until(lambda: calls.append(1) or True, timeout=0) is True
    assert calls == [1]


def test_returns_true_once_another_thread_makes_the_condition_hold() -> None:
    flag = threading.Event()
    timer = threading.Timer(0.05, flag.set)
    timer.start()
    try:
        t = time.monotonic()
        assert wait_until(flag.is_set, timeout=10) is True
        assert time.monotonic() - t < 5
    finally:
        timer.cancel()


def test_returns_false_after_the_deadline_having_checked_at_the_deadline() -> None:
    calls: list[float] = []
    t = time.monotonic()
    assert wait_until(lambda: calls.append(time.monotonic()), timeout=0.05) is False
    assert time.monotonic() - t >= 0.05
    assert len(calls) >= 2 and calls[-1] - t >= 0.05
