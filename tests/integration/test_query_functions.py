"""Query functions embedded: `db.read/db.query(functions=[...])` run MarketStore's call strings
after range, limit and projection, chained, per bucket; each bundled function's output; the
error texts (docs/plugins.md "Query functions", docs/server.md "Query functions")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine import FunctionError

KEY = "AAPL/1Min/OHLCV"
T0 = 1_704_153_600  # 2024-01-02 00:00 UTC
CANDLE = "candlecandler('1H',Open,High,Low,Close,Sum::Volume)"
TICK = [("Epoch", "i8"), ("Price", "f4"), ("Size", "i8"), ("Bid", "f8"), ("Ask", "f8"),
        ("Nanoseconds", "i4")]


def test_candlecandler_builds_hourly_bars(db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(150, start=T0))  # 02:30 is the last minute
    r = db.read(KEY, functions=[CANDLE])
    assert r.columns == ["Epoch", "Open", "High", "Low", "Close", "Volume_SUM"]
    assert r["Epoch"].tolist() == [T0, T0 + 3600, T0 + 7200]
    assert r["Open"].tolist() == [0, 60, 120] and r["Close"].tolist() == [59, 119, 149]
    assert r["High"].tolist() == [59, 119, 149] and r["Low"].tolist() == [0, 60, 120]
    assert r["Volume_SUM"].tolist() == [sum(range(60)), sum(range(60, 120)),
                                        sum(range(120, 150))]
    assert r["Volume_SUM"].dtype == np.float64


def test_names_are_case_insensitive_and_a_space_may_precede_the_parenthesis(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(5, start=T0))
    assert db.read(KEY, functions=["COUNT (Open)"])["Count"].tolist() == [5]


def test_the_limit_applies_to_stored_rows_before_the_functions(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(600, start=T0))
    r = db.read(KEY, limit=200, functions=["candlecandler('5Min',Open,High,Low,Close)"])
    assert len(r) == 40 and r["Epoch"][0] == T0 + 400 * 60


def test_functions_chain_each_on_the_previous_output(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(600, start=T0))
    r = db.read(KEY, functions=[CANDLE, "count(*)"])
    assert r.columns == ["Epoch", "Count"] and r["Count"].tolist() == [10]
    assert r["Epoch"].tolist() == [T0]  # the first input row's time, not the clock


def test_functions_see_only_the_projected_columns(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(5, start=T0))
    with pytest.raises(FunctionError, match="^unable to retrieve column named Volume$"):
        db.read(KEY, columns=["Open", "High", "Low", "Close"], functions=[CANDLE])


def test_min_max_avg_of_a_column(db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(10, start=T0, first=5.0))
    out = {f: db.read(KEY, functions=[f"{f}(Close)"]) for f in ("min", "max", "avg")}
    assert out["min"]["Min"].tolist() == [5.0] and out["max"]["Max"].tolist() == [14.0]
    assert out["avg"]["Avg"].tolist() == [9.5]
    assert {r.columns[1]: r[r.columns[1]].dtype.str for r in out.values()} == {
        "Min": "<f8", "Max": "<f8", "Avg": "<f8"}


def test_an_empty_range_gives_empty_candles_and_zero_counts(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(5, start=T0))
    empty = dict(start=T0 + 86_400, end=T0 + 2 * 86_400)
    assert len(db.read(KEY, **empty, functions=[CANDLE])) == 0
    assert db.read(KEY, **empty, functions=["count(*)"])["Count"].tolist() == [0]
    assert np.isnan(db.read(KEY, **empty, functions=["min(Close)"])["Min"][0])


def test_gap_with_a_timeframe_reports_longer_steps(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, np.concatenate([bars(3, start=T0), bars(2, start=T0 + 3600)]))
    r = db.read(KEY, functions=["gap('5Min')"])
    assert r.columns == ["Epoch", "End", "Length"]
    assert r.array.tolist() == [(T0 + 120, T0 + 3600, 3480)]


def test_gap_without_a_literal_uses_the_z_score(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, np.concatenate([bars(20, start=T0), bars(1, start=T0 + 86_400)]))
    r = db.read(KEY, functions=["gap()"])
    assert r["Epoch"].tolist() == [T0 + 19 * 60]


def test_tickcandler_averages_bound_prices_and_sums_volumes(db: Any) -> None:
    rows = np.zeros(4, dtype=TICK)
    rows["Epoch"] = [T0, T0 + 1, T0 + 1, T0 + 61]
    rows["Nanoseconds"] = [5, 9, 1, 0]  # the second and third are out of time order
    rows["Bid"], rows["Ask"] = [1, 2, 3, 4], [3, 4, 5, 6]
    rows["Size"] = [2**24 + 1, 1, 1, 7]
    rows["Price"] = [10, 11, 12, 13]
    db.write("T/1Sec/TRADE", rows, variable=True)
    r = db.read("T/1Sec/TRADE", functions=[
        "tickcandler('1Min', CandlePrice::Bid, CandlePrice::Ask, Sum::Size, Avg::Size)"])
    assert r.columns == ["Epoch", "Open", "High", "Low", "Close", "Size_SUM", "Size_AVG"]
    assert r["Epoch"].tolist() == [T0, T0 + 60]
    assert r["Open"].tolist() == [2.0, 5.0] and r["Close"].tolist() == [3.0, 5.0]
    assert r["High"].tolist() == [4.0, 5.0]
    assert r["Size_SUM"].tolist() == [2**24 + 3, 7]  # exact: float32 would lose the 1s
    r = db.read("T/1Sec/TRADE", functions=["tickcandler('1Min', Price, Size)"])
    assert r.columns == ["Epoch", "Open", "High", "Low", "Close", "Size_SUM"]


def test_query_runs_the_functions_per_bucket(db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write("A/1Min/OHLCV", bars(5, start=T0))
    db.write("B/1Min/OHLCV", bars(7, start=T0))
    out = db.query("A,B/1Min/OHLCV", functions=["count(*)"])
    assert {k: r["Count"].tolist() for k, r in out.items()} == {
        "A/1Min/OHLCV": [5], "B/1Min/OHLCV": [7]}


ACTIONS = [("Epoch", "i8"), ("TextNumber", "i8"), ("UpdateTextNumber", "i8"),
           ("DeleteTextNumber", "i8"), ("NotificationType", "u1"), ("Status", "u1"),
           ("UpdatedNotificationType", "u1"), ("SecurityType", "u1"),
           ("VoluntaryMandatoryCode", "u1"), ("RecordDate", "i8"), ("EffectiveDate", "i8"),
           ("ExpirationDate", "i8"), ("NewRate", "f8"), ("OldRate", "f8"), ("Rate", "f8"),
           ("Nanoseconds", "i4")]


def _action(epoch: int, text: int, kind: str, status: str, expires: int, rate: float,
            ref: int = 0) -> tuple[Any, ...]:
    return (epoch, text, ref if status == "U" else 0, ref if status == "D" else 0,
            ord(kind), ord(status), 0, 0, 0, 0, 0, expires, rate, 1.0, rate, 0)


def test_adjust_divides_prices_and_multiplies_volume_by_later_splits(db: Any) -> None:
    day = 86_400
    bars = np.zeros(3, dtype=[("Epoch", "i8"), ("Close", "f8"), ("Volume", "i8")])
    bars["Epoch"] = [T0, T0 + 10 * day, T0 + 20 * day]
    bars["Close"] = [400.0, 200.0, 100.0]
    bars["Volume"] = [10, 20, 40]
    db.write("AAPL/1D/OHLCV", bars)
    acts = np.array([
        _action(T0, 1, "7", "N", T0 + 5 * day, 2.0),   # 2:1 split between rows 0 and 1
        _action(T0, 2, "7", "N", T0 + 15 * day, 3.0),  # replaced below by a 2:1
        _action(T0 + 1, 3, "7", "U", T0 + 15 * day, 2.0, ref=2),
        _action(T0, 4, "/", "N", T0 + 15 * day, 1.5),  # a stock dividend
        _action(T0, 5, "7", "N", T0 + 15 * day, 9.0),  # deleted below
        _action(T0 + 2, 6, "7", "D", 0, 0.0, ref=5),
    ], dtype=ACTIONS)
    db.write("AAPL/1D/ACTIONS", acts, variable=True)
    r = db.read("AAPL/1D/OHLCV", functions=["adjust('split')"])
    assert r["Close"].tolist() == [100.0, 100.0, 100.0]
    assert r["Volume"].tolist() == [40, 40, 40]
    both = db.read("AAPL/1D/OHLCV", functions=["adjust()"])
    assert both["Close"].tolist() == [400 / 6, 200 / 3, 100.0]
    assert db.read("AAPL/1D/OHLCV",
                   functions=["adjust('nothing')"])["Close"].tolist() == [400.0, 200.0, 100.0]


def test_adjust_without_an_actions_bucket_changes_nothing(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(3, start=T0))
    assert np.array_equal(db.read(KEY, functions=["adjust()"]).array, db.read(KEY).array)


@pytest.mark.parametrize(("call", "message"), [
    ("nope(Open)", 'no function in the UDA Registry named "nope"'),
    ("count", "unable to parse function call count"),
    ("candlecandler(Open,High,Low,Close)",
     "not enough init arguments for candlecandler, need 1 have 0"),
    ("candlecandler('1H','2H',Open,High,Low,Close)",
     "init aggfunc during query: argument passed to Init() is not a string"),
    ("tickcandler('1Q',Close)",
     'init aggfunc during query: no suitable timeframe provided: timeframe not found in "1Q"'),
    ("tickcandler('1H',Price)", "unable to retrieve column named Price"),
    ("gap(Open)", "Argument mapping error for gap: extra args used: have [Open], "
                  "required [], optional []"),
    ('tickcandler("1Min", Close)', "literals take single quotes"),
])
def test_bad_calls_get_marketstores_error_texts(db: Any, bars: Callable[..., np.ndarray],
                                                call: str, message: str) -> None:
    db.write(KEY, bars(3, start=T0))
    with pytest.raises(FunctionError) as info:
        db.read(KEY, functions=[call])
    assert message in str(info.value)
    assert isinstance(info.value, engine.InvalidInputError)


def test_a_bad_call_fails_before_reading(db: Any) -> None:
    with pytest.raises(FunctionError):
        db.read("NOPE/1Min/OHLCV", functions=["nope()"])


BUNDLED = ["tickcandler", "candlecandler", "count", "min", "max", "avg", "gap", "adjust",
           "session", "resample"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_functions_are_entry_points_found_in_any_case(name: str) -> None:
    import importlib.metadata

    from mkts.engine.functions import GROUP, find_function

    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=GROUP)}
    assert eps[name] == f"mkts.plugins.functions.{name}"
    assert find_function(name.upper()).name == name


def test_a_function_whose_entry_point_cannot_load_is_named(tmp_path: Any,
                                                             monkeypatch: Any) -> None:
    dist = tmp_path / "broken_fn-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-fn\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mkts.functions]\nbrokenfn = no_such_module_fn\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(FunctionError, match=r"function 'brokenfn': entry point "
                       r"'no_such_module_fn' in group 'mkts.functions' could not be loaded"):
        engine.functions.prepare(["brokenfn()"])


def test_the_rpc_query_handler_applies_the_functions(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    """The transport-free DataService.Query (what /rpc, and gRPC, call) runs the chain."""
    from mkts.rpc import MAX_QUERY_FUNCTIONS, DataService
    from mkts.wire import WireError

    db.write(KEY, bars(90, start=T0))
    service = DataService(db, "test")
    req = {"destination": KEY, "functions": [CANDLE]}
    ds = service.query({"requests": [req]})["responses"][0]["result"]
    assert ds["names"] == ["Epoch", "Open", "High", "Low", "Close", "Volume_SUM"]
    assert ds["length"] == 2
    with pytest.raises(WireError, match="functions must be a list"):
        service.query({"requests": [{**req, "functions": CANDLE}]})
    with pytest.raises(WireError, match=f"at most {MAX_QUERY_FUNCTIONS}"):
        service.query({"requests": [{**req, "functions": ["count(*)"] * 101}]})


def test_resample_reads_only_the_range(db: Any, bars: Callable[..., np.ndarray]) -> None:
    db.write(KEY, bars(180, start=T0))
    r = db.resample(KEY, "1H", start=T0 + 3600, end=T0 + 3600 + 29 * 60)
    assert r["Epoch"].tolist() == [T0 + 3600] and r["Volume"].tolist() == [sum(range(60, 90))]
    assert r["Open"].dtype == np.float32  # prices keep the bucket's type


def test_resample_of_a_bucket_without_prices_names_the_fix(db: Any) -> None:
    rows = np.zeros(2, dtype=[("Epoch", "i8"), ("Bid", "f8")])
    rows["Epoch"] = [T0, T0 + 60]
    db.write("Q/1Min/QUOTE", rows)
    with pytest.raises(FunctionError, match="column 'Price' .*pass price=.*it has Bid"):
        db.resample("Q/1Min/QUOTE", "1H")
    assert db.resample("Q/1Min/QUOTE", "1H", price="Bid")["Close"].tolist() == [0.0]


def test_a_function_output_without_epoch_first_is_refused(
        db: Any, bars: Callable[..., np.ndarray]) -> None:
    from mkts.engine.functions import FunctionContext, apply_functions

    class NoEpoch:
        def apply(self, columns: Any, ctx: Any) -> dict[str, np.ndarray]:
            return {"Close": np.asarray(columns["Close"])}

    db.write(KEY, bars(3, start=T0))
    ctx = FunctionContext(KEY, db.calendar, lambda key: None)
    with pytest.raises(FunctionError, match=r"returned columns \['Close'\]; the first must be "
                       "Epoch"):
        apply_functions([NoEpoch()], db.read(KEY), ctx)
