"""Deletes and updates of sealed years (docs/format.md "Deletes and updates", sealed rows):
tombstones (op 3 mode 1), replacing tick slots for cut intervals, the whole year removed
(op 5 with `.sealed` and `.overlay`), then writes and re-seals; replay of the same log twice
leaves the same bytes; aggregates still equal a from-scratch aggregation. The oracle is a
database that never sealed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.check import check_root
from mkts.plugins import ondiskagg
from mkts.wiring import AggregationSpec

KEY = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2023 = 1_672_531_200  # 2023-01-01 UTC
NS = 1_000_000_000


def _rows(ticks: bool, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if ticks:
        out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8"),
                                 ("Size", "<i8")])
        # several ticks per second: deletes cut intervals
        t = np.sort(rng.integers(0, 3_000 * NS, n)) + (Y2023 + 86_400 * 40) * NS
        out["Epoch"], out["Nanoseconds"] = np.divmod(t, NS)
        out["Price"] = np.round(rng.normal(50, 2, n), 2)
        out["Size"] = np.arange(n) + seed * 10**6
        return out
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Open", "<f8"), ("High", "<f8"),
                             ("Low", "<f8"), ("Close", "<f8"), ("Volume", "<i8")])
    out["Epoch"] = Y2023 + 86_400 * 40 + 60 * np.arange(n)
    for c in ("Open", "High", "Low", "Close"):
        out[c] = np.round(100 + rng.normal(0, 1, n), 2)
    out["Volume"] = rng.integers(1, 1000, n)
    return out


def _same(a: engine.Result, b: engine.Result) -> None:
    assert a.columns == b.columns and len(a) == len(b)
    for c in a.columns:
        assert a[c].tobytes() == b[c].tobytes(), c


def _t(ns: int) -> Any:
    return np.datetime64(ns, "ns")


def _data_files(path: str) -> dict[str, bytes]:
    return {n: Path(path, n).read_bytes() for n in sorted(os.listdir(path))
            if n.endswith((".bin", ".sealed", ".overlay"))}


@pytest.mark.parametrize("key", [KEY, TICKS])
def test_deletes_and_updates_in_a_sealed_year_read_as_never_sealed(tmp_path: Path,
                                                                   key: str) -> None:
    ticks = key == TICKS
    rows = _rows(ticks, 3_000)
    base = (Y2023 + 86_400 * 40) * NS
    db, ref = engine.open(str(tmp_path / "db")), engine.open(str(tmp_path / "ref"))
    try:
        for d in (db, ref):
            d.write(key, rows, variable=ticks)
        assert db.seal(key, 2023) == [f"{key}/2023"]
        bucket = db.catalog.get(engine.parse_key(key))
        # a range that starts and ends inside intervals (ticks: cut seconds)
        a, b = base + 100 * NS + NS // 3, base + 900 * NS + NS // 2
        if not ticks:
            a, b = base + 60 * 100 * NS, base + 60 * 300 * NS
        removed = [d.delete(key, _t(a), _t(b)) for d in (db, ref)]
        assert removed[0] == removed[1] > 0
        assert 2023 in bucket.sealed and 2023 in bucket.overlays
        _same(db.read(key), ref.read(key))
        _same(db.read(key, _t(a - 5 * NS), _t(b + 5 * NS)), ref.read(key, _t(a - 5 * NS),
                                                                      _t(b + 5 * NS)))
        assert db.info(key)["rows"] == ref.info(key)["rows"]
        # an update that replaces a range in the sealed year (one transaction)
        new = _rows(ticks, 200, seed=2)
        for d in (db, ref):
            d.update(key, new, variable=ticks)
        _same(db.read(key), ref.read(key))
        # a delete of rows the overlay holds, then a re-seal keeps the result
        c = int(new["Epoch"][50]) * NS
        assert db.delete(key, _t(c), _t(c + 30 * NS)) == ref.delete(key, _t(c), _t(c + 30 * NS))
        want = ref.read(key)
        _same(db.read(key), want)
        crash = str(tmp_path / "crash")
        shutil.copytree(db.root, crash)  # the log holds the deletes: replay redoes them
        assert db.seal(key, 2023) == [f"{key}/2023"]
        assert os.listdir(bucket.path).count("2023.overlay") == 0
        _same(db.read(key), want)
    finally:
        db.close()
        ref.close()
    images = []
    for i in range(2):  # replaying the same log twice leaves the same bytes
        copy = str(tmp_path / f"replay{i}")
        shutil.copytree(crash, copy)
        with engine.open(copy) as again:
            _same(again.read(key), want)
            path = again.catalog.get(engine.parse_key(key)).path
        images.append(_data_files(path))
        with engine.open(copy) as again:  # and opening again changes nothing
            _same(again.read(key), want)
        assert _data_files(path) == images[-1]
    assert images[0] == images[1]


@pytest.mark.parametrize("key", [KEY, TICKS])
def test_deleting_a_whole_sealed_year_removes_its_files_and_a_write_makes_it_live(
        tmp_path: Path, key: str) -> None:
    ticks = key == TICKS
    rows = _rows(ticks, 1_000)
    db = engine.open(str(tmp_path / "db"))
    try:
        db.write(key, rows, variable=ticks)
        db.seal(key, 2023)
        db.write(key, _rows(ticks, 10, seed=3), variable=ticks)  # an overlay too
        bucket = db.catalog.get(engine.parse_key(key))
        assert 2023 in bucket.overlays
        held = len(db.read(key))
        assert db.delete(key, "2023-01-01", "2023-12-31 23:59:59.999999999") == held
        assert len(db.read(key)) == 0 and db.info(key)["years"] == []
        assert not [n for n in os.listdir(bucket.path) if n.startswith("2023.")]
        db.write(key, rows[:100], variable=ticks)
        assert sorted(n for n in os.listdir(bucket.path) if n.startswith("2023.")) == ["2023.bin"]
        assert len(db.read(key)) == 100
        assert db.seal(key, 2023) == [f"{key}/2023"]
        # every row of a sealed year deleted by a range inside it: the year goes too
        assert db.delete(key, "2023-01-02", "2023-12-30") == 100
        assert db.info(key)["years"] == []
    finally:
        db.close()
    assert not check_root(str(tmp_path / "db")).errors


def test_aggregates_follow_deletes_in_a_sealed_year(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    rows = _rows(False, 3_000)
    agg = ondiskagg.NewTrigger({"destinations": ["5Min", "1D"], "batch_ms": 0})
    with engine.open(root, triggers=[("*/1Min/OHLCV", agg)]) as db:
        db.write(KEY, rows)
        assert db.wait_for_triggers(10)
        assert len(db.seal(None, 2023)) == 3  # base and aggregates sealed
        start = int(rows["Epoch"][700])
        db.delete(KEY, start + 120, start + 60 * 400)  # cuts 5Min and 1D bars
        db.update(KEY, _rows(False, 30, seed=4)[:30], start=start - 600, end=start)
        assert db.wait_for_triggers(10)
        db.delete(KEY, start + 60 * 1000, None)
        assert db.wait_for_triggers(10)
    spec = [AggregationSpec("*/1Min/OHLCV", ("5Min", "1D"))]
    assert not check_root(root, aggregates=spec).errors
