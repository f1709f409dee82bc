"""Deleting the last WAL segment used to drop its acknowledged transactions silently: the
next open found a shorter, internally consistent log. The log now records the highest segment
it ever created, and an open that does not find it refuses, naming the missing segment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from mkts import engine
from mkts.check import check_root

KEY = "AAPL/1Min/OHLCV"
T = 1_704_205_800


def test_open_after_the_last_segment_was_deleted_names_it(root: str) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from mkts import engine
        db = engine.open({root!r})
        db.write({KEY!r}, {{"Epoch": [{T}], "Close": [1.0]}})  # acknowledged: fsynced
        print("written", flush=True)
        time.sleep(60)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    wal = os.path.join(root, "wal")
    segments = sorted(n for n in os.listdir(wal) if n.endswith(".wal"))
    assert len(segments) == 1
    os.unlink(os.path.join(wal, segments[0]))
    with pytest.raises(engine.CorruptWALError, match=segments[0] + " is missing"):
        engine.open(root).close()
    assert os.listdir(wal) == ["HIGHEST"]  # the refused open changed nothing
    errors = [str(f) for f in check_root(root).errors]
    assert any(segments[0] + " is missing" in e for e in errors), errors
