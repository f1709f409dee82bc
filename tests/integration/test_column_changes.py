"""db.add_column / drop_column / rename_column end to end (docs/format.md "Column changes"):
reads across several year files of fixed and tick buckets, writes after a change, the
migration of a year file, reopen and replay, allow_missing_columns, errors that change
nothing, and ondiskagg's aggregates following a change of their base."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine.catalog import read_header
from mkts.engine.rootmeta import read_root_meta
from mkts.plugins import aggfuncs, ondiskagg
from mkts.wal.fs import OsFileSystem

BARS, TICKS = "AAPL/1Min/OHLCV", "AAPL/1Sec/TRADE"
YEARS = (2022, 2023, 2024)
JAN2 = {2022: 1_641_133_800, 2023: 1_672_669_800, 2024: 1_704_205_800}  # 14:30 UTC


def _bars(year: int, n: int = 4, first: float = 0.0) -> dict[str, np.ndarray]:
    v = first + np.arange(n, dtype=np.float64)
    return {"Epoch": JAN2[year] + 60 * np.arange(n, dtype=np.int64),
            "Open": v.astype("f4"), "Close": (v + 0.5).astype("f4"),
            "Volume": np.arange(n, dtype=np.int64) + 10}


def _ticks(year: int, n: int = 5, first: float = 0.0) -> dict[str, np.ndarray]:
    return {"Epoch": JAN2[year] + np.arange(n, dtype=np.int64) // 2,
            "Nanoseconds": (np.arange(n) * 1000 + 7).astype(np.int32),
            "Price": first + 0.25 * np.arange(n), "Size": np.arange(n, dtype=np.int64) + 1}


def _filled(db: engine.Database) -> None:
    for y in YEARS:
        db.write(BARS, _bars(y, first=y))
        db.write(TICKS, _ticks(y, first=y), variable=True)


def _cols(r: Any) -> dict[str, list[Any]]:
    return {c: np.asarray(r[c]).tolist() for c in r.columns}


def _file_version(root: str, key: str, year: int) -> int:
    return read_header(OsFileSystem(), os.path.join(root, key, f"{year}.bin")).columns.version


def _files(root: str) -> dict[str, tuple[int, int, bytes]]:
    """Every file outside the log: size, modification time and first page (year files of
    1Sec buckets are gigabytes of holes: a write anywhere changes the time)."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            if n != "LOCK" and "wal" not in d:
                p = os.path.join(d, n)
                st = os.stat(p)
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns, f.read(4096))
    return out


# -- reads ----------------------------------------------------------------------------------
def test_added_column_reads_its_fill_in_every_year_of_a_fixed_bucket(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
        before = _cols(db.read(BARS))
        db.add_column(BARS, "VWAP", "f8", fill=1.25)
        after = _cols(db.read(BARS))
        assert list(after) == ["Epoch", "Open", "Close", "Volume", "VWAP"]
        assert after["VWAP"] == [1.25] * 12
        assert {c: after[c] for c in before} == before
        assert db.info(BARS)["columns"]["VWAP"] == "f8"
    # no data file was touched: every year is still format 1, schema version 1
    assert [_file_version(root, BARS, y) for y in YEARS] == [1, 1, 1]
    assert read_header(OsFileSystem(), os.path.join(root, BARS, "bucket.hdr")).version == 3


def test_rename_and_drop_read_through_every_year_and_survive_reopen(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
        closes = _cols(db.read(BARS))["Close"]
        db.rename_column(BARS, "Close", "Last")
        db.drop_column(BARS, "Volume")
        r = _cols(db.read(BARS, columns=["Last"]))
        assert list(r) == ["Epoch", "Last"] and r["Last"] == closes
        with pytest.raises(engine.UnknownColumnError, match="Close"):
            db.read(BARS, columns=["Close"])
    with engine.open(root, readonly=True) as db:
        assert list(_cols(db.read(BARS))) == ["Epoch", "Open", "Last"]
        assert _cols(db.read(BARS))["Last"] == closes


def test_tick_bucket_columns_change_in_every_year(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
        before = _cols(db.read(TICKS))
        db.add_column(TICKS, "Venue", "U4")
        db.rename_column(TICKS, "Size", "Qty")
        r = _cols(db.read(TICKS))
        assert list(r) == ["Epoch", "Price", "Qty", "Venue", "Nanoseconds"]
        assert r["Qty"] == before["Size"] and r["Nanoseconds"] == before["Nanoseconds"]
        assert r["Venue"] == [""] * 15
        # a range and a limit read through the translation too
        part = _cols(db.read(TICKS, JAN2[2023], JAN2[2023] + 2, limit=2))
        assert part["Qty"] == [3, 4] and part["Venue"] == ["", ""]


# -- writes after a change ------------------------------------------------------------------
def test_a_write_must_carry_the_new_columns(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
        db.add_column(BARS, "VWAP", "f8")
        with pytest.raises(engine.SchemaError, match="missing column.*'VWAP'"):
            db.write(BARS, _bars(2024, first=50))
        db.add_column(TICKS, "Venue", "U4")
        with pytest.raises(engine.SchemaError, match="missing column.*'Venue'"):
            db.write(TICKS, _ticks(2024), variable=True)
        assert len(db.read(BARS)) == 12 and len(db.read(TICKS)) == 15  # nothing written


def test_a_write_into_an_older_year_migrates_only_that_file(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
        db.add_column(BARS, "VWAP", "f8", fill=-1.0)
        db.write(BARS, {**_bars(2023, n=1, first=99), "VWAP": np.array([5.0])}
                 | {"Epoch": np.array([JAN2[2023] + 3600])})
        db.add_column(TICKS, "Venue", "i2", fill=-1)
        db.write(TICKS, {**_ticks(2024, n=2, first=9), "Venue": np.array([1, 2], "i2"),
                         "Epoch": np.array([JAN2[2024] + 100] * 2)})
        assert [_file_version(root, BARS, y) for y in YEARS] == [1, 2, 1]
        assert [_file_version(root, TICKS, y) for y in YEARS] == [1, 1, 2]
        r = _cols(db.read(BARS, JAN2[2023], JAN2[2023] + 86400))
        assert r["VWAP"] == [-1.0] * 4 + [5.0] and r["Open"][-1] == 99.0
        t = _cols(db.read(TICKS, JAN2[2024], JAN2[2024] + 86400))
        assert t["Venue"] == [-1] * 5 + [1, 2]
        assert len(t["Epoch"]) == 7 and t["Price"][-2:] == [9.0, 9.25]
    with engine.open(root) as db:  # the migrated files read the same after a reopen
        assert _cols(db.read(BARS, JAN2[2023], JAN2[2023] + 86400))["VWAP"] == [-1.0] * 4 + [5.0]


def test_the_fast_path_writes_after_a_change(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
        db.add_column(BARS, "VWAP", "f8")
        rec = np.zeros(1, dtype=[("Epoch", "<i8"), ("Open", "<f4"), ("Close", "<f4"),
                                 ("Volume", "<i8"), ("VWAP", "<f8")])
        rec["Epoch"] = JAN2[2022] + 7200
        rec["VWAP"] = 3.5
        db.write(BARS, rec)  # a structured array of the bucket's own types
        db.write(BARS, rec)  # twice: an overwrite of the same slot
        assert _cols(db.read(BARS, JAN2[2022] + 7200, JAN2[2022] + 7200))["VWAP"] == [3.5]
        assert _file_version(root, BARS, 2022) == 2


def test_allow_missing_columns_fills_what_a_write_leaves_out(root: str) -> None:
    with engine.open(root, allow_missing_columns=True) as db:
        _filled(db)
        db.add_column(BARS, "VWAP", "f8", fill=7.0)
        db.write(BARS, {"Epoch": np.array([JAN2[2024] + 3600]), "Open": np.array([1.0], "f4")})
        r = _cols(db.read(BARS, JAN2[2024] + 3600, JAN2[2024] + 3600))
        assert (r["Open"], r["Close"], r["Volume"], r["VWAP"]) == ([1.0], [0.0], [0], [7.0])
        db.add_column(TICKS, "Venue", "U4")
        db.write(TICKS, {"Epoch": np.array([JAN2[2024] + 9]), "Nanoseconds": np.array([1], "i4"),
                         "Price": np.array([2.0])})
        t = _cols(db.read(TICKS, JAN2[2024] + 9, JAN2[2024] + 10))
        assert (t["Size"], t["Venue"]) == ([0], [""])
        with pytest.raises(engine.SchemaError, match="unknown column.*'Nope'"):
            db.write(BARS, {"Epoch": np.array([JAN2[2024]]), "Nope": np.array([1.0])})


# -- errors change nothing --------------------------------------------------------------------
@pytest.mark.parametrize(("op", "args", "error"), [
    ("add_column", ("Open", "f8"), engine.SchemaError),
    ("add_column", ("Epoch", "i8"), engine.SchemaError),
    ("add_column", ("bad\0name", "f8"), engine.SchemaError),
    ("add_column", ("Flag", "u1", 300), engine.SchemaError),
    ("add_column", ("Flag", "i4", 0.5), engine.SchemaError),
    ("add_column", ("Flag", "object"), engine.SchemaError),
    ("drop_column", ("Epoch",), engine.SchemaError),
    ("drop_column", ("Nope",), engine.UnknownColumnError),
    ("rename_column", ("Nope", "X"), engine.UnknownColumnError),
    ("rename_column", ("Open", "Close"), engine.SchemaError),
    ("rename_column", ("Open", "Nanoseconds"), engine.SchemaError),
])
def test_bad_changes_raise_and_change_nothing_on_disk(root: str, op: str, args: tuple[Any, ...],
                                                      error: type[Exception]) -> None:
    with engine.open(root) as db:
        _filled(db)
        db.checkpoint()
        before = _files(root)
        with pytest.raises(error, match=BARS):
            getattr(db, op)(BARS, *args)
        assert _files(root) == before
        assert read_root_meta(OsFileSystem(), root).format == 1  # type: ignore[union-attr]
    with pytest.raises(engine.BucketNotFoundError):
        with engine.open(root) as db:
            db.add_column("NOPE/1Min/OHLCV", "X", "f8")


def test_a_readonly_handle_refuses_column_changes(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
    with engine.open(root, readonly=True) as db, pytest.raises(engine.ReadOnlyError):
        db.add_column(BARS, "X", "f8")


# -- log and replay -----------------------------------------------------------------------
def test_a_change_is_replayed_from_the_log_after_a_crash(root: str, tmp_path: Path) -> None:
    copy = str(tmp_path / "copy")
    db = engine.open(root, sync="off")
    try:
        _filled(db)
        db.add_column(BARS, "VWAP", "f8", fill=2.0)
        db.write(BARS, {**_bars(2024, n=1, first=40), "VWAP": np.array([9.0]),
                        "Epoch": np.array([JAN2[2024] + 600])})
        db.rename_column(TICKS, "Size", "Qty")
        expect = (_cols(db.read(BARS)), _cols(db.read(TICKS)))
        # what a kill -9 leaves: the files as the page cache holds them, nothing closed
        subprocess.run(["cp", "-a", "--sparse=always", root, copy], check=True)  # keep holes
        os.unlink(os.path.join(copy, "LOCK"))
    finally:
        db.close()
    with engine.open(copy) as again:  # replays the log: op 4 records and writes
        assert (_cols(again.read(BARS)), _cols(again.read(TICKS))) == expect
    with engine.open(copy) as again:
        assert (_cols(again.read(BARS)), _cols(again.read(TICKS))) == expect
    assert read_root_meta(OsFileSystem(), copy).format == 2  # type: ignore[union-attr]


def test_a_column_change_records_database_format_2(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
        db.drop_column(BARS, "Volume")
    meta = read_root_meta(OsFileSystem(), root)
    assert meta is not None and meta.format == 2


# -- aggregates ------------------------------------------------------------------------------
def _agg_db(root: str) -> tuple[engine.Database, Any]:
    trig = ondiskagg.NewTrigger({"destinations": ["5Min", "1H"], "batch_ms": 0})
    return engine.open(root, triggers=[("*/1Min/OHLCV", trig)]), trig


def _assert_aggregates(db: engine.Database) -> None:
    db.wait_for_triggers()
    r = db.read(BARS)
    cols = {c: np.asarray(r[c]) for c in r.columns}
    for d in ("5Min", "1H"):
        exp = aggfuncs.aggregate(cols, db.calendar, d)
        got = db.read(f"AAPL/{d}/OHLCV")
        assert list(got.columns) == list(exp), d
        for c, v in exp.items():
            np.testing.assert_array_equal(np.asarray(got[c]), v, err_msg=f"{d} {c}")


def _ohlc(year: int, n: int, first: float, volume: bool = True) -> dict[str, np.ndarray]:
    v = first + np.arange(n, dtype=np.float64)
    out = {"Epoch": JAN2[year] + 60 * np.arange(n, dtype=np.int64), "Open": v, "High": v + 1,
           "Low": v - 1, "Close": v + 0.5}
    if volume:
        out["Volume"] = np.arange(n, dtype=np.int64) + 1
    return out


def test_dropping_volume_of_a_base_drops_it_from_its_aggregates(root: str) -> None:
    db, _ = _agg_db(root)
    with db:
        db.write(BARS, _ohlc(2024, 30, 1.0))
        db.write(BARS, _ohlc(2023, 10, 5.0))
        _assert_aggregates(db)
        db.drop_column(BARS, "Volume")
        assert "Volume" not in db.info("AAPL/5Min/OHLCV")["columns"]
        _assert_aggregates(db)
        db.write(BARS, _ohlc(2024, 12, 100.0, volume=False))
        _assert_aggregates(db)
        # adding Volume back (fill 0) adds it to the aggregates: earlier bars sum to 0
        db.add_column(BARS, "Volume", "i8")
        db.write(BARS, _ohlc(2024, 3, 7.0))
        _assert_aggregates(db)
    db, _ = _agg_db(root)
    with db:  # and after a reopen
        _assert_aggregates(db)


def test_renaming_an_aggregated_price_or_changing_an_aggregate_is_refused(root: str) -> None:
    db, _ = _agg_db(root)
    with db:
        db.write(BARS, _ohlc(2024, 10, 1.0))
        db.wait_for_triggers()
        before = _files(root)
        with pytest.raises(engine.SchemaError, match="ondiskagg aggregates column 'Close'"):
            db.rename_column(BARS, "Close", "Last")
        with pytest.raises(engine.SchemaError, match="maintained by a trigger"):
            db.drop_column("AAPL/5Min/OHLCV", "Volume")
        assert {k: v for k, v in _files(root).items() if k.endswith(".hdr")} == {
            k: v for k, v in before.items() if k.endswith(".hdr")}
        db.add_column(BARS, "VWAP", "f8")  # not aggregated: the aggregates keep their columns
        assert "VWAP" not in db.info("AAPL/5Min/OHLCV")["columns"]
        db.write(BARS, {**_ohlc(2024, 2, 9.0), "VWAP": np.array([1.0, 2.0])})
        _assert_aggregates(db)


def test_a_lost_mkts_root_is_written_again_with_database_format_2(root: str) -> None:
    with engine.open(root) as db:
        _filled(db)
        db.add_column(BARS, "VWAP", "f8")
    os.unlink(os.path.join(root, "mkts.root"))
    with engine.open(root, timezone="UTC") as db:
        assert _cols(db.read(BARS))["VWAP"] == [0.0] * 12
    assert read_root_meta(OsFileSystem(), root).format == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("key", [BARS, TICKS])
def test_delete_and_update_in_a_year_written_before_a_column_change(tmp_path: Path,
                                                                   key: str) -> None:
    """A delete clears slots and an update rewrites them in the bucket's current layout:
    a year file of an older schema is migrated first, so its other rows keep their values
    and the added column reads its fill (then the updated value)."""
    root = str(tmp_path / "db")
    with engine.open(root) as db:
        _filled(db)
        db.add_column(key, "Extra", "f8", fill=1.5)
        before = _cols(db.read(key, f"{2023}-01-01", f"{2023}-12-31"))
        t0 = int(np.asarray(db.read(key, "2023-01-01", "2023-12-31")["Epoch"])[0])
        last = np.datetime64(t0 * 10**9 + 999_999_999, "ns")  # ticks: the whole first second
        removed = db.delete(key, t0, last)
        assert removed >= 1
        after = _cols(db.read(key, "2023-01-01", "2023-12-31"))
        assert after == {c: v[removed:] for c, v in before.items()}
        assert _file_version(root, key, 2023) == 2  # migrated before the clear
        new = _bars(2023, n=1, first=99.0) if key == BARS else _ticks(2023, n=1, first=99.0)
        new["Extra"] = np.array([7.0])
        db.update(key, new)
        got = _cols(db.read(key, "2023-01-01", "2023-12-31"))
        assert got["Extra"][0] == 7.0 and got["Extra"][1:] == [1.5] * (len(got["Extra"]) - 1)
        assert got["Epoch"][1:] == after["Epoch"]
        other = _cols(db.read(key, "2022-01-01", "2022-12-31"))
    with engine.open(root) as db:  # replay and reopen give the same rows
        assert _cols(db.read(key, "2023-01-01", "2023-12-31")) == got
        assert _cols(db.read(key, "2022-01-01", "2022-12-31")) == other
