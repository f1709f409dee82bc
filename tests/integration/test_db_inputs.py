"""Every accepted input form (structured array, dict, pandas DataFrame, datetime64 epochs)
and every accepted form of a time argument, through `engine.open`."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from mkts import engine

KEY = "AAPL/1Min/OHLCV"
T10 = 1_704_189_600  # 2024-01-02 10:00:00 UTC
EXPECTED = [T10, T10 + 60, T10 + 120]
NY = ZoneInfo("America/New_York")


def _check(db: engine.Database, epochs: list[int] = EXPECTED) -> None:
    r = db.read(KEY)
    assert r["Epoch"].tolist() == epochs
    assert r["Close"].tolist() == [1.0, 2.0, 3.0][: len(epochs)]
    assert r["Volume"].tolist() == [10, 20, 30][: len(epochs)]


def test_structured_array(db: engine.Database) -> None:
    a = np.zeros(3, dtype=[("Epoch", "i8"), ("Close", "f8"), ("Volume", "i8")])
    a["Epoch"] = EXPECTED
    a["Close"] = [1, 2, 3]
    a["Volume"] = [10, 20, 30]
    db.write(KEY, a)
    _check(db)


def test_strided_structured_array_slice(db: engine.Database) -> None:
    a = np.zeros(6, dtype=[("Epoch", "i8"), ("Close", "f8"), ("Volume", "i8")])
    a["Epoch"] = [T10, 0, T10 + 60, 0, T10 + 120, 0]
    a["Close"] = [1, -1, 2, -1, 3, -1]
    a["Volume"] = [10, -1, 20, -1, 30, -1]
    db.write(KEY, a[::2])
    _check(db)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_structured_array_with_datetime64_epochs(db: engine.Database, unit: str) -> None:
    a = np.zeros(3, dtype=[("Epoch", f"M8[{unit}]"), ("Close", "f8"), ("Volume", "i8")])
    a["Epoch"] = np.array(["2024-01-02T10:00:00", "2024-01-02T10:01:59", "2024-01-02T10:02:30"],
                          dtype=f"M8[{unit}]")
    a["Close"] = [1, 2, 3]
    a["Volume"] = [10, 20, 30]
    db.write(KEY, a)
    _check(db)
    assert db.info(KEY)["columns"]["Epoch"] == "i8"


def test_datetime64_epochs_with_sub_second_parts_floor_into_their_interval(
        db: engine.Database) -> None:
    db.write(KEY, {"Epoch": np.array(["2024-01-02T10:00:59.999999999", "2024-01-02T10:01:00"],
                                     dtype="M8[ns]"),
                   "Close": [1.0, 2.0], "Volume": [10, 20]})
    _check(db, EXPECTED[:2])


def test_dict_of_lists(db: engine.Database) -> None:
    db.write(KEY, {"Epoch": EXPECTED, "Close": [1.0, 2.0, 3.0], "Volume": [10, 20, 30]})
    _check(db)
    assert db.info(KEY)["columns"] == {"Epoch": "i8", "Close": "f8", "Volume": "i8"}


def test_dict_of_numpy_arrays(db: engine.Database) -> None:
    db.write(KEY, {"Epoch": np.array(EXPECTED, dtype="u8"), "Close": np.array([1, 2, 3], "f4"),
                   "Volume": np.array([10, 20, 30], "u4")})
    _check(db)
    assert db.info(KEY)["columns"] == {"Epoch": "i8", "Close": "f4", "Volume": "u4"}


def _frame(index: Any) -> pd.DataFrame:
    return pd.DataFrame({"Close": [1.0, 2.0, 3.0], "Volume": [10, 20, 30]}, index=index)


def test_dataframe_with_naive_datetime_index_means_utc(db: engine.Database) -> None:
    db.write(KEY, _frame(pd.DatetimeIndex(["2024-01-02 10:00", "2024-01-02 10:01:30",
                                           "2024-01-02 10:02:59"])))
    _check(db)


def test_dataframe_with_tz_aware_datetime_index(db: engine.Database) -> None:
    index = pd.date_range("2024-01-02 05:00", periods=3, freq="1min", tz="America/New_York")
    db.write(KEY, _frame(index))
    _check(db)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Kolkata"])
def test_dataframe_with_non_nanosecond_index(db: engine.Database, unit: str,
                                             tz: str | None) -> None:
    start = {None: "2024-01-02 10:00", "UTC": "2024-01-02 10:00",
             "Asia/Kolkata": "2024-01-02 15:30"}[tz]
    index = pd.date_range(start, periods=3, freq="1min", unit=unit, tz=tz)
    assert index.unit == unit
    db.write(KEY, _frame(index))
    _check(db)


def test_dataframe_with_an_epoch_column(db: engine.Database) -> None:
    df = pd.DataFrame({"Epoch": EXPECTED, "Close": [1.0, 2.0, 3.0], "Volume": [10, 20, 30]})
    db.write(KEY, df)
    _check(db)
    assert db.info(KEY)["columns"] == {"Epoch": "i8", "Close": "f8", "Volume": "i8"}


def test_dataframe_with_a_datetime_epoch_column(db: engine.Database) -> None:
    epochs = pd.to_datetime(["2024-01-02 10:00", "2024-01-02 10:01", "2024-01-02 10:02"]).as_unit(
        "s")
    db.write(KEY, pd.DataFrame({"Epoch": epochs, "Close": [1.0, 2.0, 3.0],
                                "Volume": [10, 20, 30]}))
    _check(db)
    aware = pd.Series(epochs).dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    db.write(KEY, pd.DataFrame({"Epoch": aware, "Close": [1.0, 2.0, 3.0],
                                "Volume": [10, 20, 30]}))
    _check(db)


def test_dataframe_with_an_index_named_epoch(db: engine.Database) -> None:
    df = _frame(pd.Index(EXPECTED, name="Epoch"))
    db.write(KEY, df)
    _check(db)


def test_dataframe_string_column(db: engine.Database) -> None:
    df = pd.DataFrame({"Epoch": EXPECTED, "Venue": ["NYSE", "ARCA", "BATS"]})
    db.write("AAPL/1Min/META", df)
    r = db.read("AAPL/1Min/META")
    assert r["Venue"].tolist() == ["NYSE", "ARCA", "BATS"]
    assert db.info("AAPL/1Min/META")["columns"]["Venue"].startswith("U")


def test_to_pandas_round_trips_through_write(db: engine.Database) -> None:
    db.write(KEY, {"Epoch": EXPECTED, "Close": [1.0, 2.0, 3.0], "Volume": [10, 20, 30]})
    df = db.read(KEY).to_pandas()
    db.write("COPY/1Min/OHLCV", df)
    r = db.read("COPY/1Min/OHLCV")
    assert r["Epoch"].tolist() == EXPECTED
    assert r["Close"].tolist() == [1.0, 2.0, 3.0]


# -- time arguments ------------------------------------------------------------------------
T_START = T10 + 60  # 10:01:00 UTC
T_END = T10 + 120  # 10:02:00 UTC


@pytest.mark.parametrize(
    "start,end",
    [
        (T_START, T_END),
        (np.int64(T_START), np.int64(T_END)),
        (float(T_START) + 0.5, float(T_END) + 0.5),
        (dt.datetime(2024, 1, 2, 10, 1), dt.datetime(2024, 1, 2, 10, 2)),
        (dt.datetime(2024, 1, 2, 10, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, 10, 2, 30,
                                                                    tzinfo=dt.UTC)),
        (dt.datetime(2024, 1, 2, 5, 1, tzinfo=NY), dt.datetime(2024, 1, 2, 5, 2, tzinfo=NY)),
        (np.datetime64("2024-01-02T10:01"), np.datetime64("2024-01-02T10:02:00.000000001")),
        (np.datetime64("2024-01-02T10:01:00", "s"), np.datetime64("2024-01-02T10:02:00", "s")),
        (pd.Timestamp("2024-01-02 10:01"), pd.Timestamp("2024-01-02 10:02")),
        (pd.Timestamp("2024-01-02 10:01").as_unit("s"),
         pd.Timestamp("2024-01-02 10:02").as_unit("ms")),
        (pd.Timestamp("2024-01-02 15:31", tz="Asia/Kolkata"),
         pd.Timestamp("2024-01-02 05:02", tz="America/New_York")),
        ("2024-01-02T10:01:00", "2024-01-02T10:02:00"),
        ("2024-01-02 10:01:30", "2024-01-02 10:02:59"),
        ("2024-01-02T10:01:00Z", "2024-01-02T10:02:00.999999999Z"),
        ("2024-01-02T05:01:00-05:00", "2024-01-02T15:32:00+05:30"),
        ("2024-01-02T10:01:00.000000001", "2024-01-02T10:02:00+00:00"),
    ],
)
def test_time_arguments_in_every_accepted_form(db: engine.Database, start: Any, end: Any) -> None:
    db.write(KEY, {"Epoch": [T10 + 60 * i for i in range(5)], "Close": [0.0, 1.0, 2.0, 3.0, 4.0],
                   "Volume": [0, 10, 20, 30, 40]})
    r = db.read(KEY, start, end)
    assert r["Epoch"].tolist() == [T_START, T_END]
    rs = db.query("AAPL/1Min/OHLCV", start=start, end=end)
    assert rs[KEY]["Epoch"].tolist() == [T_START, T_END]


def test_date_only_time_arguments(db: engine.Database) -> None:
    db.write("AAPL/1D/OHLCV", {"Epoch": [T10 - 86_400 * i for i in range(5)], "Close": [0.0] * 5})
    r = db.read("AAPL/1D/OHLCV", "2023-12-30", dt.date(2024, 1, 1))
    assert r["Epoch"].tolist() == [1_703_894_400, 1_703_980_800, 1_704_067_200]


@pytest.mark.parametrize("bad", ["soon", "", "NaT", object(), [T10], float("nan"), True,
                                 np.datetime64("NaT"), np.datetime64("2600-01-01", "s")])
def test_unacceptable_time_arguments_are_rejected(db: engine.Database, bad: Any) -> None:
    db.write(KEY, {"Epoch": [T10], "Close": [1.0]})
    with pytest.raises(engine.InvalidInputError):
        db.read(KEY, bad)
    with pytest.raises(engine.InvalidInputError):
        db.read(KEY, None, bad)
    with pytest.raises(ValueError):
        db.query("AAPL/1Min/OHLCV", bad)


def test_object_column_of_text_becomes_a_string_column(db: engine.Database) -> None:
    db.write("AAPL/1Min/META", {"Epoch": [T10, T10 + 60],
                                "Venue": np.array(["NYSE", "ARCA"], dtype=object)})
    assert db.info("AAPL/1Min/META")["columns"] == {"Epoch": "i8", "Venue": "U4"}
    assert db.read("AAPL/1Min/META")["Venue"].tolist() == ["NYSE", "ARCA"]
