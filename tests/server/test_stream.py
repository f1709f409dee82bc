"""`/ws`: MarketStore's streaming protocol (docs/server.md "/ws streaming") — subscribe, echo,
one pushed message per new row, invalid patterns, and pymarketstore's `StreamConn` end to end.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import msgpack
import numpy as np
import pytest
from harness.waiting import wait_until

pymkts = pytest.importorskip("pymarketstore")
websocket = pytest.importorskip("websocket")

T0 = 1_704_187_800
BAR = [("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"), ("Close", "f4"),
       ("Volume", "i8")]


def bars(n: int, start: int = T0, first: float = 0.0) -> np.ndarray:
    a = np.zeros(n, dtype=BAR)
    a["Epoch"] = start + 60 * np.arange(n)
    for c in ("Open", "High", "Low", "Close"):
        a[c] = first + np.arange(n)
    a["Volume"] = 10 + np.arange(n)
    return a


def connect(server: Any) -> Any:
    ws = websocket.WebSocket()
    ws.connect(f"ws://{server.host}:{server.port}/ws", timeout=10)
    return ws


def subscribe(ws: Any, streams: list[str]) -> dict[str, Any]:
    msg = msgpack.dumps({"streams": streams})
    ws.send(msg, opcode=websocket.ABNF.OPCODE_BINARY)
    reply = ws.recv()
    assert reply == msg  # the server echoes the bytes it received
    out: dict[str, Any] = msgpack.loads(reply)
    return out


def recv_data(ws: Any, n: int) -> list[dict[str, Any]]:
    return [msgpack.loads(ws.recv()) for _ in range(n)]


def recv_symbols(ws: Any, n: int, symbols: tuple[str, ...]) -> list[dict[str, Any]]:
    """The next `n` messages for `symbols`, passing over messages for other symbols: a
    glob subscription also receives the aggregates ondiskagg writes for an earlier test's
    rows, whenever its (batched) recompute lands."""
    out: list[dict[str, Any]] = []
    for _ in range(n + 20):
        msg = msgpack.loads(ws.recv())
        if msg["key"].split("/")[0] in symbols:
            out.append(msg)
            if len(out) == n:
                return out
    raise AssertionError(f"fewer than {n} messages for {symbols}: {out}")


def test_subscribe_echo_and_one_message_per_row(server: Any, client: Any) -> None:
    ws = connect(server)
    try:
        assert subscribe(ws, ["WS1/1Min/OHLCV", "*/1D/NOPE"]) == {
            "streams": ["WS1/1Min/OHLCV", "*/1D/NOPE"]}
        client.write(bars(3, first=5.0), "WSX/1Min/OHLCV")  # not subscribed
        client.write(bars(3, first=1.0), "WS1/1Min/OHLCV")
        got = recv_data(ws, 3)
        assert [m["key"] for m in got] == ["WS1/1Min/OHLCV"] * 3
        assert got[0]["data"] == {"Epoch": T0, "Open": 1.0, "High": 1.0, "Low": 1.0,
                                  "Close": 1.0, "Volume": 10}
        assert [m["data"]["Epoch"] - T0 for m in got] == [0, 60, 120]
    finally:
        ws.close()


def test_new_subscription_replaces_the_old_one_and_globs_match(server: Any, client: Any
                                                              ) -> None:
    ws = connect(server)
    try:
        subscribe(ws, ["WS2/1Min/OHLCV"])
        subscribe(ws, ["{WS3,WS4}/1Min/*", "*/5Min/OHLCV"])
        client.write(bars(1), "WS2/1Min/OHLCV")
        client.write(bars(1, first=3.0), "WS3/1Min/OHLCV")
        keys = {m["key"] for m in recv_symbols(ws, 3, ("WS2", "WS3"))}
        # WS2's 1Min row is no longer subscribed, its 5Min aggregate (written by ondiskagg,
        # streamed too) is; WS3 matches the brace alternative
        assert keys == {"WS2/5Min/OHLCV", "WS3/1Min/OHLCV", "WS3/5Min/OHLCV"}
        subscribe(ws, [])  # an empty list changes nothing but is echoed
        client.write(bars(1, first=4.0), "WS4/1Min/OHLCV")
        keys = {m["key"] for m in recv_symbols(ws, 2, ("WS4",))}
        assert keys == {"WS4/1Min/OHLCV", "WS4/5Min/OHLCV"}
    finally:
        ws.close()


def test_invalid_streams_get_an_error_and_keep_the_old_subscription(server: Any,
                                                                   client: Any) -> None:
    ws = connect(server)
    try:
        subscribe(ws, ["WS5/1Min/OHLCV"])
        for bad in (["AAPL"], ["a/b/c/d"], ["a//c"], [5]):
            ws.send(msgpack.dumps({"streams": bad}), opcode=websocket.ABNF.OPCODE_BINARY)
            reply = msgpack.loads(ws.recv())
            assert "is an invalid stream" in reply["error"]
        ws.send(b"\xc1", opcode=websocket.ABNF.OPCODE_BINARY)
        assert "error" in msgpack.loads(ws.recv())
        client.write(bars(1), "WS5/1Min/OHLCV")
        assert recv_data(ws, 1)[0]["key"] == "WS5/1Min/OHLCV"
    finally:
        ws.close()


def test_tick_rows_carry_nanoseconds(server: Any, client: Any) -> None:
    ws = connect(server)
    try:
        subscribe(ws, ["WST/1Sec/TICK"])
        rows = np.array([(T0, 2.5, 7, 123)], dtype=[("Epoch", "i8"), ("Price", "f8"),
                                                      ("Size", "i8"), ("Nanoseconds", "i4")])
        client.write(rows, "WST/1Sec/TICK", isvariablelength=True)
        (msg,) = recv_data(ws, 1)
        assert msg == {"key": "WST/1Sec/TICK", "data": {"Epoch": T0, "Price": 2.5, "Size": 7,
                                                        "Nanoseconds": 123}}
    finally:
        ws.close()


class _ClosableStreamConn(pymkts.StreamConn):  # type: ignore[misc]
    """pymarketstore's StreamConn, keeping its socket so that the test can close it."""

    ws: Any = None

    def _connect(self) -> Any:
        self.ws = super()._connect()
        return self.ws


def test_pymarketstore_stream_conn_receives_pushed_rows(server: Any, client: Any) -> None:
    conn = _ClosableStreamConn(f"ws://{server.host}:{server.port}/ws")
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    @conn.on(r"^SC/")
    def on_bar(_conn: Any, msg: dict[str, Any]) -> None:
        received.put(msg)

    def run() -> None:
        try:
            conn.run(["SC/1Min/OHLCV"])
        except Exception:  # raised when the test closes the socket
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        # StreamConn gives no signal when it has subscribed: write probe rows (a day apart,
        # before T0) until one arrives. Probes written earlier may still be on their way.
        deadline = time.monotonic() + 10
        probe = 0
        first: dict[str, Any] | None = None
        while first is None:
            assert time.monotonic() < deadline, "StreamConn never received a row"
            client.write(bars(1, start=T0 - 86400 * (probe + 1)), "SC/1Min/OHLCV")
            probe += 1
            try:
                first = received.get(timeout=0.1)
            except queue.Empty:
                pass
        client.write(bars(4, first=100.0), "SC/1Min/OHLCV")
        # Rows arrive in commit order: any probes still in flight, then the four rows.
        msg = received.get(timeout=10)
        while msg["data"]["Epoch"] < T0:
            msg = received.get(timeout=10)
        got = [msg, *(received.get(timeout=10) for _ in range(3))]
        assert [m["key"] for m in got] == ["SC/1Min/OHLCV"] * 4
        assert [m["data"]["Close"] for m in got] == [100.0, 101.0, 102.0, 103.0]
        assert [m["data"]["Epoch"] - T0 for m in got] == [0, 60, 120, 180]
    finally:
        if conn.ws is not None:
            conn.ws.close()
        thread.join(10)


def test_one_invalid_pattern_does_not_refuse_the_others(server: Any, client: Any) -> None:
    """The valid streams of a message are subscribed; each invalid one gets an error message
    keyed by the stream as sent (so that pymarketstore dispatches it), and the server logs it."""
    ws = connect(server)
    try:
        sent = {"streams": ["WSP/1Min/OHLCV", "WSP/1Mn/OHLCV", "{WSQ,WSR}/1Min/*"]}
        ws.send(msgpack.dumps(sent), opcode=websocket.ABNF.OPCODE_BINARY)
        error = msgpack.loads(ws.recv())
        assert error["key"] == "WSP/1Mn/OHLCV"
        assert error["error"].startswith("WSP/1Mn/OHLCV is an invalid stream: ")
        assert error["data"] == {"error": error["error"]}
        # then the echo of what is now subscribed
        assert msgpack.loads(ws.recv()) == {"streams": ["WSP/1Min/OHLCV", "{WSQ,WSR}/1Min/*"]}
        client.write(bars(1, first=1.0), "WSP/1Min/OHLCV")
        client.write(bars(1, first=2.0), "WSR/1Min/OHLCV")
        keys = [m["key"] for m in recv_symbols(ws, 2, ("WSP", "WSR"))]
        assert sorted(keys) == ["WSP/1Min/OHLCV", "WSR/1Min/OHLCV"]
    finally:
        ws.close()
    assert wait_until(lambda: "WSP/1Mn/OHLCV is an invalid stream" in server.stderr(),
                      timeout=10), "the refused stream is not in the server log"
    line = next(ln for ln in server.stderr().splitlines() if "WSP/1Mn/OHLCV" in ln)
    assert "WARNING mkts.server" in line and "/ws" in line and "1 of 3" in line, line


def test_pymarketstore_stream_conn_shows_the_error_of_an_invalid_stream(server: Any,
                                                                        client: Any) -> None:
    conn = _ClosableStreamConn(f"ws://{server.host}:{server.port}/ws")
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    @conn.on(r"^SCE/")
    def on_msg(_conn: Any, msg: dict[str, Any]) -> None:
        received.put(msg)

    def run() -> None:
        try:
            conn.run(["SCE/1Min/OHLCV", "SCE/1Min/OHLCV/extra"])
        except Exception:  # raised when the test closes the socket
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        # the handler gets the error (the first message after subscribing) in msg["data"],
        # where pymarketstore's examples print what they receive
        first = received.get(timeout=10)
        assert first["key"] == "SCE/1Min/OHLCV/extra"
        assert first["data"]["error"].startswith("SCE/1Min/OHLCV/extra is an invalid stream")
        # and the valid stream is subscribed
        client.write(bars(2, first=7.0), "SCE/1Min/OHLCV")
        got = [received.get(timeout=10) for _ in range(2)]
        assert [m["key"] for m in got] == ["SCE/1Min/OHLCV"] * 2
        assert [m["data"]["Close"] for m in got] == [7.0, 8.0]
    finally:
        if conn.ws is not None:
            conn.ws.close()
        thread.join(10)


def test_refusals_are_logged_a_bounded_number_of_times_per_connection(server: Any) -> None:
    ws = connect(server)
    try:
        for i in range(15):
            ws.send(msgpack.dumps({"streams": [f"LOGCAP{i}/1Min"]}),
                    opcode=websocket.ABNF.OPCODE_BINARY)
            assert msgpack.loads(ws.recv())["key"] == f"LOGCAP{i}/1Min"  # each one answered
    finally:
        ws.close()
    assert wait_until(lambda: "LOGCAP9/1Min is an invalid" in server.stderr(), timeout=10)
    lines = [ln for ln in server.stderr().splitlines() if "LOGCAP" in ln]
    assert len(lines) == 10, lines
    assert lines[-1].endswith("(further refusals for this connection are not logged)")
