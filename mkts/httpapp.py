"""The server's aiohttp application: the `POST /rpc` handler (body limit, content types),
`GET /heartbeat`, `GET /metrics` (who may read it), the `/ws` route, the version header and
quieter logs of client errors. Listening is listener's, startup and stop server's."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from aiohttp import web

import mkts
from mkts import engine, wiring
from mkts.config import MetricsAccess
from mkts.rpc import INVALID_REQUEST, DataService, handle_body
from mkts.streaming import WsEndpoint
from mkts.wire import JSON, MSGPACK, encode_body

if TYPE_CHECKING:
    from mkts.metrics import Metrics

log = logging.getLogger("mkts.server")

VERSION = f"mkts-{mkts.__version__}"
VERSION_HEADER = "Marketstore-Version"
_CONTENT_TYPES = {
    "application/x-msgpack": MSGPACK,
    "application/msgpack": MSGPACK,
    "application/json": JSON,
}
_MIME = {MSGPACK: "application/x-msgpack", JSON: "application/json"}
_READ_CHUNK = 1 << 16


class _Handlers:
    def __init__(self, db: engine.Database, max_request_bytes: int, executor: ThreadPoolExecutor,
                 ws: WsEndpoint, metrics: Metrics | None = None,
                 metrics_access: MetricsAccess = "loopback") -> None:
        self.service = metrics.service(db, VERSION, "rpc") if metrics is not None \
            else DataService(db, VERSION)
        self.max_request_bytes = max_request_bytes
        self.executor = executor
        self.ws = ws
        self.metrics = metrics
        self.metrics_access = metrics_access
        self.started = time.monotonic()
        self.stopping = False

    async def rpc(self, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(status=200)
        if request.method != "POST":
            return web.Response(status=405, text=f"rpc: POST method required, received "
                                f"{request.method}", headers={"Allow": "POST, HEAD"})
        raw_type = request.headers.get("Content-Type")
        if not raw_type:
            return web.Response(status=415, text="rpc: missing Content-Type; send "
                                "application/x-msgpack or application/json")
        kind = _CONTENT_TYPES.get(raw_type.split(";")[0].strip().lower())
        if kind is None:
            return web.Response(status=415, text=f"rpc: unrecognized Content-Type: {raw_type}")
        try:
            body = await self._read_body(request)
        except Exception as exc:  # the client went away or sent a broken body
            log.debug("could not read a request body from %s: %r", request.remote, exc)
            return web.Response(status=400, text=f"rpc: could not read the request body: {exc}")
        if body is None:
            limit_mb = self.max_request_bytes / (1 << 20)
            error = {"jsonrpc": "2.0", "id": None, "error": {
                "code": INVALID_REQUEST, "data": None,
                "message": f"request body is larger than {limit_mb:g} MiB (max_request_mb in "
                           "mkts.yml); split the write into smaller requests"}}
            log.warning("refused a request body over %g MiB from %s", limit_mb, request.remote)
            if self.metrics is not None:
                self.metrics.refused("rpc")
            return web.Response(body=encode_body(error, kind), content_type=_MIME[kind],
                                headers={"Connection": "close"})
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(self.executor, handle_body, self.service, body, kind)
        return web.Response(body=out, content_type=_MIME[kind])

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The whole body, or None when it is over the limit (the rest is left unread)."""
        limit = self.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        buf = bytearray()
        async for chunk in request.content.iter_chunked(_READ_CHUNK):
            buf += chunk
            if len(buf) > limit:
                return None
        return bytes(buf)

    async def metrics_text(self, request: web.Request) -> web.Response:
        """Prometheus' text format; for clients on this machine unless `metrics: network`."""
        if self.metrics is None:
            return web.Response(status=404, text="metrics are off (metrics: off in mkts.yml)")
        if self.metrics_access != "network" and not _is_loopback(request.remote):
            return web.Response(status=403, text="metrics are served to clients on this "
                                "machine only; set metrics: network in mkts.yml to serve them "
                                "to every client that can reach the port")
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def heartbeat(self, request: web.Request) -> web.Response:
        status = "not queryable" if self.stopping else "queryable"
        return web.json_response(
            {"status": status, "version": VERSION, "uptime": f"{time.monotonic() - self.started:.0f}s"},
            status=503 if self.stopping else 200)


class _QuietClientErrors(logging.Filter):
    """aiohttp logs a traceback at ERROR for every malformed request or dropped connection;
    those are the client's problem (it got a 400), so they are logged at DEBUG instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        from aiohttp import http_exceptions

        if isinstance(exc, (http_exceptions.HttpProcessingError, ConnectionError)):
            log.debug("bad request or dropped connection: %s", " ".join(str(exc).split()))
            return False
        return True


_quiet = _QuietClientErrors()


def _is_loopback(remote: str | None) -> bool:
    """Whether a peer address is this machine (127.0.0.0/8, ::1, ::ffff:127.x)."""
    try:
        ip = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


async def _version_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[VERSION_HEADER] = VERSION


def build_app(db: engine.Database, *, max_request_mb: float = wiring.DEFAULT_MAX_REQUEST_MB,
              executor: ThreadPoolExecutor | None = None, metrics: Metrics | None = None,
              metrics_access: MetricsAccess = "loopback") -> web.Application:
    """The aiohttp application serving `db` (which the caller keeps open and closes).
    With `metrics` (a `mkts.metrics.Metrics` watching `db`) /rpc calls are counted and
    `GET /metrics` serves them to the clients `metrics_access` allows; without, /metrics
    answers 404."""
    max_bytes = int(max_request_mb * (1 << 20))
    pool = executor or ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4),
                                          thread_name_prefix="mkts-rpc")
    ws = WsEndpoint(db, wiring.stream_subscriber(db))
    handlers = _Handlers(db, max_bytes, pool, ws, metrics, metrics_access)
    app = web.Application(client_max_size=max_bytes + 1)
    server_log = logging.getLogger("aiohttp.server")
    if _quiet not in server_log.filters:
        server_log.addFilter(_quiet)
    app.router.add_route("*", "/rpc", handlers.rpc)
    app.router.add_get("/ws", ws.handle)
    app.router.add_get("/heartbeat", handlers.heartbeat)
    app.router.add_get("/metrics", handlers.metrics_text)
    app.on_response_prepare.append(_version_header)

    async def on_startup(app: web.Application) -> None:
        await ws.start()

    async def on_shutdown(app: web.Application) -> None:
        handlers.stopping = True
        await ws.close()

    async def on_cleanup(app: web.Application) -> None:
        if executor is None:
            pool.shutdown(wait=True)

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app
