"""Destroying a base bucket left the aggregates ondiskagg keeps from it behind: re-creating
the base then served the old 1D/1H bars. Now `db.destroy` of a base destroys the buckets a
trigger maintains from it in the same all-or-nothing operation (docs/plugins.md "Buckets a
trigger maintains"), and `mkts check` stays clean."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mkts import engine
from mkts.check import check_root
from mkts.plugins import ondiskagg
from mkts.wiring import AggregationSpec

T0 = 1_704_187_800  # 2024-01-02 09:30 UTC
DESTS = ["5Min", "1H", "1D"]
BAR = np.dtype([("Epoch", "<i8"), ("Open", "<f8"), ("High", "<f8"), ("Low", "<f8"),
                ("Close", "<f8"), ("Volume", "<i8")])


def _bars(epochs: list[int], price: float) -> np.ndarray:
    out = np.zeros(len(epochs), dtype=BAR)
    out["Epoch"] = epochs
    for c in ("Open", "High", "Low", "Close"):
        out[c] = price
    out["Volume"] = 10
    return out


def _open(root: Path) -> engine.Database:
    agg = ondiskagg.NewTrigger({"destinations": DESTS, "batch_ms": 0})
    return engine.open(root, triggers=[("*/1Min/OHLCV", agg)])


def test_destroy_takes_the_aggregates_along_and_recreating_starts_clean(tmp_path: Path) -> None:
    root = tmp_path / "db"
    with _open(root) as db:
        db.write("X/1Min/OHLCV", _bars([T0, T0 + 60, T0 + 3600], 1.0))
        db.write("Y/1Min/OHLCV", _bars([T0], 7.0))
        db.write("X/1Min/OTHER", _bars([T0], 3.0))  # not aggregated: `on:` does not match
        assert db.wait_for_triggers(10)
        assert {"X/1D/OHLCV", "X/1H/OHLCV", "X/5Min/OHLCV"} <= set(db.list_keys())

        gone = db.destroy("X/1Min/OHLCV")
        assert gone == ["X/1Min/OHLCV", "X/1D/OHLCV", "X/1H/OHLCV", "X/5Min/OHLCV"]
        assert set(db.list_keys()) == {"X/1Min/OTHER", "Y/1D/OHLCV", "Y/1H/OHLCV",
                                       "Y/1Min/OHLCV", "Y/5Min/OHLCV"}

        db.write("X/1Min/OHLCV", _bars([T0 + 120], 2.0))
        assert db.wait_for_triggers(10)
        day = db.read("X/1D/OHLCV")
        assert day["Open"].tolist() == [2.0] and day["Volume"].tolist() == [10]
        assert db.read("X/1H/OHLCV")["Volume"].tolist() == [10]
        assert db.read("Y/1D/OHLCV")["Close"].tolist() == [7.0]
    report = check_root(str(root), aggregates=[AggregationSpec("*/1Min/OHLCV", tuple(DESTS))])
    assert not report.errors, report.errors


def test_an_aggregate_or_a_base_without_its_trigger_goes_alone(tmp_path: Path) -> None:
    root = tmp_path / "db"
    with _open(root) as db:
        db.write("X/1Min/OHLCV", _bars([T0], 1.0))
        assert db.wait_for_triggers(10)
        assert db.destroy("X/5Min/OHLCV") == ["X/5Min/OHLCV"]
    with engine.open(root) as db:
        assert db.destroy("X/1Min/OHLCV") == ["X/1Min/OHLCV"]
        assert "X/1D/OHLCV" in db.list_keys()


def test_a_destroy_a_crash_interrupted_is_finished_at_open(tmp_path: Path) -> None:
    """The intent file `.destroy` lists every bucket of one destroy; an open after a crash
    that left it finishes the destroy (a readonly open only hides those buckets)."""
    root = tmp_path / "db"
    with _open(root) as db:
        db.write("X/1Min/OHLCV", _bars([T0], 1.0))
        db.write("Y/1Min/OHLCV", _bars([T0], 1.0))
        assert db.wait_for_triggers(10)
    (root / ".destroy").write_text("X/1Min/OHLCV\nX/1D/OHLCV\nX/1H/OHLCV\nX/5Min/OHLCV\n")
    with engine.open(root, readonly=True) as ro:
        assert [k for k in ro.list_keys() if k.startswith("X/")] == []
    assert (root / ".destroy").exists()
    with engine.open(root) as db:
        assert [k for k in db.list_keys() if k.startswith("X/")] == []
        assert len(db.read("Y/1D/OHLCV")) == 1
    assert not (root / ".destroy").exists()
    assert not (root / "X").exists()


def test_mkts_destroy_then_import_serves_only_the_new_bars(tmp_path: Path) -> None:
    """The issue's repro with the CLI and the default mkts.yml (ondiskagg configured)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)}

    def mkts(*args: str) -> str:
        res = subprocess.run([sys.executable, "-m", "mkts.cli", *args], capture_output=True,
                             text=True, cwd=str(tmp_path), env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        return res.stdout

    mkts("init")
    (tmp_path / "old.csv").write_text("time,Open,High,Low,Close,Volume\n"
                                      "2024-01-02 09:30:00,10,11,9,10.5,100\n")
    (tmp_path / "new.csv").write_text("time,Open,High,Low,Close,Volume\n"
                                      "2024-01-02 09:31:00,20,21,19,20.5,7\n")
    mkts("import", "X/1Min/OHLCV", "old.csv")
    out = mkts("destroy", "X/1Min/OHLCV", "--yes") if "--yes" in mkts("destroy", "--help") \
        else mkts("destroy", "X/1Min/OHLCV")
    assert "X/1D/OHLCV" in out
    mkts("import", "X/1Min/OHLCV", "new.csv")
    with engine.open(tmp_path / "data", readonly=True) as db:
        assert db.read("X/1D/OHLCV")["Volume"].tolist() == [7]
        assert db.read("X/1H/OHLCV")["Open"].tolist() == [20.0]
    assert mkts("check").strip().endswith(": ok")
