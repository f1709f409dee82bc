"""Sealed years in the file record and backups (docs/format.md "File record", docs/backup.md):
`bucket.files` names `<YYYY>.sealed` with its size and checksum and `<YYYY>.overlay`, `mkts
check` reports a lost or changed sealed file, and `db.backup` copies sealed files and
overlays: the restored copy reads the same rows."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mkts import engine
from mkts.check import check_root
from mkts.engine.filerecord import file_crc, read_record
from mkts.wal.fs import OsFileSystem

KEY = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2023 = 1_672_531_200  # 2023-01-01 UTC
NS = 1_000_000_000


def _bars(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Close", "<f8"), ("Volume", "<i8")])
    out["Epoch"] = Y2023 + 86_400 * 30 + 60 * np.arange(n)
    out["Close"] = np.round(100 + rng.normal(0, 1, n), 2)
    out["Volume"] = rng.integers(1, 1000, n)
    return out


def _ticks(n: int) -> np.ndarray:
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8")])
    t = (Y2023 + 86_400 * 30) * NS + np.arange(n, dtype=np.int64) * (NS // 3)
    out["Epoch"], out["Nanoseconds"] = np.divmod(t, NS)
    out["Price"] = np.arange(n) / 4
    return out


def _same(a: engine.Result, b: engine.Result) -> None:
    assert a.columns == b.columns and len(a) == len(b)
    for c in a.columns:
        assert a[c].tobytes() == b[c].tobytes(), c


def _sealed_db(root: str) -> tuple[dict[str, engine.Result], str]:
    """A root with 2023 sealed in a bar and a tick bucket, the bars with an overlay; the
    rows each bucket reads, and the bar bucket's directory."""
    with engine.open(root) as db:
        db.write(KEY, _bars(2_000))
        db.write(TICKS, _ticks(3_000), variable=True)
        assert len(db.seal(None, 2023)) == 2
        db.write(KEY, _bars(10, seed=2)[:10])  # into the overlay
        db.delete(KEY, Y2023 + 86_400 * 30 + 600, Y2023 + 86_400 * 30 + 900)  # tombstones
        path = db.catalog.get(engine.parse_key(KEY)).path
        return {k: db.read(k) for k in (KEY, TICKS)}, path


def test_the_file_record_names_sealed_files_with_their_checksum(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    _, path = _sealed_db(root)
    record = read_record(OsFileSystem(), path)
    assert record is not None and sorted(record) == ["2023.overlay", "2023.sealed"]
    size, crc = file_crc(OsFileSystem(), os.path.join(path, "2023.sealed"))
    assert (record["2023.sealed"].size, record["2023.sealed"].crc32c) == (size, crc)
    assert not check_root(root).errors
    with engine.open(root) as db:  # a re-seal: the record follows (no overlay, generation 2)
        assert db.seal(KEY, 2023) == [f"{KEY}/2023"]
    record = read_record(OsFileSystem(), path)
    assert record is not None and sorted(record) == ["2023.sealed"]
    assert not check_root(root).errors


@pytest.mark.parametrize("damage", ["lost", "changed"])
def test_check_reports_a_lost_or_changed_sealed_file(tmp_path: Path, damage: str) -> None:
    root = str(tmp_path / "db")
    _, path = _sealed_db(root)
    sealed = os.path.join(path, "2023.sealed")
    if damage == "lost":
        os.unlink(sealed)
    else:  # appended bytes: every chunk still reads, only the record can tell
        with open(sealed, "ab") as fh:
            fh.write(b"\0" * 16)
    errors = [str(e) for e in check_root(root).errors]
    assert any("2023.sealed" in e and ("is missing" if damage == "lost" else "bytes") in e
               for e in errors), errors


def test_backup_copies_sealed_years_and_the_restore_reads_the_same(tmp_path: Path) -> None:
    root, dest = str(tmp_path / "db"), str(tmp_path / "copy")
    want, _ = _sealed_db(root)
    with engine.open(root) as db:
        db.backup(dest)
    copy = os.path.join(dest, "AAPL", "1Min", "OHLCV")
    assert {"2023.sealed", "2023.overlay"} <= set(os.listdir(copy))
    assert not check_root(dest).errors
    with engine.open(dest) as restored:
        for k, rows in want.items():
            _same(restored.read(k), rows)
        assert restored.info(KEY)["sealed"] == [2023]
    with engine.open(root) as db:  # an incremental backup after a re-seal
        db.seal(KEY, 2023)
        db.backup(dest)
    assert "2023.overlay" not in os.listdir(copy)
    with engine.open(dest) as restored:
        for k, rows in want.items():
            _same(restored.read(k), rows)
