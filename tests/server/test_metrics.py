"""`GET /metrics` of a real `mkts start` (docs/server.md "Metrics"): Prometheus text that
counts requests, errors, rows read and written per transport, fsync latency, WAL bytes and
trigger lag; and who may read it (`metrics: loopback | network | off`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from harness.waiting import wait_until
from prometheus_client.parser import text_string_to_metric_families
from server.serverproc import ServerProcess, start_server

pymkts = pytest.importorskip("pymarketstore")

T0 = 1_704_187_800


def bars(n: int) -> np.ndarray:
    a = np.zeros(n, dtype=[("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"),
                           ("Close", "f4"), ("Volume", "i8")])
    a["Epoch"] = T0 + 60 * np.arange(n)
    return a


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    r = requests.get(server.metrics_url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_with_calls_over_both_transports(server: ServerProcess) -> None:
    before = scrape(server)
    rpc = pymkts.Client(server.rpc_url)
    grpc_client = pymkts.Client(server.grpc_target, grpc=True)
    rpc.write(bars(10), "MET/1Min/OHLCV")
    grpc_client.write(bars(4), "MEG/1Min/OHLCV")
    assert len(rpc.query(pymkts.Params("MET", "1Min", "OHLCV")).first().array) == 10
    assert len(grpc_client.query(pymkts.Params("MET", "1Min", "OHLCV", limit=3))
               .first().array) == 3
    with pytest.raises(Exception, match="no files returned"):
        grpc_client.query(pymkts.Params("NONE", "1Min", "OHLCV"))
    bad = np.zeros(1, dtype=[("Epoch", "i8"), ("Flag", "?")])
    rpc.write(bad, "MET/1Min/BOOL")  # a failed item of an answered Write call
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("mkts_requests_total", transport="rpc", method="Write") == 2
    assert moved("mkts_requests_total", transport="grpc", method="Write") == 1
    assert moved("mkts_requests_total", transport="grpc", method="Query") == 2
    assert moved("mkts_request_errors_total", transport="grpc", method="Query") == 1
    assert moved("mkts_request_errors_total", transport="rpc", method="Write") == 1
    assert moved("mkts_rows_written_total", transport="rpc") == 10
    assert moved("mkts_rows_written_total", transport="grpc") == 4
    assert moved("mkts_rows_read_total", transport="rpc") == 10
    assert moved("mkts_rows_read_total", transport="grpc") == 3
    assert moved("mkts_request_seconds_count", transport="rpc", method="Query") == 1
    # wal.sync is always: each committed write fsyncs the log
    assert moved("mkts_fsync_seconds_count") >= 2
    assert value(after, "mkts_wal_bytes") > 0
    assert value(after, "mkts_wal_transactions_total") >= 2
    assert value(after, "mkts_failed") == 0
    assert value(after, "mkts_block_cache_capacity_bytes") == 64 << 20  # storage's default
    assert value(after, "mkts_block_cache_hits_total") == 0  # nothing sealed yet


def test_trigger_lag_and_fired_triggers_are_reported(server: ServerProcess) -> None:
    before = value(scrape(server), "mkts_triggers_fired_total")
    pymkts.Client(server.rpc_url).write(bars(3), "LAG/1Min/OHLCV")  # ondiskagg fires
    assert wait_until(lambda: value(scrape(server), "mkts_triggers_fired_total") > before)
    lag = value(scrape(server), "mkts_trigger_lag_seconds")
    assert 0.0 <= lag < 60.0


def test_a_refused_body_counts_as_an_error(server: ServerProcess) -> None:
    before = value(scrape(server), "mkts_request_errors_total", transport="rpc",
                   method="refused")
    r = requests.post(server.rpc_url, data=b"\0" * (3 << 20),
                      headers={"Content-Type": "application/x-msgpack"}, timeout=30)
    assert "larger than 2 MiB" in r.content.decode(errors="replace")
    after = value(scrape(server), "mkts_request_errors_total", transport="rpc",
                  method="refused")
    assert after == before + 1


def test_metrics_off_answers_404(tmp_path: Path) -> None:
    srv = start_server(tmp_path, metrics="off")
    try:
        r = requests.get(srv.metrics_url, timeout=10)
        assert r.status_code == 404 and "metrics: off" in r.text
        assert pymkts.Client(srv.rpc_url).server_version() == "mkts-0.1.0"
    finally:
        assert srv.stop() == 0
