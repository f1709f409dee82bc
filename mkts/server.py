"""The server `mkts start` runs: `POST /rpc` (MarketStore's msgpack JSON-RPC, so the
unmodified pymarketstore client works), `GET /ws` (streaming), `GET /heartbeat` and
`GET /metrics` on aiohttp, and MarketStore's gRPC service when `grpc_listen_port` is set.

Owns transport concerns only: body limits, content types, the version header, threads for
blocking engine calls, accepting connections (with a backoff when the process is out of
descriptors), who may read /metrics, startup and a clean stop. The methods live in
`mkts.rpc`, the wire formats in `mkts.wire`, the WebSocket protocol in `mkts.streaming`,
gRPC in `mkts.grpcserver`, the counters in `mkts.metrics`. See docs/server.md.

Programmatic use (what `make demo` does)::

    from mkts.server import run_in_thread
    with run_in_thread("mkts.yml", port=0) as srv:      # or an open engine.Database
        client = pymarketstore.Client(srv.rpc_url)
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

import mkts
from mkts import engine, wiring
from mkts.config import Config, MetricsAccess
from mkts.rpc import INVALID_REQUEST, DataService, handle_body
from mkts.streaming import WsEndpoint
from mkts.wire import JSON, MSGPACK, encode_body

if TYPE_CHECKING:
    from mkts.grpcserver import GrpcServer
    from mkts.metrics import Metrics

__all__ = ["VERSION", "build_app", "serve", "run_in_thread", "RunningServer", "VERSION_HEADER"]

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
_SHUTDOWN_GRACE_S = 10.0  # in-flight requests get this long after a stop signal
# accept() out of descriptors (or kernel memory): retry after a delay doubling from the
# first value up to the cap; connections wait in the listen backlog meanwhile (and beyond
# the backlog the kernel refuses them).
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_RETRY_S = (0.01, 1.0)
_BACKLOG = 128


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


class _AcceptGuard:
    """Backoff and logging for accept() failing for lack of resources: one log line when an
    episode starts and one when it ends, never one per attempt."""

    def __init__(self) -> None:
        self.since: float | None = None  # start of the current episode
        self.retries = 0
        self.delay = _ACCEPT_RETRY_S[0]
        self.episodes = 0

    def failed(self, exc: OSError) -> float:
        """The delay before the next attempt."""
        if self.since is None:
            self.since = time.monotonic()
            self.retries = 0
            self.delay = _ACCEPT_RETRY_S[0]
            self.episodes += 1
            log.error("cannot accept connections: %s; retrying with a backoff up to %g s "
                      "(connections wait in the listen backlog). Raise the open-file limit "
                      "(ulimit -n) or lower storage.max_open_files", exc.strerror or exc,
                      _ACCEPT_RETRY_S[1])
        else:
            self.delay = min(_ACCEPT_RETRY_S[1], self.delay * 2)
        self.retries += 1
        return self.delay

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("accepting connections again after %.1f s (%d retries)",
                        time.monotonic() - self.since, self.retries)
            self.since = None


class _Listener:
    """What a site's `_server` must offer aiohttp (`sockets`, `close`): the listening
    sockets and the tasks accepting on them."""

    def __init__(self, sockets: list[socket.socket], tasks: list[asyncio.Task[None]]) -> None:
        self.sockets = sockets
        self._tasks = tasks

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for t in self._tasks:
            t.cancel()
        for sock in self.sockets:
            if sock.fileno() >= 0:
                # Drop a pending sock_accept's reader before the descriptor can be reused.
                loop.remove_reader(sock.fileno())
                sock.close()


class _GuardedSite(web.BaseSite):
    """aiohttp's TCPSite with an accept loop of our own. asyncio's (3.11) keeps calling
    accept() after EMFILE for every pending connection and schedules a retry for each, which
    spins and logs without bound; this one backs off (`_AcceptGuard`)."""

    __slots__ = ("_host", "_port", "_sockets", "guard")

    def __init__(self, runner: web.BaseRunner, host: str, sockets: list[socket.socket]) -> None:
        """`sockets` come bound from `bind()`; the site makes them listen when it starts
        (until then a connection is refused) and closes them when it stops."""
        super().__init__(runner, backlog=_BACKLOG)
        self._host = host
        self._sockets = sockets
        self._port = sockets[0].getsockname()[1] if sockets else 0
        self.guard = _AcceptGuard()

    @property
    def name(self) -> str:
        shown = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{shown}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        sockets = self._sockets
        for sock in sockets:
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        tasks = [loop.create_task(self._accept(loop, sock)) for sock in sockets]
        self._server = _Listener(sockets, tasks)  # type: ignore[assignment]

    async def _accept(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        factory = self._runner.server
        assert factory is not None
        guard = self.guard
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except ConnectionAbortedError:
                continue  # the client gave up before we took the connection
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                await asyncio.sleep(guard.failed(exc))
                continue
            guard.recovered()
            try:
                await loop.connect_accepted_socket(factory, conn)
            except (OSError, RuntimeError) as exc:  # the connection died at once
                log.debug("dropped a new connection: %r", exc)
                conn.close()


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to host:port (every address the name resolves to), as asyncio's
    create_server makes them, not listening yet. Binding first is how a start finds a busy
    port before it opens (or creates) anything; the caller closes them if it gives up."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and sockets[:-1]:  # one port for every address
                addr = (addr[0], sockets[0].getsockname()[1], *addr[2:])
            sock.bind(addr)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


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


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


@dataclass
class _Beside:
    """What serves beside /rpc and /ws: the gRPC server (bound, started with the site) and
    the metrics (counting both transports)."""

    grpc: GrpcServer | None = None
    metrics: Metrics | None = None
    metrics_access: MetricsAccess = "loopback"

    def start_grpc(self, db: engine.Database) -> None:
        if self.grpc is None:
            return
        from mkts.grpcserver import MarketstoreService

        m = self.metrics
        service = m.service(db, VERSION, "grpc") if m is not None else DataService(db, VERSION)
        self.grpc.start(MarketstoreService(
            service, refused=None if m is None else lambda _method: m.refused("grpc")))

    def close_grpc(self) -> None:
        if self.grpc is not None:
            self.grpc.close(_SHUTDOWN_GRACE_S)


def _bind_grpc(host: str, port: int, max_request_mb: float, port_option: str) -> GrpcServer:
    """A gRPC server bound to host:port, or OSError saying why it cannot be."""
    try:
        from mkts.grpcserver import GrpcServer
    except ImportError as exc:
        raise OSError(f"grpc_listen_port needs the grpcio and protobuf packages ({exc}); "
                      "install mkts[server], or remove grpc_listen_port") from None
    try:
        return GrpcServer(host, port, max_request_mb)
    except RuntimeError:
        pass
    try:  # grpc does not say why; a plain bind of the same address does
        _close_all(bind(host, port))
    except OSError as exc:
        raise OSError(exc.errno, "gRPC: " + _listen_error(host, port, exc, port_option)) \
            from None
    raise OSError(f"gRPC: cannot listen on {host}:{port}")


def _metrics_for(access: MetricsAccess) -> Metrics | None:
    """The counters of a server whose /metrics is `access`; OSError if they cannot be kept."""
    if access == "off":
        return None
    from mkts.metrics import Metrics, available

    problem = available()
    if problem is not None:
        raise OSError(problem)
    return Metrics()


async def _serve_until(db: engine.Database, host: str, sockets: list[socket.socket],
                       max_request_mb: float, stopped: Callable[[], Awaitable[object]],
                       ready: Callable[[str, int], None], beside: _Beside) -> None:
    """Serve on `sockets` (from `bind`, closed here whatever happens) and start `beside`'s
    gRPC server until `stopped()`; then both stop taking calls at once and finish theirs."""
    try:
        app = build_app(db, max_request_mb=max_request_mb, metrics=beside.metrics,
                        metrics_access=beside.metrics_access)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE_S)
        await runner.setup()
    except BaseException:
        _close_all(sockets)
        beside.close_grpc()
        raise
    try:
        site = _GuardedSite(runner, host, sockets)
        await site.start()
        beside.start_grpc(db)
        addr = runner.addresses[0]
        ready(str(addr[0]), int(addr[1]))
        await stopped()
        log.info("stopping: no new requests; finishing the ones in flight")
        if beside.grpc is not None:
            beside.grpc.stop(_SHUTDOWN_GRACE_S)
    finally:
        await runner.cleanup()
        _close_all(sockets)  # when the site never started; closing twice is harmless
        await asyncio.get_running_loop().run_in_executor(None, beside.close_grpc)


def _listen_error(host: str, port: int, exc: OSError, port_option: str = "--port") -> str:
    """`cannot listen on HOST:PORT: <why>`, with what to do for the usual causes."""
    text = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    if exc.errno == errno.EADDRINUSE:
        text += (f"; another process uses port {port}: stop it, or pick another port with "
                 f"{port_option} (0 picks a free one)")
    elif exc.errno == errno.EACCES and 0 < port < 1024:
        text += f"; port {port} needs privileges: pick one from 1024 up with {port_option}"
    elif isinstance(exc, socket.gaierror):
        text += "; set listen_host (or --host) to an address or name of this machine"
    return text


# -- `mkts start` --------------------------------------------------------------------------
def serve(config: Config, *, host: str | None = None, port: int | None = None,
          grpc_port: int | None = None) -> int:
    """Run the server of a loaded config until SIGINT/SIGTERM; the exit status. `host`,
    `port` and `grpc_port` override the config's `listen_host`, `listen_port` and
    `grpc_listen_port` (0 picks a free port).

    Order (docs/design.md §6): bind the ports (a busy one fails here, before anything is
    opened or created), open the database (lock, replay, plugins, workers), then listen.
    On a signal: stop listening, finish requests in flight, close /ws clients, then close
    the database (drain triggers, stop workers, checkpoint)."""
    host = host if host is not None else config.listen_host
    port = port if port is not None else config.listen_port
    grpc_port = grpc_port if grpc_port is not None else config.grpc_listen_port
    max_mb = float(config.max_request_mb)
    try:
        sockets = bind(host, port)
    except OSError as exc:
        print(f"mkts start: {_listen_error(host, port, exc)}", file=sys.stderr)
        return 1
    beside = _Beside(metrics_access=config.metrics)
    try:
        if grpc_port is not None:
            beside.grpc = _bind_grpc(host, grpc_port, max_mb, "--grpc-port")
        beside.metrics = _metrics_for(config.metrics)
    except OSError as exc:
        _close_all(sockets)
        beside.close_grpc()
        print(f"mkts start: {exc.strerror or exc}", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        db = _open(config, beside)
    except BaseException:
        _close_all(sockets)
        beside.close_grpc()
        raise
    log.info("opened %s in %.2f s", db.root, time.monotonic() - started)
    status = 0
    try:
        status = asyncio.run(_main(db, host, port, sockets, max_mb, beside))
    finally:
        _close_all(sockets)  # already closed when the server ran; closing twice is harmless
        log.info("closing the database (draining triggers, stopping workers, checkpoint)")
        try:
            db.close()
        except Exception as exc:
            log.error("closing the database failed: %s", exc)
            status = 1
    failed = db.stats()["failed"]
    if failed is not None:
        log.error("stopped after a failure: the database refused writes since an I/O error "
                  "(%s); open it again to replay the log", failed)
        status = 1
    if status == 0:
        log.info("stopped cleanly")
    return status


def _open(config: Config, beside: _Beside) -> engine.Database:
    """The configured database; its fsyncs timed and its figures reported when metrics are on."""
    if beside.metrics is None:
        return wiring.open_configured(config)
    db = wiring.open_configured(config, fs=beside.metrics.fs)
    beside.metrics.watch(db)
    return db


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _main(db: engine.Database, host: str, port: int, sockets: list[socket.socket],
                max_mb: float, beside: _Beside) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(h: str, p: int) -> None:
        if beside.grpc is not None:
            print(f"mkts {mkts.__version__} serving gRPC on {_shown(h)}:{beside.grpc.port}",
                  flush=True)
            log.info("serving gRPC (%s) on %s:%d", "proto.Marketstore", _shown(h),
                     beside.grpc.port)
        print(f"mkts {mkts.__version__} listening on http://{_shown(h)}:{p} (root {db.root})",
              flush=True)
        log.info("listening on http://%s:%d", _shown(h), p)

    try:
        await _serve_until(db, host, sockets, max_mb, stop.wait, ready, beside)
    except OSError as exc:  # listen() lost a race for the port bound above
        print(f"mkts start: {_listen_error(host, port, exc)}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


# -- in a thread (tests, demos, notebooks) -------------------------------------------------
class RunningServer:
    """A server on a background thread. `url` / `rpc_url` / `ws_url` / `metrics_url`, and
    `grpc_target` when it serves gRPC; `stop()` (or leaving the `with` block) stops it and
    closes the database if it opened it."""

    def __init__(self) -> None:
        self.host = ""
        self.port = 0
        self.grpc_port: int | None = None
        self.db: engine.Database | None = None
        self.metrics: Metrics | None = None
        self._owns_db = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{_shown(self.host)}:{self.port}"

    @property
    def rpc_url(self) -> str:
        return self.url + "/rpc"

    @property
    def ws_url(self) -> str:
        return f"ws://{_shown(self.host)}:{self.port}/ws"

    @property
    def metrics_url(self) -> str:
        return self.url + "/metrics"

    @property
    def grpc_target(self) -> str:
        """`host:port` for `pymarketstore.Client(target, grpc=True)`."""
        if self.grpc_port is None:
            raise RuntimeError("this server does not serve gRPC; pass grpc_port= to "
                               "run_in_thread")
        return f"{_shown(self.host)}:{self.grpc_port}"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the loop already ended
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._owns_db and self.db is not None:
            self.db.close()
            self._owns_db = False

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(target: str | os.PathLike[str] | Config | engine.Database, *,
                  host: str | None = None, port: int | None = 0,
                  max_request_mb: float | None = None, timeout: float = 30.0,
                  grpc_port: int | None = None,
                  metrics: MetricsAccess | None = None) -> RunningServer:
    """Serve `target` (a path to mkts.yml, a loaded config, or an open `engine.Database`)
    on a background thread; returns once it listens. `port=0` picks a free port; `None`
    takes the config's `listen_port`. gRPC is served only when `grpc_port` is given (0
    picks a free port). `metrics` ("loopback", "network", "off") defaults to the config's
    (else "loopback"); fsyncs are timed only for a database opened here.

    A database passed in stays open after `stop()`; one opened from a config is closed,
    and is opened only once the ports are bound (a busy port is an OSError before the root
    is created)."""
    srv = RunningServer()
    config: Config | None = None
    if not isinstance(target, engine.Database):
        config = wiring.load_config(os.fspath(target)) if isinstance(target, (str, os.PathLike)) \
            else target
    h = host if host is not None else (
        config.listen_host if config is not None else wiring.DEFAULT_HOST)
    p = port if port is not None else (
        config.listen_port if config is not None else wiring.DEFAULT_PORT)
    mb = max_request_mb if max_request_mb is not None else float(
        config.max_request_mb if config is not None else wiring.DEFAULT_MAX_REQUEST_MB)
    access: MetricsAccess = metrics if metrics is not None else (
        config.metrics if config is not None else "loopback")
    try:
        sockets = bind(h, p)
    except OSError as exc:
        raise OSError(exc.errno, _listen_error(h, p, exc, "port=")) from exc
    beside = _Beside(metrics_access=access)
    try:
        if grpc_port is not None:
            beside.grpc = _bind_grpc(h, grpc_port, mb, "grpc_port=")
            srv.grpc_port = beside.grpc.port
        beside.metrics = srv.metrics = _metrics_for(access)
        if isinstance(target, engine.Database):
            srv.db = target
            if beside.metrics is not None:
                beside.metrics.watch(target)
        else:
            assert config is not None
            srv.db = _open(config, beside)
            srv._owns_db = True
    except BaseException:
        _close_all(sockets)
        beside.close_grpc()
        raise
    db = srv.db

    def ready(rh: str, rp: int) -> None:
        srv.host, srv.port = rh, rp
        srv._ready.set()

    def main() -> None:
        async def go() -> None:
            srv._loop = asyncio.get_running_loop()
            srv._stop = asyncio.Event()
            await _serve_until(db, h, sockets, mb, srv._stop.wait, ready, beside)

        try:
            asyncio.run(go())
        except BaseException as exc:  # reported to the caller of run_in_thread
            srv._error = exc
            srv._ready.set()

    srv._thread = threading.Thread(target=main, name="mkts-server", daemon=True)
    srv._thread.start()
    if not srv._ready.wait(timeout) or srv._error is not None:
        error = srv._error
        srv.stop()
        if isinstance(error, OSError):
            raise OSError(error.errno, _listen_error(h, p, error, "port=")) from error
        raise RuntimeError(f"the server did not start: {error or 'timed out'}") from error
    return srv
