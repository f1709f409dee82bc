"""Bulk loads (docs/format.md "Bulk loads"): a write of a closed year its bucket does not
hold is written as a sealed file first and logged as one small WAL op 7; replay adopts or
recognises the file, open removes what no log record names, and a write that reached the
year first gets the rows merged instead."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine import journal
from mkts.engine.bulkload import ingest_name
from mkts.engine.plan import IngestWrite, plan_fixed

KEY = "BULK/1Min/OHLCV"
Y2023 = 1_672_531_200
BULK = 10_000  # the bulk_load_rows these tests open with (the default)


def _bars(n: int) -> np.ndarray:
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Close", "<f8"), ("Volume", "<i8")])
    out["Epoch"] = Y2023 + 60 * np.arange(n)
    out["Close"] = np.round(100 + np.arange(n) * 0.01, 2)
    out["Volume"] = np.arange(n)
    return out


def _files(root: str) -> list[str]:
    return sorted(os.listdir(os.path.join(root, KEY)))


def _log_bytes(root: str) -> int:
    wal = os.path.join(root, "wal")
    return sum(os.path.getsize(os.path.join(wal, n)) for n in os.listdir(wal))


def test_a_bulk_load_of_a_closed_year_is_sealed_and_its_rows_skip_the_log(root: str) -> None:
    rows = _bars(50_000)
    db = engine.open(root, bulk_load_rows=BULK)
    try:
        before = _log_bytes(root)
        assert db.write(KEY, rows) >= 1
        assert _files(root) == ["2023.sealed", "bucket.hdr"]
        assert _log_bytes(root) - before < 4096  # 50 000 rows are ~1.2 MB as slot records
        got = db.read(KEY)
        assert got["Epoch"].tolist() == rows["Epoch"].tolist()
        assert got["Close"].tobytes() == rows["Close"].tobytes()
        db.write(KEY, rows[:3])  # a later write of the year: its overlay
        assert _files(root) == ["2023.overlay", "2023.sealed", "bucket.hdr"]
        assert len(db.read(KEY)) == 50_000
        shutil.copytree(root, root + ".crash")  # the log still holds op 7 and the write
    finally:
        db.close()
    # replay finds the sealed file op 7 made
    again = engine.open(root + ".crash", bulk_load_rows=BULK)
    try:
        assert len(again.read(KEY)) == 50_000 and again.info(KEY)["sealed"] == [2023]
    finally:
        again.close()


def test_small_writes_and_the_current_year_take_the_log(root: str) -> None:
    db = engine.open(root, bulk_load_rows=BULK)
    try:
        db.write(KEY, _bars(100))  # under the bulk threshold
        now = np.array([int(np.datetime64("now", "s").astype(np.int64)) // 60 * 60])
        db.write("NOW/1Min/OHLCV", {"Epoch": now + 60 * np.arange(20_000) - 60 * 20_000,
                                    "Close": np.ones(20_000)})
        assert _files(root) == ["2023.bin", "bucket.hdr"]
        assert not any(n.endswith(".sealed") for n in os.listdir(os.path.join(root, "NOW",
                                                                              "1Min", "OHLCV")))
    finally:
        db.close()


def _planned(db: Any, rows: np.ndarray) -> list[Any]:
    bucket = db.catalog.get(engine.parse_key(KEY))
    from mkts.engine.ingest import prepare, raw_columns

    batch = prepare(raw_columns(rows, KEY), bucket.schema, db.calendar, KEY)
    return plan_fixed(bucket.key, bucket.schema, batch, db.calendar)


def test_a_write_that_reached_the_year_first_gets_the_bulk_rows_merged(root: str) -> None:
    rows = _bars(20_000)
    db = engine.open(root, bulk_load_rows=BULK)
    try:
        db.create(KEY, {"Close": "f8", "Volume": "i8"})
        writes = db._writes.bulk.fixed(_planned(db, rows))  # the sealed file is written now
        assert [type(w) for w in writes] == [IngestWrite]
        db.write(KEY, rows[-1:])  # logged first: the year becomes a live file
        db._pipeline.commit_built(journal.encode_parts(list(writes)), writes)
        assert "2023.bin" in _files(root) and len(db.read(KEY)) == 20_000
        name = ingest_name(2023, writes[0].ingest_id)
        assert name in _files(root)  # kept: replay may need it again
        shutil.copytree(root, root + ".crash")
    finally:
        db.close()
    for r in (root, root + ".crash"):
        again = engine.open(r, bulk_load_rows=BULK)
        try:
            got = again.read(KEY)
            assert got["Volume"].tolist() == rows["Volume"].tolist()
            assert not any(n.endswith(".ingest") for n in _files(r))  # removed after replay
        finally:
            again.close()


def test_a_lost_rename_is_redone_and_an_orphan_is_removed(root: str) -> None:
    rows = _bars(20_000)
    db = engine.open(root, bulk_load_rows=BULK)
    db.create(KEY, {"Close": "f8", "Volume": "i8"})
    writes = db._writes.bulk.fixed(_planned(db, rows))
    iid = writes[0].ingest_id
    Path(root, KEY, ingest_name(2024, 7)).write_bytes(b"never logged")
    db._pipeline.commit_built(journal.encode_parts(list(writes)), writes)
    shutil.copytree(root, root + ".crash")
    db.close()
    crash = os.path.join(root + ".crash", KEY)
    os.replace(os.path.join(crash, "2023.sealed"), os.path.join(crash, ingest_name(2023, iid)))
    again = engine.open(root + ".crash", bulk_load_rows=BULK)  # crashed before the rename
    try:
        assert len(again.read(KEY)) == 20_000
        assert sorted(os.listdir(crash)) == ["2023.sealed", "bucket.hdr"]
    finally:
        again.close()


def test_a_bulk_load_whose_file_is_gone_is_reported(root: str) -> None:
    db = engine.open(root, bulk_load_rows=BULK)
    db.create(KEY, {"Close": "f8", "Volume": "i8"})
    writes = db._writes.bulk.fixed(_planned(db, _bars(20_000)))
    db._pipeline.commit_built(journal.encode_parts(list(writes)), writes)
    shutil.copytree(root, root + ".crash")
    db.close()
    os.remove(os.path.join(root + ".crash", KEY, "2023.sealed"))
    with pytest.raises(engine.MktsError, match="bulk load a log record names is missing"):
        engine.open(root + ".crash", bulk_load_rows=BULK)


def test_bulk_loads_are_on_by_default_off_at_zero_and_refuse_bad_settings(root: str) -> None:
    with pytest.raises(engine.InvalidInputError, match="bulk_load_rows"):
        engine.open(root, bulk_load_rows=-1)
    with engine.open(root) as db:  # the default threshold: 10 000 rows
        db.write(KEY, _bars(9_999))
        assert _files(root) == ["2023.bin", "bucket.hdr"]
        db.write("B/1Min/OHLCV", _bars(10_000))
        assert sorted(os.listdir(os.path.join(root, "B/1Min/OHLCV"))) == ["2023.sealed",
                                                                          "bucket.hdr"]
    with engine.open(root, bulk_load_rows=0) as db:
        db.write("C/1Min/OHLCV", _bars(20_000))
        assert sorted(os.listdir(os.path.join(root, "C/1Min/OHLCV"))) == ["2023.bin",
                                                                          "bucket.hdr"]


def test_a_write_many_of_several_buckets_bulk_loads_each_and_replays(root: str) -> None:
    rows = {f"S{i}/1Min/OHLCV": _bars(12_000 + 1_000 * i) for i in range(3)}
    with engine.open(root, checkpoint_interval_s=1e9) as db:
        db.write_many(rows)  # one transaction, three op 7 records
        for k, v in rows.items():
            assert sorted(os.listdir(os.path.join(root, k))) == ["2023.sealed", "bucket.hdr"]
            assert db.read(k)["Volume"].tolist() == v["Volume"].tolist()
        shutil.copytree(root, root + ".crash")
    with engine.open(root + ".crash") as again:
        for k, v in rows.items():
            assert again.read(k)["Close"].tobytes() == v["Close"].tobytes()


def test_a_backup_taken_during_bulk_loads_opens_with_every_load_whole(root: str) -> None:
    """The copy's log may hold op 7 records of loads made after its files were listed: the
    backup copies the `.ingest` or `.sealed` file each names (docs/backup.md)."""
    import threading

    rows = _bars(12_000)
    started = threading.Event()
    with engine.open(root, checkpoint_interval_s=1e9) as db:
        def load() -> None:
            for i in range(30):
                db.write(f"L{i}/1Min/OHLCV", rows)
                started.set()

        t = threading.Thread(target=load)
        t.start()
        assert started.wait(60)
        res = db.backup(root + ".bak")
        t.join()
    with engine.open(root + ".bak") as copy:
        keys = copy.list_keys()
        assert keys and all(len(copy.read(k)) in (0, 12_000) for k in keys)
        assert sum(len(copy.read(k)) for k in keys) == 12_000 * res.txn
