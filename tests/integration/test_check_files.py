"""`mkts check` finds what a lost or damaged file looks like (docs/format.md "File record"):
a year file the bucket's record names but that is gone, a closed year whose bytes changed,
a missing bucket header, a `mkts.root` that names another zone than its buckets; and the
record is kept up to date by checkpoints (compaction included) without rewriting it for
writes to the live year."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import mkts
from mkts.check import check_root
from mkts.engine.filerecord import RECORD_NAME, current_year, read_record
from mkts.wal.fs import OsFileSystem

KEY = "AAPL/1Min/OHLCV"
T2020, T2023 = 1_577_836_800, 1_672_531_200  # 1 January, UTC


def _now_year_epoch() -> int:
    import datetime as dt

    return int(dt.datetime(current_year("UTC"), 1, 2, tzinfo=dt.UTC).timestamp())


def _bars(*epochs: int) -> dict[str, np.ndarray]:
    return {"Epoch": np.array(epochs, "i8"), "Close": np.arange(len(epochs), dtype="f8") + 1}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with mkts.open(tmp_path / "db") as db:
        db.write(KEY, _bars(T2020, T2023, T2023 + 60, _now_year_epoch()))
    return tmp_path / "db"


def _errors(root: Path) -> list[str]:
    return [str(f) for f in check_root(str(root)).errors]


def test_a_checkpointed_bucket_records_its_files_and_closed_checksums(root: Path) -> None:
    record = read_record(OsFileSystem(), str(root / KEY))
    assert record is not None
    this = f"{current_year('UTC')}.bin"
    assert sorted(record) == ["2020.bin", "2023.bin", this]
    assert record["2023.bin"].size == (root / KEY / "2023.bin").stat().st_size
    assert record["2023.bin"].crc32c is not None
    assert record[this].size is None and record[this].crc32c is None  # live: presence only
    assert _errors(root) == []


def test_check_reports_a_lost_year_file(root: Path) -> None:
    os.unlink(root / KEY / "2020.bin")
    errors = _errors(root)
    assert len(errors) == 1
    assert f"{KEY}/2020.bin: is missing" in errors[0] and "restore" in errors[0]


def test_check_reports_a_lost_live_year_file(root: Path) -> None:
    os.unlink(root / KEY / f"{current_year('UTC')}.bin")
    assert any("is missing" in e for e in _errors(root))


def test_check_reports_a_changed_value_in_a_closed_year(root: Path) -> None:
    with mkts.open(root, readonly=True) as db:
        f = db.catalog.year_file(db.catalog.get(mkts.engine.parse_key(KEY)), 2023)
        assert f is not None
        offset = f.header.header_size + 8  # the first slot's Close: slot numbers stay right
    with open(root / KEY / "2023.bin", "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\x01")
    errors = _errors(root)
    assert len(errors) == 1 and "2023.bin: fails its checksum" in errors[0]


def test_check_reports_a_lost_bucket_header(root: Path) -> None:
    os.unlink(root / KEY / "bucket.hdr")
    errors = _errors(root)
    assert len(errors) == 1 and "no bucket.hdr" in errors[0]
    for n in os.listdir(root / KEY):
        if n.endswith(".bin"):
            os.unlink(root / KEY / n)
    errors = _errors(root)
    assert len(errors) == 1 and "bucket header bucket.hdr is missing" in errors[0]


def test_check_reports_a_root_zone_other_than_its_buckets(root: Path) -> None:
    (root / "mkts.root").write_text(json.dumps({"format": 1, "timezone": "America/New_York"}))
    errors = _errors(root)
    assert errors and "bucket header says time zone 'UTC'" in errors[0]


def test_check_reports_a_damaged_record(root: Path) -> None:
    (root / KEY / RECORD_NAME).write_text("{not json")
    errors = _errors(root)
    assert len(errors) == 1 and f"{RECORD_NAME}: is damaged" in errors[0]


def test_a_closed_year_written_since_the_checkpoint_is_noted_not_an_error(root: Path) -> None:
    db = mkts.open(root, checkpoint_interval_s=3600)
    try:
        db.write(KEY, _bars(T2023 + 120))  # logged and applied, not checkpointed
        report = check_root(str(root))
        assert report.errors == []
        assert any("2023.bin" in f.where and "replays it" in f.message for f in report.findings)
    finally:
        db.close()
    assert _errors(root) == []  # the checkpoint at close recorded the new checksum


def test_writes_to_the_live_year_do_not_rewrite_the_record(root: Path) -> None:
    path = root / KEY / RECORD_NAME
    before = path.stat().st_ino
    with mkts.open(root) as db:
        db.write(KEY, _bars(_now_year_epoch() + 60))
    assert path.stat().st_ino == before  # not replaced: nothing recorded changed


def test_compaction_records_the_new_checksums(tmp_path: Path) -> None:
    key = "T/1Sec/TICK"
    with mkts.open(tmp_path / "db") as db:
        for i in range(4):  # the same interval again: garbage
            db.write(key, {"Epoch": np.array([T2023], "i8"), "Nanoseconds": np.array([i], "i4"),
                           "Price": np.array([float(i)])}, variable=True)
        db.checkpoint()
        res = db.compact(key)
    assert res["after"] < res["before"]
    assert _errors(tmp_path / "db") == []


def test_a_closed_year_being_written_gets_its_checksum_once_it_settles(tmp_path: Path) -> None:
    """Back-filling history: checkpoints while a closed year is written leave its checksum
    out (no read of the whole file per checkpoint); the first checkpoint after the writes
    stop, or the close, records it."""
    fs = OsFileSystem()
    db = mkts.open(tmp_path / "db", checkpoint_interval_s=3600)
    try:
        db.write(KEY, _bars(T2023))
        db.checkpoint()
        record = read_record(fs, str(tmp_path / "db" / KEY))
        assert record is not None and record["2023.bin"].crc32c is None  # being written
        db.write(KEY, _bars(T2023 + 60))
        db.checkpoint()
        record = read_record(fs, str(tmp_path / "db" / KEY))
        assert record is not None and record["2023.bin"].crc32c is None
        db.write(KEY, _bars(_now_year_epoch()))  # only the live year since
        db.checkpoint()
        record = read_record(fs, str(tmp_path / "db" / KEY))
        assert record is not None and record["2023.bin"].crc32c is not None  # settled
        db.write(KEY, _bars(T2023 + 120))
        db.checkpoint()
    finally:
        db.close()
    record = read_record(fs, str(tmp_path / "db" / KEY))
    assert record is not None and record["2023.bin"].crc32c is not None  # the close settles
    assert _errors(tmp_path / "db") == []


def test_a_year_a_delete_removed_leaves_the_record(root: Path) -> None:
    """A delete that empties a year removes its file (WAL op 5); the next checkpoint's record
    no longer names it, so `mkts check` reports nothing lost."""
    with mkts.open(root) as db:
        assert db.delete(KEY, T2020, T2020 + 86_400) == 1
        db.checkpoint()
    record = read_record(OsFileSystem(), str(root / KEY))
    assert record is not None and "2020.bin" not in record
    assert not (root / KEY / "2020.bin").exists()
    assert _errors(root) == []


def test_a_closed_year_migrated_by_a_column_change_is_recorded_again(root: Path) -> None:
    """After add_column, the first write into a closed year rewrites its file (migration);
    the record takes the new bytes' checksum, so `mkts check` finds nothing changed."""
    with mkts.open(root) as db:
        db.add_column(KEY, "Extra", "f8", fill=0.5)
        db.write(KEY, {**_bars(T2020 + 60), "Extra": np.array([2.0])})
    assert _errors(root) == []
    with mkts.open(root) as db:
        assert db.read(KEY, T2020, T2020 + 60)["Extra"].tolist() == [0.5, 2.0]
