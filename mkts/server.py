"""The server `mkts start` runs: `POST /rpc` (MarketStore's msgpack JSON-RPC, so the
unmodified pymarketstore client works), `GET /ws` (streaming), `GET /heartbeat` and
`GET /metrics` on aiohttp, and MarketStore's gRPC service when `grpc_listen_port` is set.

Owns startup and a clean stop (`serve`, `run_in_thread`). The transport is split below
it: the HTTP handlers (body limits, content types, the version header, who may read
/metrics) in `mkts.httpapp`, binding and accepting connections (with a backoff when the
process is out of descriptors) in `mkts.listener`, serving until a stop in `mkts.serving`.
The methods live in `mkts.rpc`, the wire formats in `mkts.wire`, the WebSocket protocol in
`mkts.streaming`, gRPC in `mkts.grpcserver`, the counters in `mkts.metrics`. See docs/server.md.

Programmatic use (what `make demo` does)::

    from mkts.server import run_in_thread
    with run_in_thread("mkts.yml", port=0) as srv:      # or an open engine.Database
        client = pymarketstore.Client(srv.rpc_url)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

import mkts
from mkts import engine, wiring
from mkts.config import Config, MetricsAccess
from mkts.httpapp import VERSION, VERSION_HEADER, build_app
from mkts.listener import _close_all, _listen_error, bind
from mkts.serving import _Beside, _bind_grpc, _metrics_for, _open, _serve_until, _shown

if TYPE_CHECKING:
    from mkts.metrics import Metrics

__all__ = ["VERSION", "build_app", "serve", "run_in_thread", "RunningServer", "VERSION_HEADER"]

log = logging.getLogger("mkts.server")


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
