"""The pure candle math of the query functions (plugins/functions/candles.py): timeframe
literals, boundaries in the database zone, and rows to candles."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from mkts.engine import FunctionError, get_calendar
from mkts.plugins.functions.candles import (
    candle_edges,
    candle_labels,
    make_candles,
    parse_frame,
    time_order,
)

NY = zoneinfo.ZoneInfo("America/New_York")


def _ny(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=NY).timestamp())


def _utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


@pytest.mark.parametrize("text", ["1MIN", "1h", "5min", "1S", "0Min", "x5Miny", ""])
def test_timeframes_are_exact_and_case_sensitive(text: str) -> None:
    with pytest.raises(FunctionError, match="no suitable timeframe provided"):
        parse_frame(text)


def test_surrounding_spaces_are_allowed() -> None:
    f = parse_frame(" 12Min ")
    assert (f.n, f.unit, f.seconds) == (12, "Min", 720)
    assert parse_frame("1M").seconds is None


def test_intraday_candles_start_at_local_clock_hours() -> None:
    cal = get_calendar("America/New_York")
    t = np.array([_ny(2024, 7, 1, 9, 59, 59), _ny(2024, 7, 1, 10, 0, 0)])
    assert candle_labels(cal, t, parse_frame("1H")).tolist() == [
        _ny(2024, 7, 1, 9), _ny(2024, 7, 1, 10)]


def test_daily_candles_start_at_local_midnight() -> None:
    cal = get_calendar("America/New_York")
    t = np.array([_ny(2024, 3, 10, 23, 0)])  # the day DST starts (23 hours long)
    assert candle_labels(cal, t, parse_frame("1D")).tolist() == [_ny(2024, 3, 10)]


def test_weeks_start_on_monday_local_midnight() -> None:
    cal = get_calendar("America/New_York")
    t = np.array([_ny(2024, 1, 7, 23, 59), _ny(2024, 1, 8, 0, 0)])  # Sunday, Monday
    assert candle_labels(cal, t, parse_frame("1W")).tolist() == [
        _ny(2024, 1, 1), _ny(2024, 1, 8)]


def test_months_are_calendar_months_and_3m_are_quarters() -> None:
    cal = get_calendar("UTC")
    t = np.array([_utc(2024, 2, 29, 23), _utc(2024, 5, 1), _utc(2024, 6, 30)])
    assert candle_labels(cal, t, parse_frame("1M")).tolist() == [
        _utc(2024, 2, 1), _utc(2024, 5, 1), _utc(2024, 6, 1)]
    assert candle_labels(cal, t, parse_frame("3M")).tolist() == [
        _utc(2024, 1, 1), _utc(2024, 4, 1), _utc(2024, 4, 1)]


def test_several_days_count_from_1970() -> None:
    cal = get_calendar("UTC")
    t = np.array([_utc(1970, 1, 2, 5), _utc(1970, 1, 3), _utc(2024, 1, 1, 12)])
    # 2024-01-01 is day 19723 since 1970 (odd): its 2D candle began the day before
    assert candle_labels(cal, t, parse_frame("2D")).tolist() == [
        _utc(1970, 1, 1), _utc(1970, 1, 3), _utc(2023, 12, 31)]


def test_lengths_that_do_not_divide_a_day_count_from_local_1970() -> None:
    cal = get_calendar("UTC")
    t = np.array([_utc(2024, 1, 1, 0, 0)])
    (label,) = candle_labels(cal, t, parse_frame("7Min")).tolist()
    assert label % 420 == 0 and label <= t[0] < label + 420


def test_rows_already_in_order_need_no_sort() -> None:
    assert time_order({"Epoch": np.array([1, 1, 2])}) is None
    order = time_order({"Epoch": np.array([1, 1, 2]), "Nanoseconds": np.array([5, 3, 0])})
    assert order is not None and order.tolist() == [1, 0, 2]


def test_candles_take_first_max_min_last_and_exact_integer_sums() -> None:
    big = 2**24 + 1  # float32 would round this
    epochs, edges = np.array([0, 30, 60]), np.array([0, 60])
    p = np.array([3.0, 5.0, 4.0], dtype=np.float32)
    out = make_candles(epochs, edges, (p, p, p, p), sums=[("V", np.array([big, 1, 2]))],
                       avgs=[("V", np.array([1, 2, 4]))])
    assert list(out) == ["Epoch", "Open", "High", "Low", "Close", "V_SUM", "V_AVG"]
    assert out["Open"].tolist() == [3.0, 4.0] and out["Close"].tolist() == [5.0, 4.0]
    assert out["High"].tolist() == [5.0, 4.0] and out["Low"].tolist() == [3.0, 4.0]
    assert out["Open"].dtype == np.float32
    assert out["V_SUM"].dtype == np.float64 and out["V_SUM"].tolist() == [big + 1, 2]
    assert out["V_AVG"].tolist() == [1.5, 4.0]


def test_a_column_summed_twice_gets_numbered_names() -> None:
    p = np.array([1.0])
    out = make_candles(np.array([0]), np.array([0]), (p, p, p, p), sums=[("V", p), ("V", p), ("V", p)])
    assert [c for c in out if c.startswith("V_")] == ["V_SUM", "V_SUM0", "V_SUM1"]


def test_no_rows_give_no_candles() -> None:
    p = np.zeros(0)
    none = np.zeros(0, dtype=np.int64)
    out = make_candles(none, none, (p, p, p, p), sums=[("V", p)])
    assert all(len(v) == 0 for v in out.values()) and "V_SUM" in out


def test_candles_without_rows_between_edges_are_left_out() -> None:
    p = np.array([1.0, 2.0])
    out = make_candles(np.array([0, 200]), np.array([0, 60, 120, 180]), (p, p, p, p))
    assert out["Epoch"].tolist() == [0, 180] and out["Close"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize("tf", ["1Min", "7Min", "4H", "5H", "1D", "2D", "1W", "2W", "1M", "3M",
                                "1Y"])
def test_edges_are_the_labels_of_every_candle_in_the_span(tz: str, tf: str) -> None:
    cal = get_calendar(tz)
    frame = parse_frame(tf)
    first, last = _utc(2023, 12, 20, 7, 13), _utc(2024, 4, 2, 3, 1)
    every_minute = np.arange(first, last + 1, 60, dtype=np.int64)
    want = np.unique(candle_labels(cal, every_minute, frame))
    got = candle_edges(cal, first, last, frame, max_edges=10**6)
    assert got is not None and got.tolist() == want.tolist()
    if frame.seconds is not None and frame.seconds < 3600:
        assert candle_edges(cal, first, last, frame, max_edges=10) is None
