"""`db.resample` against pandas `resample(rule, label="left", closed="left")` on the same rows
in the database zone (origin "epoch": local midnight of 1970-01-01, docs/plugins.md "Candle
boundaries"), from 1Min bars and from ticks, in three time zones, across DST and year ends;
and the exchange-session filter."""

from __future__ import annotations

import datetime as dt
import tempfile
import zoneinfo
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mkts import engine

ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]
RULES = {"1Min": "1min", "5Min": "5min", "1H": "1h", "4H": "4h", "7Min": "7min", "1D": "1D",
         "1W": "W-MON", "1M": "MS", "3M": "QS-JAN"}
ANCHORS = [dt.datetime(2024, 3, 10, 2), dt.datetime(2024, 11, 3, 1, 30),
           dt.datetime(2023, 12, 31, 22), dt.datetime(2024, 6, 12, 12)]
BAR = [("Epoch", "i8"), ("Open", "f8"), ("High", "f8"), ("Low", "f8"), ("Close", "f8"),
       ("Volume", "i8")]
TICK = [("Epoch", "i8"), ("Price", "f8"), ("Size", "i8"), ("Nanoseconds", "i4")]
AGG = {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}


def _oracle(df: pd.DataFrame, tf: str, agg: dict[str, str]) -> pd.DataFrame:
    rule = RULES[tf]
    kw: dict[str, Any] = {"origin": "epoch"} if tf.endswith(("Min", "H")) else {}
    out = df.resample(rule, label="left", closed="left", **kw).agg(agg)
    counts = df.iloc[:, 0].resample(rule, label="left", closed="left", **kw).count()
    return out[counts > 0]


def _check(got: engine.Result, want: pd.DataFrame) -> None:
    g = got.to_pandas()
    assert list(g.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert g.index.equals(want.index), (g.index, want.index)
    for c in g.columns:
        assert np.array_equal(g[c].to_numpy(), want[c].to_numpy()), c
    assert g["Volume"].dtype == np.int64


@st.composite
def bar_scenarios(draw: Any) -> tuple[str, str, np.ndarray]:
    tz = draw(st.sampled_from(ZONES))
    tf = draw(st.sampled_from(sorted(RULES)))
    anchor = int(draw(st.sampled_from(ANCHORS)).replace(tzinfo=zoneinfo.ZoneInfo(tz))
                 .timestamp()) // 60 * 60
    minutes = draw(st.sets(st.integers(-5 * 1440, 40 * 1440), min_size=1, max_size=300))
    epochs = anchor + 60 * np.array(sorted(minutes), dtype=np.int64)
    rows = np.zeros(len(epochs), dtype=BAR)
    rows["Epoch"] = epochs
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mid = rng.integers(100, 200, len(epochs)).astype(np.float64)
    rows["Open"], rows["Close"] = mid, mid + rng.integers(-3, 4, len(epochs))
    rows["High"] = np.maximum(rows["Open"], rows["Close"]) + 1
    rows["Low"] = np.minimum(rows["Open"], rows["Close"]) - 1
    rows["Volume"] = rng.integers(0, 2**40, len(epochs))
    return tz, tf, rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar_scenarios())
def test_resampled_bars_equal_pandas(scenario: tuple[str, str, np.ndarray]) -> None:
    tz, tf, rows = scenario
    with tempfile.TemporaryDirectory() as root, engine.open(root, timezone=tz) as db:
        db.write("X/1Min/OHLCV", rows)
        got = db.resample("X/1Min/OHLCV", tf)
        df = db.read("X/1Min/OHLCV").to_pandas()
    _check(got, _oracle(df, tf, AGG))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ZONES), st.sampled_from(["1Min", "5Min", "1H", "1D"]),
       st.lists(st.tuples(st.integers(0, 3 * 86_400 - 1), st.integers(0, 10**9 - 1),
                          st.integers(1, 50)), min_size=1, max_size=300),
       st.integers(0, 2**32 - 1))
def test_resampled_ticks_equal_pandas(tz: str, tf: str, picks: list[tuple[int, int, int]],
                                      seed: int) -> None:
    base = int(dt.datetime(2024, 3, 9, tzinfo=zoneinfo.ZoneInfo(tz)).timestamp())
    rows = np.zeros(len(picks), dtype=TICK)
    rows["Epoch"] = [base + s for s, _, _ in picks]
    rows["Nanoseconds"] = [ns for _, ns, _ in picks]
    rows["Size"] = [q for _, _, q in picks]
    rows["Price"] = np.random.default_rng(seed).integers(1000, 2000, len(picks)) / 8
    with tempfile.TemporaryDirectory() as root, engine.open(root, timezone=tz) as db:
        db.write("X/1Sec/TRADE", rows, variable=True)
        got = db.resample("X/1Sec/TRADE", tf)
        df = db.read("X/1Sec/TRADE").to_pandas()  # sorted by time, ties in write order
    agg = {"Price": ["first", "max", "min", "last"], "Size": "sum"}
    want = _oracle(df[["Price", "Size"]], tf, agg)  # type: ignore[arg-type]
    want.columns = ["Open", "High", "Low", "Close", "Volume"]
    _check(got, want)


def test_several_days_count_from_1970_in_the_database_zone(db: Any) -> None:
    # db fixture: UTC
    rows = np.zeros(4, dtype=BAR)
    rows["Epoch"] = [int(dt.datetime(2024, 1, d, 12, tzinfo=dt.UTC).timestamp())
                     for d in (1, 2, 3, 4)]
    rows["Open"] = rows["High"] = rows["Low"] = rows["Close"] = [1, 2, 3, 4]
    rows["Volume"] = 1
    db.write("X/1Min/OHLCV", rows)
    r = db.resample("X/1Min/OHLCV", "2D")
    # day 19723 (2024-01-01) is odd: its 2-day bar began on 2023-12-31
    assert [str(t)[:10] for t in r.to_pandas().index] == ["2023-12-31", "2024-01-02",
                                                          "2024-01-04"]
    assert r["Volume"].tolist() == [1, 2, 1]


def test_session_filter_keeps_regular_hours_only(tmp_path: Any) -> None:
    pytest.importorskip("exchange_calendars")
    ny = zoneinfo.ZoneInfo("America/New_York")
    start = int(dt.datetime(2024, 7, 3, 0, 0, tzinfo=ny).timestamp())  # early close at 13:00
    n = 3 * 1440  # 3 July (early close), 4 July (holiday), 5 July
    rows = np.zeros(n, dtype=BAR)
    rows["Epoch"] = start + 60 * np.arange(n)
    rows["Open"] = rows["High"] = rows["Low"] = rows["Close"] = np.arange(n)
    rows["Volume"] = 1
    with engine.open(str(tmp_path / "db"), timezone="America/New_York") as db:
        db.write("X/1Min/OHLCV", rows)
        got = db.resample("X/1Min/OHLCV", "1D", calendar="XNYS").to_pandas()
        df = db.read("X/1Min/OHLCV").to_pandas()
    local = df.index
    minutes = local.hour * 60 + local.minute
    close = np.where(local.day == 3, 13 * 60, 16 * 60)
    keep = (minutes >= 9 * 60 + 30) & (minutes < close) & (local.day != 4)
    want = _oracle(df[keep], "1D", AGG)
    assert got.index.equals(want.index)
    assert got["Volume"].tolist() == [210, 390]
    assert got["Open"].tolist() == want["Open"].tolist()
    assert got["Close"].tolist() == want["Close"].tolist()
