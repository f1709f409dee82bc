"""A year file truncated by another process while a handle has it mapped: a read raises
`CorruptFileError` naming the file; it never returns the rows that are left as if they were
all (a read-only handle used to return 256 of 200 000 rows), and a writable handle does not
die of SIGBUS when the truncation happened before the read."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mkts import engine

KEY = "AAPL/1Sec/OHLCV"
JAN2 = 1_704_153_600  # 2024-01-02 00:00 UTC
ROWS = 200_000


def _fill(root: str) -> str:
    with engine.open(root, bulk_load_rows=0) as db:  # the subject is the live year file
        db.write(KEY, {"Epoch": JAN2 + np.arange(ROWS, dtype=np.int64),
                       "Close": np.arange(ROWS, dtype=np.float64)})
    return os.path.join(root, "AAPL", "1Sec", "OHLCV", "2024.bin")


def _truncate_elsewhere(path: str, size: int) -> None:
    subprocess.run([sys.executable, "-c", f"import os; os.truncate({path!r}, {size})"],
                   check=True)


def test_readonly_read_of_a_file_truncated_while_mapped_is_an_error(root: str) -> None:
    path = _fill(root)
    with engine.open(root, readonly=True) as db:
        assert len(db.read(KEY)) == ROWS  # mapped and scanned once
        slot0 = (JAN2 - 1_704_067_200)  # 1Sec: slot of 2 January 00:00
        _truncate_elsewhere(path, 4096 + (slot0 + 256) * 16)
        with pytest.raises(engine.CorruptFileError, match="2024.bin.*truncated"):
            db.read(KEY)
        with pytest.raises(engine.CorruptFileError, match="2024.bin"):
            db.query("AAPL/1Sec/OHLCV")


def test_writable_read_of_a_file_truncated_while_mapped_is_an_error_not_sigbus(
        root: str) -> None:
    path = _fill(root)
    script = textwrap.dedent(f"""
        import os, sys
        from mkts import engine
        db = engine.open({root!r})
        assert len(db.read({KEY!r})) == {ROWS}
        os.truncate({path!r}, 4096 + 1000 * 16)
        try:
            db.read({KEY!r})
        except engine.CorruptFileError as exc:
            print("error:", exc)
            sys.exit(0)
        print("no error")
        sys.exit(3)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    assert "truncated" in out.stdout
