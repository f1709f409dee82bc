"""Regression: destroying a tick bucket and writing it again through the same handle
started the new year file's data region at the old file's end, leaving a hole that
`info()` reported as garbage (the planner kept the destroyed file's end offset)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mkts import engine
from mkts.engine.keys import parse_key

NS = 1_000_000_000
KEY = "AAPL/1Min/TRADE"
T10 = (1_704_153_600 + 10 * 3600) * NS


def ticks(times: Any, seq: Any) -> dict[str, Any]:
    t = np.asarray(times, dtype=np.int64)
    return {"Epoch": t // NS, "Nanoseconds": (t % NS).astype(np.int32),
            "Seq": np.asarray(seq, dtype=np.int64)}


def test_recreated_tick_bucket_starts_its_data_region_after_the_slots(
        db: engine.Database) -> None:
    db.write(KEY, ticks(T10 + np.arange(1000), np.arange(1000)), variable=True)
    db.destroy(KEY)
    db.write(KEY, ticks([T10 + 5], [7]), variable=True)
    info = db.info(KEY)
    assert info["garbage_bytes"] == 0
    f = db.catalog.year_file(db.catalog.get(parse_key(KEY)), 2024)
    assert f is not None
    assert os.path.getsize(f.path) == f.data_start + info["live_bytes"]
    assert db.read(KEY)["Seq"].tolist() == [7]
    # And with a different definition.
    db.destroy(KEY)
    db.create(KEY, {"Price": "f8"}, variable=True)
    db.write(KEY, {"Epoch": [T10 // NS], "Nanoseconds": [1], "Price": [1.5]})
    info = db.info(KEY)
    assert info["garbage_bytes"] == 0
    assert db.read(KEY)["Price"].tolist() == [1.5]
