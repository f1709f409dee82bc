"""Every query function through the real pymarketstore client against a real `mkts start`
(`Params(..., functions=[...])`), and their errors as the client shows them; over JSON-RPC,
and over gRPC too where the server tier provides it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

try:  # both transports where the server speaks gRPC (tests/server/transports.py)
    from server.transports import TRANSPORTS
except ImportError:  # a tree without gRPC: JSON-RPC only
    TRANSPORTS = ("jsonrpc",)

pymkts = pytest.importorskip("pymarketstore")


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)

T0 = 1_704_153_600  # 2024-01-02 00:00 UTC
BAR = [("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"), ("Close", "f4"),
       ("Volume", "i8")]
TICK = [("Epoch", "i8"), ("Price", "f8"), ("Size", "i8"), ("Nanoseconds", "i4")]
ACTIONS = [("Epoch", "i8"), ("TextNumber", "i8"), ("UpdateTextNumber", "i8"),
           ("DeleteTextNumber", "i8"), ("NotificationType", "u1"), ("Status", "u1"),
           ("ExpirationDate", "i8"), ("Rate", "f8"), ("Nanoseconds", "i4")]


def _bars(n: int, start: int = T0) -> np.ndarray:
    a = np.zeros(n, dtype=BAR)
    a["Epoch"] = start + 60 * np.arange(n)
    for c in ("Open", "High", "Low", "Close"):
        a[c] = np.arange(n)
    a["Volume"] = 2**24 + np.arange(n)  # float32 sums would round these
    return a


def _query(client: Any, symbol: str, functions: list[str], tf: str = "1Min",
           attr: str = "OHLCV", **kw: Any) -> np.ndarray:
    reply = client.query(pymkts.Params(symbol, tf, attr, functions=functions, **kw))
    return np.asarray(reply.first().array)


@pytest.fixture(scope="module")
def loaded(client: Any) -> Any:
    client.write(_bars(150), "FN/1Min/OHLCV")
    client.write(_bars(150), "FN2/1Min/OHLCV")
    ticks = np.zeros(3, dtype=TICK)
    ticks["Epoch"] = [T0, T0 + 30, T0 + 61]
    ticks["Nanoseconds"] = [0, 500, 0]
    ticks["Price"] = [10.0, 12.0, 11.0]
    ticks["Size"] = [1, 2, 3]
    client.write(ticks, "FNT/1Sec/TRADE", isvariablelength=True)
    return client


def test_candlecandler_over_the_wire(loaded: Any) -> None:
    a = _query(loaded, "FN", ["candlecandler('1H',Open,High,Low,Close,Sum::Volume)"])
    assert a.dtype.names == ("Epoch", "Open", "High", "Low", "Close", "Volume_SUM")
    assert a["Epoch"].tolist() == [T0, T0 + 3600, T0 + 7200]
    assert a["Close"].tolist() == [59, 119, 149]
    assert a["Volume_SUM"].tolist() == [60 * 2**24 + sum(range(60)),
                                        60 * 2**24 + sum(range(60, 120)),
                                        30 * 2**24 + sum(range(120, 150))]


def test_candles_of_several_symbols_are_keyed_per_symbol(loaded: Any) -> None:
    reply = loaded.query(pymkts.Params(["FN", "FN2"], "1Min", "OHLCV",
                                       functions=["candlecandler('1H',Open,High,Low,Close)"]))
    assert sorted(reply.keys()) == ["FN/1Min/OHLCV", "FN2/1Min/OHLCV"]
    assert all(len(reply.by_symbols()[s].array) == 3 for s in ("FN", "FN2"))


def test_tickcandler_over_the_wire(loaded: Any) -> None:
    a = _query(loaded, "FNT", ["tickcandler('1Min',Price,Sum::Size)"], tf="1Sec",
               attr="TRADE")
    assert a.dtype.names == ("Epoch", "Open", "High", "Low", "Close", "Size_SUM")
    assert a.tolist() == [(T0, 10.0, 12.0, 10.0, 12.0, 3.0), (T0 + 60, 11.0, 11.0, 11.0,
                                                              11.0, 3.0)]


@pytest.mark.parametrize(("call", "name", "value"), [
    ("count(*)", "Count", 150), ("COUNT (Open)", "Count", 150), ("min(Low)", "Min", 0.0),
    ("max(High)", "Max", 149.0), ("avg(Close)", "Avg", 74.5)])
def test_reductions_over_the_wire(loaded: Any, call: str, name: str, value: float) -> None:
    a = _query(loaded, "FN", [call])
    assert a.dtype.names == ("Epoch", name) and a[name].tolist() == [value]


def test_gap_over_the_wire(loaded: Any) -> None:
    loaded.write(np.concatenate([_bars(3), _bars(2, start=T0 + 3600)]), "GAP/1Min/OHLCV")
    a = _query(loaded, "GAP", ["gap('5Min')"])
    assert a.tolist() == [(T0 + 120, T0 + 3600, 3480)]


def test_adjust_over_the_wire(loaded: Any) -> None:
    acts = np.zeros(1, dtype=ACTIONS)
    acts[0] = (T0, 1, 0, 0, ord("7"), ord("N"), T0 + 3600, 2.0, 0)
    loaded.write(acts, "ADJ/1D/ACTIONS", isvariablelength=True)
    d = np.zeros(2, dtype=[("Epoch", "i8"), ("Close", "f8"), ("Volume", "i8")])
    d["Epoch"], d["Close"], d["Volume"] = [T0, T0 + 86_400], [100.0, 50.0], [10, 20]
    loaded.write(d, "ADJ/1D/OHLCV")
    a = _query(loaded, "ADJ", ["adjust('split')"], tf="1D")
    assert a["Close"].tolist() == [50.0, 50.0] and a["Volume"].tolist() == [20, 20]


def test_functions_chain_after_the_limit(loaded: Any) -> None:
    a = _query(loaded, "FN", ["candlecandler('5Min',Open,High,Low,Close)", "count(*)"],
               limit=100)
    assert a["Count"].tolist() == [20]


@pytest.mark.parametrize(("call", "message"), [
    ("nope(Open)", 'no function in the UDA Registry named "nope"'),
    ("candlecandler('1H',Open)", "Argument mapping error for candlecandler: have [Open], "
                                 "need [Open High Low Close]"),
    ("tickcandler('1H',Nope)", "unable to retrieve column named Nope"),
])
def test_errors_reach_the_client_as_marketstores_texts(loaded: Any, call: str,
                                                       message: str) -> None:
    with pytest.raises(Exception) as info:  # noqa: B017 - pymarketstore raises Exception
        _query(loaded, "FN", [call])
    err = info.value  # JSON-RPC: Exception("<text>: None"); gRPC: status UNKNOWN, details
    shown = err.details() if callable(getattr(err, "details", None)) else str(err)
    assert shown in (message, f"{message}: None")
