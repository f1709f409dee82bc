"""Replaying a log whose records wrote a year, emptied it (op 5) and filled it again: the
writes before the drop must not come back. Replay meets the year's files as the log's last
records left them, so a write meant for a sealed year's overlay would land in a `.bin` the
drop does not name, or a live write in a later bulk load's overlay (found by the kill -9
corrections harness: acknowledged deletes of rows of a sealed year undone after a reopen)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.check import check_root

BARS = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2022 = 1_640_995_200  # 2022-01-01 UTC
WHOLE_2022 = (Y2022, Y2022 + 365 * 86_400 - 1)
NS = 1_000_000_000


def _rows(key: str, n: int, day: int, value: float) -> np.ndarray:
    if key == BARS:
        out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Close", "<f8")])
        out["Epoch"] = Y2022 + 86_400 * day + 60 * np.arange(n)
    else:
        out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Close", "<f8")])
        t = (Y2022 + 86_400 * day) * NS + np.arange(n, dtype=np.int64) * (NS // 4)
        out["Epoch"], out["Nanoseconds"] = np.divmod(t, NS)
    out["Close"] = value + np.arange(n)
    return out


def _closes(db: Any, key: str) -> list[float]:
    return db.read(key)["Close"].tolist() if key in db.list_keys() else []


def _crash_copy(src: Path, dst: Path) -> None:
    """What a kill -9 leaves: the files and the log as they are, no checkpoint since."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("LOCK"))


def _reopened(root: Path) -> list[list[float]]:
    """The rows read after a replay, and again after the next open (which meets what the
    replay left on disk)."""
    out = []
    for _ in range(2):
        with engine.open(root, seal_after_days=0) as db:
            out.append(_closes(db, BARS) + _closes(db, TICKS))
    assert check_root(str(root)).errors == []
    return out


@pytest.mark.parametrize("key", [BARS, TICKS])
@pytest.mark.parametrize("refill", [False, True])
def test_overlay_writes_before_a_drop_of_the_sealed_year_stay_deleted(
        tmp_path: Path, key: str, refill: bool) -> None:
    src = tmp_path / "db"
    db = engine.open(src, seal_after_days=0, bulk_load_rows=0, checkpoint_interval_s=3600)
    try:
        db.write(key, _rows(key, 8, 10, 1.0), variable=key == TICKS)
        db.seal(key, year=2022)  # checkpoints: the log starts with its op 6
        db.write(key, _rows(key, 3, 20, 100.0), variable=key == TICKS)  # into the overlay
        db.delete(key, *WHOLE_2022)  # op 5: the sealed file and the overlay
        if refill:  # a `.bin` of 2022 again
            db.write(key, _rows(key, 2, 30, 500.0), variable=key == TICKS)
        want = _closes(db, key)
        _crash_copy(src, tmp_path / "copy")
    finally:
        db.close()
    assert want == ([500.0, 501.0] if refill else [])
    assert _reopened(tmp_path / "copy") == [want, want]


def test_live_writes_before_a_drop_stay_out_of_a_later_bulk_loaded_year(tmp_path: Path) -> None:
    src = tmp_path / "db"
    db = engine.open(src, seal_after_days=0, bulk_load_rows=50, checkpoint_interval_s=3600)
    try:
        db.write(BARS, _rows(BARS, 8, 10, 1.0))  # a `.bin` (fewer rows than a bulk load)
        db.delete(BARS, *WHOLE_2022)  # op 5: the `.bin`
        db.write(BARS, _rows(BARS, 60, 40, 1000.0))  # op 7: 2022 becomes a sealed file
        want = _closes(db, BARS)
        _crash_copy(src, tmp_path / "copy")
    finally:
        db.close()
    assert want == [1000.0 + i for i in range(60)]
    assert _reopened(tmp_path / "copy") == [want, want]


def test_bulk_load_after_a_drop_of_a_sealed_year_survives_replay(tmp_path: Path) -> None:
    src = tmp_path / "db"
    db = engine.open(src, seal_after_days=0, bulk_load_rows=50, checkpoint_interval_s=3600)
    try:
        db.write(BARS, _rows(BARS, 8, 10, 1.0))
        db.seal(BARS, year=2022)
        db.delete(BARS, *WHOLE_2022)  # op 5: the sealed file (and overlay)
        db.write(BARS, _rows(BARS, 60, 40, 1000.0))  # op 7: a new sealed file of 2022
        want = _closes(db, BARS)
        _crash_copy(src, tmp_path / "copy")
    finally:
        db.close()
    assert want == [1000.0 + i for i in range(60)]
    assert _reopened(tmp_path / "copy") == [want, want]
