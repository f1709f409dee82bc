"""Who may read `GET /metrics` (docs/server.md "Metrics"): with `metrics: loopback` (the
default) only clients on this machine, whatever `listen_host` is; with `metrics: network`
every client that reaches the port. The peer address is set on a mocked request, since a test
machine may have no other address to connect from."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from mkts.metrics import Metrics
from mkts.server import build_app


def get_metrics(app: web.Application, peer: str) -> web.Response:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default)

    async def go() -> web.Response:
        request = make_mocked_request("GET", "/metrics", app=app, transport=transport)
        match = await app.router.resolve(request)
        response: web.Response = await match.handler(request)
        return response

    return asyncio.run(go())


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_peers_read_the_metrics(db: Any, peer: str) -> None:
    metrics = Metrics()
    metrics.watch(db)
    response = get_metrics(build_app(db, metrics=metrics), peer)
    assert response.status == 200
    assert response.body is not None and b"mkts_wal_bytes" in bytes(response.body)


@pytest.mark.parametrize("peer", ["10.1.2.3", "192.168.0.7", "2001:db8::1", "::ffff:10.0.0.1",
                                  "garbage"])
def test_other_peers_are_refused_unless_network_is_configured(db: Any, peer: str) -> None:
    response = get_metrics(build_app(db, metrics=Metrics()), peer)
    assert response.status == 403
    assert "set metrics: network in mkts.yml" in str(response.text)
    network = get_metrics(build_app(db, metrics=Metrics(), metrics_access="network"), peer)
    assert network.status == 200


def test_without_metrics_the_endpoint_is_404(db: Any) -> None:
    assert get_metrics(build_app(db), "127.0.0.1").status == 404
