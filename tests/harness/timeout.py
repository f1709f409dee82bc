"""Per-test timeout, a pytest plugin (tests/conftest.py loads it): a hang fails loudly, with
every thread's stack, instead of stalling the run. Standard library only.

Each phase of a test (setup, call, teardown) may take `--test-timeout` seconds (default
300; 0 turns the limit off), or what the test's `@pytest.mark.timeout(seconds)` says. When
the time is up, SIGALRM interrupts the main thread and the phase fails: its traceback shows
where the test was, the message names the test and holds the stack of every other thread;
the run goes on. If the main thread
cannot be interrupted (stuck in C code that never returns to Python, or the test swallows
the failure), faulthandler writes every thread's stack to stderr and ends the whole run
`grace_s(limit)` seconds later (exit status 1).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import traceback
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from types import FrameType

import pytest

DEFAULT_S = 300.0
_STDERR_FD = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--test-timeout", type=float, default=DEFAULT_S, metavar="SECONDS",
        help=f"fail a test phase (setup, call, teardown) that runs longer than this; abort the "
             f"run if it cannot be interrupted (default {DEFAULT_S:g}; 0: no limit). Tests "
             f"marked timeout(seconds) use their own limit.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "timeout(seconds): this test's limit per phase, instead of --test-timeout "
                   "(for known-long tests; 0: no limit)")
    # fd 2 is captured while a test runs: keep the terminal's stderr for the abort dump
    config.stash[_STDERR_FD] = os.dup(2)


def pytest_unconfigure(config: pytest.Config) -> None:
    fd = config.stash.get(_STDERR_FD, None)
    if fd is not None:
        os.close(fd)
        del config.stash[_STDERR_FD]


def limit_of(item: pytest.Item) -> float:
    """The limit in seconds for each phase of `item` (0: none)."""
    mark = item.get_closest_marker("timeout")
    if mark is None:
        return float(item.config.getoption("--test-timeout"))
    seconds = mark.args[0] if mark.args else mark.kwargs.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise pytest.UsageError(f"{item.nodeid}: timeout marker needs a number of seconds "
                                f">= 0, got {mark.args or mark.kwargs}")
    return float(seconds)


def grace_s(limit: float) -> float:
    """How long after the limit a phase that could not be interrupted ends the run."""
    return min(max(limit, 1.0), 60.0)


def other_stacks() -> str:
    """The stack of every thread but the calling one, innermost call last."""
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    out = [f"Thread {names.get(ident, '?')!r} (id {ident}):\n"
           + "".join(traceback.format_stack(frame))
           for ident, frame in sys._current_frames().items() if ident != me]
    return "\n".join(out) or "(no other threads)"


@contextmanager
def _limited(item: pytest.Item, phase: str) -> Iterator[None]:
    limit = limit_of(item)
    if limit <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    stderr_fd = item.config.stash[_STDERR_FD]

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        # named on the terminal at once too, in case the failure below is swallowed
        os.write(stderr_fd, f"\nTimeout: {item.nodeid} ({phase}) ran longer than {limit:g} s\n"
                            .encode())
        pytest.fail(f"Timeout: {item.nodeid} ({phase}) ran longer than {limit:g} s "
                    f"(--test-timeout or @pytest.mark.timeout). The main thread is in the "
                    f"traceback; the other threads:\n\n{other_stacks()}")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    faulthandler.dump_traceback_later(limit + grace_s(limit), exit=True, file=stderr_fd)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _limited(item, "setup"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _limited(item, "call"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, None, None]:
    with _limited(item, "teardown"):
        return (yield)
