"""Tick bulk loads (docs/format.md "Bulk loads", "Tick buckets"): a write of at least
`bulk_load_rows` ticks into a closed year the bucket does not hold is written as a sealed tick
file and logged as WAL op 7; reads equal those of a database that took the same writes
through the log, also after a replay; the commit leader falls back to ordinary tick blocks
when the year got rows first; ondiskagg sees the ticks, replayed ones included. A crash is
simulated by copying the root while the database is open."""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np

from mkts import engine
from mkts.plugins import aggfuncs, ondiskagg

KEY = "TBULK/1Min/TRADE"
Y2023 = 1_672_531_200
QUIET = {"checkpoint_interval_s": 1e9}


def _ticks(n: int, start: int = Y2023, seed: int = 1) -> np.ndarray:
    """`n` trades from `start`, unsorted, with ties (equal times keep write order)."""
    rng = np.random.default_rng(seed)
    t = start * 10**9 + rng.integers(0, 40 * 86_400 * 10**9, n)
    t[1::7] = t[::7][: len(t[1::7])]  # ties
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8"),
                             ("Size", "<i4")])
    out["Epoch"], out["Nanoseconds"] = t // 10**9, t % 10**9
    out["Price"] = np.round(50 + rng.random(n) * 10, 2)
    out["Size"] = np.arange(n)  # the write order, to check ties
    return out


def _same(a: Any, b: Any) -> None:
    assert len(a) == len(b)
    for c in ("Epoch", "Nanoseconds", "Price", "Size"):
        assert np.asarray(a[c]).tobytes() == np.asarray(b[c]).tobytes(), c


def _files(root: str) -> list[str]:
    return sorted(os.listdir(os.path.join(root, KEY)))


def test_tick_bulk_loads_read_like_writes_through_the_log_also_after_replay(root: str) -> None:
    first, more = _ticks(30_000), _ticks(500, seed=2)
    span = _ticks(40_000, Y2023 - 20 * 86_400, seed=3)  # 2022 and 2023: two years, one write
    with engine.open(root + ".log", bulk_load_rows=0) as ref:
        for rows in (first, more, span):
            ref.write(KEY, rows, variable=True)
        want = ref.read(KEY)
        want22 = ref.read(KEY, end=Y2023 - 1)
    with engine.open(root, **QUIET) as db:
        log = os.path.join(root, "wal")
        db.write(KEY, first, variable=True)
        assert _files(root) == ["2023.sealed", "bucket.hdr"]
        assert sum(os.path.getsize(os.path.join(log, n)) for n in os.listdir(log)) < 8192
        db.write(KEY, more, variable=True)  # under the threshold: the overlay
        db.write(KEY, span, variable=True)  # 2022 bulk-loaded, 2023's part to the overlay
        assert _files(root) == ["2022.sealed", "2023.overlay", "2023.sealed", "bucket.hdr"]
        _same(db.read(KEY), want)
        _same(db.read(KEY, end=Y2023 - 1), want22)
        shutil.copytree(root, root + ".crash")
    for r in (root, root + ".crash"):
        with engine.open(r) as again:
            _same(again.read(KEY), want)
            assert not any(n.endswith(".ingest") for n in _files(r))


def test_a_tick_bulk_load_whose_year_got_rows_first_goes_through_the_log(root: str) -> None:
    rows = _ticks(20_000)
    with engine.open(root, **QUIET) as db:
        txn = db._writes.plan({KEY: rows}, True)
        for key, schema in txn.creates:
            db.catalog.create(key, schema)
        txn.bulk, txn.ticks = db._writes.bulk.split_ticks(txn.ticks, False)  # .ingest now
        assert len(txn.bulk) == 1 and not txn.ticks
        assert any(n.endswith(".ingest") for n in _files(root))
        db.write(KEY, rows[:3], variable=True)  # logged first: 2023 becomes a live file
        db._pipeline.commit(txn.build)  # the leader plans the rows as tick blocks
        assert _files(root) == ["2023.bin", "bucket.hdr"]  # and removed the .ingest file
        assert len(db.read(KEY)) == 20_003
        shutil.copytree(root, root + ".crash")
    with engine.open(root + ".crash") as again:
        assert len(again.read(KEY)) == 20_003


def test_an_ingest_file_no_record_names_leaves_no_trace(root: str) -> None:
    with engine.open(root, **QUIET) as db:
        db.write("TB2/1Min/TRADE", _ticks(10, Y2023 - 86_400 * 700), variable=True)  # 2021
        txn = db._writes.plan({"TB2/1Min/TRADE": _ticks(20_000, Y2023 - 86_400 * 100)}, True)
        txn.bulk, txn.ticks = db._writes.bulk.split_ticks(txn.ticks, False)  # then a crash
        (bulk,) = txn.bulk
        shutil.copytree(root, root + ".crash")
    assert bulk.write.year == 2022
    with engine.open(root + ".crash") as again:
        assert len(again.read("TB2/1Min/TRADE")) == 10
        left = os.listdir(os.path.join(root + ".crash", "TB2/1Min/TRADE"))
        assert "2021.bin" in left and not [n for n in left if n.startswith("2022")]


def test_ondiskagg_bars_of_tick_bulk_loads_equal_a_scratch_aggregation(root: str) -> None:
    dests = ["5Min", "1H"]
    heard: list[int] = []

    class Count:
        def fire(self, key_path: str, records: Any) -> None:
            heard.append(len(records))

    with engine.open(root, triggers=[("*/1Min/TRADE", Count())], **QUIET) as db:
        db.write(KEY, _ticks(30_000), variable=True)
        assert db.flush(timeout=60) and sum(heard) == 30_000
        shutil.copytree(root, root + ".crash")
    agg = ondiskagg.NewTrigger({"destinations": dests})
    with engine.open(root + ".crash", triggers=[("*/1Min/TRADE", agg)], **QUIET) as db:
        assert db.flush(timeout=60)
        r = db.read(KEY)
        cols = {c: np.asarray(r[c]) for c in r.columns}
        for d in dests:
            exp = aggfuncs.aggregate(cols, db.calendar, d)
            got = db.read(f"TBULK/{d}/OHLCV")
            for c, v in exp.items():
                np.testing.assert_array_equal(np.asarray(got[c]), v, err_msg=f"{d} {c}")
