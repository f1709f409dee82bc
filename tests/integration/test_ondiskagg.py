"""ondiskagg end to end: destination bars on disk equal a from-scratch aggregation of the base
bucket after any sequence of writes; config errors, skips, ticks, rebuild."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.plugins import aggfuncs, ondiskagg, synth
from mkts.plugins.errors import ConfigError, PluginError

NY = zoneinfo.ZoneInfo("America/New_York")
DESTS = ["5Min", "15Min", "1H", "1D"]
BAR = synth.BAR_DTYPE


def ep(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: dt.tzinfo = dt.UTC) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp())


def bars_at(epochs: Any, seed: int = 0, dtype: np.dtype = BAR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    epochs = np.asarray(epochs, dtype=np.int64)
    out = np.zeros(len(epochs), dtype=dtype)
    out["Epoch"] = epochs
    mid = rng.normal(100, 5, len(epochs))
    out["Open"] = mid
    out["High"] = mid + rng.random(len(epochs))
    out["Low"] = mid - rng.random(len(epochs))
    out["Close"] = mid + rng.normal(0, 0.3, len(epochs))
    out["Volume"] = rng.integers(1, 10_000, len(epochs))
    return out


def open_db(root: str, dests: list[str] = DESTS, *, on: str = "*/1Min/OHLCV",
            tz: str = "UTC", filter: str | None = None) -> tuple[engine.Database, Any]:
    cfg: dict[str, Any] = {"destinations": dests}
    if filter:
        cfg["filter"] = filter
    trig = ondiskagg.NewTrigger(cfg)
    return engine.open(root, timezone=tz, sync="off", triggers=[(on, trig)]), trig


def assert_matches_scratch(db: engine.Database, base: str, dests: list[str],
                           session: Any = None, out_attr: str | None = None) -> None:
    """Every destination bucket equals aggfuncs.aggregate over the whole base bucket."""
    db.flush()
    r = db.read(base)
    cols = {c: np.asarray(r[c]) for c in r.columns}
    sym, _, attr = base.split("/")
    for d in dests:
        tf = aggfuncs.as_timeframe(d)
        exp = aggfuncs.aggregate(cols, db.calendar, d, session=session if tf.is_daily else None)
        key = f"{sym}/{d}/{out_attr or attr}"
        got = db.read(key) if key in db.list_keys() else None
        if not len(exp["Epoch"]):
            assert got is None or len(got) == 0, key
            continue
        assert got is not None, f"{key} was not written"
        for c, v in exp.items():
            np.testing.assert_array_equal(np.asarray(got[c]), v, err_msg=f"{key} {c}")


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "destinations: is required (a list of timeframes such as [5Min, 15Min, 1H, 1D])"),
        ({"destinations": []}, "destinations: [] must not be empty (a list of timeframes"),
        ({"destinations": "5Min"}, "destinations: must be a list, not str '5Min'"),
        ({"destinations": ["5Min", "1M"]},
         "destinations[1]: '1M' is not a timeframe: timeframe '1M' is not valid"),
        ({"destinations": ["7Min"]}, "destinations[0]: '7Min' is not a timeframe"),
        ({"destinations": ["5Min", 5]}, "destinations[1]: must be text, not int 5"),
        ({"destinations": ["5Min"], "filter": "moon"},
         "filter: 'moon' is not an exchange calendar; use a name such as XNAS"),
        ({"destinations": ["5Min"], "destination": ["1H"]},
         "destination: unknown key; did you mean destinations?"),
        ({"destinations": ["5Min"], "batch_ms": -1},
         "batch_ms: -1 must be from 0 to 1000 (milliseconds a burst of writes"),
        ({"destinations": ["5Min"], "batch_ms": "2"}, "batch_ms: must be a number, not str '2'"),
        ({"destinations": ["5Min"], "batch_ms": True},
         "batch_ms: must be a number, not bool True"),
        ({"destinations": ["5Min"], "batch_ms": 5000}, "batch_ms: 5000 must be from 0 to 1000"),
    ],
)
def test_bad_config_is_refused_at_construction_naming_the_key(config: dict[str, Any],
                                                              message: str) -> None:
    with pytest.raises(PluginError) as exc:
        ondiskagg.NewTrigger(config)
    assert str(exc.value).startswith("ondiskagg config: ")
    assert message in str(exc.value)
    assert isinstance(exc.value, ConfigError)  # the same kind of error as mkts.yml's


def test_batch_ms_sets_the_gathering_window() -> None:
    assert ondiskagg.NewTrigger({"destinations": ["5Min"]}).coalesce_window_s == 0.010
    assert ondiskagg.NewTrigger({"destinations": ["5Min"], "batch_ms": 0}).coalesce_window_s == 0
    assert ondiskagg.NewTrigger({"destinations": ["5Min"],
                                 "batch_ms": 12.5}).coalesce_window_s == 0.0125


def test_destinations_are_deduplicated_and_ordered() -> None:
    t = ondiskagg.NewTrigger({"destinations": ["1D", "5Min", "1D", "1H"], "filter": "nasdaq"})
    assert [d.name for d in t.destinations] == ["5Min", "1H", "1D"]
    assert t.filter_name == "XNAS"


def test_marketstore_fire_bars_with_nasdaq_filter(tmp_path: Any) -> None:
    # aggtrigger_test.go TestFireBars: 10 OHLC bars on 2017-12-14/15 New York; 5Min and 1D.
    db, _ = open_db(str(tmp_path / "db"), ["5Min", "1D"], on="*/1Min/OHLC",
                    tz="America/New_York", filter="nasdaq")
    with db:
        t = [ep(2017, 12, d, 10, m, NY) for d in (14, 15) for m in (3, 4, 5, 6, 10)]
        rows = bars_at(t)[["Epoch", "Open", "High", "Low", "Close"]]
        db.write("TEST/1Min/OHLC", rows)
        db.flush()
        assert len(db.read("TEST/5Min/OHLC")) == 6
        assert db.read("TEST/1D/OHLC")["Epoch"].tolist() == [ep(2017, 12, 14, tz=NY),
                                                             ep(2017, 12, 15, tz=NY)]


# -- equal to from scratch -----------------------------------------------------------------


def test_jan_1_daily_bar_is_written(tmp_path: Any) -> None:
    db, _ = open_db(str(tmp_path / "db"), tz="America/New_York")
    with db:
        t = [ep(2023, 12, 31, 23, 59, NY), ep(2024, 1, 1, 0, 0, NY), ep(2024, 1, 1, 12, 0, NY)]
        db.write("BTC/1Min/OHLCV", bars_at(t))
        db.flush()
        days = db.read("BTC/1D/OHLCV")
        assert days["Epoch"].tolist() == [ep(2023, 12, 31, tz=NY), ep(2024, 1, 1, tz=NY)]
        assert days["Volume"].tolist()[1] == int(bars_at(t)["Volume"][1:].sum())
        assert_matches_scratch(db, "BTC/1Min/OHLCV", DESTS)


def test_out_of_order_backfill_and_overwrite_match_scratch(tmp_path: Any) -> None:
    db, _ = open_db(str(tmp_path / "db"), tz="America/New_York")
    with db:
        minutes = ep(2024, 3, 8, tz=NY) + 60 * np.arange(4 * 1440)  # across the DST change
        rng = np.random.default_rng(1)
        chunks = np.array_split(rng.permutation(minutes), 7)
        for i, c in enumerate(chunks):
            db.write("X/1Min/OHLCV", bars_at(c, seed=i))
        db.write("X/1Min/OHLCV", bars_at(minutes[100:400], seed=99))  # overwrite
        db.write("X/1Min/OHLCV", bars_at(minutes[:10] - 86_400 * 30, seed=7))  # back-fill
        assert_matches_scratch(db, "X/1Min/OHLCV", DESTS)


@pytest.mark.parametrize("day", [(2024, 11, 3), (2024, 3, 10)])
def test_daily_bar_on_a_dst_day_covers_the_whole_local_day(tmp_path: Any,
                                                          day: tuple[int, int, int]) -> None:
    db, _ = open_db(str(tmp_path / "db"), ["1D"], tz="America/New_York")
    with db:
        db.write("D/1Min/OHLCV", bars_at([ep(*day, 23, 30, NY), ep(*day, 0, 0, NY)], seed=1))
        db.write("D/1Min/OHLCV", bars_at([ep(*day, 10, 0, NY)], seed=2))  # touches the day only
        db.flush()
        assert db.read("D/1D/OHLCV")["Volume"].tolist() == [
            int(bars_at([0, 0], seed=1)["Volume"].sum() + bars_at([0], seed=2)["Volume"].sum())]
        assert_matches_scratch(db, "D/1Min/OHLCV", ["1D"])


def test_writes_spanning_years_match_scratch(tmp_path: Any) -> None:
    db, _ = open_db(str(tmp_path / "db"), ["5Min", "4H", "1D"], tz="Asia/Kolkata")
    with db:
        start = ep(2023, 12, 31, 15, 0)  # 20:30 in Kolkata
        db.write("Y/1Min/OHLCV", bars_at(start + 60 * np.arange(0, 600, 3)))
        db.write("Y/1Min/OHLCV", bars_at(start + 60 * np.arange(1, 600, 7), seed=2))
        db.flush()
        assert sorted(db.info("Y/1D/OHLCV")["years"]) == [2023, 2024]
        assert_matches_scratch(db, "Y/1Min/OHLCV", ["5Min", "4H", "1D"])


def test_daily_filter_counts_session_rows_only(tmp_path: Any) -> None:
    db, _ = open_db(str(tmp_path / "db"), ["5Min", "1D"], tz="UTC", filter="XNYS")
    with db:
        # 2018-07-02 .. 07-06: a normal day, an early close, the 4 July holiday, two more days
        t = ep(2018, 7, 2) + 60 * np.arange(5 * 1440)
        db.write("Z/1Min/OHLCV", bars_at(t))
        session = aggfuncs.session_filter("XNYS")
        assert_matches_scratch(db, "Z/1Min/OHLCV", ["5Min", "1D"], session=session)
        days = db.read("Z/1D/OHLCV")
        assert ep(2018, 7, 4) not in days["Epoch"].tolist()  # holiday: no bar
        assert len(db.read("Z/5Min/OHLCV")) == 5 * 288  # intraday bars are not filtered
        vol = bars_at(t)["Volume"]
        july3 = session.mask(t) & (t >= ep(2018, 7, 3)) & (t < ep(2018, 7, 4))
        assert july3.sum() == 210  # 09:30-13:00 New York
        assert days["Volume"][days["Epoch"] == ep(2018, 7, 3)].tolist() == [int(vol[july3].sum())]


def test_float_volume_and_unsigned_volume_are_summed_wide(tmp_path: Any) -> None:
    dtype = np.dtype([("Epoch", "<i8"), ("Open", "<f4"), ("High", "<f4"), ("Low", "<f4"),
                      ("Close", "<f4"), ("Volume", "<f4")])
    udtype = np.dtype([(n, "<u4" if n == "Volume" else t) for n, t in dtype.descr])
    db, _ = open_db(str(tmp_path / "db"), ["1D"])
    with db:
        t = ep(2024, 1, 2, 10) + 60 * np.arange(3)
        b = np.zeros(3, dtype=dtype)
        b["Epoch"], b["Volume"] = t, 2.0**31
        db.write("F/1Min/OHLCV", b)
        u = np.zeros(3, dtype=udtype)
        u["Epoch"], u["Volume"] = t, 2**32 - 1
        db.write("U/1Min/OHLCV", u)
        db.flush()
        f = db.read("F/1D/OHLCV")
        assert f["Volume"].dtype == np.float64 and f["Volume"].tolist() == [3 * 2.0**31]
        g = db.read("U/1D/OHLCV")
        assert g["Volume"].dtype == np.uint64 and g["Volume"].tolist() == [3 * (2**32 - 1)]


# -- what is skipped -----------------------------------------------------------------------


def test_base_without_ohlc_is_a_logged_skip_not_an_error(tmp_path: Any, caplog: Any) -> None:
    db, trig = open_db(str(tmp_path / "db"), on="*/1Min/*")
    with db, caplog.at_level(logging.WARNING, logger="mkts.plugins.ondiskagg"):
        quotes = {"Epoch": np.array([ep(2024, 1, 2, 10)]), "Bid": np.array([1.0]),
                  "Ask": np.array([1.1])}
        db.write("AAPL/1Min/QUOTE", quotes)
        db.flush()  # two fires (writes queued together would share one: coalesce)
        db.write("AAPL/1Min/QUOTE", quotes)
        db.flush()
        assert db.list_keys() == ["AAPL/1Min/QUOTE"]
        assert db.stats()["trigger_errors"] == 0
        assert trig.stats()["skipped"] == 2
        warnings = [r for r in caplog.records if "AAPL/1Min/QUOTE" in r.getMessage()]
        assert len(warnings) == 1 and "no Open/High/Low/Close" in warnings[0].getMessage()


def test_destination_not_fitting_the_base_is_logged_and_skipped(tmp_path: Any,
                                                                caplog: Any) -> None:
    db, _ = open_db(str(tmp_path / "db"), ["1Min", "15Min", "1H"], on="*/5Min/OHLCV")
    with db, caplog.at_level(logging.ERROR, logger="mkts.plugins.ondiskagg"):
        db.write("A/5Min/OHLCV", bars_at(ep(2024, 1, 2) + 300 * np.arange(30)))
        db.flush()
        assert db.list_keys() == ["A/15Min/OHLCV", "A/1H/OHLCV", "A/5Min/OHLCV"]
        assert any("['1Min'] do not fit base timeframe 5Min" in r.getMessage()
                   for r in caplog.records)
        assert_matches_scratch(db, "A/5Min/OHLCV", ["15Min", "1H"])


def test_own_destinations_are_not_aggregated_again(tmp_path: Any) -> None:
    db, trig = open_db(str(tmp_path / "db"), ["5Min", "1H"], on="*/*/OHLCV")
    with db:
        db.write("A/1Min/OHLCV", bars_at(ep(2024, 1, 2) + 60 * np.arange(120)))
        db.flush()
        assert trig.stats()["fires"] == 1  # the 5Min and 1H writes did not recompute 1H
        assert_matches_scratch(db, "A/1Min/OHLCV", ["5Min", "1H"])


# -- ticks ---------------------------------------------------------------------------------


def test_ticks_aggregate_into_ohlcv_bars(tmp_path: Any) -> None:
    db, _ = open_db(str(tmp_path / "db"), ["1Min", "5Min", "1D"], on="*/1Sec/TRADE",
                    tz="America/New_York")
    with db:
        ticks = synth.ticks("AAPL", dt.date(2024, 3, 15), 3000)
        order = np.random.default_rng(5).permutation(3000)
        for part in np.array_split(order, 4):
            db.write("AAPL/1Sec/TRADE", ticks[np.sort(part)], variable=True)
        assert_matches_scratch(db, "AAPL/1Sec/TRADE", ["1Min", "5Min", "1D"], out_attr="OHLCV")
        day = db.read("AAPL/1D/OHLCV")
        assert day["Volume"].tolist() == [int(ticks["Size"].sum())]
        assert day["Open"].tolist() == [ticks["Price"][0]]
        assert day["Close"].tolist() == [ticks["Price"][-1]]


def test_single_tick_writes_in_any_order_match_scratch(tmp_path: Any) -> None:
    dests = ["1Min", "5Min", "1H", "1D"]
    db, _ = open_db(str(tmp_path / "db"), dests, on="*/1Sec/TRADE", tz="America/New_York")
    with db:
        ticks = synth.ticks("AAPL", dt.date(2024, 3, 15), 600)
        later = np.random.default_rng(8).permutation(600)[:30]
        db.write("AAPL/1Sec/TRADE", ticks[np.setdiff1d(np.arange(600), later)], variable=True)
        for i in later:
            db.write("AAPL/1Sec/TRADE", ticks[i:i + 1], variable=True)  # appends, back-fills
        db.write("AAPL/1Sec/TRADE", ticks[5:6], variable=True)  # the same tick again
        assert_matches_scratch(db, "AAPL/1Sec/TRADE", dests, out_attr="OHLCV")
        assert db.read("AAPL/1D/OHLCV")["Volume"].tolist() == [
            int(ticks["Size"].sum() + ticks["Size"][5])]


def test_ticks_in_the_last_second_of_a_bar_count(tmp_path: Any) -> None:
    db, _ = open_db(str(tmp_path / "db"), ["1Min"], on="*/1Sec/TRADE")
    with db:
        t0 = ep(2024, 1, 2, 15, 0)
        ticks = {"Epoch": [t0, t0 + 59, t0 + 59], "Nanoseconds": [0, 0, 999_999_999],
                 "Price": [1.0, 2.0, 3.0], "Size": [1, 2, 4]}
        db.write("T/1Sec/TRADE", ticks, variable=True)
        db.flush()
        bar = db.read("T/1Min/OHLCV")
        assert bar["Close"].tolist() == [3.0] and bar["Volume"].tolist() == [7]


# -- cost ----------------------------------------------------------------------------------


class _CountingDb:
    """Forwards to the database and counts the base rows read."""

    def __init__(self, db: engine.Database) -> None:
        self._db = db
        self.rows_read = 0

    def read(self, *a: Any, **kw: Any) -> Any:
        r = self._db.read(*a, **kw)
        self.rows_read += len(r)
        return r

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_work_per_write_is_proportional_to_the_touched_bars(tmp_path: Any) -> None:
    db, trig = open_db(str(tmp_path / "db"))
    with db:
        year = ep(2024, 1, 1) + 60 * np.arange(0, 366 * 1440, 7)  # every 7th minute of 2024
        db.write("B/1Min/OHLCV", bars_at(year))
        db.flush()
        counting = _CountingDb(db)
        trig.start(counting)
        db.write("B/1Min/OHLCV", bars_at([ep(2024, 6, 5, 12, 3)], seed=3))
        db.flush()
        assert 0 < counting.rows_read <= 1440 // 7 + 2  # one day's rows and the new one
        assert_matches_scratch(db, "B/1Min/OHLCV", DESTS)


def test_a_burst_of_1_row_writes_is_recomputed_in_few_fires(tmp_path: Any) -> None:
    """Writes queued while the trigger gathers (batch_ms) share one recompute, and the
    result is still what aggregating from scratch gives: appends, back-fills, overwrites."""
    trig = ondiskagg.NewTrigger({"destinations": DESTS, "batch_ms": 1000})
    with engine.open(str(tmp_path / "db"), sync="off", triggers=[("*/1Min/OHLCV", trig)]) as db:
        minutes = ep(2024, 12, 31, 22) + 60 * np.arange(240)  # over the year end
        order = np.random.default_rng(3).permutation(240)
        rows = bars_at(minutes, seed=4)
        for i in [*order, *order[:20]]:  # every minute, then 20 overwrites
            one = rows[i : i + 1].copy()
            one["Close"] += 1
            db.write("A/1Min/OHLCV", one)
        assert_matches_scratch(db, "A/1Min/OHLCV", DESTS)  # flush() cuts the 1 s window
        assert 1 <= trig.stats()["fires"] <= 4  # 260 writes: one fire per year file touched


def test_trigger_and_writer_share_nothing_unsafe_under_sync_always(tmp_path: Any) -> None:
    trig = ondiskagg.NewTrigger({"destinations": DESTS})
    with engine.open(str(tmp_path / "db"), triggers=[("*/1Min/OHLCV", trig)]) as db:
        minutes = ep(2024, 3, 8, 14) + 60 * np.arange(150)
        rows = bars_at(minutes, seed=9)
        for i in range(150):
            db.write("A/1Min/OHLCV", rows[i : i + 1])
        assert_matches_scratch(db, "A/1Min/OHLCV", DESTS)
        assert trig.stats()["fires"] < 150


# -- rebuild -------------------------------------------------------------------------------


def test_rebuild_over_bars_and_ticks_reads_each_bucket_as_its_kind(tmp_path: Any) -> None:
    """One pattern matching a bar bucket and a tick bucket (which sorts last): each base
    is read and reduced as what it is."""
    with engine.open(str(tmp_path / "db"), sync="off") as db:
        db.write("A/1Min/OHLCV", bars_at(ep(2024, 1, 2) + 60 * np.arange(600)))
        ticks = synth.ticks("B", dt.date(2024, 1, 2), 500)
        db.write("B/1Sec/TRADE", ticks, variable=True)
        assert sorted(db.list_keys())[-1] == "B/1Sec/TRADE"
        n = ondiskagg.rebuild(db, "*/*/*", ["1H", "1D"], progress=False)
        assert_matches_scratch(db, "A/1Min/OHLCV", ["1H", "1D"])
        assert_matches_scratch(db, "B/1Sec/TRADE", ["1H", "1D"], out_attr="OHLCV")
        assert db.read("B/1D/OHLCV")["Volume"].tolist() == [int(ticks["Size"].sum())]
        assert n == len(db.read("A/1H/OHLCV")) + 1 + len(db.read("B/1H/OHLCV")) + 1


def test_rebuild_recomputes_from_scratch_and_drops_stale_bars(tmp_path: Any, capsys: Any) -> None:
    root = str(tmp_path / "db")
    with engine.open(root, sync="off") as db:  # no trigger: data arrives without aggregation
        for sym in ("A", "B"):
            db.write(f"{sym}/1Min/OHLCV", bars_at(ep(2018, 7, 2) + 60 * np.arange(3 * 1440)))
        db.write("A/1D/OHLCV", bars_at([ep(2018, 6, 1)]))  # stale: no base rows that day
        db.write("C/1Min/QUOTE", {"Epoch": [ep(2018, 7, 2)], "Bid": [1.0]})
        n = ondiskagg.rebuild(db, "*/1Min/*", ["15Min", "1D"], filter="XNYS", progress=True)
        assert "rebuild aggregates" in capsys.readouterr().err
        session = aggfuncs.session_filter("XNYS")
        for sym in ("A", "B"):
            assert_matches_scratch(db, f"{sym}/1Min/OHLCV", ["15Min", "1D"], session=session)
        assert ep(2018, 6, 1) not in db.read("A/1D/OHLCV")["Epoch"].tolist()
        assert n == 2 * (3 * 96 + 2)
        assert "C/15Min/QUOTE" not in db.list_keys()
