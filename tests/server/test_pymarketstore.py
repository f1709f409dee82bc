"""The real pymarketstore 0.22 client against a real `mkts start`, over JSON-RPC and over
gRPC: writes, queries, limits, nanosecond ranges, create/destroy/list_symbols, versions and
errors (docs/server.md "Endpoints", "gRPC")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from harness.waiting import wait_until
from server.transports import TRANSPORTS, errors, replies

pymkts = pytest.importorskip("pymarketstore")

T0 = 1_704_187_800  # 2024-01-02 09:30:00 UTC
BAR = [("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"), ("Close", "f4"),
       ("Volume", "i8")]
TICK = [("Epoch", "i8"), ("Price", "f8"), ("Size", "i8"), ("Nanoseconds", "i4")]


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def bars(n: int, start: int = T0, first: float = 0.0) -> np.ndarray:
    a = np.zeros(n, dtype=BAR)
    a["Epoch"] = start + 60 * np.arange(n)
    v = first + np.arange(n, dtype=np.float32)
    for c in ("Open", "High", "Low", "Close"):
        a[c] = v
    a["High"] += 0.5
    a["Low"] -= 0.5
    a["Volume"] = 100 + np.arange(n)
    return a


def ticks(rows: list[tuple[int, int, float, int]]) -> np.ndarray:
    """rows of (epoch seconds, nanoseconds, price, size)."""
    a = np.zeros(len(rows), dtype=TICK)
    for i, (s, ns, p, q) in enumerate(rows):
        a[i] = (s, p, q, ns)
    return a


def query(client: Any, symbols: Any, tf: str, attr: str, **kw: Any) -> Any:
    return client.query(pymkts.Params(symbols, tf, attr, **kw))


# -- version and listing ------------------------------------------------------------------
def test_server_version_is_the_version_header_and_the_grpc_answer(client: Any, server: Any
                                                                    ) -> None:
    assert client.server_version() == "mkts-0.1.0"  # HEAD /rpc, or gRPC ServerVersion
    r = requests.post(server.rpc_url, data=b"\x80", headers={"Content-Type":
                                                              "application/x-msgpack"})
    assert r.headers["Marketstore-Version"] == "mkts-0.1.0"


# -- fixed buckets ------------------------------------------------------------------------
def test_fixed_bars_round_trip_exactly(client: Any) -> None:
    data = bars(30)
    assert replies(client.write(data, "RT/1Min/OHLCV")) == []
    reply = query(client, "RT", "1Min", "OHLCV")
    assert reply.timezone == "UTC"
    ds = reply.first()
    assert ds.key == "RT/1Min/OHLCV"
    assert ds.array.dtype == np.dtype(BAR)
    assert np.array_equal(ds.array, data)
    df = ds.df()
    assert str(df.index[0]) == "2024-01-02 09:30:00+00:00"
    assert list(df.columns) == ["Open", "High", "Low", "Close", "Volume"]


def test_overwriting_an_interval_keeps_the_last_write(client: Any) -> None:
    client.write(bars(3), "OVR/1Min/OHLCV")
    client.write(bars(1, start=T0 + 60, first=42.0), "OVR/1Min/OHLCV")
    arr = query(client, "OVR", "1Min", "OHLCV").first().array
    assert arr["Close"].tolist() == [0.0, 42.0, 2.0]


def test_range_is_inclusive_and_at_interval_granularity(client: Any) -> None:
    client.write(bars(10), "RNG/1Min/OHLCV")
    arr = query(client, "RNG", "1Min", "OHLCV", start=T0 + 90, end=T0 + 240).first().array
    # 09:31:30 lies in the 09:31 interval, which is included; 09:34 is included (inclusive end)
    assert (arr["Epoch"] - T0).tolist() == [60, 120, 180, 240]


def test_limit_counts_from_the_end_by_default_and_from_the_start_on_request(client: Any
                                                                            ) -> None:
    client.write(bars(10), "LIM/1Min/OHLCV")
    last = query(client, "LIM", "1Min", "OHLCV", limit=3).first().array
    assert (last["Epoch"] - T0).tolist() == [420, 480, 540]
    first = query(client, "LIM", "1Min", "OHLCV", limit=3, limit_from_start=True).first().array
    assert (first["Epoch"] - T0).tolist() == [0, 60, 120]
    ranged = query(client, "LIM", "1Min", "OHLCV", start=T0 + 120, end=T0 + 420, limit=2)
    assert (ranged.first().array["Epoch"] - T0).tolist() == [360, 420]


def test_multi_symbol_query_with_columns_keeps_request_order(client: Any, transport: str
                                                              ) -> None:
    client.write(bars(5, first=10.0), "MA/1Min/OHLCV")
    client.write(bars(5, first=20.0), "MB/1Min/OHLCV")
    reply = query(client, ["MB", "MA"], "1Min", "OHLCV", columns=["Close", "Open", "Close"],
                  limit=2)
    if transport == "jsonrpc":
        assert reply.keys() == ["MB/1Min/OHLCV", "MA/1Min/OHLCV"]
    else:  # a protobuf map: the client iterates start_index in an order of its own
        assert sorted(reply.keys()) == ["MA/1Min/OHLCV", "MB/1Min/OHLCV"]
    for key, base in (("MB/1Min/OHLCV", 20.0), ("MA/1Min/OHLCV", 10.0)):
        arr = reply.all()[key].array
        assert arr.dtype.names == ("Epoch", "Close", "Open")  # de-duplicated, request order
        assert arr["Close"].tolist() == [base + 3, base + 4]
    assert set(reply.by_symbols()) == {"MA", "MB"}


def test_all_symbols_with_a_star(client: Any) -> None:
    client.write(bars(2), "STAR1/1Min/STAR")
    client.write(bars(3), "STAR2/1Min/STAR")
    reply = query(client, "*", "1Min", "STAR")
    assert sorted(reply.keys()) == ["STAR1/1Min/STAR", "STAR2/1Min/STAR"]
    assert [len(reply.all()[k].array) for k in sorted(reply.keys())] == [2, 3]


def test_multi_symbol_query_over_different_columns_is_refused(client: Any) -> None:
    client.write(bars(2), "DIFA/1Min/DIF")
    client.write(ticks([(T0, 0, 1.0, 1)])[["Epoch", "Price", "Size"]], "DIFB/1Min/DIF")
    with pytest.raises(Exception, match="must have the same data type or be filtered by "
                                        "common columns"):
        query(client, ["DIFA", "DIFB"], "1Min", "DIF")


def test_several_params_give_several_results(client: Any) -> None:
    client.write(bars(4), "PA/1Min/OHLCV")
    client.write(bars(2), "PB/1Min/OHLCV")
    reply = client.query([pymkts.Params("PA", "1Min", "OHLCV"),
                          pymkts.Params("PB", "1Min", "OHLCV")])
    assert len(reply.results) == 2
    assert len(reply.all()["PA/1Min/OHLCV"].array) == 4
    assert len(reply.all()["PB/1Min/OHLCV"].array) == 2


def test_an_existing_bucket_without_rows_in_range_gives_an_empty_frame(client: Any) -> None:
    client.write(bars(2), "EMPTY/1Min/OHLCV")
    reply = query(client, "EMPTY", "1Min", "OHLCV", start=pd.Timestamp("2015-01-01", tz="utc"),
                  end=pd.Timestamp("2015-01-02", tz="utc"))
    assert reply.first().df().empty
    assert reply.first().array.dtype == np.dtype(BAR)


def test_numbers_are_coerced_to_the_bucket_types(client: Any) -> None:
    client.write(bars(1), "COERCE/1Min/OHLCV")
    wide = bars(2, first=5.0).astype([(n, "f8" if t == "f4" else t) for n, t in BAR])
    assert replies(client.write(wide, "COERCE/1Min/OHLCV")) == []
    arr = query(client, "COERCE", "1Min", "OHLCV").first().array
    assert arr.dtype["Close"] == np.dtype("f4")
    assert arr["Close"].tolist() == [5.0, 6.0]


def test_string_columns_round_trip(client: Any) -> None:
    dtype = [("Epoch", "i8"), ("Memo", "U16")]
    data = np.array([(T0, "hello"), (T0 + 86400, "こんにちは世界"), (T0 + 2 * 86400, "🍺🍺🍺")],
                    dtype=dtype)
    assert replies(client.write(data, "STR/1D/TICK")) == []
    arr = query(client, "STR", "1D", "TICK").first().array
    assert arr["Memo"].tolist() == ["hello", "こんにちは世界", "🍺🍺🍺"]
    too_long = np.array([(T0, "this_is_longer_than_16_characters")], dtype=[("Epoch", "i8"),
                                                                             ("Memo", "U40")])
    res = client.write(too_long, "STR/1D/TICK")
    assert "16" in errors(res)[0]


# -- tick buckets -------------------------------------------------------------------------
def test_ticks_keep_exact_nanoseconds_order_and_duplicates(client: Any) -> None:
    rows = [(T0, 500, 1.5, 1), (T0, 5, 1.0, 2), (T0, 5, 1.0, 2), (T0 + 1, 999_999_999, 2.0, 3),
            (T0, 999_999_999, 1.7, 4)]
    res = client.write(ticks(rows), "TCK/1Sec/TICK", isvariablelength=True)
    assert replies(res) == []
    arr = query(client, "TCK", "1Sec", "TICK").first().array
    assert arr.dtype.names == ("Epoch", "Price", "Size", "Nanoseconds")
    assert arr.dtype["Nanoseconds"] == np.dtype("i4")
    got = [(int(e) - T0, int(n), int(s)) for e, n, s in zip(arr["Epoch"], arr["Nanoseconds"],
                                                            arr["Size"], strict=True)]
    assert got == [(0, 5, 2), (0, 5, 2), (0, 500, 1), (0, 999_999_999, 4), (1, 999_999_999, 3)]


def test_many_ticks_in_one_interval_and_a_row_limit(client: Any) -> None:
    rows = [(T0 + 60 * (i // 10), i * 1000, float(i), i) for i in range(50)]
    client.write(ticks(rows), "MANY/1Min/TICK", isvariablelength=True)
    arr = query(client, "MANY", "1Min", "TICK", limit=7).first().array
    assert arr["Size"].tolist() == list(range(43, 50))  # the limit counts rows, not intervals
    arr = query(client, "MANY", "1Min", "TICK", limit=3, limit_from_start=True).first().array
    assert arr["Size"].tolist() == [0, 1, 2]


def test_nanosecond_range_is_exact(client: Any) -> None:
    rows = [(T0 + 10, 0, 1.0, 0), (T0 + 10, 100, 1.0, 1), (T0 + 10, 200, 1.0, 2),
            (T0 + 40, 0, 1.0, 3), (T0 + 59, 0, 1.0, 4)]
    client.write(ticks(rows), "NANO/1Min/TICK", isvariablelength=True)
    start = pd.Timestamp(T0 + 10, unit="s", tz="utc") + pd.Timedelta(nanoseconds=100)
    end = pd.Timestamp(T0 + 40, unit="s", tz="utc")
    arr = query(client, "NANO", "1Min", "TICK", start=start, end=end).first().array
    assert arr["Size"].tolist() == [1, 2, 3]  # no leak of the 10:00:59 tick (MarketStore's)
    end = pd.Timestamp(T0 + 10, unit="s", tz="utc") + pd.Timedelta(nanoseconds=199)
    arr = query(client, "NANO", "1Min", "TICK", start=start, end=end).first().array
    assert arr["Size"].tolist() == [1]


def test_ticks_without_nanoseconds_are_whole_seconds(client: Any) -> None:
    data = ticks([(T0, 0, 3.0, 1), (T0 + 2, 0, 4.0, 2)])[["Epoch", "Price", "Size"]]
    assert replies(client.write(data, "WHOLE/1Sec/TICK", isvariablelength=True)) == []
    arr = query(client, "WHOLE", "1Sec", "TICK").first().array
    assert arr["Nanoseconds"].tolist() == [0, 0]
    assert (arr["Epoch"] - T0).tolist() == [0, 2]


def test_tick_columns_projection_keeps_nanoseconds_last(client: Any) -> None:
    client.write(ticks([(T0, 7, 1.0, 1)]), "PROJ/1Sec/TICK", isvariablelength=True)
    arr = query(client, "PROJ", "1Sec", "TICK", columns=["Nanoseconds", "Size"]).first().array
    assert arr.dtype.names == ("Epoch", "Size", "Nanoseconds")
    assert arr["Nanoseconds"].tolist() == [7]


# -- create / destroy / list ----------------------------------------------------------------
def test_create_honours_isvariablelength(client: Any, server: Any) -> None:
    res = client.create("CRV/1Min/TICK", [("Epoch", "i8"), ("Bid", "f4"), ("Ask", "f4")],
                        isvariablelength=True)
    assert replies(res) == [("", "mkts-0.1.0")]
    res = client.create("CRF/1Min/TICK", [("Epoch", "i8"), ("Bid", "f4")])
    assert errors(res) == [""]
    info = _rpc(server, "DataService.GetInfo", {"requests": [{"key": "CRV/1Min/TICK"},
                                                             {"key": "CRF/1Min/TICK"},
                                                             {"key": "NONE/1Min/TICK"}]})
    v, f, missing = info["result"]["responses"]
    assert v["RecordType"] == 1 and f["RecordType"] == 0
    assert v["TimeFrame"] == 60 * 10**9
    assert v["DSV"] == [{"Name": "Epoch", "Type": 3}, {"Name": "Bid", "Type": 0},
                        {"Name": "Ask", "Type": 0}]
    assert "does not exist" in missing["ServerResp"]["error"]
    rows = np.array([(T0, 1.0, 2.0, 5)], dtype=[("Epoch", "i8"), ("Bid", "f4"), ("Ask", "f4"),
                                                ("Nanoseconds", "i4")])
    assert replies(client.write(rows, "CRV/1Min/TICK", isvariablelength=True)) == []
    arr = query(client, "CRV", "1Min", "TICK").first().array
    assert arr["Nanoseconds"].tolist() == [5]


def test_create_again_with_the_same_columns_is_a_no_op_and_with_others_an_error(
        client: Any) -> None:
    dtype = [("Epoch", "i8"), ("Ask", "f4")]
    assert errors(client.create("AGAIN/1D/TICK", dtype)) == [""]
    assert errors(client.create("AGAIN/1D/TICK", dtype)) == [""]
    err = errors(client.create("AGAIN/1D/TICK", [("Epoch", "i8"), ("Bid", "f8")]))[0]
    assert "already exists" in err


def test_create_reports_bad_types_and_keys_per_request(client: Any) -> None:
    bad_type = client.create("BADT/1D/TICK", [("Epoch", "i8"), ("Flag", "b1")])
    assert "unsupported type string b1" in errors(bad_type)[0]
    bad_key = client.create(".hidden/1Min/TICK", [("Epoch", "i8"), ("Ask", "f4")])
    assert "may not start with" in errors(bad_key)[0]
    bad_tf = client.create("BADTF/7Min/TICK", [("Epoch", "i8"), ("Ask", "f4")])
    assert "does not divide a day" in errors(bad_tf)[0]


def test_destroy_and_list_symbols(client: Any) -> None:
    client.write(bars(1), "GONE/1Min/OHLCV")
    client.write(bars(1), "GONE/1Min/OTHER")
    assert "GONE" in client.list_symbols()
    tbks = client.list_symbols(pymkts.params.ListSymbolsFormat.TBK)
    assert "GONE/1Min/OTHER" in tbks
    assert replies(client.destroy("GONE/1Min/OHLCV")) == [("", "mkts-0.1.0")]
    assert errors(client.destroy("GONE/1Min/OTHER")) == [""]
    assert "GONE/1Min/OTHER" not in client.list_symbols(pymkts.params.ListSymbolsFormat.TBK)
    missing = client.destroy("GONE/1Min/OTHER")  # reported in the responses, not raised
    assert "does not exist" in errors(missing)[0]


# -- errors ---------------------------------------------------------------------------------
def test_unknown_bucket_says_no_files_returned(client: Any) -> None:
    with pytest.raises(Exception) as info:
        query(client, "TEST_NOT_EXIST", "1Sec", "TICK", start=pd.Timestamp("2016-01-01",
                                                                          tz="utc"))
    assert "no files returned from query parse" in str(info.value)


def test_bad_keys_and_arguments_surface_as_exceptions(client: Any) -> None:
    with pytest.raises(Exception, match="not valid"):
        query(client, "AAPL", "3Minutes", "OHLCV")
    with pytest.raises(Exception, match="may not start with"):
        query(client, "..", "1Min", "OHLCV")
    client.write(bars(1), "COLS/1Min/OHLCV")
    with pytest.raises(Exception, match="'Nope' is not in bucket"):
        query(client, "COLS", "1Min", "OHLCV", columns=["Nope"])
    with pytest.raises(Exception, match='no function in the UDA Registry named "nope"'):
        client.query(pymkts.Params("COLS", "1Min", "OHLCV", functions=["nope(Close)"]))


def test_write_errors_come_back_per_failed_request(client: Any) -> None:
    ok = bars(2)
    bad = np.zeros(1, dtype=[("Epoch", "i8"), ("Flag", "?")])
    res = client.write(bad, "BOOL/1Min/OHLCV")
    [(error, version)] = replies(res)
    assert error.startswith("unsupported type string b1")
    assert version == "mkts-0.1.0"
    client.write(ok, "SCHEMA/1Min/OHLCV")
    wrong = np.zeros(1, dtype=[("Epoch", "i8"), ("Price", "f4")])
    res = client.write(wrong, "SCHEMA/1Min/OHLCV")
    assert "missing column" in errors(res)[0]
    nan = bars(1)
    nan["Epoch"] = 10**12  # not epoch seconds
    assert "Epoch" in errors(client.write(nan, "SCHEMA/1Min/OHLCV"))[0]
    assert len(query(client, "SCHEMA", "1Min", "OHLCV").first().array) == 2


def test_aggregates_are_maintained_behind_the_server(client: Any) -> None:
    client.write(bars(12), "AGG/1Min/OHLCV")

    def five_min() -> Any:
        try:
            return query(client, "AGG", "5Min", "OHLCV").first().array
        except Exception:  # the bucket does not exist yet
            return None

    # ondiskagg runs on the trigger thread; poll until the last 5Min bar has both its rows
    assert wait_until(lambda: (a := five_min()) is not None and len(a) == 3
                      and a["Volume"][2] == 110 + 111), "5Min aggregates did not appear"
    arr = five_min()
    assert arr["Open"].tolist() == [0.0, 5.0, 10.0]
    assert arr["Close"].tolist() == [4.0, 9.0, 11.0]
    assert arr["Volume"].tolist() == [510, 535, 221]


def _rpc(server: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    import msgpack

    body = msgpack.dumps({"jsonrpc": "2.0", "id": "1", "method": method, "params": params})
    r = requests.post(server.rpc_url, data=body,
                      headers={"Content-Type": "application/x-msgpack"})
    assert r.status_code == 200
    out: dict[str, Any] = msgpack.loads(r.content)
    return out


def test_the_documented_dataframe_write_works(client: Any) -> None:
    # The example of docs/server.md "Sending a pandas DataFrame", run as written.
    doc = (Path(__file__).resolve().parents[2] / "docs/server.md").read_text()
    section = doc.split("#### Sending a pandas DataFrame", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/server.md", "exec"), {"client": client})  # noqa: S102
    arr = query(client, "AAPL", "1Min", "OHLCV").first().array
    assert arr["Epoch"].tolist() == [1_704_205_800, 1_704_205_860]
    assert arr["Close"].tolist() == pytest.approx([187.3, 187.4])
    assert arr["Volume"].tolist() == [1200, 900]
    with pytest.raises(AttributeError, match="dtype"):  # why the doc converts the frame
        client.write(pd.DataFrame({"Epoch": [1], "Close": [1.0]}), "DF/1Min/OHLCV")
