"""A delete that lands in a live year between a seal's build (from a snapshot, writers
running) and its swap must stop the swap: the sealed file was built without it, and the
swap's checkpoint retires its log record (found by the kill -9 corrections harness, where
the background sealer raced the writer's deletes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine import sealjob

KEY = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2022 = 1_640_995_200  # 2022-01-01 UTC


def _rows(key: str) -> np.ndarray:
    if key == KEY:
        out = np.zeros(100, dtype=[("Epoch", "<i8"), ("Close", "<f8")])
        out["Epoch"] = Y2022 + 86_400 * 5 + 60 * np.arange(100)
    else:
        out = np.zeros(100, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Close", "<f8")])
        out["Epoch"] = Y2022 + 86_400 * 5 + np.arange(100) // 2
    out["Close"] = np.arange(100)
    return out


@pytest.mark.parametrize("key", [KEY, TICKS])
@pytest.mark.parametrize("whole_year", [False, True])
def test_delete_between_a_seals_build_and_its_swap_is_kept(
        root: str, monkeypatch: pytest.MonkeyPatch, key: str, whole_year: bool) -> None:
    db = engine.open(root, seal_after_days=0)
    try:
        db.write(key, _rows(key), variable=key == TICKS)
        first = Y2022 + 86_400 * 5  # 30 bars (a minute each) or 60 ticks (two a second)
        end = Y2022 + 86_400 * 365 - 1 if whole_year else first + (60 * 30 - 1 if key == KEY
                                                                   else 29)
        real = sealjob.write_sealed

        def delete_then_write(*args: Any) -> int:
            db.delete(key, Y2022, end)  # op 3 (zero slots) or op 5 (drop the year)
            return real(*args)

        monkeypatch.setattr(sealjob, "write_sealed", delete_then_write)
        assert db.seal(key, year=2022) == []  # not installed: tried again later
        monkeypatch.undo()
        want = [] if whole_year else list(range(60 if key == TICKS else 30, 100))
        assert db.read(key)["Close"].tolist() == want
        db.seal(key)  # now it seals (a year left empty is gone: nothing to seal)
        assert db.read(key)["Close"].tolist() == want
    finally:
        db.close()
    with engine.open(root, seal_after_days=0) as again:
        assert again.read(key)["Close"].tolist() == want
