"""Tombstones in the overlay of a sealed year (engine/sealing.py `apply_tombstones`; docs/format.md
"Deletes and updates"): the apply side of WAL op 3 mode 1 that the delete path calls, and the
read side that hides sealed rows, for bars and ticks, across a re-seal and a reopen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mkts import engine
from mkts.engine.sealing import apply_tombstones

Y2023 = 1_672_531_200
NS = 10**9


def _tombstone(db: engine.Database, key: str, first: int, last: int) -> None:
    """What the delete path does for a sealed year, without the log: the overlay (created
    on first use), then the tombstones, under the writers' lock."""
    bucket = db.catalog.get(engine.parse_key(key))
    with db._rw.write():
        f = db.catalog.acquire(bucket, 2023, create=True)
        assert f is not None
        try:
            apply_tombstones(f, first, last)
            apply_tombstones(f, first, last)  # idempotent, as replay needs
        finally:
            db.catalog.release(f)


def test_tombstones_hide_sealed_bars_until_a_write_and_survive_a_reseal(root: str) -> None:
    key = "X/1Min/OHLCV"
    epochs = Y2023 + 60 * np.arange(100)
    db = engine.open(root)
    db.write(key, {"Epoch": epochs, "Close": np.arange(100, dtype="f8")})
    db.seal(key, 2023)
    _tombstone(db, key, 10, 19)  # slots 10..19: minutes 10..19 of the year
    got = db.read(key)
    assert got["Epoch"].tolist() == [int(e) for i, e in enumerate(epochs) if not 10 <= i < 20]
    assert db.info(key)["rows"] == 90
    db.write(key, {"Epoch": np.array([epochs[12]]), "Close": np.array([-1.0])})
    assert db.read(key, int(epochs[10]), int(epochs[19]))["Close"].tolist() == [-1.0]
    db.seal(key, 2023)  # generation 2 holds the result, the overlay is gone
    assert sorted(p.name for p in Path(root, key).iterdir()) == ["2023.sealed", "bucket.files",
                                                                 "bucket.hdr"]
    assert len(db.read(key)) == 91
    db.close()
    with engine.open(root, readonly=True) as ro:
        assert len(ro.read(key)) == 91 and ro.read(key, int(epochs[12]))["Close"][0] == -1.0


def test_a_tombstoned_interval_of_ticks_is_hidden_and_an_append_replaces_it(root: str) -> None:
    key = "X/1Min/TRADE"
    t = Y2023 * NS + np.array([5, 6, 61, 62, 63, 130]) * NS  # minutes 0, 1, 1, 1, 1, 2
    db = engine.open(root)
    db.write(key, {"Epoch": t.astype("datetime64[ns]"), "Size": np.arange(6)}, variable=True)
    db.seal(key, 2023)
    _tombstone(db, key, 1, 1)
    assert db.read(key)["Size"].tolist() == [0, 1, 5]
    db.write(key, {"Epoch": np.array([Y2023 * NS + 70 * NS]).astype("datetime64[ns]"),
                   "Size": np.array([9])}, variable=True)
    assert db.read(key)["Size"].tolist() == [0, 1, 9, 5]  # the sealed minute 1 stays hidden
    db.write(key, {"Epoch": np.array([Y2023 * NS + 5 * NS]).astype("datetime64[ns]"),
                   "Size": np.array([7])}, variable=True)  # into minute 0: added after
    assert db.read(key)["Size"].tolist() == [0, 7, 1, 9, 5]
    db.seal(key, 2023)
    assert db.read(key)["Size"].tolist() == [0, 7, 1, 9, 5]
    db.close()


def test_tombstones_refuse_a_live_file_and_slots_outside_the_year(root: str) -> None:
    key = "X/1Min/OHLCV"
    db = engine.open(root)
    try:
        db.write(key, {"Epoch": np.array([Y2023]), "Close": np.array([1.0])})
        bucket = db.catalog.get(engine.parse_key(key))
        with db.catalog.pinned(bucket, 2023) as f:
            assert f is not None
            with pytest.raises(engine.InvalidInputError, match="not an overlay"):
                apply_tombstones(f, 0, 0)
        db.seal(key, 2023)
        with db._rw.write():
            f = db.catalog.acquire(bucket, 2023, create=True)
            assert f is not None
            try:
                with pytest.raises(engine.InvalidInputError, match="outside 0..525599"):
                    apply_tombstones(f, 0, 525_600)
            finally:
                db.catalog.release(f)
        assert len(db.read(key)) == 1
    finally:
        db.close()
