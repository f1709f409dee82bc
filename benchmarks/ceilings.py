"""Issue 17's two speed goals beside their ceilings on the machine at hand, in the same run
(as `raw.group_commit_appends` is for group commit): the same work with nothing of mkts,
cases interleaved round by round so a noisy minute hits all of them alike.

    python -m benchmarks.ceilings [--size full|quick|smoke] [--only multiyear,dask]
        [--rounds N] [--burst N] [--dask-rounds N] [--no-malloc-trim]

multiyear: one symbol's 1Min bars over one year file and over two (`data.multi_year_bars`),
through mkts' writing and read-only handles, beside the raw ceiling (the occupied slots of
the same mapped year files, found outside the timing, gathered with `np.take` into one new
array; docs/format.md "Header" gives the offsets) and the raw ceiling plus mkts' per-row
work (slot check, labels). Each call is timed alone; medians over every call of a case.
Goal: the two-year rate per row >= 0.8x the one-year rate.

dask: the universe scan (Volume sum, Close count over `size.symbols` symbols x one year) on a
2-worker-process LocalCluster (one thread each), read_dask's partitions, layer by layer:
one process's db.read (the baseline) and frames; tasks doing nothing; the DataFrame graph
built on the client only; the same scan over frames each worker built before the timing
(Dask's own ceiling); tasks doing only the db.reads, twice (the second with the workers'
handles warm); read_dask. Goal: read_dask's rate per worker >= 0.8x one process's rate."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from benchmarks import data as D

MY_KEY = "MY/1Min/OHLCV"
PATTERN = "*/1Min/OHLCV"
GOAL = 0.8


def timed_rounds(cases: dict[str, Callable[[], Any]], rounds: int, burst: int
                  ) -> dict[str, float]:
    """Median time per call of each case over `rounds` rounds of `burst` calls each, the
    cases taking turns round by round; each call timed on its own, so the first calls of a
    burst (caches and allocator still holding the previous case's state) do not move the
    median of a burst of several."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            for _ in range(burst):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


# --- multi-year reads ------------------------------------------------------------------


def _year_words(path: str) -> np.ndarray:
    """The slot array of a fixed year file as (slots, record words) int64, mapped read-only;
    header size, record size and slot count at their docs/format.md "Header" offsets."""
    with open(path, "rb") as f:
        head = f.read(48)
    header = int.from_bytes(head[12:16], "little")
    record = int.from_bytes(head[32:36], "little")
    slots = int.from_bytes(head[40:48], "little")
    return np.memmap(path, dtype=np.int64, mode="r", offset=header,
                     shape=(slots, record // 8))


def raw_gathers(sources: list[tuple[np.ndarray, np.ndarray]]) -> Callable[[], np.ndarray]:
    """The minimal read: each (words, occupied slots) gathered into its slice of one new
    array of whole records, nothing else."""
    total = sum(len(idx) for _, idx in sources)
    width = sources[0][0].shape[1]

    def read() -> np.ndarray:
        out = np.empty((total, width), dtype=np.int64)
        pos = 0
        for words, idx in sources:
            np.take(words, idx, axis=0, out=out[pos : pos + len(idx)], mode="clip")
            pos += len(idx)
        return out

    return read


def raw_same_work(sources: list[tuple[np.ndarray, np.ndarray]], year_starts: list[int],
                  seconds: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """The gathers plus what mkts does to each row of a large read, in plain numpy: word 0
    of every record checked against its slot + 1 (docs/format.md "Slots") and the Epoch
    labels computed into a column of their own."""
    total = sum(len(idx) for _, idx in sources)
    width = sources[0][0].shape[1]

    def read() -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((total, width), dtype=np.int64)
        epochs = np.empty(total, dtype=np.int64)
        pos = 0
        for (words, idx), start in zip(sources, year_starts, strict=True):
            n = len(idx)
            rows, labels = out[pos : pos + n], epochs[pos : pos + n]
            np.take(words, idx, axis=0, out=rows, mode="clip")
            np.add(idx, 1, out=labels)
            if (rows[:, 0] != labels).any():
                raise AssertionError("a slot word does not match its slot")
            labels *= seconds
            labels += start - seconds
            pos += n
        return out, epochs

    return read


def multiyear(size: D.Size, rounds: int, burst: int) -> dict[str, float]:
    """Medians in seconds per read and the rate ratios (two years / one year, per row)."""
    from mkts import engine

    rows = D.multi_year_bars(size)
    year = size.bar_end.year
    start = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp())
    n_one, n_two = int((rows["Epoch"] >= start).sum()), len(rows)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "db")
        writer = engine.open(root, bulk_load_rows=0, sync="off")
        try:
            writer.write(MY_KEY, rows)
            writer.flush()
            reader = engine.open(root, readonly=True)
            try:
                folder = os.path.join(root, *MY_KEY.split("/"))
                maps = {y: _year_words(os.path.join(folder, f"{y}.bin")) for y in (year - 1, year)}
                srcs = {y: (m, (m[:, 0] != 0).nonzero()[0]) for y, m in maps.items()}
                one, two = f"{year}-01-01", f"{year}-12-31"
                starts = [int(dt.datetime(y, 1, 1, tzinfo=dt.UTC).timestamp())
                          for y in (year - 1, year)]
                cases: dict[str, Callable[[], Any]] = {
                    "raw one year": raw_gathers([srcs[year]]),
                    "raw two years": raw_gathers([srcs[year - 1], srcs[year]]),
                    "raw + check + labels one year": raw_same_work([srcs[year]], starts[1:], 60),
                    "raw + check + labels two years": raw_same_work(
                        [srcs[year - 1], srcs[year]], starts, 60),
                    "mkts writer one year": lambda: writer.read(MY_KEY, one, two),
                    "mkts writer two years": lambda: writer.read(MY_KEY),
                    "mkts read-only one year": lambda: reader.read(MY_KEY, one, two),
                    "mkts read-only two years": lambda: reader.read(MY_KEY),
                }
                for name, fn in cases.items():  # the same rows, or no figure
                    first = fn()
                    got = len(first[0] if isinstance(first, tuple) else first)
                    want = n_two if name.endswith("two years") else n_one
                    if got != want:
                        raise AssertionError(f"{name}: {got} rows, expected {want}")
                out.update(timed_rounds(cases, rounds, burst))
            finally:
                reader.close()
        finally:
            writer.close()
    for who in ("raw", "raw + check + labels", "mkts writer", "mkts read-only"):
        one_rate = n_one / out[f"{who} one year"]
        two_rate = n_two / out[f"{who} two years"]
        out[f"{who}: two-year / one-year rate"] = two_rate / one_rate
    out["rows one year"], out["rows two years"] = n_one, n_two
    return out


# --- Dask universe scan ------------------------------------------------------------------

_FRAMES: dict[Any, Any] = {}  # in each worker: the precomputed frames, per partition


def _precomputed(specs: Any, columns: Any = None) -> Any:
    """A partition's frame as `read_dask` builds it, built on the first call in this process
    and returned as is after that (the "no mkts work" partition)."""
    from mkts import dask_io

    k = (specs, None if columns is None else tuple(columns))
    frame = _FRAMES.get(k)
    if frame is None:
        frame = _FRAMES[k] = dask_io._read_pieces(specs, columns)
    return frame


def _nothing(specs: Any) -> tuple[int, float, int]:
    return 0, 0.0, len(specs)


def _read_only(specs: Any) -> tuple[int, float, int]:
    """A partition's pieces read with db.read through the worker's shared handle (as
    read_dask does), summed in numpy: no pandas."""
    from mkts import dask_io

    volume, total, n = 0, 0.0, 0
    for root, key, year, start_ns, end_ns in specs:
        with dask_io._handles.use(root, key, year) as db:
            r = db.read(key, np.datetime64(start_ns, "ns"), np.datetime64(end_ns, "ns"),
                        columns=["Close", "Volume"])
        volume += int(r["Volume"].sum())
        total += float(r["Close"].sum(dtype=np.float64))
        n += len(r)
    return volume, total, n


@contextmanager
def _cluster(scratch: str, malloc_trim: bool = True) -> Iterator[Any]:
    """The scan's cluster shape: 2 worker processes, one thread each, Dask's defaults; with
    `malloc_trim=False` the workers start without the MALLOC_TRIM_THRESHOLD_ that Dask's
    nanny sets (benchmarks/README.md "Dask universe scan", item 4)."""
    import dask
    from distributed import Client, LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    if not malloc_trim:
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
            LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                         dashboard_address=None, local_directory=scratch) as cluster, \
            Client(cluster) as client:
        yield client


def dask_layers(size: D.Size, rounds: int, malloc_trim: bool = True) -> dict[str, float]:
    """Medians in seconds per scan of every layer, the per-worker ratios and the share of
    the gap each layer explains."""
    import warnings

    import dask
    import dask.dataframe as dd

    import mkts
    from mkts import dask_io, engine
    from mkts.scale import plan_pieces

    warnings.filterwarnings("ignore", "Creating scratch directories is taking")
    bar_data = D.bar_set(size)
    nrows = sum(len(v) for v in bar_data.values())
    want_volume = sum(int(r["Volume"].sum()) for r in bar_data.values())
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "db")
        with engine.open(root, bulk_load_rows=0, sync="off") as db:
            for sym, rows in bar_data.items():
                db.write(D.BAR_KEY.format(sym), rows)
        with engine.open(root, readonly=True) as db:
            keys = engine.parse_pattern(PATTERN).select(db.list_keys())
            infos = {k: db.info(k, rows=False) for k in keys}
            pieces = plan_pieces(engine.get_calendar(db.timezone), infos, None, None)
        g = dask_io.group_size(len(pieces), len(keys), None)
        specs = [tuple((root, p.key, p.year, p.start_ns, p.end_ns) for p in pieces[i : i + g])
                 for i in range(0, len(pieces), g)]
        sample = mkts.read_dask(root, PATTERN)
        meta, names = sample._meta, list(sample.columns)
        reader = engine.open(root, readonly=True)

        def scan(ddf: Any) -> tuple[int, int]:
            volume, count = dask.compute(ddf["Volume"].sum(), ddf["Close"].count())
            return int(volume), int(count)

        def one_process() -> tuple[int, int]:
            volume, n = 0, 0
            for k in keys:
                r = reader.read(k, columns=["Close", "Volume"])
                volume += int(r["Volume"].sum())
                float(r["Close"].sum(dtype=np.float64))
                n += len(r)
            return volume, n

        def frames_one_process() -> tuple[int, int]:
            volume, n = 0, 0
            for s in specs:
                f = dask_io._read_pieces(s, ["Symbol", "Close", "Volume"])
                volume += int(f["Volume"].sum())
                float(f["Close"].sum())
                n += len(f)
            return volume, n

        try:
            with _cluster(os.path.join(tmp, "scratch"), malloc_trim) as client:
                def tasks(fn: Callable[..., tuple[int, float, int]]) -> Callable[[], Any]:
                    def run() -> tuple[int, int]:
                        parts = client.gather(client.map(fn, specs, pure=False))
                        return sum(p[0] for p in parts), sum(p[2] for p in parts)
                    return run

                def precomputed_frame() -> Any:
                    return dd.from_map(_precomputed, specs, meta=meta, label="ceiling",
                                       enforce_metadata=False, columns=names)

                def precomputed() -> tuple[int, int]:
                    return scan(precomputed_frame())

                def client_side() -> tuple[int, int]:
                    """What dask.compute does on the client before the scheduler sees the
                    graph: build, optimize and materialize it (no task runs)."""
                    from dask._expr import FinalizeCompute
                    from dask.base import collections_to_expr

                    ddf = precomputed_frame()
                    expr = FinalizeCompute(collections_to_expr(
                        [ddf["Volume"].sum(), ddf["Close"].count()], True)).optimize()
                    return len(expr.__dask_graph__()), 0

                cases: dict[str, Callable[[], Any]] = {
                    "one process db.read": one_process,
                    "one process frames": frames_one_process,
                    "dask tasks, no work": tasks(_nothing),
                    "dask dataframe, graph on the client only": client_side,
                    "dask dataframe, precomputed frames": precomputed,
                    "dask tasks, db.read only": tasks(_read_only),
                    "dask tasks, db.read only, again": tasks(_read_only),
                    "read_dask": lambda: scan(mkts.read_dask(root, PATTERN)),
                }
                for name, fn in cases.items():  # warm-up (frames precomputed) and check
                    volume, n = fn()
                    if not name.endswith(("no work", "client only")) and \
                            (volume, n) != (want_volume, nrows):
                        raise AssertionError(f"{name}: {(volume, n)} != {(want_volume, nrows)}")
                out.update(timed_rounds(cases, rounds, 1))
        finally:
            reader.close()
    base = out["one process db.read"]
    for name in list(out):
        if name.startswith(("dask", "read_dask")) and "client only" not in name:
            out[f"{name}: per-worker rate / one process"] = base / (2 * out[name])
    # read_dask's time above the ideal (the one-process reads split over two workers, base/2)
    # in three layers: Dask's own ceiling (the scan over precomputed frames), the reads'
    # slow-down inside the workers (db.read-only tasks less the empty tasks' floor, beyond
    # base/2; handles warm, as read_dask finds them right after), and what building the
    # frames adds (the rest). A handle opened afresh is reported on its own.
    ideal = base / 2
    dask_own = out["dask dataframe, precomputed frames"]
    reads = out["dask tasks, db.read only, again"] - out["dask tasks, no work"]
    out["fresh worker handles: db.read only, first less again"] = (
        out["dask tasks, db.read only"] - out["dask tasks, db.read only, again"])
    excess = out["read_dask"] - ideal
    parts = {"Dask's own ceiling (precomputed frames)": dask_own,
             "reads in workers beyond base/2": reads - ideal,
             "frames and the rest": out["read_dask"] - dask_own - reads}
    for name, t in parts.items():
        out[f"share of read_dask over base/2: {name}"] = t / excess if excess > 0 else 0.0
    out["goal: read_dask time at 0.8x per worker"] = base / (2 * GOAL)
    out["rows"], out["partitions"] = nrows, len(specs)
    return out


def _show(name: str, value: float) -> str:
    if name.startswith(("rows", "partitions")):
        return f"{name:58s} {value:,.0f}"
    if "share" in name:
        return f"{name:58s} {value:.0%}"
    if "/" in name:
        return f"{name:58s} {value:.2f}x"
    return f"{name:58s} {value * 1e3:.3f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ceilings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default=os.environ.get("MKTS_BENCH_SIZE", "full"),
                   choices=sorted(D.SIZES))
    p.add_argument("--only", default="multiyear,dask", help="multiyear, dask or both")
    p.add_argument("--rounds", type=int, default=30, help="multi-year rounds")
    p.add_argument("--burst", type=int, default=20, help="multi-year calls per case and round")
    p.add_argument("--dask-rounds", type=int, default=7, help="rounds of the Dask layers")
    p.add_argument("--no-malloc-trim", action="store_true",
                   help="start the workers without Dask's MALLOC_TRIM_THRESHOLD_")
    args = p.parse_args(argv)
    size = D.SIZES[args.size]
    only = set(args.only.split(","))
    if "multiyear" in only:
        print(f"# multi-year reads ({args.rounds} rounds of {args.burst} calls)")
        for name, value in multiyear(size, args.rounds, args.burst).items():
            print(_show(name, value))
    if "dask" in only:
        shape = "without MALLOC_TRIM_THRESHOLD_" if args.no_malloc_trim else "Dask's defaults"
        print(f"# Dask universe scan, 2-worker LocalCluster, {shape} ({args.dask_rounds} rounds)")
        for name, value in dask_layers(size, args.dask_rounds, not args.no_malloc_trim).items():
            print(_show(name, value))
    return 0


if __name__ == "__main__":
    # Run through the package module so that the worker functions pickle by reference.
    from benchmarks.ceilings import main as _main

    raise SystemExit(_main())
