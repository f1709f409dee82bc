"""Regression: a tick write that fails while it is planned (here: a damaged blob in one of
the intervals it touches) must not leave the intervals planned before the failure with new
pending heads. Before the fix, the next write to such an interval merged the rows of the
failed write (never logged) into its blob, or pointed its chain at a blob never written, so
an undamaged interval became unreadable ("... bytes at offset ... are past the end")."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine.errors import CorruptFileError
from mkts.engine.keys import parse_key

NS = 1_000_000_000
KEY = "AAPL/1Min/TRADE"
T10 = (1_704_153_600 + 10 * 3600) * NS  # 2024-01-02 10:00 UTC
Y2024 = 1_704_067_200 * NS


def ticks(times: list[int], seq: list[int]) -> dict[str, Any]:
    t = np.asarray(times, dtype=np.int64)
    return {"Epoch": t // NS, "Nanoseconds": (t % NS).astype(np.int32),
            "Seq": np.asarray(seq, dtype=np.int64)}


def damage_interval(db: engine.Database, key: str, t: int) -> str:
    """Flip a byte in the zstd frame of the newest block of the interval holding time `t`
    (docs/format.md "Tick buckets": a 28-byte header, then the frame)."""
    bucket = db.catalog.get(parse_key(key))
    secs = t // NS
    year, slot = db.calendar.slot_of(secs, bucket.schema.timeframe)
    f = db.catalog.year_file(bucket, year)
    assert f is not None
    rec = f.slots[slot]
    at = int(rec["head"]) + 28 + (int(rec["head_bytes"]) - 28) // 2
    path = f.path
    with open(path, "r+b") as fh:
        fh.seek(at)
        b = fh.read(1)
        fh.seek(at)
        fh.write(bytes([b[0] ^ 0xFF]))
    return path


def seqs(r: engine.Result) -> list[int]:
    return r["Seq"].tolist()


def test_failed_write_to_two_intervals_leaves_the_good_one_clean(root: str) -> None:
    good, bad = T10, T10 + 60 * NS
    with engine.open(root) as db:
        # Two writes: each interval gets a block of its own (one write's intervals share one,
        # and damage to it would reach both).
        db.write(KEY, ticks([good], [0]), variable=True)
        db.write(KEY, ticks([bad], [1]))
    with engine.open(root) as db:
        damage_interval(db, KEY, bad)
        with pytest.raises(CorruptFileError):
            db.write(KEY, ticks([good + 1, bad + 1], [90, 91]))
        db.write(KEY, ticks([good + 2], [2]))
        assert seqs(db.read(KEY, end=np.datetime64(good + 59 * NS, "ns"))) == [0, 2]
        db.write(KEY, ticks([good + 3, good + 4], [3, 4]))  # a merge with the previous blob
        assert seqs(db.read(KEY, end=np.datetime64(good + 59 * NS, "ns"))) == [0, 2, 3, 4]
    with engine.open(root) as db:
        assert seqs(db.read(KEY, end=np.datetime64(good + 59 * NS, "ns"))) == [0, 2, 3, 4]


def test_failed_write_across_two_years_leaves_the_first_year_clean(root: str) -> None:
    good, bad = Y2024 - 1, T10  # 2023-12-31 23:59:59.999999999 and 2024-01-02 10:00
    with engine.open(root) as db:
        db.write(KEY, ticks([good, bad], [0, 1]), variable=True)
    with engine.open(root) as db:
        damage_interval(db, KEY, bad)
        with pytest.raises(CorruptFileError):
            db.write(KEY, ticks([good - 5, bad + 1], [90, 91]))
        db.write(KEY, ticks([good - 7], [2]))
        r = db.read(KEY, end=np.datetime64(good, "ns"))
        assert seqs(r) == [2, 0]
        assert (r.timestamps.view(np.int64)).tolist() == [good - 7, good]
        info = db.info(KEY)
        f = db.catalog.year_file(db.catalog.get(parse_key(KEY)), 2023)
        assert f is not None
        occupied = f.slots[f.slots["_slot"] != 0]
        assert int(occupied["nrows"].sum()) == 2
        assert info["rows"] == 2 + 1  # 2023: two rows; 2024: the damaged interval's one row


def test_failed_write_many_leaves_the_other_tick_bucket_clean(root: str) -> None:
    other = "MSFT/1Min/TRADE"
    with engine.open(root) as db:
        db.write(other, ticks([T10], [0]), variable=True)
        db.write(KEY, ticks([T10], [1]), variable=True)
    with engine.open(root) as db:
        damage_interval(db, KEY, T10)
        with pytest.raises(CorruptFileError):
            db.write_many({other: ticks([T10 + 1], [90]), KEY: ticks([T10 + 1], [91])})
        db.write(other, ticks([T10 + 2], [2]))
        assert seqs(db.read(other)) == [0, 2]


def test_year_file_size_is_unchanged_by_a_failed_write(root: str) -> None:
    with engine.open(root) as db:
        db.write(KEY, ticks([T10], [0]), variable=True)  # a block per interval (see above)
        db.write(KEY, ticks([T10 + 60 * NS], [1]))
    with engine.open(root) as db:
        path = damage_interval(db, KEY, T10 + 60 * NS)
        size = os.path.getsize(path)
        with pytest.raises(CorruptFileError):
            db.write(KEY, ticks([T10 + 1, T10 + 60 * NS + 1], [90, 91]))
        assert os.path.getsize(path) == size
        db.write(KEY, ticks([T10 + 2], [2]))
        bucket = db.catalog.get(parse_key(KEY))
        f = db.catalog.year_file(bucket, 2024)
        assert f is not None
        _, slot = db.calendar.slot_of(T10 // NS, bucket.schema.timeframe)
        # The new block starts right at the old end of the file: no hole left by the failure.
        assert int(f.slots[slot]["head"]) == size
        assert os.path.getsize(path) == size + int(f.slots[slot]["head_bytes"])
        assert db.read(KEY, end=np.datetime64(T10 + NS, "ns"))["Seq"].tolist() == [0, 2]
