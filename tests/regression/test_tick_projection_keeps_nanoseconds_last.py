"""Regression: `columns=["Nanoseconds", "Price"]` on a tick bucket returned Nanoseconds
second; reads of tick buckets always end with Nanoseconds (MarketStore's column order)."""

from __future__ import annotations

from mkts import engine

KEY = "AAPL/1Min/TRADE"


def test_nanoseconds_requested_first_still_comes_last(db: engine.Database) -> None:
    db.write(KEY, {"Epoch": [1_704_189_600, 1_704_189_600], "Price": [1.0, 2.0],
                   "Size": [3, 4], "Nanoseconds": [9, 8]}, variable=True)
    r = db.read(KEY, columns=["Nanoseconds", "Size", "Price"])
    assert r.columns == ["Epoch", "Size", "Price", "Nanoseconds"]
    assert list(r.array.dtype.names) == r.columns
    assert r["Nanoseconds"].tolist() == [8, 9]
    assert r["Size"].tolist() == [4, 3]
