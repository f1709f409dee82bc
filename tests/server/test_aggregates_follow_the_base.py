"""Aggregates over the server, with the real pymarketstore client: a query of `X/1D/OHLCV`
right after `client.write` to `X/1Min/OHLCV` sees the write (it answered "no files returned
from query parse" until ondiskagg's batching window had passed), and `client.destroy` of a
base destroys the aggregates kept from it (re-creating the base served the old bars). Over
JSON-RPC and gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server.serverproc import ServerProcess, start_server
from server.transports import TRANSPORTS, errors, replies

pymkts = pytest.importorskip("pymarketstore")

T0 = 1_704_187_800  # 2024-01-02 09:30:00 UTC
BAR = [("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"), ("Close", "f4"),
       ("Volume", "i8")]
WINDOW_MS = 400  # long enough that a read racing the window would miss the write


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, transport: str
           ) -> Iterator[ServerProcess]:
    triggers = [{"module": "ondiskagg.so", "on": "*/1Min/OHLCV",
                 "config": {"destinations": ["5Min", "1H", "1D"], "batch_ms": WINDOW_MS}}]
    srv = start_server(tmp_path_factory.mktemp("server"), grpc=True, triggers=triggers)
    try:
        yield srv
    finally:
        rc = srv.stop()
        assert rc == 0, srv.stderr()
        assert "Traceback" not in srv.stderr()


def bar(epoch: int, price: float, volume: int = 100) -> np.ndarray:
    a = np.zeros(1, dtype=BAR)
    a["Epoch"] = epoch
    for c in ("Open", "High", "Low", "Close"):
        a[c] = price
    a["Volume"] = volume
    return a


def day(client: Any, symbol: str) -> Any:
    return client.query(pymkts.Params(symbol, "1D", "OHLCV")).first().array


def test_a_query_of_the_aggregate_right_after_a_write_sees_it(client: Any) -> None:
    assert replies(client.write(bar(T0, 1.0), "NOW/1Min/OHLCV")) == []
    assert day(client, "NOW")["Close"].tolist() == [1.0]
    client.write(bar(T0 + 60, 2.0), "NOW/1Min/OHLCV")
    got = day(client, "NOW")
    assert got["Close"].tolist() == [2.0] and got["Volume"].tolist() == [200]


def test_destroying_the_base_destroys_its_aggregates(client: Any, server: ServerProcess
                                                     ) -> None:
    client.write(np.concatenate([bar(T0, 1.0), bar(T0 + 3600, 1.5)]), "OLD/1Min/OHLCV")
    assert len(day(client, "OLD")) == 1
    assert errors(client.destroy("OLD/1Min/OHLCV")) == [""]
    tbks = client.list_symbols(pymkts.params.ListSymbolsFormat.TBK)
    assert not [k for k in tbks if k.startswith("OLD/")]
    client.write(bar(T0 + 120, 5.0, volume=7), "OLD/1Min/OHLCV")
    got = day(client, "OLD")
    assert got["Open"].tolist() == [5.0] and got["Volume"].tolist() == [7]
    root = Path(server.config).parent / "db"
    assert sorted(p.name for p in (root / "OLD").iterdir()) == ["1D", "1H", "1Min", "5Min"]
