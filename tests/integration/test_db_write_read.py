"""Writing and reading fixed buckets through `engine.open`: creation, casting, interval
labels, overwrites, out-of-order writes, year spans, ranges, limits and projections."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mkts import engine

KEY = "AAPL/1Min/OHLCV"
T10 = 1_704_189_600  # 2024-01-02 10:00:00 UTC


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def rows(epochs: list[int], values: list[float], **extra: Any) -> dict[str, Any]:
    """A dict input: Close = values, Volume = 10 x values."""
    out: dict[str, Any] = {
        "Epoch": np.array(epochs, dtype=np.int64),
        "Close": np.array(values, dtype="f8"),
        "Volume": (np.array(values) * 10).astype("i8"),
    }
    out.update(extra)
    return out


def as_list(r: engine.Result, column: str = "Epoch") -> list[Any]:
    return np.asarray(r[column]).tolist()


# -- creation and schema -------------------------------------------------------------------
def test_first_write_creates_the_bucket_from_the_columns(db: engine.Database,
                                                          bars: Callable[..., np.ndarray]) -> None:
    assert db.list_keys() == []
    db.write(KEY, bars(3))
    info = db.info(KEY)
    assert info["columns"] == {"Epoch": "i8", "Open": "f4", "High": "f4", "Low": "f4",
                               "Close": "f4", "Volume": "i8"}
    assert info["timeframe"] == "1Min"
    assert info["kind"] == "fixed"
    assert info["years"] == [2024]
    assert db.list_keys() == [KEY]
    r = db.read(KEY)
    assert r.columns == ["Epoch", "Open", "High", "Low", "Close", "Volume"]
    assert as_list(r) == [1_704_153_600, 1_704_153_660, 1_704_153_720]
    assert as_list(r, "Close") == [0.0, 1.0, 2.0]
    assert r["Close"].dtype == np.dtype("f4")
    assert as_list(r, "Volume") == [0, 1, 2]


def test_first_write_keeps_the_datas_column_order_and_types(db: engine.Database) -> None:
    db.write("X/1H/Y", {"Epoch": [T10], "Z": np.array([1], "u2"), "A": np.array([2.5], "f8"),
                        "Venue": np.array(["ARCA"])})
    assert db.info("X/1H/Y")["columns"] == {"Epoch": "i8", "Z": "u2", "A": "f8", "Venue": "U4"}
    r = db.read("X/1H/Y")
    assert r.columns == ["Epoch", "Z", "A", "Venue"]
    assert (as_list(r, "Z"), as_list(r, "A"), as_list(r, "Venue")) == ([1], [2.5], ["ARCA"])


def test_later_writes_may_list_columns_in_any_order(db: engine.Database) -> None:
    db.write(KEY, rows([T10], [1]))
    db.write(KEY, {"Volume": np.array([70], "i8"), "Epoch": np.array([T10 + 60]),
                   "Close": np.array([7.0])})
    r = db.read(KEY)
    assert r.columns == ["Epoch", "Close", "Volume"]
    assert as_list(r, "Close") == [1.0, 7.0]
    assert as_list(r, "Volume") == [10, 70]


def test_values_are_cast_to_the_bucket_types(db: engine.Database) -> None:
    db.create(KEY, {"Open": "f4", "Close": "f8", "Small": "i2", "Count": "u4"})
    db.write(KEY, {"Epoch": [T10, T10 + 60],
                   "Open": np.array([1, 2], "i8"),  # int -> float
                   "Close": np.array([1.5, 2.5], "f4"),  # f4 -> f8
                   "Small": np.array([-32768, 32767], "i8"),  # narrower int, values fit
                   "Count": np.array([0, 2**32 - 1], "i8")})
    db.write(KEY, {"Epoch": [T10 + 120], "Open": np.array([0.1], "f8"),  # f8 -> f4
                   "Close": np.array([3], "u1"), "Small": np.array([5], "u1"),
                   "Count": np.array([7], "u2")})
    r = db.read(KEY)
    assert [r[c].dtype.str for c in ("Open", "Close", "Small", "Count")] == ["<f4", "<f8",
                                                                           "<i2", "<u4"]
    assert as_list(r, "Open") == [1.0, 2.0, float(np.float32(0.1))]
    assert as_list(r, "Close") == [1.5, 2.5, 3.0]
    assert as_list(r, "Small") == [-32768, 32767, 5]
    assert as_list(r, "Count") == [0, 2**32 - 1, 7]


# -- interval labels, overwrites, order ----------------------------------------------------
@pytest.mark.parametrize(
    "tf,written,label",
    [
        ("1Min", T10 + 30, T10),  # 10:00:30 -> 10:00:00
        ("1Min", T10 + 59, T10),
        ("1Min", T10 + 60, T10 + 60),
        ("1Sec", T10 + 1, T10 + 1),
        ("10Sec", T10 + 19, T10 + 10),
        ("5Min", T10 + 7 * 60, T10 + 5 * 60),
        ("15Min", T10 + 29 * 60 + 59, T10 + 15 * 60),
        ("1H", T10 + 3599, T10),
        ("4H", T10, T10 - 2 * 3600),  # 4H intervals start at 00, 04, 08 ... UTC
        ("1D", T10, T10 - 10 * 3600),
    ],
)
def test_a_time_inside_an_interval_reads_back_as_its_label(db: engine.Database, tf: str,
                                                            written: int, label: int) -> None:
    key = f"AAPL/{tf}/OHLCV"
    db.write(key, rows([written], [1]))
    assert as_list(db.read(key)) == [label]


def test_float_epochs_are_floored_into_their_interval(db: engine.Database) -> None:
    db.write(KEY, {"Epoch": np.array([T10 + 59.999, T10 + 60.0]), "Close": [1.0, 2.0]})
    r = db.read(KEY)
    assert as_list(r) == [T10, T10 + 60]
    assert as_list(r, "Close") == [1.0, 2.0]


def test_writing_an_interval_again_overwrites_it(db: engine.Database) -> None:
    db.write(KEY, rows([T10, T10 + 60], [1, 2]))
    db.write(KEY, rows([T10 + 45], [9]))  # the same minute as T10
    r = db.read(KEY)
    assert as_list(r) == [T10, T10 + 60]
    assert as_list(r, "Close") == [9.0, 2.0]
    assert as_list(r, "Volume") == [90, 20]


def test_within_one_call_the_last_row_of_an_interval_wins(db: engine.Database) -> None:
    db.write(KEY, rows([T10, T10 + 60, T10 + 10, T10 + 59, T10 + 61], [1, 2, 3, 4, 5]))
    r = db.read(KEY)
    assert as_list(r) == [T10, T10 + 60]
    assert as_list(r, "Close") == [4.0, 5.0]


def test_out_of_order_and_back_filled_writes_read_back_sorted(db: engine.Database) -> None:
    db.write(KEY, rows([T10 + 600, T10 + 120, T10 + 300], [6, 2, 3]))
    db.write(KEY, rows([T10 - 86_400 * 30, T10 + 60], [-30, 1]))  # a month earlier: back-fill
    db.write(KEY, rows([T10 + 180], [33]))
    r = db.read(KEY)
    assert as_list(r) == [T10 - 86_400 * 30, T10 + 60, T10 + 120, T10 + 180, T10 + 300,
                          T10 + 600]
    assert as_list(r, "Close") == [-30.0, 1.0, 2.0, 33.0, 3.0, 6.0]


def test_writes_may_span_years(db: engine.Database) -> None:
    epochs = [utc(2024, 1, 1), utc(2022, 7, 4, 13, 30), utc(2023, 12, 31, 23, 59, 30),
              utc(1999, 12, 31, 23, 59), utc(2000, 1, 1)]
    db.write(KEY, rows(epochs, [4, 2, 3, 0, 1]))
    assert db.info(KEY)["years"] == [1999, 2000, 2022, 2023, 2024]
    r = db.read(KEY)
    assert as_list(r) == [utc(1999, 12, 31, 23, 59), utc(2000, 1, 1), utc(2022, 7, 4, 13, 30),
                          utc(2023, 12, 31, 23, 59), utc(2024, 1, 1)]
    assert as_list(r, "Close") == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_times_before_1970_and_the_epoch_itself(db: engine.Database) -> None:
    db.write(KEY, rows([-60, 0, utc(1900, 1, 1)], [1, 2, 3]))
    r = db.read(KEY)
    assert as_list(r) == [utc(1900, 1, 1), -60, 0]
    assert as_list(r, "Close") == [3.0, 1.0, 2.0]


def test_write_returns_a_transaction_number_and_zero_rows_write_nothing(
        db: engine.Database) -> None:
    t1 = db.write(KEY, rows([T10], [1]))
    t2 = db.write(KEY, rows([T10 + 60], [2]))
    assert t2 > t1 > 0
    assert db.write(KEY, rows([], [])) == 0
    assert len(db.read(KEY)) == 2


def test_an_empty_first_write_creates_nothing(db: engine.Database) -> None:
    assert db.write(KEY, rows([], [])) == 0
    assert db.list_keys() == []


# -- ranges --------------------------------------------------------------------------------
@pytest.fixture
def ten(db: engine.Database) -> engine.Database:
    """KEY holds 10:00 ... 10:09 with Close = minute."""
    db.write(KEY, rows([T10 + 60 * i for i in range(10)], list(range(10))))
    return db


@pytest.mark.parametrize(
    "start,end,minutes",
    [
        (None, None, list(range(10))),
        (T10 + 120, None, list(range(2, 10))),
        (T10 + 150, None, list(range(2, 10))),  # 10:02:30 -> the 10:02 interval overlaps
        (T10 + 179, T10 + 181, [2, 3]),
        (None, T10 + 300, [0, 1, 2, 3, 4, 5]),  # end inclusive
        (None, T10 + 299, [0, 1, 2, 3, 4]),
        (None, T10 + 330, [0, 1, 2, 3, 4, 5]),  # label 10:05 <= 10:05:30
        (T10 + 300, T10 + 300, [5]),
        (T10 + 330, T10 + 330, [5]),  # inside one interval
        (T10 + 301, T10 + 359, [5]),
        (T10 + 600, None, []),
        (None, T10 - 1, []),
        (T10 + 400, T10 + 200, []),  # start after end
        (T10 + 350, T10 + 310, []),  # start after end, both inside the 10:05 interval
        (utc(2023, 1, 1), utc(2025, 1, 1), list(range(10))),
        (utc(1900, 1, 1), utc(2261, 12, 31), list(range(10))),
        (utc(1800, 1, 1), utc(2300, 1, 1), list(range(10))),  # beyond the supported years
        (utc(1800, 1, 1), utc(1850, 1, 1), []),
        (utc(2270, 1, 1), None, []),
    ],
)
def test_start_and_end_are_inclusive_at_interval_granularity(
        ten: engine.Database, start: int | None, end: int | None, minutes: list[int]) -> None:
    r = ten.read(KEY, start, end)
    assert as_list(r) == [T10 + 60 * m for m in minutes]
    assert as_list(r, "Close") == [float(m) for m in minutes]


def test_daily_range_includes_the_day_of_start(db: engine.Database) -> None:
    key = "AAPL/1D/OHLCV"
    days = [utc(2024, 3, d) for d in range(1, 6)]
    db.write(key, rows(days, [1, 2, 3, 4, 5]))
    r = db.read(key, utc(2024, 3, 2, 15), utc(2024, 3, 4))
    assert as_list(r) == days[1:4]


# -- limits --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "limit,from_start,minutes",
    [
        (3, False, [7, 8, 9]),
        (3, True, [0, 1, 2]),
        (1, False, [9]),
        (1, True, [0]),
        (0, False, []),
        (0, True, []),
        (10, False, list(range(10))),
        (50, True, list(range(10))),
        (None, True, list(range(10))),
    ],
)
def test_limit_takes_rows_from_the_end_unless_limit_from_start(
        ten: engine.Database, limit: int | None, from_start: bool, minutes: list[int]) -> None:
    r = ten.read(KEY, limit=limit, limit_from_start=from_start)
    assert as_list(r) == [T10 + 60 * m for m in minutes]


def test_limit_applies_within_the_range(ten: engine.Database) -> None:
    assert as_list(ten.read(KEY, T10 + 120, T10 + 420, limit=2)) == [T10 + 360, T10 + 420]
    assert as_list(ten.read(KEY, T10 + 120, T10 + 420, limit=2, limit_from_start=True)) == [
        T10 + 120, T10 + 180]


def test_limit_across_year_boundaries(db: engine.Database) -> None:
    epochs = [utc(2020, 6, 1), utc(2023, 12, 31, 23, 58), utc(2023, 12, 31, 23, 59),
              utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 0, 1), utc(2026, 2, 1)]
    db.write(KEY, rows(epochs, [0, 1, 2, 3, 4, 5]))
    assert as_list(db.read(KEY, limit=1)) == epochs[5:]
    assert as_list(db.read(KEY, limit=1, limit_from_start=True)) == epochs[:1]
    assert as_list(db.read(KEY, limit=4)) == epochs[2:]
    assert as_list(db.read(KEY, limit=4, limit_from_start=True)) == epochs[:4]
    in_range = (utc(2021, 1, 1), utc(2025, 1, 1))
    assert as_list(db.read(KEY, *in_range, limit=3)) == epochs[2:5]
    assert as_list(db.read(KEY, *in_range, limit=3, limit_from_start=True)) == epochs[1:4]
    assert as_list(db.read(KEY, *in_range, limit=3, columns=["Volume"]), "Volume") == [20, 30, 40]


@pytest.mark.parametrize("limit", [-1, 1.5, "3", True])
def test_bad_limit_is_rejected(ten: engine.Database, limit: Any) -> None:
    with pytest.raises(engine.InvalidInputError):
        ten.read(KEY, limit=limit)


# -- projection ----------------------------------------------------------------------------
def test_columns_project_in_the_requested_order_with_epoch_first(
        db: engine.Database, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(5, start=T10, first=100))
    r = db.read(KEY, columns=["Volume", "Open"])
    assert r.columns == ["Epoch", "Volume", "Open"]
    assert as_list(r) == [T10 + 60 * i for i in range(5)]
    assert as_list(r, "Volume") == [0, 1, 2, 3, 4]
    assert as_list(r, "Open") == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert "Close" not in r.columns
    r2 = db.read(KEY, columns=["Close", "Epoch"])
    assert r2.columns == ["Epoch", "Close"]
    r3 = db.read(KEY, T10 + 60, T10 + 120, columns=["High"], limit=1)
    assert (r3.columns, as_list(r3), as_list(r3, "High")) == (["Epoch", "High"], [T10 + 120],
                                                              [102.0])


def test_unknown_column_in_a_projection_is_an_error(
        db: engine.Database, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(2))
    with pytest.raises(engine.SchemaError, match="Nope"):
        db.read(KEY, columns=["Close", "Nope"])
    with pytest.raises(engine.SchemaError):
        db.query("AAPL/1Min/OHLCV", columns=["Nope"])
