"""`make demo` runs end to end: load, aggregate, serve, query with pymarketstore, stream, stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end_and_reports_consistent_counts(tmp_path: Path) -> None:
    env = dict(os.environ, MKTS_DEMO_ROOT=str(tmp_path / "demo"))
    proc = subprocess.run([sys.executable, "-m", "mkts.demo"], capture_output=True, text=True,
                          env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "listening on http://127.0.0.1:" in out
    assert "AAPL/5Min/OHLCV via pymarketstore" in out
    assert "AAPL/1D/OHLCV via pymarketstore" in out
    # every timeframe printed in the database's one zone (1D showed +00:00 beside -04:00)
    assert "+00:00" not in out and "-04:00" in out
    # The live bar reached both the base bucket and its 5Min aggregate over /ws.
    pushed = [line.split()[0] for line in out.splitlines() if "Epoch=" in line]
    assert pushed[:2] == ["AAPL/1Min/OHLCV", "AAPL/5Min/OHLCV"]
    assert "SIGTERM -> server exited with status 0" in out
    assert (tmp_path / "demo" / "db" / "AAPL" / "1D" / "OHLCV").is_dir()
