"""Scale-out paths (issue 8), each beside a single-process baseline measured in the same run.

- universe_scan: sum of Volume and mean of Close over every 1Min bar of `size.symbols`
  symbols x one year, through `mkts.read_dask` on a dask.distributed LocalCluster of two
  worker processes (one thread each; cluster start-up not timed; as Dask starts its workers
  and without its MALLOC_TRIM_THRESHOLD_), against one process reading the same columns
  with `db.read`, and one process building every partition's frame as a worker does
  (the workers' share of the time, without Dask). Warm page cache for all. Beside them, on
  the same cluster and partitions, Dask's own ceiling (`benchmarks.ceilings`): one task per
  partition doing nothing, the same Dask DataFrame scan over frames each worker built
  before the timing, and one task per partition doing only the `db.read`s (no pandas).
- parquet_export: `mkts.export_parquet` of the same universe into a fresh directory (read,
  convert, zstd, fsync and rename per partition); bytes and bytes per row in extra_info,
  against `pyarrow.parquet.write_table` of the same rows from memory, zstd, one fsynced
  file per symbol.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from benchmarks import ceilings
from benchmarks import data as D

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

PATTERN = "*/1Min/OHLCV"

# distributed warns (in this process) when its scratch directory takes over a second to
# set up, as it can on a busy shared disk; that is no failure of ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Creating scratch directories is taking a surprisingly long time:UserWarning")


@pytest.fixture(scope="module", params=["dask defaults", "malloc trim unset"])
def cluster_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Any]:
    """The cluster as Dask starts it, and the same without the MALLOC_TRIM_THRESHOLD_=65536
    that Dask's nanny puts in each worker's environment (it makes glibc map and unmap
    every array above 128 KiB afresh, so each read's result pays its page faults again)."""
    import dask
    from distributed import Client, LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    if request.param == "malloc trim unset":
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    scratch = os.fspath(tmp_path_factory.mktemp("dask-scratch"))
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
            LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                         dashboard_address=None, local_directory=scratch) as cluster, \
            Client(cluster) as client:
        yield client


def _expected(bar_data: dict[str, np.ndarray]) -> tuple[int, float]:
    volume = sum(int(r["Volume"].sum()) for r in bar_data.values())
    close = np.concatenate([r["Close"].astype(np.float64) for r in bar_data.values()])
    return volume, float(close.mean())


@pytest.mark.benchmark(group="universe_scan")
def test_universe_scan_dask_2_workers(benchmark: Any, size: D.Size, bars_root: str,
                                      bar_data: dict[str, np.ndarray], cluster_client: Any
                                      ) -> None:
    import dask

    import mkts

    rows = sum(len(v) for v in bar_data.values())

    def run() -> tuple[int, float]:
        ddf = mkts.read_dask(bars_root, PATTERN)
        volume, close = dask.compute(ddf["Volume"].sum(), ddf["Close"].mean())
        return int(volume), float(close)

    benchmark.extra_info["rows"] = rows
    benchmark.extra_info["partitions"] = mkts.read_dask(bars_root, PATTERN).npartitions
    volume, close = benchmark.pedantic(run, rounds=size.repeats, iterations=1)
    want_volume, want_close = _expected(bar_data)
    assert volume == want_volume and close == pytest.approx(want_close, rel=1e-6)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median


@pytest.mark.benchmark(group="universe_scan")
def test_universe_scan_partitions_one_process(benchmark: Any, size: D.Size, bars_root: str,
                                              bar_data: dict[str, np.ndarray]) -> None:
    """The workers' share without Dask: every partition of the scan read and turned into its
    pandas frame (`mkts.dask_io._read_pieces`) in this process, one after the other."""
    from mkts import dask_io, engine
    from mkts.scale import plan_pieces

    rows = sum(len(v) for v in bar_data.values())
    with engine.open(bars_root, readonly=True) as db:
        keys = engine.parse_pattern(PATTERN).select(db.list_keys())
        infos = {k: db.info(k, rows=False) for k in keys}
        pieces = plan_pieces(engine.get_calendar(db.timezone), infos, None, None)
    g = dask_io.group_size(len(pieces), len(keys), None)
    groups = [tuple((bars_root, p.key, p.year, p.start_ns, p.end_ns) for p in pieces[i : i + g])
              for i in range(0, len(pieces), g)]

    def run() -> tuple[int, float]:
        volume, total, n = 0, 0.0, 0
        for group in groups:
            frame = dask_io._read_pieces(group, ["Symbol", "Close", "Volume"])
            volume += int(frame["Volume"].sum())
            total += float(frame["Close"].sum())
            n += len(frame)
        return volume, total / n

    benchmark.extra_info.update(rows=rows, partitions=len(groups))
    volume, close = benchmark.pedantic(run, rounds=size.repeats, iterations=1)
    want_volume, want_close = _expected(bar_data)
    assert volume == want_volume and close == pytest.approx(want_close, rel=1e-6)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median


def _partition_specs(bars_root: str) -> list[tuple[Any, ...]]:
    """read_dask's partitions of the universe, as it plans them."""
    from mkts import dask_io, engine
    from mkts.scale import plan_pieces

    with engine.open(bars_root, readonly=True) as db:
        keys = engine.parse_pattern(PATTERN).select(db.list_keys())
        infos = {k: db.info(k, rows=False) for k in keys}
        pieces = plan_pieces(engine.get_calendar(db.timezone), infos, None, None)
    g = dask_io.group_size(len(pieces), len(keys), None)
    root = os.path.abspath(bars_root)
    return [tuple((root, p.key, p.year, p.start_ns, p.end_ns) for p in pieces[i : i + g])
            for i in range(0, len(pieces), g)]


@pytest.mark.benchmark(group="universe_scan")
@pytest.mark.parametrize("tasks", ["no work", "db.read only"])
def test_universe_scan_dask_tasks(benchmark: Any, bars_root: str,
                                  bar_data: dict[str, np.ndarray], cluster_client: Any,
                                  size: D.Size, tasks: str) -> None:
    """One task per partition on the cluster: doing nothing (the floor of scheduling that
    many tasks), or reading its pieces with `db.read` and summing in numpy (no pandas)."""
    specs = _partition_specs(bars_root)
    fn = ceilings._nothing if tasks == "no work" else ceilings._read_only
    rows = sum(len(v) for v in bar_data.values())

    def run() -> tuple[int, int]:
        parts = cluster_client.gather(cluster_client.map(fn, specs, pure=False))
        return sum(p[0] for p in parts), sum(p[2] for p in parts)

    volume, n = benchmark.pedantic(run, rounds=size.repeats, iterations=1, warmup_rounds=1)
    if tasks == "db.read only":
        assert (volume, n) == (_expected(bar_data)[0], rows)
    benchmark.extra_info.update(rows=rows, partitions=len(specs))
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median


@pytest.mark.benchmark(group="universe_scan")
def test_universe_scan_dask_precomputed_frames(benchmark: Any, bars_root: str,
                                               bar_data: dict[str, np.ndarray],
                                               cluster_client: Any, size: D.Size) -> None:
    """Dask's own ceiling for the scan: the same DataFrame graph and reductions, each
    partition's frame built by its worker before the timing (the warm-up round)."""
    import dask
    import dask.dataframe as dd

    import mkts

    specs = _partition_specs(bars_root)
    sample = mkts.read_dask(bars_root, PATTERN)
    rows = sum(len(v) for v in bar_data.values())

    def run() -> tuple[int, float]:
        ddf = dd.from_map(ceilings._precomputed, specs, meta=sample._meta, label="ceiling",
                          enforce_metadata=False, columns=list(sample.columns))
        volume, close = dask.compute(ddf["Volume"].sum(), ddf["Close"].mean())
        return int(volume), float(close)

    volume, close = benchmark.pedantic(run, rounds=size.repeats, iterations=1,
                                       warmup_rounds=1)
    want_volume, want_close = _expected(bar_data)
    assert volume == want_volume and close == pytest.approx(want_close, rel=1e-6)
    benchmark.extra_info.update(rows=rows, partitions=len(specs))
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median


@pytest.mark.benchmark(group="universe_scan")
def test_universe_scan_engine_one_process(benchmark: Any, size: D.Size, read_db: Any,
                                          bar_data: dict[str, np.ndarray]) -> None:
    rows = sum(len(v) for v in bar_data.values())
    keys = [k for k in read_db.list_keys() if k.endswith("/1Min/OHLCV")]

    def run() -> tuple[int, float]:
        volume, total, n = 0, 0.0, 0
        for k in keys:
            r = read_db.read(k, columns=["Close", "Volume"])
            volume += int(r["Volume"].sum())
            total += float(r["Close"].sum(dtype=np.float64))
            n += len(r)
        return volume, total / n

    benchmark.extra_info["rows"] = rows
    volume, close = benchmark.pedantic(run, rounds=size.repeats, iterations=1)
    want_volume, want_close = _expected(bar_data)
    assert volume == want_volume and close == pytest.approx(want_close, rel=1e-6)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median


def _tree_bytes(path: str, allocated: bool = False) -> int:
    """Apparent (or allocated: year files are sparse) bytes of every file under `path`."""
    total = 0
    for d, _, names in os.walk(path):
        for f in names:
            st = os.stat(os.path.join(d, f))
            total += st.st_blocks * 512 if allocated else st.st_size
    return total


@pytest.mark.benchmark(group="parquet_export")
def test_parquet_export_mkts(benchmark: Any, size: D.Size, bars_root: str,
                             bar_data: dict[str, np.ndarray], tmp_path: Any) -> None:
    import mkts

    rows = sum(len(v) for v in bar_data.values())
    dests = iter(range(1000))
    results: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (os.fspath(tmp_path / f"export{next(dests)}"),), {}

    def run(dest: str) -> None:
        results.append(mkts.export_parquet(bars_root, dest, PATTERN, progress=False))

    benchmark.pedantic(run, setup=setup, rounds=size.repeats, iterations=1)
    res = results[-1]
    assert res.rows == rows and res.partitions == len(bar_data)
    benchmark.extra_info.update(rows=rows, bytes=res.bytes, bytes_per_row=res.bytes / rows,
                                mkts_root_bytes_per_row=_tree_bytes(bars_root) / rows,
                                mkts_root_allocated_bytes_per_row=_tree_bytes(bars_root, True) / rows)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median


@pytest.mark.benchmark(group="parquet_export")
def test_parquet_write_pyarrow_from_memory(benchmark: Any, size: D.Size,
                                           bar_data: dict[str, np.ndarray], tmp_path: Any
                                           ) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sum(len(v) for v in bar_data.values())
    dests = iter(range(1000))

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        d = tmp_path / f"raw{next(dests)}"
        d.mkdir()
        return (os.fspath(d),), {}

    def run(d: str) -> None:
        for sym, r in bar_data.items():
            cols = {"Epoch": pa.array(r["Epoch"].astype(np.int64) * 1_000_000_000,
                                      type=pa.timestamp("ns", tz="UTC"))}
            cols.update({n: pa.array(np.ascontiguousarray(r[n])) for n in r.dtype.names[1:]})
            path = os.path.join(d, f"{sym}.parquet")
            pq.write_table(pa.table(cols), path, compression="zstd")
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    benchmark.pedantic(run, setup=setup, rounds=size.repeats, iterations=1)
    benchmark.extra_info["rows"] = rows
    benchmark.extra_info["bytes_per_row"] = _tree_bytes(os.fspath(tmp_path / "raw0")) / rows
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows / benchmark.stats.stats.median
