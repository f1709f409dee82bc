"""WAL op 6, the seal record (docs/wal.md §10, docs/format.md "Sealing, re-sealing and the
swap"): the swap logs it, replaying it removes what the swap left beside the sealed file it
names and nothing else, and a backup or a copy of an open root taken across a seal holds a
consistent year."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.backuphooks import during_copy
from harness.docpages import read_page, section

from mkts import engine
from mkts.check import check_root
from mkts.engine import journal
from mkts.engine.backup import backup_root
from mkts.engine.sealing import open_sealed
from mkts.engine.sealswap import SealYear, apply_seal
from mkts.wal import WriteAheadLog
from mkts.wal.fs import OsFileSystem

KEY = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2022 = 1_640_995_200  # 2022-01-01 UTC
NS = 1_000_000_000


def _bars(n: int, day: int, value: float) -> np.ndarray:
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Close", "<f8")])
    out["Epoch"] = Y2022 + 86_400 * day + 60 * np.arange(n)
    out["Close"] = value + np.arange(n)
    return out


def _ticks(n: int, day: int, price: float) -> np.ndarray:
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8")])
    t = (Y2022 + 86_400 * day) * NS + np.arange(n, dtype=np.int64) * (NS // 4)
    out["Epoch"], out["Nanoseconds"] = np.divmod(t, NS)
    out["Price"] = price
    return out


def _state(db: Any) -> dict[str, list[tuple[int, ...]]]:
    out = {}
    for key in sorted(db.list_keys()):
        r = db.read(key)
        cols = [c for c in r.columns if c != "Epoch"]
        out[key] = list(zip(r["Epoch"].tolist(), *(r[c].tolist() for c in cols), strict=True))
    return out


def _logged(root: str) -> list[Any]:
    log = WriteAheadLog.open(os.path.join(root, "wal"), OsFileSystem(), readonly=True)
    schemas = {}
    try:
        out = []
        for rec in log.records():
            def schema_of(k: Any) -> Any:
                if k not in schemas:
                    schemas[k] = engine.open(root, readonly=True).catalog.get(k).schema
                return schemas[k]
            out.extend(journal.decode(rec.payload, schema_of))
        return out
    finally:
        log.close()


def test_seal_record_round_trips_and_is_found_without_decoding() -> None:
    w = SealYear(engine.parse_key(KEY), 2022, 3, 123_456, 0xDEADBEEF)
    payload = journal.encode([w])
    assert len(payload) == 4 + 15 + len(KEY) + 16
    [back] = journal.decode(payload, lambda k: None)  # type: ignore[arg-type,return-value]
    assert back == w
    assert journal.year_marks(payload) == [(journal.OP_SEAL, KEY, 2022, (3, 123_456, 0xDEADBEEF))]


def test_seal_record_bytes_are_those_of_the_worked_example_in_docs_wal() -> None:
    """docs/wal.md §10, op 6: generation 2 of a 5 120-byte file, footer CRC 0x1234abcd."""
    text = section(read_page("docs/wal.md"), "10")
    m = re.search(r"Worked example: sealing generation 2.*?logs (\d+) bytes: (.*?)\.\n\n",
                  text, re.S)
    assert m is not None
    parts = re.findall(r"`([^`]+)`", m.group(2))
    doc = b"".join(KEY.encode() if p.startswith("the key") else bytes.fromhex(p)
                   for p in [*parts[:2], "the key", *parts[2:]])
    payload = journal.encode([SealYear(engine.parse_key(KEY), 2023, 2, 5120, 0x1234ABCD)])
    assert payload == doc and len(doc) == int(m.group(1))


def test_seal_record_of_generation_zero_is_refused_as_damage() -> None:
    bad = journal.encode([SealYear(engine.parse_key(KEY), 2022, 0, 1, 2)])
    with pytest.raises(engine.CorruptWALError, match="seal record for AAPL/1Min/OHLCV/2022"):
        journal.decode(bad, lambda k: None)  # type: ignore[arg-type,return-value]


def test_seal_logs_op_6_naming_the_new_sealed_file(root: str) -> None:
    db = engine.open(root, seal_after_days=0)
    try:
        db.write(KEY, _bars(50, 10, 1.0))
        assert db.seal(KEY, year=2022) == [f"{KEY}/2022"]
        db.write(KEY, _bars(5, 20, 9.0))  # into the overlay
        assert db.seal(KEY, year=2022) == [f"{KEY}/2022"]  # generation 2
        logged = [w for w in _logged(root) if isinstance(w, SealYear)]
        r = open_sealed(OsFileSystem(), os.path.join(root, KEY, "2022.sealed"))
        assert logged == [SealYear(engine.parse_key(KEY), 2022, 2, r.file_size, r.footer_crc)]
    finally:
        db.close()


def test_seals_then_a_clean_close_leave_no_log_record_to_replay(root: str) -> None:
    with engine.open(root, seal_after_days=0) as db:
        for sym in ("A", "B", "C"):
            db.write(f"{sym}/1Min/OHLCV", _bars(20, 10, 1.0))
        assert len(db.seal(None, 2022)) == 3
    report = check_root(root)
    assert report.wal_pending == 0 and not report.errors


def test_replaying_op_6_removes_a_live_file_and_an_older_overlay_only_beside_its_file(
        root: str) -> None:
    with engine.open(root, seal_after_days=0) as db:
        db.write(KEY, _bars(50, 10, 1.0))
        db.seal(KEY, year=2022)
        db.write(KEY, _bars(5, 20, 9.0))
        db.seal(KEY, year=2022)  # generation 2, no overlay
        db.write(KEY, _bars(3, 30, 7.0))  # an overlay of generation 2
        want = _state(db)
        bucket = db.catalog.get(engine.parse_key(KEY))
        path = bucket.path
        r = open_sealed(OsFileSystem(), os.path.join(path, "2022.sealed"))
        this = SealYear(bucket.key, 2022, r.meta.generation, r.file_size, r.footer_crc)
        older = SealYear(bucket.key, 2022, 1, r.file_size, r.footer_crc)
        Path(path, "2022.bin").write_bytes(b"left by a swap")
        apply_seal(db.catalog, bucket, older)  # a later seal replaced its file: nothing
        assert os.path.exists(os.path.join(path, "2022.bin"))
        for _ in range(2):  # the second time finds nothing to remove
            apply_seal(db.catalog, bucket, this)
            assert sorted(n for n in os.listdir(path) if n.startswith("2022")) == [
                "2022.overlay", "2022.sealed"]  # the overlay is of this generation: kept
        assert _state(db) == want




@pytest.mark.parametrize("reseal", [False, True])
def test_backup_taken_across_a_seal_holds_the_year_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reseal: bool) -> None:
    """The copy gets the `.bin` (or old overlay) from before the swap, the sealed file from
    after it and the log with the writes before the seal, op 6 and the writes after: its
    replay skips what the sealed file holds (ticks are not doubled) and op 6 removes the
    rest. The backup does not start again."""
    src = str(tmp_path / "db")
    db = engine.open(src, seal_after_days=0)
    try:
        db.write(TICKS, _ticks(400, 30, 1.0), variable=True)
        db.write(KEY, _bars(100, 30, 1.0))
        if reseal:
            db.seal(None, 2022)
            db.write(TICKS, _ticks(7, 31, 1.5), variable=True)  # overlays, copied fuzzily
            db.write(KEY, _bars(7, 31, 1.5))

        def seal_between_writes() -> None:
            db.write(TICKS, _ticks(40, 40, 2.0), variable=True)  # before the seal
            db.write(KEY, _bars(10, 40, 2.0))
            # one checkpoint for the whole batch (a second one during the copy would retire
            # a log segment the backup has not held yet: it would start again)
            assert sorted(db.seal(None, 2022)) == [f"{KEY}/2022", f"{TICKS}/2022"]
            db.write(TICKS, _ticks(4, 50, 3.0), variable=True)  # into the new overlay
            db.write(KEY, _bars(3, 50, 3.0))

        during_copy(monkeypatch, seal_between_writes)
        result = backup_root(src, str(tmp_path / "bk"))
        want = _state(db)
    finally:
        db.close()
    assert result.attempts == 1
    assert len(want[TICKS]) == 444 + 7 * reseal and len(want[KEY]) == 113 + 7 * reseal
    with engine.open(tmp_path / "bk", seal_after_days=0) as copy:
        assert _state(copy) == want
        bucket = copy.catalog.get(engine.parse_key(TICKS))
        assert 2022 in bucket.sealed and 2022 in bucket.overlays
        assert 2022 in copy.catalog.get(engine.parse_key(KEY)).sealed
    assert not os.path.exists(tmp_path / "bk" / TICKS / "2022.bin")
    assert check_root(str(tmp_path / "bk")).errors == []


def test_copy_of_an_open_root_with_the_live_file_from_before_a_seal(tmp_path: Path) -> None:
    """`cp` of a root in use copies `2022.bin` before a seal, and the sealed file and the log
    after it: opening the copy reads the year once, from the sealed file."""
    src, dst = tmp_path / "db", tmp_path / "copy"
    db = engine.open(src, seal_after_days=0)
    try:
        db.write(TICKS, _ticks(300, 30, 1.0), variable=True)
        db.checkpoint()
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("wal", "LOCK"))
        assert (dst / TICKS / "2022.bin").exists()
        db.seal(TICKS, year=2022)
        db.write(TICKS, _ticks(5, 60, 2.0), variable=True)  # after the seal: in the log
        shutil.copy2(src / TICKS / "2022.sealed", dst / TICKS / "2022.sealed")
        shutil.copytree(src / "wal", dst / "wal")
        want = _state(db)
    finally:
        db.close()
    with engine.open(dst, seal_after_days=0) as copy:
        assert _state(copy) == want and len(want[TICKS]) == 305
    assert sorted(n for n in os.listdir(dst / TICKS) if n.startswith("2022")) == [
        "2022.overlay", "2022.sealed"]
