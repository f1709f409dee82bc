"""Adapters: the same operations on mkts, raw numpy, ArcticDB (LMDB), Parquet (pyarrow) and
DuckDB, each used the way a user of that tool would use it.

Each adapter gets its input in its native form, built before the timer starts (`prepare_*`):
a numpy structured array for mkts and raw, a pandas DataFrame for ArcticDB, an Arrow table
for Parquet and DuckDB. Every read returns the rows as numpy arrays (or a pandas DataFrame
backed by them) in time order, and returns its row count so callers can check it.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import importlib.metadata
import os
import shutil
import subprocess
import threading
from typing import Any

import numpy as np

from benchmarks import raw
from benchmarks.data import BAR_KEY, TICK_KEY

__all__ = ["ENGINES", "Unavailable", "make_engine"]

YEAR = 2024


class Unavailable(Exception):
    """The competitor is not installed (or does not import): reported and skipped."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install
        raise Unavailable(f"{module} is not installed or does not import ({exc}); "
                          "pip install '.[bench]'") from None


def _fresh(path: str) -> str:
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def _ts_ns(epochs: np.ndarray, nanos: np.ndarray | None = None) -> np.ndarray:
    ns = epochs.astype(np.int64) * 1_000_000_000
    if nanos is not None:
        ns = ns + nanos.astype(np.int64)
    return ns.view("datetime64[ns]")


class Engine:
    name = ""
    label = ""
    # (variant, durable) for the bulk write; the first is kept for the read scenarios.
    bulk_variants: tuple[tuple[str, bool], ...] = (("default", False),)
    # (variant, durable) for small appends.
    append_variants: tuple[tuple[str, bool], ...] = (("default", False),)
    tick_variant = ("default", False)

    def version(self) -> str:
        return ""

    def files_note(self) -> str:
        return ""

    # bars
    def prepare_bulk(self, data: dict[str, np.ndarray]) -> Any:
        return data

    def bulk_write(self, root: str, data: Any, variant: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def open_bars(self, root: str) -> None:
        raise NotImplementedError

    def read_full(self, sym: str) -> int:
        raise NotImplementedError

    def read_range(self, sym: str, start: int, end: int) -> int:
        raise NotImplementedError

    def read_multi(self, syms: list[str], start: int, end: int) -> int:
        raise NotImplementedError

    # small appends into `sym` of the open bars root (opened with `variant`)
    def open_appends(self, root: str, variant: str) -> None:
        self.open_bars(root)

    def prepare_append(self, rows: np.ndarray) -> Any:
        return rows

    def create_symbol(self, sym: str, rows: np.ndarray) -> None:
        """Create `sym` with these rows (untimed), so the timed appends only append."""
        self.append(sym, self.prepare_append(rows))

    def append(self, sym: str, chunk: Any) -> None:
        raise NotImplementedError

    # ticks
    def prepare_ticks(self, batch: np.ndarray) -> Any:
        return batch

    def tick_ingest(self, root: str, batches: list[Any]) -> None:
        raise NotImplementedError

    def open_ticks(self, root: str) -> None:
        raise NotImplementedError

    def tick_read(self, start: int, end: int) -> int:
        raise NotImplementedError


# ---------------------------------------------------------------------------------- mkts
class Mkts(Engine):
    name = "mkts"
    label = "mkts"
    # "bulk load": the year written sealed directly, only WAL op 7 logged (issue 17); the other
    # variants keep the live year file the read scenarios measure.
    bulk_variants = (("sync=always", True), ("sync=off", False),
                     ("sync=always, bulk load", True))
    append_variants = (("sync=always", True), ("sync=interval", False), ("sync=off", False))
    tick_variant = ("sync=always", True)

    def __init__(self) -> None:
        self.engine = importlib.import_module("engine")
        self.db: Any = None

    def version(self) -> str:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        try:
            sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=here, capture_output=True, text=True,
                                   timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            sha, dirty = "", ""
        v = _version("mkts")
        if v == "not installed":  # a source checkout on PYTHONPATH
            try:
                with open(os.path.join(here, "pyproject.toml")) as f:
                    v = next((ln.split('"')[1] for ln in f if ln.startswith("version = ")), "?")
            except OSError:
                v = "?"
        return f"{v} (git {sha or '?'}{' + local changes' if dirty else ''})"

    def files_note(self) -> str:
        return "one year file per bucket (sparse slot array) + WAL"

    def _open(self, root: str, sync: str, *, bulk: bool = False) -> None:
        self.close()
        self.db = self.engine.open(root, sync=sync, bulk_load_rows=10_000 if bulk else 0)

    def bulk_write(self, root: str, data: dict[str, np.ndarray], variant: str) -> None:
        self._open(root, variant.split("=")[1].split(",")[0], bulk="bulk load" in variant)
        for sym, rows in data.items():
            self.db.write(BAR_KEY.format(sym), rows)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
            gc.collect()  # drop the year-file mappings, so that a cold read is cold

    def open_bars(self, root: str) -> None:
        self._open(root, "always")

    def read_full(self, sym: str) -> int:
        return len(self.db.read(BAR_KEY.format(sym)))

    def read_range(self, sym: str, start: int, end: int) -> int:
        return len(self.db.read(BAR_KEY.format(sym), start, end))

    def read_multi(self, syms: list[str], start: int, end: int) -> int:
        out = self.db.query(",".join(syms) + "/1Min/OHLCV", start, end)
        return sum(len(r) for r in out.values())

    def open_appends(self, root: str, variant: str) -> None:
        self._open(root, variant.split("=")[1])

    def append(self, sym: str, chunk: np.ndarray) -> None:
        self.db.write(BAR_KEY.format(sym), chunk)

    def tick_ingest(self, root: str, batches: list[np.ndarray]) -> None:
        self._open(root, "always")
        key = TICK_KEY.format("AAPL")
        for b in batches:
            self.db.write(key, b, variable=True)

    def open_ticks(self, root: str) -> None:
        self._open(root, "always")

    def tick_read(self, start: int, end: int) -> int:
        return len(self.db.read(TICK_KEY.format("AAPL"), start, end))

    # mkts-only extras
    def tick_bulk_load(self, root: str, batches: list[np.ndarray]) -> None:
        """The same ticks loaded as history, durably: one write of the (closed) year, so a
        bulk load (sealed tick file + WAL op 7; the batches joined inside the timing)."""
        self._open(root, "always", bulk=True)
        self.db.write(TICK_KEY.format("AAPL"), np.concatenate(batches), variable=True)

    def threaded_appends(self, root: str, threads: int, rows: np.ndarray, seconds: float
                         ) -> tuple[int, float]:
        """`threads` writers, each appending 1-row writes to its own bucket under
        sync=always for `seconds`; returns (appends, elapsed)."""
        import time

        self._open(root, "always")
        db = self.db
        counts = [0] * threads
        stop = threading.Event()
        start_gate = threading.Barrier(threads + 1)

        def run(i: int) -> None:
            key = BAR_KEY.format(f"THR{threads}_{i}")
            db.write(key, rows[:1])
            start_gate.wait()
            n = 1
            while not stop.is_set() and n < len(rows):
                db.write(key, rows[n : n + 1])
                n += 1
            counts[i] = n - 1

        ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        start_gate.wait()
        t0 = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for t in ts:
            t.join()
        elapsed = time.perf_counter() - t0
        self.close()
        return sum(counts), elapsed


# ----------------------------------------------------------------------------------- raw
class Raw(Engine):
    name = "raw"
    label = "raw numpy"
    bulk_variants = (("pwrite + fdatasync per file", True), ("pwrite, no fsync", False))
    append_variants = (("pwrite + fdatasync", True), ("pwrite, no fsync", False))
    tick_variant = ("write + fdatasync per batch", True)

    def __init__(self) -> None:
        self.files: dict[str, raw.BarFile] = {}
        self.root = ""
        self.fds: dict[str, int] = {}
        self.fsync = True
        self.ticks: raw.TickFile | None = None

    def version(self) -> str:
        return f"numpy {np.__version__}"

    def files_note(self) -> str:
        return "one direct-addressed file per symbol-year; ticks: one append-only file"

    def _path(self, root: str, sym: str) -> str:
        return os.path.join(root, f"{sym}.{YEAR}.bin")

    def bulk_write(self, root: str, data: dict[str, np.ndarray], variant: str) -> None:
        paths = []
        for sym, rows in data.items():
            p = self._path(root, sym)
            raw.write_bars(p, rows, YEAR, fsync=False)
            paths.append(p)
        if variant.startswith("pwrite + fdatasync"):
            for p in paths:
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)

    def close(self) -> None:
        self.files.clear()
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        if self.ticks is not None:
            self.ticks.close()
            self.ticks = None
        gc.collect()

    def open_bars(self, root: str) -> None:
        self.close()
        self.root = root

    def _file(self, sym: str) -> raw.BarFile:
        f = self.files.get(sym)
        if f is None:
            f = self.files[sym] = raw.BarFile(self._path(self.root, sym), np.dtype(
                [("Epoch", "<i8"), ("Open", "<f4"), ("High", "<f4"), ("Low", "<f4"),
                 ("Close", "<f4"), ("Volume", "<i8")]), YEAR)
        return f

    def read_full(self, sym: str) -> int:
        return len(self._file(sym).read())

    def read_range(self, sym: str, start: int, end: int) -> int:
        return len(self._file(sym).read(start, end))

    def read_multi(self, syms: list[str], start: int, end: int) -> int:
        return sum(len(self._file(s).read(start, end)) for s in syms)

    def open_appends(self, root: str, variant: str) -> None:
        self.open_bars(root)
        self.fsync = variant == "pwrite + fdatasync"

    def create_symbol(self, sym: str, rows: np.ndarray) -> None:
        fd = os.open(self._path(self.root, sym), os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(fd, raw.nslots(YEAR) * rows.dtype.itemsize)
        self.fds[sym] = fd
        self.append(sym, rows)

    def append(self, sym: str, chunk: np.ndarray) -> None:
        fd = self.fds[sym]
        raw.pwrite_runs(fd, chunk, YEAR)
        if self.fsync:
            os.fdatasync(fd)

    def tick_ingest(self, root: str, batches: list[np.ndarray]) -> None:
        self.close()
        self.root = root
        self.ticks = raw.TickFile(os.path.join(root, "AAPL.ticks"), batches[0].dtype)
        for b in batches:
            self.ticks.append(b, fsync=True)
        self._tick_dtype = batches[0].dtype

    def open_ticks(self, root: str) -> None:
        self.close()
        self.root = root

    def tick_read(self, start: int, end: int) -> int:
        from benchmarks.data import TICK_DTYPE

        reader = raw.TickFile.__new__(raw.TickFile)
        reader.path, reader.dtype = os.path.join(self.root, "AAPL.ticks"), TICK_DTYPE
        return len(reader.read(start, end))


# ------------------------------------------------------------------------------- ArcticDB
class Arctic(Engine):
    name = "arcticdb"
    label = "ArcticDB (LMDB)"
    bulk_variants = (("write() per symbol", True),)
    append_variants = (("append()", True),)
    tick_variant = ("write() then append() per batch", True)

    def __init__(self) -> None:
        self.adb = _require("arcticdb")
        self.pd = _require("pandas")
        self.lib: Any = None
        self.ac: Any = None

    def version(self) -> str:
        return f"arcticdb {_version('arcticdb')}, pandas {_version('pandas')}"

    def files_note(self) -> str:
        return "LMDB backend, default library options (LMDB fdatasyncs each commit)"

    def _df(self, rows: np.ndarray) -> Any:
        cols = {n: rows[n] for n in rows.dtype.names if n != "Epoch"}
        return self.pd.DataFrame(cols, index=self.pd.DatetimeIndex(_ts_ns(rows["Epoch"])))

    def prepare_bulk(self, data: dict[str, np.ndarray]) -> dict[str, Any]:
        return {s: self._df(r) for s, r in data.items()}

    def _open(self, root: str) -> None:
        self.close()
        self.ac = self.adb.Arctic(f"lmdb://{root}")
        self.lib = self.ac.get_library("bench", create_if_missing=True)

    def bulk_write(self, root: str, data: dict[str, Any], variant: str) -> None:
        self._open(root)
        for sym, df in data.items():
            self.lib.write(sym, df)

    def close(self) -> None:
        self.lib = None
        self.ac = None
        gc.collect()

    def open_bars(self, root: str) -> None:
        self._open(root)

    def _range(self, start: int, end: int) -> tuple[Any, Any]:
        ts = self.pd.Timestamp
        return ts(start, unit="s"), ts(end, unit="s")

    def read_full(self, sym: str) -> int:
        return len(self.lib.read(sym).data)

    def read_range(self, sym: str, start: int, end: int) -> int:
        return len(self.lib.read(sym, date_range=self._range(start, end)).data)

    def read_multi(self, syms: list[str], start: int, end: int) -> int:
        rng = self._range(start, end)
        items = self.lib.read_batch([self.adb.ReadRequest(s, date_range=rng) for s in syms])
        return sum(len(i.data) for i in items)

    def open_appends(self, root: str, variant: str) -> None:
        self._open(root)

    def prepare_append(self, rows: np.ndarray) -> Any:
        return self._df(rows)

    def create_symbol(self, sym: str, rows: np.ndarray) -> None:
        self.lib.write(sym, self._df(rows))

    def append(self, sym: str, chunk: Any) -> None:
        self.lib.append(sym, chunk)

    def prepare_ticks(self, batch: np.ndarray) -> Any:
        return self.pd.DataFrame({"Price": batch["Price"], "Size": batch["Size"]},
                                 index=self.pd.DatetimeIndex(_ts_ns(batch["Epoch"],
                                                                    batch["Nanoseconds"])))

    def tick_ingest(self, root: str, batches: list[Any]) -> None:
        self._open(root)
        self.lib.write("AAPL_TICKS", batches[0])
        for b in batches[1:]:
            self.lib.append("AAPL_TICKS", b)

    def open_ticks(self, root: str) -> None:
        self._open(root)

    def tick_read(self, start: int, end: int) -> int:
        rng = (self.pd.Timestamp(start, unit="s"),
               self.pd.Timestamp(end, unit="s") + self.pd.Timedelta(999_999_999, unit="ns"))
        return len(self.lib.read("AAPL_TICKS", date_range=rng).data)


# -------------------------------------------------------------------------------- Parquet
class Parquet(Engine):
    name = "parquet"
    label = "Parquet (pyarrow)"
    bulk_variants = (("write_table per symbol-year", False),)
    append_variants = (("one new file per append", False),)
    tick_variant = ("one new file per batch", False)

    def __init__(self) -> None:
        self.pa = _require("pyarrow")
        self.pq = _require("pyarrow.parquet")
        self.root = ""
        self.counter = 0

    def version(self) -> str:
        return f"pyarrow {_version('pyarrow')}"

    def files_note(self) -> str:
        return ("one file per symbol-year (default row groups, snappy); appends are new files "
                "in the symbol's directory; no fsync (not durable)")

    def _table(self, rows: np.ndarray) -> Any:
        pa = self.pa
        arrays = [pa.array(rows["Epoch"].astype("datetime64[s]").astype("datetime64[us]"))]
        names = ["ts"]
        for n in rows.dtype.names:
            if n in ("Epoch", "Nanoseconds"):
                continue
            arrays.append(pa.array(rows[n]))
            names.append(n)
        return pa.Table.from_arrays(arrays, names=names)

    def prepare_bulk(self, data: dict[str, np.ndarray]) -> dict[str, Any]:
        return {s: self._table(r) for s, r in data.items()}

    def bulk_write(self, root: str, data: dict[str, Any], variant: str) -> None:
        self.root = root
        for sym, t in data.items():
            d = os.path.join(root, sym)
            os.makedirs(d, exist_ok=True)
            self.pq.write_table(t, os.path.join(d, f"{YEAR}.parquet"))

    def open_bars(self, root: str) -> None:
        self.root = root

    def _numpy(self, t: Any) -> int:
        cols = {n: t.column(n).to_numpy() for n in t.column_names}
        return len(cols["ts"])

    def _filters(self, start: int, end: int) -> list[tuple[str, str, Any]]:
        s = dt.datetime.fromtimestamp(start, dt.UTC).replace(tzinfo=None)
        e = dt.datetime.fromtimestamp(end, dt.UTC).replace(tzinfo=None)
        return [("ts", ">=", s), ("ts", "<=", e)]

    def read_full(self, sym: str) -> int:
        return self._numpy(self.pq.read_table(os.path.join(self.root, sym)))

    def read_range(self, sym: str, start: int, end: int) -> int:
        t = self.pq.read_table(os.path.join(self.root, sym), filters=self._filters(start, end))
        return self._numpy(t.sort_by("ts"))

    def read_multi(self, syms: list[str], start: int, end: int) -> int:
        return sum(self.read_range(s, start, end) for s in syms)

    def prepare_append(self, rows: np.ndarray) -> Any:
        return self._table(rows)

    def append(self, sym: str, chunk: Any) -> None:
        d = os.path.join(self.root, sym)
        if not os.path.isdir(d):
            os.makedirs(d)
        self.counter += 1
        self.pq.write_table(chunk, os.path.join(d, f"append-{self.counter:07d}.parquet"))

    def prepare_ticks(self, batch: np.ndarray) -> Any:
        pa = self.pa
        return pa.Table.from_arrays(
            [pa.array(_ts_ns(batch["Epoch"], batch["Nanoseconds"])), pa.array(batch["Price"]),
             pa.array(batch["Size"])], names=["ts", "Price", "Size"])

    def tick_ingest(self, root: str, batches: list[Any]) -> None:
        self.root = root
        d = os.path.join(root, "AAPL_TICKS")
        os.makedirs(d, exist_ok=True)
        for i, b in enumerate(batches):
            self.pq.write_table(b, os.path.join(d, f"part-{i:06d}.parquet"))

    def open_ticks(self, root: str) -> None:
        self.root = root

    def tick_read(self, start: int, end: int) -> int:
        s = np.datetime64(start, "s").astype("datetime64[ns]")
        e = np.datetime64(end, "s").astype("datetime64[ns]") + np.timedelta64(999_999_999, "ns")
        t = self.pq.read_table(os.path.join(self.root, "AAPL_TICKS"),
                               filters=[("ts", ">=", self.pa.scalar(s)),
                                        ("ts", "<=", self.pa.scalar(e))])
        return self._numpy(t.sort_by("ts"))


# --------------------------------------------------------------------------------- DuckDB
class Duck(Engine):
    name = "duckdb"
    label = "DuckDB"
    bulk_variants = (("INSERT … SELECT from Arrow, per symbol", True),)
    append_variants = (("INSERT per call (autocommit)", True),)
    tick_variant = ("INSERT … SELECT from Arrow per batch", True)

    _BARS = ("CREATE TABLE IF NOT EXISTS bars (symbol VARCHAR, ts TIMESTAMP, Open FLOAT, "
             "High FLOAT, Low FLOAT, Close FLOAT, Volume BIGINT)")

    def __init__(self) -> None:
        self.duckdb = _require("duckdb")
        self.pa = _require("pyarrow")
        self.con: Any = None

    def version(self) -> str:
        return f"duckdb {_version('duckdb')}"

    def files_note(self) -> str:
        return ("one table, no index; each INSERT autocommits (DuckDB fdatasyncs its WAL per "
                "commit); reads ORDER BY ts")

    def _table(self, sym: str, rows: np.ndarray) -> Any:
        pa = self.pa
        return pa.Table.from_arrays(
            [pa.array(np.full(len(rows), sym)),
             pa.array(rows["Epoch"].astype("datetime64[s]").astype("datetime64[us]"))]
            + [pa.array(rows[n]) for n in ("Open", "High", "Low", "Close", "Volume")],
            names=["symbol", "ts", "Open", "High", "Low", "Close", "Volume"])

    def prepare_bulk(self, data: dict[str, np.ndarray]) -> dict[str, Any]:
        return {s: self._table(s, r) for s, r in data.items()}

    def _open(self, root: str) -> None:
        self.close()
        self.con = self.duckdb.connect(os.path.join(root, "bench.duckdb"))
        self.con.execute(self._BARS)

    def bulk_write(self, root: str, data: dict[str, Any], variant: str) -> None:
        self._open(root)
        for t in data.values():
            self.con.register("src", t)
            self.con.execute("INSERT INTO bars SELECT * FROM src")
            self.con.unregister("src")

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        gc.collect()

    def open_bars(self, root: str) -> None:
        self._open(root)

    def _ts(self, epoch: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None)

    def read_full(self, sym: str) -> int:
        r = self.con.execute("SELECT * FROM bars WHERE symbol = ? ORDER BY ts", [sym]).fetchnumpy()
        return len(r["ts"])

    def read_range(self, sym: str, start: int, end: int) -> int:
        r = self.con.execute(
            "SELECT * FROM bars WHERE symbol = ? AND ts BETWEEN ? AND ? ORDER BY ts",
            [sym, self._ts(start), self._ts(end)]).fetchnumpy()
        return len(r["ts"])

    def read_multi(self, syms: list[str], start: int, end: int) -> int:
        marks = ",".join("?" * len(syms))
        r = self.con.execute(
            f"SELECT * FROM bars WHERE symbol IN ({marks}) AND ts BETWEEN ? AND ? "
            "ORDER BY symbol, ts", [*syms, self._ts(start), self._ts(end)]).fetchnumpy()
        return len(r["ts"])

    def open_appends(self, root: str, variant: str) -> None:
        self._open(root)

    def prepare_append(self, rows: np.ndarray) -> Any:
        if len(rows) == 1:
            r = rows[0]
            return ("row", [None, self._ts(int(r["Epoch"])), float(r["Open"]), float(r["High"]),
                            float(r["Low"]), float(r["Close"]), int(r["Volume"])])
        return ("table", rows)

    def append(self, sym: str, chunk: Any) -> None:
        kind, payload = chunk
        if kind == "row":
            payload[0] = sym
            self.con.execute("INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?)", payload)
        else:
            t = self._table(sym, payload) if isinstance(payload, np.ndarray) else payload
            self.con.register("src", t)
            self.con.execute("INSERT INTO bars SELECT * FROM src")
            self.con.unregister("src")

    def prepare_ticks(self, batch: np.ndarray) -> Any:
        pa = self.pa
        return pa.Table.from_arrays(
            [pa.array(_ts_ns(batch["Epoch"], batch["Nanoseconds"])), pa.array(batch["Price"]),
             pa.array(batch["Size"])], names=["ts", "Price", "Size"])

    def tick_ingest(self, root: str, batches: list[Any]) -> None:
        self._open(root)
        self.con.execute("CREATE TABLE IF NOT EXISTS ticks (ts TIMESTAMP_NS, Price DOUBLE, "
                         "Size BIGINT)")
        for b in batches:
            self.con.register("src", b)
            self.con.execute("INSERT INTO ticks SELECT * FROM src")
            self.con.unregister("src")

    def open_ticks(self, root: str) -> None:
        self._open(root)

    def tick_read(self, start: int, end: int) -> int:
        s = np.datetime64(start, "s").astype("datetime64[ns]")
        e = np.datetime64(end, "s").astype("datetime64[ns]") + np.timedelta64(999_999_999, "ns")
        r = self.con.execute(
            "SELECT * FROM ticks WHERE ts BETWEEN ?::TIMESTAMP_NS AND ?::TIMESTAMP_NS ORDER BY ts",
            [str(s), str(e)]).fetchnumpy()
        return len(r["ts"])


ENGINES: dict[str, type[Engine]] = {
    "mkts": Mkts, "raw": Raw, "arcticdb": Arctic, "parquet": Parquet, "duckdb": Duck,
}


def make_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    return ENGINES[name]()
