"""Regression: in a transaction that creates a bucket with a write and then updates a
range of it, the update removed nothing (it replaced only the rows of buckets that existed
before the transaction), so rows of the earlier write inside the range survived, against
the call-order rule of `db.transaction()`. Found by tests/property/test_model_corrections.py."""

from __future__ import annotations

import numpy as np

from mkts import engine

NS = 1_000_000_000
T0 = 1_704_153_600  # 2024-01-02 00:00 UTC


def bars(minutes: list[int], value: float) -> dict[str, np.ndarray]:
    n = len(minutes)
    return {"Epoch": T0 + 60 * np.asarray(minutes, dtype=np.int64),
            "Close": np.full(n, value), "Volume": np.ones(n, dtype=np.int64)}


def ticks(seconds: list[int], price: float) -> dict[str, np.ndarray]:
    n = len(seconds)
    return {"Epoch": T0 + np.asarray(seconds, dtype=np.int64),
            "Nanoseconds": np.zeros(n, dtype=np.int32), "Price": np.full(n, price)}


def test_update_in_the_creating_transaction_removes_the_earlier_rows_of_its_range(
        db: engine.Database) -> None:
    with db.transaction() as tx:
        tx.write("A/1Min/OHLCV", bars([0, 1, 2, 3], 1.0))
        tx.update("A/1Min/OHLCV", bars([0, 3], 2.0))  # replaces minutes 0..3
    r = db.read("A/1Min/OHLCV")
    assert ((r["Epoch"] - T0) // 60).tolist() == [0, 3]
    assert r["Close"].tolist() == [2.0, 2.0]
    assert tx.removed == {"A/1Min/OHLCV": 4}


def test_tick_update_in_the_creating_transaction_leaves_no_duplicates(
        db: engine.Database) -> None:
    with db.transaction() as tx:
        tx.write("T/1Sec/TRADE", ticks([0, 1, 2], 1.0), variable=True)
        tx.update("T/1Sec/TRADE", ticks([0, 2], 2.0), variable=True)
    r = db.read("T/1Sec/TRADE")
    assert (r["Epoch"] - T0).tolist() == [0, 2]
    assert r["Price"].tolist() == [2.0, 2.0]
    assert tx.removed == {"T/1Sec/TRADE": 3}


def test_update_that_creates_its_bucket_reports_no_removal(db: engine.Database) -> None:
    with db.transaction() as tx:
        tx.update("A/1Min/OHLCV", bars([0, 1], 1.0))
    assert tx.removed == {}
    assert db.read("A/1Min/OHLCV")["Close"].tolist() == [1.0, 1.0]
