"""Time zones, DST, leap years, year boundaries and the Jan-1 daily bar, end to end; and
the year files on disk (one per local year, full size, sparse)."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from mkts import engine

NY = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def local(zone: ZoneInfo, *args: int) -> int:
    return int(dt.datetime(*args, tzinfo=zone).timestamp())


def rows(epochs: list[int]) -> dict[str, Any]:
    """Close = 1, 2, 3 ... in the order given."""
    return {"Epoch": np.array(epochs, dtype=np.int64),
            "Close": np.arange(1, len(epochs) + 1, dtype="f8")}


@pytest.fixture
def ny(root: str) -> Any:
    with engine.open(root, timezone="America/New_York") as db:
        yield db


@pytest.fixture
def kolkata(root: str) -> Any:
    with engine.open(root, timezone="Asia/Kolkata") as db:
        yield db


# -- the Jan-1 daily bar -------------------------------------------------------------------
def test_jan1_daily_bar_is_visible(db: engine.Database) -> None:
    key = "AAPL/1D/OHLCV"
    db.write(key, rows([utc(2024, 1, 1, 15), utc(2024, 1, 2), utc(2023, 12, 31, 23, 59, 59)]))
    r = db.read(key)
    assert r["Epoch"].tolist() == [utc(2023, 12, 31), utc(2024, 1, 1), utc(2024, 1, 2)]
    assert r["Close"].tolist() == [3.0, 1.0, 2.0]
    assert db.read(key, utc(2024, 1, 1), utc(2024, 1, 1))["Close"].tolist() == [1.0]
    assert db.read(key, "2024-01-01T12:00", "2024-01-01T13:00")["Close"].tolist() == [1.0]
    assert db.read(key, limit=1, limit_from_start=True, start=utc(2024, 1, 1))["Close"].tolist() == [1.0]


def test_jan1_daily_bar_survives_reopen(root: str) -> None:
    with engine.open(root) as db:
        db.write("AAPL/1D/OHLCV", rows([utc(2024, 1, 1)]))
    with engine.open(root) as db:
        assert db.read("AAPL/1D/OHLCV")["Epoch"].tolist() == [utc(2024, 1, 1)]


def test_jan1_daily_bar_in_new_york(ny: engine.Database) -> None:
    ny.write("AAPL/1D/OHLCV", rows([local(NY, 2024, 1, 1, 9, 30), local(NY, 2024, 1, 1, 16)]))
    r = ny.read("AAPL/1D/OHLCV")
    assert r["Epoch"].tolist() == [local(NY, 2024, 1, 1)]
    assert r["Close"].tolist() == [2.0]


def test_first_second_of_1970_is_an_ordinary_row(db: engine.Database) -> None:
    db.write("AAPL/1D/OHLCV", rows([0]))
    db.write("AAPL/1Sec/OHLCV", rows([0, 1]))
    assert db.read("AAPL/1D/OHLCV")["Epoch"].tolist() == [0]
    assert db.read("AAPL/1Sec/OHLCV")["Epoch"].tolist() == [0, 1]


# -- leap years and year boundaries --------------------------------------------------------
def test_leap_day_and_the_last_slot_of_a_leap_year(db: engine.Database) -> None:
    minute = [utc(2024, 2, 28, 23, 59), utc(2024, 2, 29, 12), utc(2024, 3, 1),
              utc(2024, 12, 31, 23, 59, 59), utc(2025, 1, 1)]
    db.write("AAPL/1Min/OHLCV", rows(minute))
    r = db.read("AAPL/1Min/OHLCV")
    assert r["Epoch"].tolist() == [utc(2024, 2, 28, 23, 59), utc(2024, 2, 29, 12),
                                   utc(2024, 3, 1), utc(2024, 12, 31, 23, 59), utc(2025, 1, 1)]
    assert db.info("AAPL/1Min/OHLCV")["years"] == [2024, 2025]
    days = [utc(2024, 2, 29, 8), utc(2024, 12, 31, 22), utc(2023, 12, 31, 1), utc(2025, 12, 31)]
    db.write("AAPL/1D/OHLCV", rows(days))
    r = db.read("AAPL/1D/OHLCV")
    assert r["Epoch"].tolist() == [utc(2023, 12, 31), utc(2024, 2, 29), utc(2024, 12, 31),
                                   utc(2025, 12, 31)]
    assert r["Close"].tolist() == [3.0, 1.0, 2.0, 4.0]
    assert db.read("AAPL/1D/OHLCV", "2024-02-29", "2024-02-29")["Close"].tolist() == [1.0]


def test_ranges_across_a_year_boundary(db: engine.Database) -> None:
    epochs = [utc(2023, 12, 31, 23, m) for m in range(55, 60)] + [
        utc(2024, 1, 1, 0, m) for m in range(0, 5)]
    db.write("AAPL/1Min/OHLCV", rows(epochs))
    r = db.read("AAPL/1Min/OHLCV", utc(2023, 12, 31, 23, 58, 30), utc(2024, 1, 1, 0, 1, 30))
    assert r["Epoch"].tolist() == epochs[3:7]
    assert db.read("AAPL/1Min/OHLCV", utc(2024, 1, 1))["Epoch"].tolist() == epochs[5:]
    assert db.read("AAPL/1Min/OHLCV", None, utc(2023, 12, 31, 23, 59, 59))["Epoch"].tolist() == \
        epochs[:5]


# -- New York ------------------------------------------------------------------------------
def test_new_york_daily_bars_are_labelled_at_local_midnight_across_dst(
        ny: engine.Database) -> None:
    written = [local(NY, 2024, 3, 9, 12), local(NY, 2024, 3, 10, 23, 30),  # 23:30 EDT = next UTC day
               local(NY, 2024, 3, 11, 0, 30), local(NY, 2024, 11, 2, 12),
               local(NY, 2024, 11, 3, 1, 30), local(NY, 2024, 11, 4, 9)]
    ny.write("SPY/1D/OHLCV", rows(written))
    labels = ny.read("SPY/1D/OHLCV")["Epoch"].tolist()
    assert labels == [local(NY, 2024, 3, 9), local(NY, 2024, 3, 10), local(NY, 2024, 3, 11),
                      local(NY, 2024, 11, 2), local(NY, 2024, 11, 3), local(NY, 2024, 11, 4)]
    assert labels[1] - labels[0] == 24 * 3600
    assert labels[2] - labels[1] == 23 * 3600  # spring forward
    assert labels[4] - labels[3] == 24 * 3600
    assert labels[5] - labels[4] == 25 * 3600  # fall back
    for label in labels:
        wall = dt.datetime.fromtimestamp(label, NY)
        assert (wall.hour, wall.minute) == (0, 0)
    df = ny.read("SPY/1D/OHLCV").to_pandas()
    assert [t.hour for t in df.index] == [0] * 6


def test_new_york_hour_bars_start_on_local_clock_hours_across_dst(ny: engine.Database) -> None:
    start = local(NY, 2024, 3, 10)  # spring forward at 02:00 local
    written = list(range(start + 900, start + 6 * 3600, 1800))  # 00:15, 00:45, ... local
    ny.write("SPY/1H/OHLCV", rows(written))
    labels = ny.read("SPY/1H/OHLCV")["Epoch"].tolist()
    assert labels == list(range(start, start + 6 * 3600, 3600))  # no hole, no repeat
    walls = [dt.datetime.fromtimestamp(t, NY).strftime("%H:%M") for t in labels]
    assert walls == ["00:00", "01:00", "03:00", "04:00", "05:00", "06:00"]


def test_new_york_year_files_follow_the_local_calendar(ny: engine.Database) -> None:
    late = utc(2024, 1, 1, 3)  # 22:00 on 31 December 2023 in New York
    ny.write("SPY/1Min/OHLCV", rows([late, local(NY, 2024, 1, 1)]))
    ny.write("SPY/1D/OHLCV", rows([late]))
    assert ny.info("SPY/1Min/OHLCV")["years"] == [2023, 2024]
    assert ny.info("SPY/1D/OHLCV")["years"] == [2023]
    assert ny.read("SPY/1D/OHLCV")["Epoch"].tolist() == [local(NY, 2023, 12, 31)]


# -- Kolkata (+05:30) ----------------------------------------------------------------------
def test_kolkata_hour_bars_start_on_local_clock_hours(kolkata: engine.Database) -> None:
    written = [local(KOLKATA, 2024, 6, 3, 9, 15), local(KOLKATA, 2024, 6, 3, 10, 45),
               local(KOLKATA, 2024, 6, 3, 10, 59, 59)]
    kolkata.write("NIFTY/1H/OHLCV", rows(written))
    r = kolkata.read("NIFTY/1H/OHLCV")
    assert r["Epoch"].tolist() == [local(KOLKATA, 2024, 6, 3, 9), local(KOLKATA, 2024, 6, 3, 10)]
    assert r["Close"].tolist() == [1.0, 3.0]
    assert [t % 3600 for t in r["Epoch"].tolist()] == [1800, 1800]  # half hours in UTC
    assert [t.hour for t in r.to_pandas().index] == [9, 10]


def test_kolkata_daily_bars_and_year_files(kolkata: engine.Database) -> None:
    new_year = utc(2023, 12, 31, 18, 45)  # 00:15 on 1 January 2024 in Kolkata
    kolkata.write("NIFTY/1D/OHLCV", rows([new_year, utc(2023, 12, 31, 18, 0)]))
    r = kolkata.read("NIFTY/1D/OHLCV")
    assert r["Epoch"].tolist() == [local(KOLKATA, 2023, 12, 31), local(KOLKATA, 2024, 1, 1)]
    assert r["Epoch"].tolist()[1] == utc(2023, 12, 31, 18, 30)
    assert kolkata.info("NIFTY/1D/OHLCV")["years"] == [2023, 2024]
    kolkata.write("NIFTY/30Min/OHLCV", rows([local(KOLKATA, 2024, 6, 3, 9, 44)]))
    assert kolkata.read("NIFTY/30Min/OHLCV")["Epoch"].tolist() == [
        local(KOLKATA, 2024, 6, 3, 9, 30)]


# -- the files on disk ---------------------------------------------------------------------
def test_one_sparse_full_size_year_file_per_local_year(db: engine.Database, root: str) -> None:
    key = "AAPL/1Min/OHLCV"
    db.write(key, {"Epoch": [utc(2023, 6, 1), utc(2024, 6, 1, 12)],
                   "Open": np.array([1, 2], "f4"), "High": np.array([1, 2], "f4"),
                   "Low": np.array([1, 2], "f4"), "Close": np.array([1, 2], "f4"),
                   "Volume": np.array([1, 2], "i8")})
    bucket_dir = os.path.join(root, "AAPL", "1Min", "OHLCV")
    files = sorted(f for f in os.listdir(bucket_dir) if f.endswith(".bin"))
    assert files == ["2023.bin", "2024.bin"]
    record = 32  # 8 (slot number) + 4 x f4 + i8
    assert os.path.getsize(os.path.join(bucket_dir, "2024.bin")) == 4096 + 527_040 * record
    assert os.path.getsize(os.path.join(bucket_dir, "2023.bin")) == 4096 + 525_600 * record
    allocated = os.stat(os.path.join(bucket_dir, "2024.bin")).st_blocks * 512
    assert allocated < 1 << 20  # empty slots are holes
    with open(os.path.join(bucket_dir, "2024.bin"), "rb") as f:
        assert f.read(8) == b"MKTSYEAR"
        slot = (utc(2024, 6, 1, 12) - utc(2024, 1, 1)) // 60
        f.seek(4096 + slot * record)
        assert int.from_bytes(f.read(8), "little") == slot + 1
