"""The `/rpc` envelope against raw HTTP: malformed, oversized and odd requests get a JSON-RPC
error (never a traceback, never a dead server); transport errors as MarketStore's
(docs/server.md "The envelope").
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from typing import Any

import msgpack
import numpy as np
import pytest
import requests

MSGPACK = {"Content-Type": "application/x-msgpack"}
T0 = 1_704_187_800


def post(server: Any, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(server.rpc_url, data=body, headers=MSGPACK if headers is None
                         else headers, timeout=30)


def call(server: Any, method: str, params: Any, **envelope: Any) -> dict[str, Any]:
    req = {"jsonrpc": "2.0", "id": "1", "method": method, "params": params}
    req.update(envelope)
    r = post(server, msgpack.dumps(req))
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/x-msgpack")
    out: dict[str, Any] = msgpack.loads(r.content)
    return out


def assert_alive(server: Any) -> None:
    r = requests.get(server.url + "/heartbeat", timeout=10)
    assert r.status_code == 200
    assert r.json()["status"] == "queryable"
    assert call(server, "DataService.ListSymbols", {"format": "symbol"})["result"] is not None


def dataset(key: str, n: int = 2, **override: Any) -> dict[str, Any]:
    epoch = (T0 + 60 * np.arange(n)).astype("<i8")
    close = np.arange(n, dtype="<f4")
    ds = {"types": ["i8", "f4"], "names": ["Epoch", "Close"],
          "data": [epoch.tobytes(), close.tobytes()], "length": n,
          "startindex": {key: 0}, "lengths": {key: n}}
    ds.update(override)
    return ds


@pytest.mark.parametrize("body", [
    b"",
    b"\xc1",  # a byte msgpack never uses
    b"\x93\x01\x02",  # an array cut short
    msgpack.dumps([1, 2, 3]),  # not a map
    msgpack.dumps("DataService.Query"),
    b"\x91" * 5000 + b"\x00",  # nested far too deep
    msgpack.dumps({1: 2}),  # a map key that is not text
    b"\xa3\xff\xfe\xfd",  # a str that is not UTF-8
], ids=["empty", "reserved-byte", "truncated", "array", "string", "deep", "int-key",
        "bad-utf8"])
def test_malformed_msgpack_is_a_json_rpc_error(server: Any, body: bytes) -> None:
    r = post(server, body)
    assert r.status_code == 200
    assert r.headers["Marketstore-Version"] == "mkts-0.1.0"
    reply = msgpack.loads(r.content)
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] is None
    assert reply["error"]["code"] in (-32700, -32600)
    assert "Traceback" not in reply["error"]["message"]
    assert_alive(server)


def test_malformed_json_is_a_json_rpc_error_in_json(server: Any) -> None:
    r = post(server, b'{"jsonrpc": "2.0", "method": ', {"Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == -32700
    deep = b"[" * 100_000 + b"]" * 100_000  # too deep, and too many values for its size
    r = post(server, deep, {"Content-Type": "application/json; charset=utf-8"})
    assert r.json()["error"]["code"] in (-32700, -32600)
    deep = b"[" * 4_000 + b"]" * 4_000 + b" " * 40_000  # too deep only
    r = post(server, deep, {"Content-Type": "application/json; charset=utf-8"})
    assert r.json()["error"]["code"] == -32700
    assert_alive(server)


def test_envelope_errors_follow_marketstore(server: Any) -> None:
    assert call(server, "DataService.ListSymbols", {}, jsonrpc="1.0")["error"]["message"] \
        == "jsonrpc must be 2.0"
    err = call(server, "DataService.Nope", {})["error"]
    assert err == {"code": -32601, "message": 'rpc: can\'t find method "DataService.Nope"',
                   "data": None}
    assert "can't find service" in call(server, "Other.Query", {})["error"]["message"]
    assert "ill-formed" in call(server, "Query", {})["error"]["message"]
    assert "ill-formed" in call(server, "a.b.c", {})["error"]["message"]
    assert call(server, "DataService.Query", "x")["error"]["code"] == -32600
    # params as a one-element list, and an integer id echoed back
    reply = call(server, "DataService.ListSymbols", [{"format": "tbk"}], id=7)
    assert reply["id"] == 7 and "Results" in reply["result"]
    # a missing id is answered with a null id
    req = {"jsonrpc": "2.0", "method": "DataService.ListSymbols", "params": {}}
    assert msgpack.loads(post(server, msgpack.dumps(req)).content)["id"] is None


def test_bad_parameters_are_method_errors(server: Any) -> None:
    cases = [
        ({"requests": [5]}, "requests[0] must be a map"),
        ({"requests": [{"destination": 5}]}, "destination must be a string"),
        ({"requests": [{"destination": "AAPL/1Min"}]}, "must have three parts"),
        ({"requests": [{"destination": "AA?/1Min/OHLCV"}]}, "the symbol part 'AA?'"),
        ({"requests": [{"destination": "X/1Min/OHLCV", "epoch_start": "yesterday"}]},
         "epoch_start must be an integer"),
        ({"requests": [{"destination": "X/1Min/OHLCV", "limit_record_count": -1}]},
         "must not be negative"),
        ({"requests": [{"destination": "X/1Min/OHLCV", "limit_from_start": "yes"}]},
         "true or false"),
        ({"requests": [{"destination": "X/1Min/OHLCV", "columns": [1]}]},
         "columns must be a list of column names"),
        ({"requests": [{"destination": "X/1Min/OHLCV:Other/Cats"}]}, "not supported"),
        ({"requests": [{"destination": "X/1Min/OHLCV", "epoch_start": 1,
                        "epoch_start_nanos": 10**10}]}, "within 0..999999999"),
    ]
    reply = call(server, "DataService.Query", {"requests": "nope"})
    assert reply["error"]["code"] == -32600  # a params shape mismatch, as MarketStore
    assert "params.requests must be a list" in reply["error"]["message"]
    for params, text in cases:
        reply = call(server, "DataService.Query", params)
        assert reply["error"]["code"] == -32000, params
        assert text in reply["error"]["message"], (params, reply)
    assert_alive(server)


def test_inconsistent_datasets_are_refused_without_writing(server: Any) -> None:
    key = "RAWDS/1Min/OHLCV"
    bad = [
        dataset(key, length=3),  # data shorter than length says
        dataset(key, length=10**15),  # absurd length
        dataset(key, types=["i8"]),  # names/types/data do not line up
        dataset(key, types=["i8", "M8[ns]"]),
        dataset(key, names=["Epoch", "Epoch"]),
        dataset(key, startindex={key: 1}),  # slice past the end
        dataset(key, startindex={}, lengths={}),
        dataset(key, data=[b"x", "not base64 ~~"]),
        dataset(key, names=["Epoch"] * 200, types=["i8"] * 200, data=[b""] * 200),
        "not a map",
    ]
    reply = call(server, "DataService.Write", {"requests": [{"dataset": d} for d in bad]})
    errors = reply["result"]["responses"]
    assert len(errors) == len(bad)
    assert all(e["error"] and e["version"] == "mkts-0.1.0" for e in errors)
    assert call(server, "DataService.Query", {"requests": [{"destination": key}]})["error"][
        "message"] == "no files returned from query parse"
    # one good and one bad request: only the bad one is reported, the good one is written
    reply = call(server, "DataService.Write", {"requests": [
        {"dataset": dataset(key)}, {"dataset": dataset(key, length=5)}]})
    assert len(reply["result"]["responses"]) == 1
    ok = call(server, "DataService.Query", {"requests": [{"destination": key}]})
    assert ok["result"]["responses"][0]["result"]["length"] == 2


def test_json_bodies_carry_binary_as_base64(server: Any) -> None:
    key = "JSONW/1Min/OHLCV"
    ds = dataset(key, 3)
    ds["data"] = [base64.b64encode(b).decode() for b in ds["data"]]
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "DataService.Write",
                       "params": {"requests": [{"dataset": ds}]}}).encode()
    r = post(server, body, {"Content-Type": "application/json"})
    assert r.json() == {"jsonrpc": "2.0", "result": {"responses": None}, "id": 1}
    body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "DataService.Query",
                       "params": {"requests": [{"destination": key, "limit_record_count": 1}]}})
    res = post(server, body.encode(), {"Content-Type": "application/json"}).json()
    out = res["result"]["responses"][0]["result"]
    assert out["names"] == ["Epoch", "Close"]
    assert np.frombuffer(base64.b64decode(out["data"][1]), "<f4").tolist() == [2.0]
    assert out["startindex"] == {f"{key}:Symbol/Timeframe/AttributeGroup": 0}


def test_transport_errors(server: Any) -> None:
    r = requests.get(server.rpc_url, timeout=10)
    assert r.status_code == 405
    assert r.text == "rpc: POST method required, received GET"
    assert r.headers["Marketstore-Version"] == "mkts-0.1.0"
    r = requests.post(server.rpc_url, data=b"{}", timeout=10)  # no Content-Type
    assert r.status_code == 415
    r = requests.post(server.rpc_url, data=b"{}", headers={"Content-Type": "text/plain"},
                      timeout=10)
    assert r.status_code == 415 and "unrecognized Content-Type: text/plain" in r.text
    head = requests.head(server.rpc_url, timeout=10)
    assert head.status_code == 200 and head.headers["Marketstore-Version"] == "mkts-0.1.0"
    assert requests.get(server.url + "/nothing", timeout=10).status_code == 404


def test_oversized_requests_are_refused_and_the_server_keeps_serving(server: Any) -> None:
    import pymarketstore

    client = pymarketstore.Client(server.rpc_url)
    big = np.zeros(150_000, dtype=[("Epoch", "i8"), ("A", "f8"), ("B", "f8")])  # 3.4 MiB
    big["Epoch"] = T0 + np.arange(len(big))
    with pytest.raises(Exception, match=r"larger than 2 MiB \(max_request_mb"):
        client.write(big, "BIG/1Sec/OHLCV")
    # a declared length over the limit is refused before any of the body is read
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-msgpack\r\n"
                  b"Content-Length: 999999999999\r\n\r\n")
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    assert_alive(server)
    small = big[:1000]
    assert client.write(small, "BIG/1Sec/OHLCV") == {"responses": None}


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{\"a\"",  # the client goes away mid-body
    b"POST /rpc HTTP/1.1\r\nHo",
    b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",  # not a WebSocket upgrade
], ids=["garbage", "bad-chunk", "short-body", "cut-headers", "ws-without-upgrade"])
def test_broken_http_is_answered_or_dropped_quietly(server: Any, raw: bytes) -> None:
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        try:
            reply = s.recv(100)
        except OSError:
            reply = b""
    assert reply == b"" or reply.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert_alive(server)  # and the fixture checks the log has no traceback


def test_concurrent_clients(server: Any) -> None:
    import pymarketstore

    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            c = pymarketstore.Client(server.rpc_url)
            rows = np.zeros(50, dtype=[("Epoch", "i8"), ("V", "f8")])
            for j in range(10):
                rows["Epoch"] = T0 + 60 * (np.arange(50) + 50 * j)
                rows["V"] = i
                assert c.write(rows, f"CONC{i}/1Min/X") == {"responses": None}
                c.query(pymarketstore.Params(f"CONC{i}", "1Min", "X", limit=5))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    reply = call(server, "DataService.Query", {"requests": [
        {"destination": ",".join(f"CONC{i}" for i in range(6)) + "/1Min/X"}]})
    assert reply["result"]["responses"][0]["result"]["length"] == 6 * 500
