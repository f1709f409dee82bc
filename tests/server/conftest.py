"""Fixtures for the server tier: the module-scoped `server` (one real `mkts start` per test
module and transport, serving /rpc and gRPC, stopped with SIGTERM and checked to exit 0) and a
pymarketstore `client` for it over the module's `transport`.

A module whose tests run over both transports overrides `transport`::

    @pytest.fixture(scope="module", params=TRANSPORTS)
    def transport(request: pytest.FixtureRequest) -> str:
        return str(request.param)

(each transport then gets a server of its own, so the tests' data never meet)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from server.serverproc import ServerProcess, start_server
from server.transports import connect


@pytest.fixture(scope="module")
def transport() -> str:
    """The transport of `client`: JSON-RPC unless the module asks for both."""
    return "jsonrpc"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, transport: str
           ) -> Iterator[ServerProcess]:
    """One server per test module (and transport): aggregation (5Min, 1H, 1D) and streaming
    configured, requests up to 2 MiB, gRPC on a free port."""
    srv = start_server(tmp_path_factory.mktemp("server"), grpc=True, max_request_mb=2)
    try:
        yield srv
    finally:
        rc = srv.stop()
        err = srv.stderr()
        assert rc == 0, err
        assert "Traceback" not in err, err
        assert "Warning" not in err, err  # e.g. aiohttp or numpy deprecations


@pytest.fixture(scope="module")
def client(server: ServerProcess, transport: str) -> Any:
    return connect(server, transport)
