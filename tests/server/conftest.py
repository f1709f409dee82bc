"""Fixtures for the server tier: the module-scoped `server` (one real `mkts start` per test
module, stopped with SIGTERM and checked to exit 0) and a pymarketstore `client` for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from server.serverproc import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per test module: aggregation (5Min, 1H, 1D) and streaming configured,
    requests up to 2 MiB."""
    srv = start_server(tmp_path_factory.mktemp("server"), max_request_mb=2)
    try:
        yield srv
    finally:
        rc = srv.stop()
        err = srv.stderr()
        assert rc == 0, err
        assert "Traceback" not in err, err
        assert "Warning" not in err, err  # e.g. aiohttp or numpy deprecations


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    import pymarketstore

    return pymarketstore.Client(server.rpc_url)
