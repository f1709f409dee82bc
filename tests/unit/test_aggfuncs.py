"""The aggregation math (plugins/aggfuncs.py): alignment to the database calendar, OHLCV and
tick reduction, wide volume sums, and the exchange-session filter."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from mkts.engine.timeutil import get_calendar
from mkts.plugins import aggfuncs
from mkts.plugins.aggfuncs import aggregate, bar_bounds, bar_labels, merge_ranges

NY = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC


def ep(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: dt.tzinfo = UTC) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp())


# -- alignment -----------------------------------------------------------------------------


def test_intraday_labels_are_left_edges_in_utc() -> None:
    cal = get_calendar("UTC")
    t = np.array([ep(2017, 12, 15, 10, 3), ep(2017, 12, 15, 10, 4), ep(2017, 12, 15, 10, 5),
                  ep(2017, 12, 15, 10, 59)])
    assert bar_labels(cal, t, "5Min").tolist() == [ep(2017, 12, 15, 10, 0)] * 2 + [
        ep(2017, 12, 15, 10, 5), ep(2017, 12, 15, 10, 55)]
    assert set(bar_labels(cal, t, "1H").tolist()) == {ep(2017, 12, 15, 10)}


def test_daily_labels_are_local_midnight_including_jan_1() -> None:
    cal = get_calendar("America/New_York")
    t = np.array([ep(2024, 1, 1, 0, 0, NY), ep(2024, 1, 1, 23, 59, NY), ep(2023, 12, 31, 23, 59, NY),
                  ep(2024, 3, 10, 12, 0, NY), ep(2024, 11, 3, 23, 30, NY)])
    assert bar_labels(cal, t, "1D").tolist() == [
        ep(2024, 1, 1, tz=NY), ep(2024, 1, 1, tz=NY), ep(2023, 12, 31, tz=NY),
        ep(2024, 3, 10, tz=NY), ep(2024, 11, 3, tz=NY)]


def test_daily_bars_are_23_and_25_hours_long_on_dst_days() -> None:
    cal = get_calendar("America/New_York")
    labels = np.array([ep(2024, 3, 10, tz=NY), ep(2024, 11, 3, tz=NY), ep(2024, 12, 31, tz=NY)])
    starts, ends = bar_bounds(cal, labels, "1D")
    assert (ends - starts).tolist() == [23 * 3600, 25 * 3600, 24 * 3600]
    assert ends[-1] == ep(2025, 1, 1, tz=NY)


def test_hourly_bars_start_on_local_clock_hours_in_half_hour_zones() -> None:
    cal = get_calendar("Asia/Kolkata")  # +05:30, MarketStore issue #184's example zone
    ist = zoneinfo.ZoneInfo("Asia/Kolkata")
    t = np.array([ep(2024, 6, 5, 10, 45, ist)])
    assert bar_labels(cal, t, "1H").tolist() == [ep(2024, 6, 5, 10, 0, ist)]


def test_intraday_grid_counts_from_local_midnight_of_january_1() -> None:
    # 4H bars in New York: 00:00, 04:00 ... EST all year, so 01:00, 05:00 ... EDT in summer.
    cal = get_calendar("America/New_York")
    t = np.array([ep(2024, 7, 1, 2, 0, NY), ep(2024, 1, 2, 2, 0, NY)])
    assert bar_labels(cal, t, "4H").tolist() == [ep(2024, 7, 1, 1, 0, NY), ep(2024, 1, 2, 0, 0, NY)]
    starts, ends = bar_bounds(cal, bar_labels(cal, t, "4H"), "4H")
    assert (ends - starts).tolist() == [4 * 3600, 4 * 3600]


def test_merge_ranges_joins_overlapping_and_touching_ranges() -> None:
    s, e = merge_ranges(np.array([50, 0, 10, 100, 30]), np.array([60, 10, 20, 110, 55]))
    assert list(zip(s.tolist(), e.tolist(), strict=True)) == [(0, 20), (30, 60), (100, 110)]
    s, e = merge_ranges(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert len(s) == len(e) == 0


ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"]
TFS = ["1Min", "5Min", "15Min", "90Min", "1H", "4H", "1D"]


def _near_edges(zone: str, n: int, seed: int) -> np.ndarray:
    """`n` epochs near the awkward places of a zone: DST changes, year ends, midnights."""
    tz = zoneinfo.ZoneInfo(zone)
    anchors = [ep(2024, 4, 7, 1, 0, tz), ep(2024, 10, 6, 2, 0, tz), ep(2024, 3, 10, 2, 0, tz),
               ep(2024, 11, 3, 1, 30, tz), ep(2023, 12, 31, 23, 0, tz), ep(2024, 6, 5, 0, 0, tz)]
    rng = np.random.default_rng(seed)
    return (rng.choice(anchors, n) + rng.integers(-3 * 3600, 3 * 3600, n)).astype(np.int64)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("n", [1, 2, 7, 32, 33, 400])
def test_touched_bars_are_the_bars_labels_and_bounds_give(zone: str, n: int) -> None:
    # n <= 32 distinct epochs takes the scalar path, more the numpy path: both must agree
    cal = get_calendar(zone)
    tfs = [aggfuncs.as_timeframe(t) for t in TFS]
    epochs = _near_edges(zone, n, seed=n)
    if n == 400:  # many rows, few distinct epochs: still the scalar path
        epochs = np.repeat(epochs[:5], 80)
    starts, ends, counts = aggfuncs.touched_bars(cal, epochs, tfs)
    assert sum(counts) == len(starts) == len(ends)
    at = 0
    for tf, k in zip(tfs, counts, strict=True):
        labels = np.unique(bar_labels(cal, epochs, tf))
        _, exp_ends = bar_bounds(cal, labels, tf)
        assert starts[at:at + k].tolist() == labels.tolist(), (zone, tf.name)
        assert ends[at:at + k].tolist() == exp_ends.tolist(), (zone, tf.name)
        at += k


@pytest.mark.parametrize("n", [3, 16, 17, 200])
def test_merge_ranges_small_and_large_inputs_agree(n: int) -> None:
    rng = np.random.default_rng(n)
    s = rng.integers(0, 50 * n, n)
    e = s + rng.integers(1, 40, n)
    got = merge_ranges(s, e)
    covered = np.zeros(60 * n, dtype=bool)
    for a, b in zip(s.tolist(), e.tolist(), strict=True):
        covered[a:b] = True
    edges = np.flatnonzero(np.diff(np.concatenate(([0], covered.astype(np.int8), [0]))))
    assert got[0].tolist() == edges[0::2].tolist() and got[1].tolist() == edges[1::2].tolist()


@pytest.mark.parametrize("vtype", ["i4", "u8", "f8", None])
@pytest.mark.parametrize("kind", [aggfuncs.BARS, aggfuncs.TICKS])
def test_reduce_spans_equals_reducing_the_rows_of_each_span(kind: str, vtype: str | None) -> None:
    rng = np.random.default_rng(11)
    n = 300
    epochs = np.sort(rng.choice(np.arange(1000, 1000 + 60 * 2000, 60), n, replace=False))
    if kind == aggfuncs.TICKS:  # ticks: repeated seconds, in write order
        epochs = np.sort(rng.integers(1000, 1000 + 60 * 500, n))
        cols = {"Epoch": epochs, "Price": rng.normal(100, 1, n)}
        vname = "Size"
    else:
        mid = rng.normal(100, 1, n).astype(np.float32)
        cols = {"Epoch": epochs, "Open": mid, "High": mid + 1, "Low": mid - 1, "Close": mid}
        vname = "Volume"
    if vtype is not None:
        cols[vname] = (rng.random(n) * 1e6).astype(vtype)
    # overlapping spans of several lengths, spans without rows, spans ending past the last
    # row (its index is n) and before the first
    starts = np.concatenate([epochs[[0, 5, 5, 150, -1, -1]] // 60 * 60 - 60,
                             [0, 10 ** 6, epochs[-1] + 1]]).astype(np.int64)
    ends = starts + np.array([300, 60, 7200, 86400, 60, 86400, 500, 60, 10], dtype=np.int64)
    bars, has = aggfuncs.reduce_spans(kind, cols, starts, ends)
    reduce = aggfuncs.reduce_bars if kind == aggfuncs.BARS else aggfuncs.reduce_ticks
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        sel = (epochs >= a) & (epochs < b)
        assert bool(has[i]) == bool(sel.any()), i
        if not sel.any():
            continue
        exp = reduce(np.full(int(sel.sum()), a), {c: v[sel] for c, v in cols.items()})
        assert set(bars) == set(exp)
        for c, v in exp.items():
            assert bars[c][i] == v[0] and bars[c].dtype == v.dtype, (i, c)


def test_reduce_spans_without_rows_has_no_bars() -> None:
    cols = _bars([], [], [], [], [], [], vtype="u2")
    bars, has = aggfuncs.reduce_spans(aggfuncs.BARS, cols, np.array([0, 60]), np.array([60, 120]))
    assert has.tolist() == [False, False]


# -- reduction -----------------------------------------------------------------------------


def _bars(epochs: list[int], o: list[float], h: list[float], low: list[float], c: list[float],
          v: list[float] | None = None, vtype: str = "i8", ptype: str = "f4"
          ) -> dict[str, np.ndarray]:
    cols = {"Epoch": np.array(epochs, dtype=np.int64), "Open": np.array(o, dtype=ptype),
            "High": np.array(h, dtype=ptype), "Low": np.array(low, dtype=ptype),
            "Close": np.array(c, dtype=ptype)}
    if v is not None:
        cols["Volume"] = np.array(v, dtype=vtype)
    return cols


def test_marketstore_testagg_values() -> None:
    # contrib/ondiskagg/aggtrigger_test.go TestAgg (UTC): 3 bars, Open[0]=1, High[1]=4.1 ...
    t = [ep(2017, 12, 15, 10, m) for m in (3, 4, 5, 6, 10)]
    cols = _bars(t, [1, 2, 3, 4, 5], [1.1, 2.1, 3.1, 4.1, 5.1], [0.9, 1.9, 2.9, 3.9, 4.9],
                 [1.05, 2.05, 3.05, 4.05, 5.05])
    out = aggregate(cols, get_calendar("UTC"), "5Min")
    assert len(out["Epoch"]) == 3
    assert out["Open"][0] == np.float32(1.0) and out["High"][1] == np.float32(4.1)
    assert out["Low"][0] == np.float32(0.9) and out["Close"][1] == np.float32(4.05)
    assert out["Open"].dtype == np.float32 and "Volume" not in out


def test_marketstore_daily_bars_in_new_york_are_labelled_at_local_midnight() -> None:
    t = [ep(2017, 12, 15, 10, 3, NY), ep(2017, 12, 15, 10, 4, NY), ep(2017, 12, 16, 10, 5, NY),
         ep(2017, 12, 16, 10, 6, NY), ep(2017, 12, 16, 10, 10, NY)]
    cols = _bars(t, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    out = aggregate(cols, get_calendar("America/New_York"), "1D")
    assert out["Epoch"].tolist() == [ep(2017, 12, 15, tz=NY), ep(2017, 12, 16, tz=NY)]


def test_open_first_high_max_low_min_close_last_volume_sum() -> None:
    t = [ep(2024, 1, 2, 9, m) for m in (30, 31, 32, 33, 34)]
    cols = _bars(t, [10, 11, 12, 13, 14], [15, 19, 12, 13, 14], [9, 8, 7, 12, 13],
                 [11, 12, 13, 14, 15], [1, 2, 3, 4, 5])
    out = aggregate(cols, get_calendar("UTC"), "5Min")
    assert out["Epoch"].tolist() == [ep(2024, 1, 2, 9, 30)]
    assert [float(out[c][0]) for c in ("Open", "High", "Low", "Close")] == [10, 19, 7, 15]
    assert out["Volume"].tolist() == [15] and out["Volume"].dtype == np.int64


def test_unsorted_input_gives_the_same_bars_as_sorted() -> None:
    rng = np.random.default_rng(3)
    t = ep(2024, 1, 2) + 60 * rng.permutation(600)
    vals = rng.normal(100, 1, 600)
    cols = _bars(t.tolist(), vals, vals + 1, vals - 1, vals, np.arange(600))
    order = np.argsort(t)
    sorted_cols = {k: v[order] for k, v in cols.items()}
    cal = get_calendar("UTC")
    a, b = aggregate(cols, cal, "15Min"), aggregate(sorted_cols, cal, "15Min")
    assert all(np.array_equal(a[c], b[c]) for c in a)


@pytest.mark.parametrize(
    ("vtype", "acc"),
    [("f4", np.float64), ("f8", np.float64), ("i1", np.int64), ("i2", np.int64),
     ("i4", np.int64), ("u1", np.uint64), ("u4", np.uint64), ("u8", np.uint64)],
)
def test_volume_sums_are_stored_wide(vtype: str, acc: type) -> None:
    info = np.finfo(vtype) if vtype[0] == "f" else np.iinfo(vtype)
    big = min(float(info.max), 3e9)
    t = [ep(2024, 1, 2, 10, m) for m in range(4)]
    cols = _bars(t, [1] * 4, [1] * 4, [1] * 4, [1] * 4, [big] * 4, vtype=vtype)
    out = aggregate(cols, get_calendar("UTC"), "5Min")
    assert out["Volume"].dtype == acc
    assert float(out["Volume"][0]) == pytest.approx(4 * float(np.array(big, dtype=vtype)))


def test_float_volume_above_2_31_does_not_fail() -> None:
    # MarketStore's SumFloat64 panics above MaxInt32.
    t = [ep(2024, 1, 2, 10, m) for m in range(3)]
    cols = _bars(t, [1] * 3, [1] * 3, [1] * 3, [1] * 3, [2.0**31] * 3, vtype="f8")
    assert aggregate(cols, get_calendar("UTC"), "1D")["Volume"].tolist() == [3 * 2.0**31]


def test_ticks_become_ohlcv_bars_in_time_order() -> None:
    base = ep(2024, 1, 2, 14, 30)
    cols = {"Epoch": np.array([base + 61, base + 1, base + 1, base + 59, base + 120]),
            "Nanoseconds": np.array([0, 500, 100, 999_999_999, 0], dtype=np.int32),
            "Price": np.array([5.0, 2.0, 1.0, 3.0, 9.0]),
            "Size": np.array([10, 20, 30, 40, 50], dtype=np.uint32)}
    out = aggregate(cols, get_calendar("UTC"), "1Min")
    assert out["Epoch"].tolist() == [base, base + 60, base + 120]
    assert out["Open"].tolist() == [1.0, 5.0, 9.0]  # ns 100 before ns 500
    assert out["Close"].tolist() == [3.0, 5.0, 9.0]
    assert out["High"].tolist() == [3.0, 5.0, 9.0] and out["Low"].tolist() == [1.0, 5.0, 9.0]
    assert out["Volume"].tolist() == [90, 10, 50] and out["Volume"].dtype == np.uint64


def test_columns_without_ohlc_or_price_are_refused() -> None:
    assert aggfuncs.base_kind(["Epoch", "Bid", "Ask"]) is None
    with pytest.raises(ValueError, match="Open, High, Low and Close"):
        aggregate({"Epoch": np.array([1]), "Bid": np.array([1.0])}, get_calendar("UTC"), "5Min")


def test_empty_input_gives_empty_typed_bars() -> None:
    cols = _bars([], [], [], [], [], [], vtype="u2")
    out = aggregate(cols, get_calendar("UTC"), "1H")
    assert len(out["Epoch"]) == 0 and out["Volume"].dtype == np.uint64
    assert out["Open"].dtype == np.float32


# -- exchange sessions ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nasdaq", "XNAS", "xnas"])
def test_nasdaq_names_resolve_to_xnas(name: str) -> None:
    assert aggfuncs.session_filter(name).name == "XNAS"


def test_unknown_calendar_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not an exchange calendar"):
        aggfuncs.session_filter("NOPE")


def test_session_mask_follows_open_close_holidays_and_early_closes() -> None:
    f = aggfuncs.session_filter("XNYS")
    cases = {
        ep(2017, 1, 1, 11, 0, NY): False,  # Sunday (MarketStore calendar test)
        ep(2018, 1, 15, 11, 0, NY): False,  # MLK day
        ep(2018, 7, 3, 11, 0, NY): True,  # early close day, still open at 11:00
        ep(2018, 7, 3, 12, 59, NY): True,
        ep(2018, 7, 3, 13, 0, NY): False,  # closed at 13:00
        ep(2018, 7, 3, 15, 0, NY): False,
        ep(2021, 8, 31, 9, 29, NY): False,
        ep(2021, 8, 31, 9, 30, NY): True,  # open <= t
        ep(2021, 8, 31, 15, 59, NY): True,
        ep(2021, 8, 31, 16, 0, NY): False,  # t < close
        ep(2021, 8, 31, 19, 0, NY): False,
    }
    got = f.mask(np.array(list(cases), dtype=np.int64))
    assert got.tolist() == list(cases.values())


def test_session_mask_extends_its_schedule_to_new_years() -> None:
    f = aggfuncs.SessionFilter("XNYS")
    assert f.mask(np.array([ep(2024, 7, 1, 10, 0, NY)])).tolist() == [True]
    assert f.mask(np.array([ep(1995, 7, 3, 10, 0, NY), ep(2041, 7, 1, 10, 0, NY)])).tolist() == \
        [True, True]
    assert f.mask(np.array([], dtype=np.int64)).tolist() == []


def test_filtered_daily_bar_counts_only_session_rows_and_skips_closed_days() -> None:
    cal = get_calendar("America/New_York")
    t = [ep(2018, 7, 3, 9, 29, NY), ep(2018, 7, 3, 9, 30, NY), ep(2018, 7, 3, 12, 59, NY),
         ep(2018, 7, 3, 13, 0, NY), ep(2018, 7, 4, 10, 0, NY)]  # 4 July: holiday
    cols = _bars(t, [1, 2, 3, 4, 5], [10, 20, 30, 40, 50], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5],
                 [1, 2, 3, 4, 5])
    out = aggregate(cols, cal, "1D", session=aggfuncs.session_filter("nasdaq"))
    assert out["Epoch"].tolist() == [ep(2018, 7, 3, tz=NY)]
    assert (float(out["Open"][0]), float(out["High"][0]), float(out["Close"][0])) == (2, 30, 3)
    assert out["Volume"].tolist() == [5]
