"""The server's Prometheus metrics (`GET /metrics`, docs/server.md "Metrics"): requests,
errors and their durations per transport and method, rows read and written, fsync latency,
and the database's own figures (trigger lag, WAL bytes) read when scraped.

Owns counting and the text format (prometheus-client, a registry per server); who may read
it is the server's business (mkts.server), what the methods do is mkts.rpc's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mkts import engine
from mkts.rpc import DataService
from mkts.wal.fs import OsFile, OsFileSystem

__all__ = ["Metrics", "MeteredDataService", "TimedFileSystem", "available"]

_METHODS = ("Query", "Write", "Create", "Destroy", "ListSymbols", "GetInfo")
# request durations: 1 ms .. 60 s; fsyncs: 0.1 ms .. 10 s
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0)
_FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                  0.5, 1.0, 2.5, 10.0)


def available() -> str | None:
    """None when prometheus-client can be imported, else what to do about it."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return ("GET /metrics needs the prometheus-client package: install mkts[server], or "
                "set metrics: off in mkts.yml")
    return None


class Metrics:
    """The counters of one server. Thread-safe (prometheus-client's are)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("transport", "method")
        self.requests = Counter("mkts_requests", "Calls of a data method (DataService over "
                                "/rpc, proto.Marketstore over gRPC), answered or failed",
                                labels, registry=self.registry)
        self.errors = Counter("mkts_request_errors", "Failed calls, failed items of a "
                              "Write/Create/Destroy/GetInfo call, and refused request bodies "
                              "(method \"refused\")", labels, registry=self.registry)
        self.seconds = Histogram("mkts_request_seconds", "Time to answer a data method call",
                                 labels, buckets=_REQUEST_BUCKETS, registry=self.registry)
        self.rows_read = Counter("mkts_rows_read", "Rows returned by Query calls",
                                 ("transport",), registry=self.registry)
        self.rows_written = Counter("mkts_rows_written", "Rows of Write requests that were "
                                    "committed", ("transport",), registry=self.registry)
        self.fsync_seconds = Histogram("mkts_fsync_seconds", "Duration of each fsync of a log "
                                       "segment, data file or directory", buckets=_FSYNC_BUCKETS,
                                       registry=self.registry)
        self.fs = TimedFileSystem(self.fsync_seconds.observe)

    def watch(self, db: engine.Database) -> None:
        """Report `db`'s own figures (read from `db.stats()` at each scrape)."""
        self.registry.register(_DatabaseCollector(db))

    def service(self, db: engine.Database, version: str, transport: str) -> MeteredDataService:
        return MeteredDataService(db, version, self, transport)

    def refused(self, transport: str) -> None:
        """A request body refused before any method ran (too large, too many values)."""
        self.requests.labels(transport, "refused").inc()
        self.errors.labels(transport, "refused").inc()

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of a scrape."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MeteredDataService(DataService):
    """DataService that counts its calls into `metrics` under `transport` ("rpc", "grpc")."""

    def __init__(self, db: engine.Database, version: str, metrics: Metrics,
                 transport: str) -> None:
        super().__init__(db, version)
        self.metrics = metrics
        self.transport = transport

    def call(self, method: Any, params: Mapping[str, Any]) -> Any:
        name = method.partition(".")[2] if isinstance(method, str) else ""
        name = name if name in _METHODS else "unknown"  # bounded label values
        m, labels = self.metrics, (self.transport, name)
        started = time.perf_counter()
        try:
            result = super().call(method, params)
        except BaseException:
            m.errors.labels(*labels).inc()
            raise
        finally:
            m.requests.labels(*labels).inc()
            m.seconds.labels(*labels).observe(time.perf_counter() - started)
        failed = _failed_items(name, result)
        if failed:
            m.errors.labels(*labels).inc(failed)
        if name == "Query":
            rows = sum(int(r["result"]["length"]) for r in result["responses"])
            m.rows_read.labels(self.transport).inc(rows)
        return result

    def _write_one(self, req: Mapping[str, Any]) -> None:
        super()._write_one(req)
        dataset = req.get("dataset")
        length = dataset.get("length") if isinstance(dataset, Mapping) else 0
        if isinstance(length, int) and length > 0:
            self.metrics.rows_written.labels(self.transport).inc(length)


def _failed_items(name: str, result: Any) -> int:
    if not isinstance(result, Mapping) or name not in ("Write", "Create", "Destroy", "GetInfo"):
        return 0
    items = result.get("responses") or ()
    if name == "GetInfo":
        return sum(1 for r in items if r.get("ServerResp", {}).get("error"))
    return sum(1 for r in items if r.get("error"))


class _DatabaseCollector:
    """Figures the database keeps itself, read at scrape time."""

    def __init__(self, db: engine.Database) -> None:
        self.db = db

    def describe(self) -> list[Any]:
        return []  # unchecked collector: its names are fixed and do not clash

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            stats = self.db.stats()
        except Exception:  # closed while being scraped: nothing to report
            return
        gauges: list[tuple[str, str, Callable[[dict[str, Any]], float]]] = [
            ("mkts_trigger_lag_seconds", "Age of the oldest committed write the triggers and "
             "subscribers have not finished with (0 when they are idle)",
             lambda s: float(s.get("trigger_lag_s", 0.0))),
            ("mkts_wal_bytes", "Bytes in the live write-ahead log segments",
             lambda s: float(s["wal_bytes"])),
            ("mkts_open_files", "Year files open now", lambda s: float(s["open_files"])),
            ("mkts_block_cache_bytes", "Bytes of decoded sealed chunks kept (docs/format.md "
             "\"The decoded block cache\")", lambda s: float(s.get("block_cache_bytes", 0))),
            ("mkts_block_cache_capacity_bytes", "The block cache's bound in bytes (0: off)",
             lambda s: float(s.get("block_cache_capacity", 0))),
            ("mkts_failed", "1 once an I/O error made the database refuse writes",
             lambda s: 0.0 if s["failed"] is None else 1.0),
        ]
        for name, text, get in gauges:
            yield GaugeMetricFamily(name, text, value=get(stats))
        yield CounterMetricFamily("mkts_triggers_fired", "Trigger fire() calls that returned",
                                  value=float(stats["triggers_fired"]))
        yield CounterMetricFamily("mkts_trigger_errors", "Trigger fire() calls that raised",
                                  value=float(stats["trigger_errors"]))
        for what in ("hits", "misses"):
            yield CounterMetricFamily(f"mkts_block_cache_{what}", f"Sealed chunks a read "
                                      f"{'found in' if what == 'hits' else 'decoded into'} "
                                      "the block cache",
                                      value=float(stats.get(f"block_cache_{what}", 0)))
        yield CounterMetricFamily("mkts_wal_transactions", "Transactions logged (the last "
                                  "transaction number)", value=float(stats["last_txn"]))


# -- fsync timing --------------------------------------------------------------------------
class TimedFileSystem(OsFileSystem):
    """The real filesystem, reporting how long each fsync (of a file or a directory) takes
    to `observe`."""

    def __init__(self, observe: Callable[[float], None]) -> None:
        self.observe = observe

        class TimedFile(OsFile):
            __slots__ = ()

            def sync(self) -> None:
                started = time.perf_counter()
                super().sync()
                observe(time.perf_counter() - started)

        self.file_type = TimedFile

    def fsync_dir(self, path: str) -> None:
        started = time.perf_counter()
        super().fsync_dir(path)
        self.observe(time.perf_counter() - started)
