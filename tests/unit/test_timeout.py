"""harness/timeout.py, run on tiny test files in a pytest subprocess: a test that runs past
its limit fails with a message naming it and every thread's stack, the limit applies to each
test afresh, the timeout marker overrides it, and a hang that swallows the failure ends the
run with a faulthandler dump."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from harness.tiers import TESTS_DIR
from harness.timeout import grace_s


def _pytest(tmp_path: Path, body: str, *args: str) -> tuple[subprocess.CompletedProcess[str],
                                                             float]:
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent(body))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH")) if p)
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.timeout", "-p", "no:cacheprovider",
         "-q", "--tb=short", *args, "test_tiny.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - t


def test_a_test_past_its_limit_fails_naming_itself_and_every_thread(tmp_path: Path) -> None:
    proc, elapsed = _pytest(tmp_path, """\
        import threading
        import time

        import pytest

        def test_quick_one():
            time.sleep(0.6)

        def test_quick_two():  # the limit is per test: 0.6 s + 0.6 s pass
            time.sleep(0.6)

        def test_sleeps_past_its_limit():
            release = threading.Event()
            helper = threading.Thread(target=release.wait, name="helper-thread-xyz",
                                      daemon=True)
            helper.start()
            time.sleep(60)

        @pytest.mark.timeout(5)
        def test_marked_with_a_longer_limit():
            time.sleep(1.5)
        """, "--test-timeout=1")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "1 failed, 3 passed" in out, out
    assert "FAILED test_tiny.py::test_sleeps_past_its_limit" in out, out
    assert "Timeout: test_tiny.py::test_sleeps_past_its_limit (call) ran longer than 1 s" in out
    assert "time.sleep(60)" in out  # the main thread's traceback, at the line that hung
    assert "Thread 'helper-thread-xyz'" in out and "in wait" in out  # the other threads
    assert elapsed < 40, elapsed


def test_the_marker_can_shorten_the_limit_and_zero_turns_it_off(tmp_path: Path) -> None:
    proc, _ = _pytest(tmp_path, """\
        import time

        import pytest

        @pytest.mark.timeout(0.5)
        def test_short_limit():
            time.sleep(30)

        def test_no_limit():
            time.sleep(1.5)
        """, "--test-timeout=0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout
    assert "test_short_limit (call) ran longer than 0.5 s" in proc.stdout


def test_a_hang_in_a_fixture_teardown_fails_the_teardown(tmp_path: Path) -> None:
    proc, _ = _pytest(tmp_path, """\
        import time

        import pytest

        @pytest.fixture
        def stuck():
            yield
            time.sleep(30)

        def test_uses_stuck(stuck):
            pass
        """, "--test-timeout=1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed, 1 error" in proc.stdout, proc.stdout
    assert "test_uses_stuck (teardown) ran longer than 1 s" in proc.stdout


def test_a_swallowed_timeout_aborts_the_run_with_every_stack(tmp_path: Path) -> None:
    proc, elapsed = _pytest(tmp_path, """\
        import time

        def test_swallows_the_failure():
            while True:
                try:
                    time.sleep(30)
                except BaseException:
                    pass

        def test_never_reached():
            pass
        """, "--test-timeout=1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Timeout: test_tiny.py::test_swallows_the_failure (call)" in proc.stderr
    assert "Timeout (0:00:02)!" in proc.stderr, proc.stderr  # faulthandler's dump
    assert "in test_swallows_the_failure" in proc.stderr
    assert "passed" not in proc.stdout and "test_never_reached" not in proc.stdout
    assert elapsed < 1 + grace_s(1) + 30, elapsed


def test_a_bad_timeout_marker_is_a_usage_error(tmp_path: Path) -> None:
    proc, _ = _pytest(tmp_path, """\
        import pytest

        @pytest.mark.timeout("soon")
        def test_bad():
            pass
        """)
    assert proc.returncode != 0
    assert "timeout marker needs a number of seconds" in proc.stdout + proc.stderr


@pytest.mark.parametrize(("limit", "grace"), [(0.5, 1.0), (1, 1.0), (300, 60.0)])
def test_grace_before_the_abort(limit: float, grace: float) -> None:
    assert grace_s(limit) == grace
