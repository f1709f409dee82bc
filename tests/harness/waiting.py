"""Waiting for another thread in a test: a bounded poll of a condition, for when the code
under test offers no event to wait on. A test never sleeps a guessed time and then asserts
an exact count: it waits for the condition (or an event) with a deadline, then asserts."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.005) -> bool:
    """Call `predicate` every `interval` seconds until it returns something true (True is
    returned) or `timeout` seconds have passed (False). It is always called at least once
    and once more at the deadline. Use as `assert wait_until(lambda: ...), "what failed"`."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)  # the poll interval, not a guess at how long the work takes
