"""Sealed years through the database: `db.seal`, writes into a sealed year, what open does
with a swap a crash cut short, damage in a sealed file (docs/format.md "The three states of
a year", "Sealing, re-sealing and the swap", "Sealed file (`MKTSSEAL`, version 1)")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.waiting import wait_until

from mkts import engine
from mkts.check import check_root
from mkts.engine.sealfile import SealedReader
from mkts.engine.sealing import open_sealed

KEY = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2023 = 1_672_531_200  # 2023-01-01 UTC


def _bars(n: int, start: int = Y2023 + 86_400 * 9 + 52_200) -> np.ndarray:
    rng = np.random.default_rng(n)
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Open", "<f4"), ("Close", "<f8"),
                             ("Volume", "<i8")])
    out["Epoch"] = start + 60 * np.arange(n) * 3
    out["Open"] = np.round(100 + np.cumsum(rng.normal(0, 0.1, n)), 2)
    out["Close"] = rng.normal(100, 1, n)  # not on a decimal grid: stored raw
    out["Volume"] = rng.integers(1, 10**6, n)
    return out


def _ticks(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8"),
                             ("Size", "<i8")])
    t = np.sort(rng.integers(0, 86_400 * 10**9 * 30, n)) + (Y2023 + 86_400 * 40) * 10**9
    t[5:9] = t[5]  # ties keep their write order
    out["Epoch"], out["Nanoseconds"] = np.divmod(t, 10**9)
    out["Price"] = np.round(rng.normal(50, 2, n), 2)
    out["Size"] = np.arange(n)
    return out


def _files(db: Any, key: str) -> list[str]:
    """The bucket's data files and header (its file record, `bucket.files`, left out)."""
    return _listed(db.catalog.buckets[engine.parse_key(key)].path)


def _listed(path: str) -> list[str]:
    return sorted(n for n in os.listdir(path) if n != "bucket.files")


def _same(a: engine.Result, b: engine.Result) -> bool:
    """Same columns, types and values (bit for bit); the bytes of columns a projection left
    out are not part of a result."""
    return a.columns == b.columns and a.array.dtype == b.array.dtype and all(
        a[c].tobytes() == b[c].tobytes() for c in a.columns)


def test_seal_keeps_every_read_identical_and_removes_the_live_file(root: str) -> None:
    db = engine.open(root, bulk_load_rows=0)  # written live first (not a bulk load)
    db.write(KEY, _bars(20_000))
    db.write(TICKS, _ticks(30_000), variable=True)
    queries: list[tuple[str, Any, Any, dict[str, Any]]] = [
        (KEY, None, None, {}), (KEY, Y2023 + 86_400 * 20, Y2023 + 86_400 * 21, {}),
        (KEY, None, None, {"limit": 7}), (KEY, None, None, {"limit": 7, "limit_from_start": True}),
        (KEY, None, None, {"columns": ["Volume"]}),
        (TICKS, None, None, {}), (TICKS, (Y2023 + 86_400 * 50) * 10**9 + 5, None, {"limit": 99}),
        (TICKS, None, None, {"columns": ["Size"], "limit": 3, "limit_from_start": True}),
    ]

    def run() -> list[engine.Result]:
        out = []
        for k, a, b, kw in queries:
            if isinstance(a, int) and a > 10**12:
                a = np.datetime64(a, "ns")
            out.append(db.read(k, a, b, **kw))
        return out

    before = run()
    assert sorted(db.seal()) == [f"{KEY}/2023", f"{TICKS}/2023"]
    assert _files(db, KEY) == ["2023.sealed", "bucket.hdr"]
    after = run()
    assert all(_same(x, y) for x, y in zip(before, after, strict=True))
    assert db.info(KEY)["rows"] == 20_000 and db.info(TICKS)["rows"] == 30_000
    assert db.info(KEY)["sealed"] == [2023]
    assert db.seal() == []  # already sealed: nothing to do
    db.close()
    again = engine.open(db.root)
    try:
        assert all(_same(x, again.read(k, a if not (isinstance(a, int) and a > 10**12)
                                        else np.datetime64(a, "ns"), b, **kw))
                   for x, (k, a, b, kw) in zip(before, queries, strict=True))
    finally:
        again.close()


@pytest.mark.parametrize("key", [KEY, TICKS])
def test_a_write_into_a_sealed_year_goes_to_an_overlay_and_a_reseal_merges_it(
        tmp_path: Path, key: str) -> None:
    """The oracle is a database that never sealed: after each step both read the same."""
    ticks = key == TICKS
    rows = _ticks(5_000) if ticks else _bars(5_000)
    root, ref_root = str(tmp_path / "db"), str(tmp_path / "ref")
    db, ref = engine.open(root), engine.open(ref_root)
    try:
        for d in (db, ref):
            d.write(key, rows[:4_000], variable=ticks)
        db.seal(key, 2023)
        for d in (db, ref):  # overlaps the sealed rows: bars replaced, ticks added
            d.write(key, rows[3_000:], variable=ticks)
        assert _files(db, key) == ["2023.overlay", "2023.sealed", "bucket.hdr"]
        assert _same(db.read(key), ref.read(key))
        assert db.info(key)["rows"] == ref.info(key)["rows"]
        mid = Y2023 + 86_400 * 60
        assert _same(db.read(key, mid, limit=50), ref.read(key, mid, limit=50))
        # A crash now (the overlay's write in the log, not checkpointed): replay redoes it.
        shutil.copytree(root, str(tmp_path / "crash"))
        path = db.catalog.buckets[engine.parse_key(key)].path
        stale = Path(path, "2023.overlay").read_bytes()
        assert db.seal(key) == [f"{key}/2023"]  # re-seal: sealed + overlay, generation 2
        assert _files(db, key) == ["2023.sealed", "bucket.hdr"]
        assert db.catalog.sealed_reader(db.catalog.get(engine.parse_key(key)),
                                        2023).meta.generation == 2
        assert _same(db.read(key), ref.read(key))
        want = ref.read(key)
    finally:
        db.close()
        ref.close()
    again = engine.open(str(tmp_path / "crash"))
    try:
        assert _same(again.read(key), want)
    finally:
        again.close()
    # A crash after the re-seal's rename left the merged overlay: open removes it.
    Path(path, "2023.overlay").write_bytes(stale)
    again = engine.open(root)
    try:
        assert _files(again, key) == ["2023.sealed", "bucket.hdr"]
        assert _same(again.read(key), want)
    finally:
        again.close()


def test_open_finishes_a_swap_a_crash_cut_short(root: str) -> None:
    db = engine.open(root)
    db.write(KEY, _bars(3_000))
    want = db.read(KEY)
    path = db.catalog.buckets[engine.parse_key(KEY)].path
    live = Path(path, "2023.bin").read_bytes()
    db.seal()
    db.close()
    Path(path, "2023.bin").write_bytes(live)  # crash after the rename, before the removal
    Path(path, "2024.sealed.tmp").write_bytes(b"half")  # crash while writing another
    db = engine.open(root)
    assert _same(db.read(KEY), want)
    assert _listed(path) == ["2023.sealed", "bucket.hdr"]
    db.close()
    # A sealed file that does not read beside a live file: the live file holds the rows.
    Path(path, "2023.bin").write_bytes(live)
    Path(path, "2023.sealed").write_bytes(b"MKTSSEAL" + bytes(100))
    db = engine.open(root)
    assert _same(db.read(KEY), want)
    assert _listed(path) == ["2023.bin", "bucket.hdr"]
    db.close()


def test_a_flipped_bit_in_a_sealed_file_is_named_by_reads_and_check(root: str) -> None:
    db = engine.open(root)
    db.write(KEY, _bars(3_000))
    db.seal()
    path = os.path.join(db.catalog.buckets[engine.parse_key(KEY)].path, "2023.sealed")
    db.close()
    r = open_sealed(engine_fs(), path)
    chunk = r.chunks[0, 2]  # row group 0, Close (chunk 0 is the key, then Open, Close)
    data = bytearray(Path(path).read_bytes())
    data[int(chunk["offset"]) + int(chunk["length"]) // 2] ^= 0x10
    Path(path).write_bytes(bytes(data))
    errors = [str(e) for e in check_root(root).errors]
    assert any("2023.sealed" in e and "column Close, row group 0" in e for e in errors), errors
    db = engine.open(root)
    try:
        with pytest.raises(engine.CorruptFileError, match=r"column Close, row group 0"):
            db.read(KEY)
        assert len(db.read(KEY, columns=["Volume"])) == 3_000  # other columns still read
    finally:
        db.close()


def engine_fs() -> Any:
    from mkts.wal.fs import OsFileSystem

    return OsFileSystem()


def test_seal_refuses_a_year_the_bucket_lacks_and_a_readonly_handle(root: str) -> None:
    db = engine.open(root)
    db.write(KEY, _bars(10))
    with pytest.raises(engine.InvalidInputError, match=r"no year 2021.*\[2023\]"):
        db.seal(KEY, 2021)
    with pytest.raises(engine.InvalidInputError, match="year must be an integer"):
        db.seal(KEY, "2023")  # type: ignore[arg-type]
    db.close()
    ro = engine.open(root, readonly=True)
    try:
        with pytest.raises(engine.ReadOnlyError):
            ro.seal()
    finally:
        ro.close()


def test_cli_seal_then_check_is_clean(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    db = engine.open(root)
    db.write(KEY, _bars(100))
    db.close()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    res = subprocess.run([sys.executable, "-m", "mkts.cli", "seal", "--root", root, KEY],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"sealed {KEY}/2023"
    info = subprocess.run([sys.executable, "-m", "mkts.cli", "info", "--root", root, KEY],
                          capture_output=True, text=True, env=env, timeout=120)
    assert "years:      2023 (sealed)" in info.stdout, info.stdout
    report = check_root(root)
    assert not report.errors and report.records == 100
    assert isinstance(open_sealed(engine_fs(), os.path.join(root, KEY, "2023.sealed")),
                      SealedReader)


def test_a_closed_quiet_year_is_sealed_after_a_checkpoint_and_writes_go_on(root: str) -> None:
    db = engine.open(root, checkpoint_interval_s=0.05, seal_after_days=7)
    try:
        assert db._sealer is not None
        db._sealer.quiet_s = 0.0  # the hour of quiet a backfill gets, shortened for the test
        rows = _bars(2_000)
        db.write(KEY, rows[:1_000])
        want = db.read(KEY)
        assert wait_until(lambda: _files(db, KEY) == ["2023.sealed", "bucket.hdr"],
                          timeout=30), "the closed year was not sealed by the background thread"
        assert _same(db.read(KEY), want)
        db.write(KEY, rows[1_000:])  # into the sealed year: its overlay
        assert len(db.read(KEY)) == 2_000
    finally:
        db.close()


def test_seal_after_days_zero_never_seals_and_bad_values_are_refused(root: str) -> None:
    with pytest.raises(engine.InvalidInputError, match="seal_after_days"):
        engine.open(root, seal_after_days=-1)
    db = engine.open(root, checkpoint_interval_s=0.05, seal_after_days=0)
    try:
        assert db._sealer is None
    finally:
        db.close()


@pytest.mark.parametrize("n", [3_000, 12_000])  # labels in the rows / a column of their own
def test_a_read_across_a_sealed_and_a_live_year_is_one_join(tmp_path: Path, n: int) -> None:
    """engine/join.py: the sealed year is a Part beside the live one; the rows, the column
    projections and the limits are those of a database that never sealed."""
    rows = _bars(n, start=1_704_067_200 - 60 * 3 * (n // 2))  # half in 2023, half in 2024
    db, ref = engine.open(str(tmp_path / "db")), engine.open(str(tmp_path / "ref"))
    try:
        for d in (db, ref):
            d.write(KEY, rows)
        assert db.seal(KEY, 2023) == [f"{KEY}/2023"]
        for kw in ({}, {"columns": ["Close"]}, {"limit": n // 2 + 5},
                   {"limit": n // 2 + 5, "limit_from_start": True}):
            got, want = db.read(KEY, **kw), ref.read(KEY, **kw)
            assert _same(got, want) and len(got) == len(want) > 0
    finally:
        db.close()
        ref.close()


def test_sealing_records_the_database_format_an_older_mkts_refuses(tmp_path: Path) -> None:
    """mkts.root says database format 2 once a year is sealed, so an mkts that knows only
    format 1 refuses the root instead of reading it without its sealed years."""
    from mkts.engine.rootmeta import ROOT_FORMAT_3, read_root_meta
    from mkts.wal.fs import OsFileSystem

    root = str(tmp_path / "db")
    with engine.open(root) as db:
        db.write("S/1Min/OHLCV", {"Epoch": np.array([1_672_669_800], "i8"),
                                  "Close": np.array([1.0])})
        meta = read_root_meta(OsFileSystem(), root)
        assert meta is not None and meta.format != ROOT_FORMAT_3
        assert db.seal("S/1Min/OHLCV", 2023) == ["S/1Min/OHLCV/2023"]
    meta = read_root_meta(OsFileSystem(), root)
    assert meta is not None and meta.format == ROOT_FORMAT_3
