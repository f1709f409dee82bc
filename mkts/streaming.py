"""`GET /ws`: MarketStore's streaming protocol over aiohttp WebSockets.

A client sends `{"streams": ["AAPL/1Min/OHLCV", "*/1D/*"]}` (msgpack; each stream a key
pattern, engine.patterns), the server echoes the message, then pushes
`{"key": "SYM/TF/ATTR", "data": {column: value}}` for every new row of a matching bucket. Rows come from the stream trigger's hub (`mkts.plugins.stream`), or from
`db.subscribe` when no stream trigger is configured. Each connection has a bounded outbox:
a client that cannot keep up loses its oldest rows, never the server's memory or writers' time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import numpy as np
from aiohttp import WSMsgType, web

from mkts import engine
from mkts.wire import JSON, MSGPACK, BodyLimitError, WireError, decode_body

__all__ = ["WsEndpoint", "parse_streams", "StreamError", "MAX_OUTBOX"]

log = logging.getLogger("mkts.server")

MAX_OUTBOX = 10_000  # data messages queued per connection before the oldest are dropped
MAX_STREAMS = 1_000  # patterns in one subscribe message
MAX_MESSAGE = 1 << 20  # bytes in one client message
# values in one client message (a map, its keys, the list and its patterns, with slack):
# decoding never builds more than this (docs/server.md "Limits and defence")
MAX_MESSAGE_VALUES = 2 * MAX_STREAMS + 64


class StreamError(ValueError):
    """A subscribe message that cannot be honoured; the text goes back as {"error": ...}."""


def parse_streams(streams: Any) -> list[engine.KeyPattern]:
    """Validate a `streams` list: each entry is a key pattern. MarketStore's clients spell a
    list of alternatives with gobwas braces, `{AAPL,MSFT}/1Min/OHLCV`; a part that is one
    brace group is read as the list it holds."""
    if not isinstance(streams, list):
        raise StreamError("streams must be a list of patterns like 'AAPL/1Min/OHLCV'")
    if len(streams) > MAX_STREAMS:
        raise StreamError(f"{len(streams)} streams in one message; at most {MAX_STREAMS}")
    out: list[engine.KeyPattern] = []
    for s in streams:
        if not isinstance(s, str):
            raise StreamError(f"{s!r} is an invalid stream: a stream is a text like "
                              "'AAPL/1Min/OHLCV'")
        text = "/".join(p[1:-1] if p.startswith("{") and p.endswith("}") else p
                        for p in s.split("/"))
        try:
            out.append(engine.parse_pattern(text))
        except engine.InvalidKeyError as exc:
            raise StreamError(f"{s} is an invalid stream: {exc}") from None
    return out


def _row_messages(key: str, columns: Mapping[str, np.ndarray]) -> list[bytes]:
    """One packed {"key", "data"} message per row, in the batch's (time) order."""
    names = list(columns)
    values = [np.asarray(columns[n]).tolist() for n in names]  # numpy -> Python scalars
    n = len(values[0]) if values else 0
    return [msgpack.packb({"key": key, "data": dict(zip(names, (v[i] for v in values),
                                                        strict=True))}, use_bin_type=True)
            for i in range(n)]


class _Connection:
    """One WebSocket client: its patterns, its outbox and the task that drains it."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.outbox: deque[tuple[bool, bytes]] = deque()  # (is_data, frame)
        self.data_queued = 0
        self.dropped = 0
        self.wake = asyncio.Event()
        self.closed = False

    def push(self, frame: bytes, *, data: bool = True) -> None:
        if self.closed:
            return
        if data:
            if self.data_queued >= MAX_OUTBOX:
                self._drop_oldest_data()
            self.data_queued += 1
        self.outbox.append((data, frame))
        self.wake.set()

    def _drop_oldest_data(self) -> None:
        for i, (is_data, _) in enumerate(self.outbox):
            if is_data:
                del self.outbox[i]
                self.data_queued -= 1
                self.dropped += 1
                if self.dropped in (1, 1000) or self.dropped % 100_000 == 0:
                    log.warning("a /ws client is too slow; %d rows dropped so far", self.dropped)
                return

    async def drain(self) -> None:
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox and not self.closed:
                is_data, frame = self.outbox.popleft()
                if is_data:
                    self.data_queued -= 1
                await self.ws.send_bytes(frame)


class WsEndpoint:
    """The `/ws` handler and its connections, fed by one subscription for all of them."""

    def __init__(self, db: Any, subscribe: Callable[[Callable[[str, Any], None]], Any]) -> None:
        """`subscribe(callback)` starts delivering (key, columns) batches from any thread and
        returns an object with `unsubscribe()`."""
        self.db = db
        self._subscribe = subscribe
        self._conns: dict[_Connection, list[engine.KeyPattern]] = {}
        # Copy-on-write view of _conns for the feed thread (the loop alone mutates _conns).
        self._targets: tuple[tuple[_Connection, list[engine.KeyPattern]], ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feed: Any = None

    # -- the feed (runs on a subscriber thread) --------------------------------------------
    def _on_batch(self, key: str, columns: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        conns = [c for c, patterns in self._targets if any(p.matches(key) for p in patterns)]
        if not conns:
            return
        frames = _row_messages(key, columns)
        try:
            loop.call_soon_threadsafe(self._deliver, conns, frames)
        except RuntimeError:  # the loop closed while we were packing
            pass

    def _deliver(self, conns: list[_Connection], frames: list[bytes]) -> None:
        for c in conns:
            for f in frames:
                c.push(f)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._feed = self._subscribe(self._on_batch)

    async def close(self) -> None:
        if self._feed is not None:
            self._feed.unsubscribe()
            self._feed = None
        for c in list(self._conns):
            c.closed = True
            c.wake.set()
            await c.ws.close(code=1001, message=b"server shutting down")

    # -- one connection --------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=54.0, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        conn = _Connection(ws)
        self._set(conn, [])
        sender = asyncio.create_task(conn.drain())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    self._on_message(conn, msg.data)
                elif msg.type == WSMsgType.TEXT:
                    self._on_message(conn, msg.data.encode("utf-8"))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            conn.closed = True
            conn.wake.set()
            self._conns.pop(conn, None)
            self._targets = tuple(self._conns.items())
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, Exception):
                pass
        return ws

    def _on_message(self, conn: _Connection, raw: bytes) -> None:
        try:
            try:
                msg = decode_body(raw, MSGPACK, MAX_MESSAGE_VALUES)
            except BodyLimitError as exc:
                raise StreamError(str(exc)) from None
            except WireError:
                try:
                    msg = decode_body(raw, JSON, MAX_MESSAGE_VALUES)
                except BodyLimitError as exc:
                    raise StreamError(str(exc)) from None
                except WireError:
                    raise StreamError("message is neither msgpack nor JSON") from None
            if not isinstance(msg, Mapping) or "streams" not in msg:
                raise StreamError('expected {"streams": [patterns]}')
            patterns = parse_streams(msg["streams"])
        except StreamError as exc:
            conn.push(msgpack.packb({"error": str(exc)}, use_bin_type=True), data=False)
            return
        if patterns:  # an empty list changes nothing but is still echoed (MarketStore)
            self._set(conn, patterns)
        conn.push(raw, data=False)

    def _set(self, conn: _Connection, patterns: list[engine.KeyPattern]) -> None:
        self._conns[conn] = patterns
        self._targets = tuple(self._conns.items())
