"""ondiskagg against pandas `resample` (left-closed, left-labelled, in the database time zone):
after any sequence of 1Min writes — gaps, out of order, rewritten minutes, DST changes, year
ends, an exchange-session filter — every destination bucket equals the oracle."""

from __future__ import annotations

import datetime as dt
import tempfile
import warnings
import zoneinfo
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mkts import engine
from mkts.plugins import ondiskagg, synth

DESTS = ["5Min", "15Min", "1H", "4H", "1D"]
NY = zoneinfo.ZoneInfo("America/New_York")
ANCHORS = {  # local times around which the minutes are drawn
    "spring_forward": dt.datetime(2024, 3, 10, 2, 0, tzinfo=NY),
    "fall_back": dt.datetime(2024, 11, 3, 1, 30, tzinfo=NY),
    "year_end": dt.datetime(2023, 12, 31, 23, 0, tzinfo=NY),
    "early_close_and_holiday": dt.datetime(2024, 7, 3, 12, 0, tzinfo=NY),
    "ordinary": dt.datetime(2024, 6, 12, 12, 0, tzinfo=NY),
}
SPAN = 3 * 1440  # minutes either side of the anchor


def _session_minutes() -> pd.DatetimeIndex:
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cal = xcals.get_calendar("XNYS", start="2023-12-01", end="2025-01-31")
        # Must cover every minute a scenario can draw: the latest anchor (3 November) plus
        # SPAN plus the longest run (900 steps of 61 minutes) reaches mid-December 2024.
        return cal.minutes_in_range(pd.Timestamp("2023-12-20", tz="UTC"),
                                    pd.Timestamp("2025-01-01", tz="UTC"))


SESSION = _session_minutes()


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    tz = draw(st.sampled_from(["America/New_York", "UTC"]))
    anchor = int(ANCHORS[draw(st.sampled_from(sorted(ANCHORS)))].timestamp()) // 60 * 60
    writes: list[tuple[np.ndarray, int]] = []
    for _ in range(draw(st.integers(1, 6))):
        how = draw(st.sampled_from(["run", "scatter", "repeat"] if writes else ["run", "scatter"]))
        if how == "run":
            start = draw(st.integers(-SPAN, SPAN))
            length = draw(st.integers(1, 900))
            step = draw(st.sampled_from([1, 1, 2, 7, 61]))
            offsets = np.arange(start, start + length * step, step)
        elif how == "scatter":
            offsets = np.array(draw(st.lists(st.integers(-SPAN, SPAN), min_size=1, max_size=40)))
        else:  # rewrite the minutes of an earlier write (shuffled) with new values
            earlier = writes[draw(st.integers(0, len(writes) - 1))][0]
            offsets = (earlier - anchor) // 60
            offsets = offsets[np.random.default_rng(len(writes)).permutation(len(offsets))]
        writes.append((anchor + 60 * offsets.astype(np.int64), draw(st.integers(0, 2**16))))
    return {"tz": tz, "writes": writes, "filter": draw(st.sampled_from([None, "XNYS"]))}


def _rows(epochs: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(len(epochs), dtype=synth.BAR_DTYPE)
    out["Epoch"] = epochs
    mid = rng.normal(100, 3, len(epochs))
    out["Open"], out["Close"] = mid, mid + rng.normal(0, 0.5, len(epochs))
    out["High"], out["Low"] = mid + 1 + rng.random(len(epochs)), mid - 1 - rng.random(len(epochs))
    out["Volume"] = rng.integers(0, 1_000_000, len(epochs))
    return out


def _model(writes: list[tuple[np.ndarray, int]]) -> pd.DataFrame:
    """What the base bucket holds: last write of each minute wins."""
    rows: dict[int, tuple[Any, ...]] = {}
    for epochs, seed in writes:
        for r in _rows(epochs, seed).tolist():
            rows[r[0]] = r
    arr = np.array(sorted(rows.values()), dtype=synth.BAR_DTYPE)
    df = pd.DataFrame({c: arr[c] for c in ("Open", "High", "Low", "Close", "Volume")})
    df.index = pd.to_datetime(arr["Epoch"], unit="s", utc=True)
    return df


def _oracle(df: pd.DataFrame, tz: str, dest: str, session_only: bool) -> pd.DataFrame:
    local = df.tz_convert(tz)
    if dest == "1D":
        if session_only:
            local = local[df.index.isin(SESSION)]
        groups = [local.resample("1D")]
    else:
        # fixed-length bins counted from local midnight of 1 January of each local year
        seconds = pd.Timedelta(dest.replace("Min", "min").replace("H", "h")).total_seconds()
        groups = [part.resample(f"{int(seconds)}s", origin=pd.Timestamp(year, 1, 1, tz=tz))
                  for year, part in local.groupby(local.index.year)]
    out = []
    for g in groups:
        agg = g.agg({"Open": "first", "High": "max", "Low": "min", "Close": "last",
                     "Volume": "sum"})
        out.append(agg[g["Open"].count() > 0])
    return pd.concat(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_on_disk_aggregates_equal_pandas_resample(scenario: dict[str, Any]) -> None:
    _check(scenario["tz"], scenario["writes"], scenario["filter"], DESTS)


# Zones whose intraday grid is not aligned to their days (+05:45), or whose DST shift is
# half an hour: a 1H bar may cross local midnight, so one minute's bars are not nested.
SMALL_ZONES = ["America/New_York", "UTC", "Asia/Kathmandu", "Australia/Lord_Howe"]
LORD_HOWE = zoneinfo.ZoneInfo("Australia/Lord_Howe")
SMALL_ANCHORS = [int(a.timestamp()) // 60 * 60 for a in (
    *ANCHORS.values(),
    dt.datetime(2024, 4, 7, 1, 45, tzinfo=LORD_HOWE),  # clocks go back 30 minutes at 02:00
    dt.datetime(2024, 10, 6, 2, 15, tzinfo=LORD_HOWE),  # and forward at 02:00
)]


@st.composite
def small_writes(draw: Any) -> dict[str, Any]:
    """A history, then single-row (or few-row) writes: appends, back-fills, overwrites."""
    anchor = draw(st.sampled_from(SMALL_ANCHORS))
    span = 2 * 1440
    start = draw(st.integers(-span, span))
    history = anchor + 60 * np.arange(start, start + draw(st.integers(0, 600)), dtype=np.int64)
    writes: list[tuple[np.ndarray, int]] = [(history, 1)] if len(history) else []
    for i in range(draw(st.integers(1, 25))):
        mins = draw(st.lists(st.integers(-span, span), min_size=1, max_size=3))
        writes.append((anchor + 60 * np.array(mins, dtype=np.int64), 100 + i))
    return {"tz": draw(st.sampled_from(SMALL_ZONES)), "writes": writes,
            "filter": draw(st.sampled_from([None, "XNYS"]))}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_writes())
def test_single_row_writes_in_unaligned_zones_equal_pandas_resample(
        scenario: dict[str, Any]) -> None:
    _check(scenario["tz"], scenario["writes"], scenario["filter"], DESTS)


def _check(tz: str, writes: list[tuple[np.ndarray, int]], flt: str | None,
           dests: list[str]) -> None:
    cfg: dict[str, Any] = {"destinations": dests}
    if flt:
        cfg["filter"] = flt
    with tempfile.TemporaryDirectory() as tmp, \
            engine.open(f"{tmp}/db", timezone=tz, sync="off",
                        triggers=[("*/1Min/OHLCV", ondiskagg.NewTrigger(cfg))]) as db:
        for epochs, seed in writes:
            db.write("SYM/1Min/OHLCV", _rows(epochs, seed))
        assert db.flush(timeout=30)
        model = _model(writes)
        keys = db.list_keys()
        for dest in dests:
            exp = _oracle(model, tz, dest, session_only=bool(flt))
            key = f"SYM/{dest}/OHLCV"
            if key not in keys:
                assert exp.empty, f"{key} missing, expected {len(exp)} bars"
                continue
            got = db.read(key)
            epochs = (exp.index.tz_convert("UTC").as_unit("s").asi8).tolist()
            assert got["Epoch"].tolist() == epochs, key
            for c in ("Open", "High", "Low", "Close"):
                np.testing.assert_array_equal(got[c], exp[c].to_numpy(np.float32), err_msg=key)
            assert got["Volume"].tolist() == exp["Volume"].astype(np.int64).tolist(), key
