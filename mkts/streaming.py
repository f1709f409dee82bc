"""`GET /ws`: MarketStore's streaming protocol over aiohttp WebSockets.

A client sends `{"streams": ["AAPL/1Min/OHLCV", "*/1D/*"]}` (msgpack; each stream a key
pattern, engine.patterns), the server echoes the message, then pushes
`{"key": "SYM/TF/ATTR", "data": {column: value}}` for every new row of a matching bucket.
An invalid stream is refused on its own (`{"key": stream, "error": ..., "data": {"error":
...}}`, keyed so that pymarketstore's StreamConn does not drop it, and logged); the valid
ones of the message are subscribed and echoed. Rows come from the stream trigger's hub (`mkts.plugins.stream`), or from
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

__all__ = ["WsEndpoint", "parse_streams", "split_streams", "StreamRefusal", "StreamError",
           "MAX_OUTBOX"]

log = logging.getLogger("mkts.server")

MAX_OUTBOX = 10_000  # data messages queued per connection before the oldest are dropped
MAX_STREAMS = 1_000  # patterns in one subscribe message
MAX_MESSAGE = 1 << 20  # bytes in one client message
# values in one client message (a map, its keys, the list and its patterns, with slack):
# decoding never builds more than this (docs/server.md "Limits and defence")
MAX_MESSAGE_VALUES = 2 * MAX_STREAMS + 64
MAX_REFUSALS_LOGGED = 10  # refused subscribe messages logged per connection


class StreamError(ValueError):
    """A subscribe message that cannot be honoured; the text goes back as {"error": ...}."""


class StreamRefusal:
    """One stream of a subscribe message that is not a valid pattern: `stream` is the entry
    as sent (text; a non-text entry as its repr), `error` says why."""

    __slots__ = ("stream", "error")

    def __init__(self, stream: str, error: str) -> None:
        self.stream = stream
        self.error = error


def split_streams(streams: Any) -> tuple[list[engine.KeyPattern], list[str],
                                          list[StreamRefusal]]:
    """Sort a `streams` list into (patterns, their texts as sent, refusals): each entry is
    a key pattern, and an entry that is not one is refused on its own. MarketStore's clients
    spell a list of alternatives with gobwas braces, `{AAPL,MSFT}/1Min/OHLCV`; a part that
    is one brace group is read as the list it holds. A `streams` that is no list, or too
    long, is a StreamError for the whole message."""
    if not isinstance(streams, list):
        raise StreamError("streams must be a list of patterns like 'AAPL/1Min/OHLCV'")
    if len(streams) > MAX_STREAMS:
        raise StreamError(f"{len(streams)} streams in one message; at most {MAX_STREAMS}")
    patterns: list[engine.KeyPattern] = []
    texts: list[str] = []
    refused: list[StreamRefusal] = []
    for s in streams:
        if not isinstance(s, str):
            refused.append(StreamRefusal(repr(s), f"{s!r} is an invalid stream: a stream is "
                                         "a text like 'AAPL/1Min/OHLCV'"))
            continue
        text = "/".join(p[1:-1] if p.startswith("{") and p.endswith("}") else p
                        for p in s.split("/"))
        try:
            patterns.append(engine.parse_pattern(text))
        except engine.InvalidKeyError as exc:
            refused.append(StreamRefusal(s, f"{s} is an invalid stream: {exc}"))
            continue
        texts.append(s)
    return patterns, texts, refused


def parse_streams(streams: Any) -> list[engine.KeyPattern]:
    """The patterns of a `streams` list (`split_streams`), all or nothing: the first
    invalid entry is a StreamError."""
    patterns, _, refused = split_streams(streams)
    if refused:
        raise StreamError(refused[0].error)
    return patterns


def _refusal_message(r: StreamRefusal) -> bytes:
    """The reply to one invalid stream. It carries a `key` (the stream as sent) because
    pymarketstore's StreamConn drops every message without one, and the error under `data`
    as well, where its handlers (`print(msg["data"])`) look."""
    frame: bytes = msgpack.packb({"key": r.stream, "error": r.error,
                                  "data": {"error": r.error}}, use_bin_type=True)
    return frame


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

    def __init__(self, ws: web.WebSocketResponse, remote: str | None = None) -> None:
        self.ws = ws
        self.remote = remote or "?"
        self.refusals_logged = 0
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
        conn = _Connection(ws, request.remote)
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
            patterns, texts, refused = split_streams(msg["streams"])
        except StreamError as exc:
            self._log_refusal(conn, f"refused a subscribe message: {str(exc)!r}")
            conn.push(msgpack.packb({"error": str(exc)}, use_bin_type=True), data=False)
            return
        if patterns:  # an empty list changes nothing but is still echoed (MarketStore)
            self._set(conn, patterns)
        if not refused:
            conn.push(raw, data=False)
            return
        # Subscribed before these are queued: a client that has read its error gets the rows
        # of its valid streams from then on.
        shown = "; ".join(repr(r.error) for r in refused[:3])
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        self._log_refusal(conn, f"refused {len(refused)} of {len(refused) + len(patterns)} "
                                f"stream(s): {shown}{more}")
        for r in refused:
            conn.push(_refusal_message(r), data=False)
        if patterns:  # the echo says what is subscribed now
            conn.push(msgpack.packb({"streams": texts}, use_bin_type=True), data=False)

    @staticmethod
    def _log_refusal(conn: _Connection, text: str) -> None:
        """One warning per refused message, up to MAX_REFUSALS_LOGGED per connection (a
        client repeating a bad subscription cannot fill the log). Texts from the client are
        logged as reprs: a newline in a stream never starts a log line."""
        conn.refusals_logged += 1
        if conn.refusals_logged > MAX_REFUSALS_LOGGED:
            return
        last = (" (further refusals for this connection are not logged)"
                if conn.refusals_logged == MAX_REFUSALS_LOGGED else "")
        log.warning("/ws client %s: %s%s", conn.remote, text, last)

    def _set(self, conn: _Connection, patterns: list[engine.KeyPattern]) -> None:
        self._conns[conn] = patterns
        self._targets = tuple(self._conns.items())
