"""Keys with control characters are refused over JSON-RPC and gRPC (Write, Create, Query)
and create nothing in the root; a type string with a trailing newline is an ordinary error."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from harness.waiting import wait_until
from server.transports import TRANSPORTS, errors

pymkts = pytest.importorskip("pymarketstore")


T0 = 1_704_187_800


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def root_of(server: Any) -> str:
    return os.path.join(os.path.dirname(str(server.config)), "db")


@pytest.mark.parametrize("key", ["NL\n/1Min/OHLCV", "NL/1Min/OHLCV\n", "T\tAB/1Min/OHLCV"])
def test_control_characters_in_keys_are_refused_over_rpc(server: Any, client: Any,
                                                         key: str) -> None:
    rows = np.zeros(2, dtype=[("Epoch", "i8"), ("Close", "f4")])
    rows["Epoch"] = T0 + 60 * np.arange(2)
    reply = client.write(rows, key)
    assert errors(reply) and "character that is not allowed" in errors(reply)[0]
    created = client.create(key, [("Epoch", "i8"), ("Close", "f4")])
    assert "character that is not allowed" in errors(created)[0]
    with pytest.raises(Exception, match="character that is not allowed"):
        client.query(pymkts.Params(key.split("/")[0], key.split("/")[1], key.split("/")[2]))
    names = os.listdir(root_of(server))
    assert not any(c in name for name in names for c in "\n\t"), names
    assert "NL" not in names and "T\tAB" not in names


def test_a_type_string_with_a_newline_is_refused(client: Any) -> None:
    created = client.create("TYPES/1Min/OHLCV", [("Epoch", "i8"), ("Close", "U16\n")])
    assert "unsupported type string" in errors(created)[0]


def test_a_stream_pattern_with_a_newline_is_refused(server: Any) -> None:
    import msgpack

    websocket = pytest.importorskip("websocket")
    ws = websocket.WebSocket()
    ws.connect(f"ws://{server.host}:{server.port}/ws", timeout=10)
    try:
        ws.send(msgpack.dumps({"streams": ["AAPL\n/1Min/OHLCV"]}),
                opcode=websocket.ABNF.OPCODE_BINARY)
        reply = msgpack.loads(ws.recv())
        assert sorted(reply) == ["data", "error", "key"]
        assert reply["key"] == "AAPL\n/1Min/OHLCV"
        assert reply["error"].startswith("AAPL\n/1Min/OHLCV is an invalid stream")
        assert "the symbol part 'AAPL\\n'" in reply["error"]
    finally:
        ws.close()
    # logged on one line: the stream's newline is escaped, never written to the log
    assert wait_until(lambda: "AAPL\\n/1Min/OHLCV is an invalid stream" in server.stderr(),
                      timeout=10), "the refused stream is not in the server log"
    assert not any(ln.startswith("/1Min/OHLCV") for ln in server.stderr().splitlines())


def test_a_string_type_wider_than_the_limit_is_refused_over_rpc(client: Any) -> None:
    created = client.create("WIDE/1Min/OHLCV", [("Epoch", "i8"), ("Note", "U100000")])
    assert "U100000 is 100000 characters wide; string columns hold at most 256" in \
        errors(created)[0]
