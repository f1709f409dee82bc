"""Hostile bodies cannot make the server allocate far more than they weigh: the values in a
`/rpc` body or a `/ws` message are counted before any is built (docs/server.md "Limits and
defence"), so a body of millions of empty maps is refused with a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import requests
from server.serverproc import ServerProcess, start_server

pymkts = pytest.importorskip("pymarketstore")
websocket = pytest.importorskip("websocket")

MIB = 1 << 20
T0 = 1_704_187_800


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path_factory.mktemp("memory"), max_request_mb=64)
    try:
        yield srv
    finally:
        assert srv.stop() == 0, srv.stderr()
        assert "Traceback" not in srv.stderr()


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def empty_maps_body(nbytes: int) -> bytes:
    """A Query call whose requests list is `nbytes` empty maps (one byte each)."""
    return msgpack.dumps({"jsonrpc": "2.0", "id": "1", "method": "DataService.Query",
                          "params": {"requests": [{}] * nbytes}})


def test_a_body_of_empty_maps_is_refused_without_growing_memory(big_server: ServerProcess) -> None:
    client = pymkts.Client(big_server.rpc_url)
    bars = np.zeros(3, dtype=[("Epoch", "i8"), ("Close", "f4")])
    bars["Epoch"] = T0 + 60 * np.arange(3)
    bars["Close"] = [1.0, 2.0, 3.0]
    assert client.write(bars, "MEM/1Min/OHLCV") == {"responses": None}
    body = empty_maps_body(20 * MIB)
    assert 20 * MIB < len(body) < 21 * MIB
    before = memory_kib(big_server.proc.pid)
    r = requests.post(big_server.rpc_url, data=body,
                      headers={"Content-Type": "application/x-msgpack"}, timeout=120)
    after = memory_kib(big_server.proc.pid)
    # peak RSS, so memory that was allocated and freed again is counted too
    grew_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    assert grew_mb < 200, f"the server's RSS grew by {grew_mb:.0f} MB"
    assert r.status_code == 200
    error = msgpack.loads(r.content)["error"]
    assert error["code"] == -32600
    assert "holds more than 1000000 values" in error["message"]
    assert "split it into smaller requests" in error["message"]
    # and a normal query still works
    df = client.query(pymkts.Params("MEM", "1Min", "OHLCV")).first().df()
    assert list(df["Close"]) == [1.0, 2.0, 3.0]


def test_a_json_body_of_empty_maps_is_refused(big_server: ServerProcess) -> None:
    body = b'{"jsonrpc":"2.0","id":"1","method":"DataService.Query","params":{"requests":[' \
        + b",".join([b"{}"] * (4 * MIB)) + b"]}}"
    r = requests.post(big_server.rpc_url, data=body,
                      headers={"Content-Type": "application/json"}, timeout=120)
    error = r.json()["error"]
    assert error["code"] == -32600
    assert "json body" in error["message"] and "values" in error["message"]


def test_a_normal_sized_call_is_not_refused(big_server: ServerProcess) -> None:
    """10 000 requests (the most one call may hold) pass the value count."""
    reqs = [{"destination": "NOPE/1Min/OHLCV"}] * 10_000
    r = requests.post(big_server.rpc_url, data=msgpack.dumps(
        {"jsonrpc": "2.0", "id": "1", "method": "DataService.Query",
         "params": {"requests": reqs}}), headers={"Content-Type": "application/x-msgpack"},
        timeout=60)
    assert msgpack.loads(r.content)["error"]["message"] == "no files returned from query parse"


def test_a_ws_message_of_many_values_is_refused(big_server: ServerProcess) -> Any:
    ws = websocket.WebSocket()
    ws.connect(f"ws://{big_server.host}:{big_server.port}/ws", timeout=30)
    try:
        ws.send(msgpack.dumps({"streams": [{}] * 300_000}), opcode=websocket.ABNF.OPCODE_BINARY)
        reply = msgpack.loads(ws.recv())
        assert "holds more than 2064 values" in reply["error"]
        ws.send(b'{"streams": [' + b",".join([b"[]"] * 300_000) + b"]}",
                opcode=websocket.ABNF.OPCODE_TEXT)
        reply = msgpack.loads(ws.recv())
        assert "holds more than 2064 values" in reply["error"]
        # the connection still works
        ok = msgpack.dumps({"streams": ["MEM/1Min/OHLCV"]})
        ws.send(ok, opcode=websocket.ABNF.OPCODE_BINARY)
        assert ws.recv() == ok
    finally:
        ws.close()
