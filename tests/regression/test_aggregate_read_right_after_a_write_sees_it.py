"""A read of a bucket that a trigger maintains, right after a write to its base, missed the
write: the 1D bucket did not exist yet (or held the old bar) until ondiskagg's batching
window had passed. Now a read of a maintained bucket waits for the trigger's pending work on
its base for the writes acknowledged before it (README.md "Python API"); reads of other buckets do
not wait."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from mkts import engine
from mkts.plugins import ondiskagg

T0 = 1_704_187_800  # 2024-01-02 09:30 UTC
BAR = np.dtype([("Epoch", "<i8"), ("Open", "<f8"), ("High", "<f8"), ("Low", "<f8"),
                ("Close", "<f8"), ("Volume", "<i8")])
WINDOW_MS = 400


def _bar(epoch: int, price: float) -> np.ndarray:
    out = np.zeros(1, dtype=BAR)
    out["Epoch"] = epoch
    for c in ("Open", "High", "Low", "Close"):
        out[c] = price
    out["Volume"] = 1
    return out


@pytest.fixture
def db(tmp_path: Path) -> engine.Database:
    agg = ondiskagg.NewTrigger({"destinations": ["5Min", "1D"], "batch_ms": WINDOW_MS})
    d = engine.open(tmp_path / "db", triggers=[("*/1Min/OHLCV", agg)])
    yield d
    d.close()


def test_read_and_query_of_an_aggregate_see_the_write_before_them(db: engine.Database) -> None:
    db.write("X/1Min/OHLCV", _bar(T0, 1.0))
    assert db.read("X/1D/OHLCV")["Close"].tolist() == [1.0]  # the bucket is new
    db.write("X/1Min/OHLCV", _bar(T0 + 60, 2.0))
    assert db.read("X/1D/OHLCV")["Close"].tolist() == [2.0]
    db.write("X/1Min/OHLCV", _bar(T0 + 120, 3.0))
    assert db.query("X/5Min,1D/OHLCV")["X/5Min/OHLCV"]["Close"].tolist() == [3.0]
    db.write("X/1Min/OHLCV", _bar(T0 + 180, 4.0))
    assert db.query("*/1D/OHLCV")["X/1D/OHLCV"]["Volume"].tolist() == [4]


def test_reads_of_other_buckets_do_not_wait(db: engine.Database) -> None:
    db.write("Y/1Min/OHLCV", _bar(T0, 1.0))
    assert db.wait_for_triggers(10)
    db.write("X/1Min/OHLCV", _bar(T0, 1.0))  # X's bars are pending for the whole window
    began = time.monotonic()
    assert db.read("X/1Min/OHLCV")["Close"].tolist() == [1.0]  # the base: no trigger writes it
    assert db.read("Y/1D/OHLCV")["Close"].tolist() == [1.0]  # another symbol's aggregate
    assert len(db.query("Y/*/OHLCV")) == 3
    assert time.monotonic() - began < WINDOW_MS / 1000 / 2
