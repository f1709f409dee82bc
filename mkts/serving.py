"""Serving an open database until told to stop: the aiohttp site with gRPC and the metrics
beside it (`_Beside`), started together and stopped together with a grace period for calls
in flight. `mkts start` and `run_in_thread` (server) both run it."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from mkts import engine, wiring
from mkts.config import Config, MetricsAccess
from mkts.httpapp import VERSION, build_app
from mkts.listener import _close_all, _GuardedSite, _listen_error, bind
from mkts.rpc import DataService

if TYPE_CHECKING:
    from mkts.grpcserver import GrpcServer
    from mkts.metrics import Metrics

log = logging.getLogger("mkts.server")

_SHUTDOWN_GRACE_S = 10.0  # in-flight requests get this long after a stop signal


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


def _open(config: Config, beside: _Beside) -> engine.Database:
    """The configured database; its fsyncs timed and its figures reported when metrics are on."""
    if beside.metrics is None:
        return wiring.open_configured(config)
    db = wiring.open_configured(config, fs=beside.metrics.fs)
    beside.metrics.watch(db)
    return db


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host
