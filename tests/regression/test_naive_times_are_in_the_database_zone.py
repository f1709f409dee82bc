"""Naive times meant different things in different places: `mkts import` read them in the
database's zone, while `db.read`, `mkts query --start/--end`, `read_dask` and export filters
read them as UTC, so in a New York root a bar imported at `2024-01-02 09:30:00` was not found
by `--start '2024-01-02 09:30' --end '2024-01-02 09:30'`. Now a time without an offset is in
the database's zone everywhere, a date-only end includes its whole day, and `Result`'s repr
prints times in the database's zone."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mkts
from mkts import engine

NY = "America/New_York"
KEY = "AAPL/1Min/OHLCV"
REPO = Path(__file__).resolve().parents[2]
CSV = """time,Open,High,Low,Close,Volume
2024-01-01 15:59:00,1,1,1,1,1
2024-01-02 09:30:00,2,2,2,2,2
2024-01-02 09:31:00,3,3,3,3,3
2024-01-02 15:59:00,4,4,4,4,4
2024-01-03 09:30:00,5,5,5,5,5
"""
T0930 = int(pd.Timestamp("2024-01-02 09:30", tz=NY).timestamp())


def _mkts(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    res = subprocess.run([sys.executable, "-m", "mkts.cli", *args], capture_output=True,
                         text=True, cwd=str(cwd), env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def ny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A New York root with the CSV above imported through `mkts import`."""
    d = tmp_path_factory.mktemp("ny")
    (d / "mkts.yml").write_text(f"root_directory: db\ntimezone: {NY}\n")
    (d / "bars.csv").write_text(CSV)
    _mkts(d, "import", KEY, "bars.csv")
    return d


def test_mkts_query_reads_naive_start_and_end_in_the_database_zone(ny_root: Path) -> None:
    out = _mkts(ny_root, "query", KEY, "--start", "2024-01-02 09:30", "--end",
                "2024-01-02 09:30", "--epoch")
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert [int(r[0]) for r in rows] == [T0930]
    whole_day = _mkts(ny_root, "query", KEY, "--start", "2024-01-02", "--end", "2024-01-02",
                      "--epoch")
    assert len([line for line in whole_day.splitlines()[1:] if line.strip()]) == 3


def test_db_read_and_query_read_naive_times_in_the_database_zone(ny_root: Path) -> None:
    with engine.open(ny_root / "db", readonly=True) as db:
        assert db.timezone == NY
        day = db.read(KEY, "2024-01-02", "2024-01-02")  # a date-only end: the whole day
        assert day["Close"].tolist() == [2.0, 3.0, 4.0]  # 15:59 included
        assert db.read(KEY, end="2024-01-02")["Close"].tolist() == [1.0, 2.0, 3.0, 4.0]
        for start in ("2024-01-02 09:30", "2024-01-02T09:30:00", dt.datetime(2024, 1, 2, 9, 30),
                      pd.Timestamp("2024-01-02 09:30")):
            assert db.read(KEY, start, start)["Epoch"].tolist() == [T0930], start
        # a date object is a day in the zone too; end=date: the whole day
        assert len(db.read(KEY, dt.date(2024, 1, 2), dt.date(2024, 1, 2))) == 3
        # with an offset, or as an instant, nothing changes
        assert db.read(KEY, "2024-01-02T14:30Z", "2024-01-02T09:30-05:00")["Epoch"].tolist() \
            == [T0930]
        assert db.read(KEY, T0930, T0930)["Epoch"].tolist() == [T0930]
        inst = np.datetime64(T0930, "s")
        assert db.read(KEY, inst, inst)["Epoch"].tolist() == [T0930]
        assert db.read(KEY, pd.Timestamp("2024-01-02 09:30", tz=NY),
                       pd.Timestamp("2024-01-02 14:30", tz="UTC"))["Epoch"].tolist() == [T0930]
        assert db.query("AAPL/1Min/*", "2024-01-02", "2024-01-02")[KEY]["Close"].tolist() \
            == [2.0, 3.0, 4.0]
        # months and years as the end: the whole period
        assert len(db.read(KEY, "2024-01-02", "2024-01")) == 4
        r = db.read(KEY, "2024-01-02", "2024-01-02")
        assert repr(r) == (f"<Result {KEY}: 3 rows x 6 columns, 2024-01-02T09:30:00-05:00 .. "
                           "2024-01-02T15:59:00-05:00>")


def test_read_dask_and_export_filter_naive_times_in_the_database_zone(ny_root: Path,
                                                                      tmp_path: Path) -> None:
    pytest.importorskip("dask")
    pytest.importorskip("pyarrow")
    df = mkts.read_dask(ny_root / "db", KEY, "2024-01-02 09:30", "2024-01-02").compute()
    assert df["Close"].tolist() == [2.0, 3.0, 4.0]
    res = mkts.export_parquet(ny_root / "db", tmp_path / "out", KEY, "2024-01-02 09:31",
                              "2024-01-02", progress=False)
    assert res.rows == 2


def test_utc_databases_keep_reading_naive_times_as_utc(tmp_path: Path) -> None:
    with engine.open(tmp_path / "db") as db:
        t = int(pd.Timestamp("2024-01-02 09:30", tz="UTC").timestamp())
        db.write(KEY, {"Epoch": [t, t + 86_400 - 60], "Close": [1.0, 2.0]})
        assert db.read(KEY, "2024-01-02 09:30", "2024-01-02 09:30")["Epoch"].tolist() == [t]
        assert db.read(KEY, end="2024-01-02")["Close"].tolist() == [1.0]
        assert db.read(KEY, end="2024-01-03")["Close"].tolist() == [1.0, 2.0]
        assert repr(db.read(KEY)).endswith("2024-01-02T09:30:00Z .. 2024-01-03T09:29:00Z>")
