"""Side-by-side benchmark: mkts against ArcticDB (LMDB), Parquet (pyarrow), DuckDB and raw
numpy, on the same deterministic data, in the same run.

    python -m benchmarks.compare                     # full run (< 15 min on 2 cores)
    python -m benchmarks.compare --quick             # < 2 min
    python -m benchmarks.compare --quick --only mkts,raw --size smoke   # the CI smoke

Each engine runs in a subprocess of its own, one after the other (never two at once), so its
peak RSS (ru_maxrss of that process) is its own; the report gives the peak and the part of it
that is the engine's (peak minus the RSS after the input data was built). A competitor that
is not installed is reported as skipped, never faked.

Results: `<out>/compare-<size>.md` and `.json`, with the machine in the header, medians over
repeated runs, and every competitor's ratio to mkts measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import data as D
from benchmarks import raw
from benchmarks.engines import ENGINES, Engine, Mkts, Unavailable, make_engine

ORDER = ["mkts", "raw", "arcticdb", "parquet", "duckdb"]
GROUP_COMMIT_VARIANT = "minimal group commit, os.write + fdatasync"
SCENARIOS = {
    "1": "Bulk write: {symbols} symbols x one year of 1Min bars",
    "2": "Small appends (1 row and 100 rows per call, {seconds:g} s per variant)",
    "2b": "One-day read before and after {after} 1-row appends to the same symbol-year",
    "3": "Full read of one symbol-year",
    "4": "One-day range read inside a year",
    "5": "Multi-symbol read: {multi} symbols, one month",
    "6": "Ticks: ingest {ticks} in batches of {batch}, read one busy day ({per_day} ticks)",
    "6b": "Single-tick appends into one 1Min interval (mkts only; sync=off)",
    "7": "Bytes on disk per row (apparent / allocated)",
    "8": "A stream of 1-row 1Min writes with ondiskagg (5Min, 15Min, 1H, 1D) vs without: "
         "{agg_writes} writes back to back, then flush(); cost per write (mkts only)",
    "8b": "One 1-row 1Min write + flush() (aggregates current) with ondiskagg vs without: "
          "latency (mkts only)",
    "9": "Sealed years: sealing the bars of scenario 1 and the ticks of scenario 6, then the "
         "reads of scenarios 3, 4 and 6 on the sealed files (mkts only)",
}


# ----------------------------------------------------------------------------- helpers
def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fresh(path: str) -> str:
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


# ------------------------------------------------------------------------------ worker
class Worker:
    """Runs every scenario on one engine in this process and collects result rows."""

    def __init__(self, eng: Engine, size: D.Size, workdir: str, repeats: int) -> None:
        self.eng = eng
        self.size = size
        self.work = workdir
        self.R = repeats
        self.rows: list[dict[str, Any]] = []
        self.checks: list[str] = []

    def emit(self, scenario: str, case: str, value: float, unit: str, better: str, *,
             variant: str = "", durable: bool | None = None, engine: str | None = None,
             **extra: Any) -> None:
        """One result row; `engine` (default: this worker's) names a baseline measured in
        this worker's process, such as the raw group commit beside mkts' writer threads."""
        row = {"scenario": scenario, "case": case, "engine": engine or self.eng.name,
               "variant": variant, "durable": durable, "value": value, "unit": unit,
               "better": better}
        row.update(extra)
        self.rows.append(row)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.checks.append(what)
            log(f"CHECK FAILED ({self.eng.name}): {what}")

    # -- scenario 1 and 7 -------------------------------------------------------------
    def bulk(self, data: dict[str, np.ndarray], native: Any) -> str:
        total = sum(len(v) for v in data.values())
        keep = ""
        probe = self.disk_probe(0.5 if self.size.name == "smoke" else 1.0)
        for vi, (variant, durable) in enumerate(self.eng.bulk_variants):
            times = []
            for r in range(self.R):
                root = fresh(os.path.join(self.work, f"bulk{vi}_{r}"))
                el, _ = timed(lambda root=root, variant=variant:
                              self.eng.bulk_write(root, native, variant))
                self.eng.close()
                times.append(el)
                if vi == 0 and r == self.R - 1:
                    keep = root
                else:
                    shutil.rmtree(root)
            self.emit("1", "bulk write", total / median(times), "rows/s", "higher",
                      variant=variant, durable=durable, runs_s=times, rows=total,
                      disk_probe=probe)
            log(f"  bulk {variant}: {total / median(times) / 1e6:.2f} M rows/s")
        apparent, allocated = raw.disk_usage(keep)
        self.emit("7", "bars: bytes per row (apparent)", apparent / total, "B/row", "lower",
                  bytes=apparent)
        self.emit("7", "bars: bytes per row (allocated)", allocated / total, "B/row", "lower",
                  bytes=allocated)
        return keep

    # -- scenarios 3, 4, 5 ------------------------------------------------------------
    def cold(self, root: str, reopen: Callable[[str], None], fn: Callable[[], int],
             samples: int) -> tuple[list[float], float | None]:
        times: list[float] = []
        resident = None
        for i in range(samples):
            self.eng.close()
            reopen(root)
            raw.drop_cache(root)
            if i == 0:
                resident = raw.resident_fraction(root)
            el, _ = timed(fn)
            times.append(el)
        return times, resident

    def reads(self, root: str, data: dict[str, np.ndarray]) -> None:
        size, eng = self.size, self.eng
        sym = next(iter(data))
        want = len(data[sym])
        eng.open_bars(root)
        n = eng.read_full(sym)
        self.check(n == want, f"full read returned {n} rows, expected {want}")
        # 25 samples (every engine alike): a median of 5 swung by 2x on this shared machine
        warm = [timed(lambda: eng.read_full(sym))[0] for _ in range(max(25, self.R * 8))]
        self.emit("3", "full symbol-year read, warm", want / median(warm), "rows/s", "higher",
                  latency_ms=median(warm) * 1e3, rows=want, runs_s=warm)
        cold, resident = self.cold(root, eng.open_bars, lambda: eng.read_full(sym),
                                   max(3, self.R))
        self.emit("3", "full symbol-year read, cold", want / median(cold), "rows/s", "higher",
                  latency_ms=median(cold) * 1e3, rows=want, runs_s=cold,
                  resident_after_drop=resident)
        log(f"  full read warm {want / median(warm) / 1e6:.1f} M rows/s, cold "
            f"{want / median(cold) / 1e6:.1f} M rows/s (resident after drop: {resident})")

        # one-day reads at random trading days (fixed seed)
        days = D.trading_days(size.bar_start, size.bar_end)
        rng = np.random.default_rng(D.SEED)
        picks = [days[i] for i in rng.integers(0, len(days), size.day_reads)]
        eng.open_bars(root)
        lat = []
        counts = []
        for d in picks:
            s, e = D.day_bounds(d)
            el, n = timed(lambda s=s, e=e: eng.read_range(sym, s, e))
            lat.append(el)
            counts.append(n)
        ep = data[sym]["Epoch"]
        s0, e0 = D.day_bounds(picks[0])
        expect = int(((ep >= s0) & (ep <= e0)).sum())
        self.check(counts[0] == expect, f"one-day read returned {counts[0]} rows, expected {expect}")
        self.emit("4", "one-day read, warm", median(lat) * 1e6, "µs p50", "lower",
                  p50_us=median(lat) * 1e6, p99_us=pct(lat, 99) * 1e6, n=len(lat),
                  rows=float(np.mean(counts)))
        s, e = D.day_bounds(picks[0])
        cold, resident = self.cold(root, eng.open_bars, lambda: eng.read_range(sym, s, e),
                                   max(5, self.R * 3))
        self.emit("4", "one-day read, cold", median(cold) * 1e6, "µs p50", "lower",
                  p50_us=median(cold) * 1e6, p99_us=pct(cold, 99) * 1e6, n=len(cold),
                  resident_after_drop=resident)
        log(f"  one-day warm p50 {median(lat) * 1e6:.0f} µs p99 {pct(lat, 99) * 1e6:.0f} µs, "
            f"cold p50 {median(cold) * 1e6:.0f} µs")

        # multi-symbol
        syms = list(data)[: size.multi_symbols]
        ms = int(dt.datetime.combine(size.multi_start, dt.time(), dt.UTC).timestamp())
        me = int(dt.datetime.combine(size.multi_end, dt.time(23, 59, 59), dt.UTC).timestamp())
        eng.open_bars(root)
        n = eng.read_multi(syms, ms, me)
        expect = sum(int(((data[x]["Epoch"] >= ms) & (data[x]["Epoch"] <= me)).sum()) for x in syms)
        self.check(n == expect, f"multi-symbol read returned {n} rows, expected {expect}")
        lat = [timed(lambda: eng.read_multi(syms, ms, me))[0] for _ in range(max(5, self.R * 3))]
        self.emit("5", "multi-symbol read, warm", median(lat) * 1e3, "ms p50", "lower",
                  rows_per_s=n / median(lat), rows=n, runs_s=lat)
        log(f"  multi-symbol {median(lat) * 1e3:.1f} ms ({n} rows)")
        eng.close()

    # -- scenario 9 (mkts) --------------------------------------------------------------
    def sealed(self, root: str, data: dict[str, np.ndarray]) -> None:
        """Sealed years (docs/format.md "The three states of a year"): sealing the bar
        universe written by scenario 1 (rows/s, one thread), its size, and the reads of
        scenarios 3 and 4 on the sealed files."""
        eng = self.eng
        total = sum(len(v) for v in data.values())
        sym = next(iter(data))
        want = len(data[sym])
        eng.open_bars(root)
        # The encoding alone (CPU, one thread): one symbol-year's rows, already in memory.
        from mkts.engine.sealfile import SealMeta, encode_sealed
        from mkts.engine.sealing import live_rows

        bucket = eng.db.catalog.get(eng.engine.parse_key(D.BAR_KEY.format(sym)))
        year = self.size.bar_start.year
        with eng.db.catalog.pinned(bucket, year) as f:
            keys, cols = live_rows(f, bucket.schema, eng.db.calendar)
            h = f.header
        meta = SealMeta(bucket.schema, year, h.nslots, h.year_start, h.timezone)
        enc = [timed(lambda: encode_sealed(meta, keys, cols))[0] for _ in range(max(5, self.R))]
        self.emit("9", "sealing, encoding only (one thread)", len(keys) / median(enc), "rows/s",
                  "higher", rows=len(keys), runs_s=enc)
        from benchmarks.sealceil import sealing_ceilings
        from mkts.engine.sealfile import group_rows

        got = sealing_ceilings(lambda: encode_sealed(meta, keys, cols), cols,
                               group_rows(bucket.schema), rounds=max(5, self.R * 2))
        for case, secs in got.items():
            self.emit("9", f"sealing, same rounds: {case}", len(keys) / secs, "rows/s", "higher",
                      latency_ms=secs * 1e3, rows=len(keys))
        log("  sealing one symbol-year and its parts: " + ", ".join(
            f"{c} {s * 1e3:.2f} ms" for c, s in got.items()))
        el, done = timed(lambda: eng.db.seal(year=year))
        self.check(len(done) == len(data), f"sealed {len(done)} years, expected {len(data)}")
        eng.close()
        self.emit("9", "sealing the bars", total / el, "rows/s", "higher", seconds=el,
                  rows=total, years=len(done))
        apparent, allocated = raw.disk_usage(root)
        self.emit("7", "bars: bytes per row, sealed (apparent)", apparent / total, "B/row",
                  "lower", bytes=apparent, allocated=allocated)
        log(f"  sealed {len(done)} years at {total / el / 1e6:.1f} M rows/s; "
            f"{apparent / total:.1f} B/row apparent")
        eng.open_bars(root)  # the block cache on (its default size)
        # the same files through a second handle without the block cache: every read decodes
        off = eng.engine.open(root, readonly=True, block_cache_mb=0)
        key = D.BAR_KEY.format(sym)
        n = eng.read_full(sym)
        self.check(n == want, f"sealed full read returned {n} rows, expected {want}")
        self.check(len(off.read(key)) == want, "sealed full read (block cache off): rows")
        warm, warm_off = [], []
        for _ in range(max(25, self.R * 8)):  # interleaved: the same machine load for both
            warm.append(timed(lambda: eng.read_full(sym))[0])
            warm_off.append(timed(lambda: off.read(key))[0])
        for label, ts in (("on", warm), ("off", warm_off)):
            self.emit("9", f"sealed full symbol-year read, warm, block cache {label}",
                      want / median(ts), "rows/s", "higher", latency_ms=median(ts) * 1e3,
                      rows=want, runs_s=ts)
        self.sealed_ceilings(eng, sym, want, off)
        off.close()
        cold, resident = self.cold(root, eng.open_bars, lambda: eng.read_full(sym),
                                   max(3, self.R))
        self.emit("9", "sealed full symbol-year read, cold", want / median(cold), "rows/s",
                  "higher", latency_ms=median(cold) * 1e3, rows=want, runs_s=cold,
                  resident_after_drop=resident)
        days = D.trading_days(self.size.bar_start, self.size.bar_end)
        rng = np.random.default_rng(D.SEED)
        picks = [days[i] for i in rng.integers(0, len(days), self.size.day_reads)]
        eng.open_bars(root)
        off = eng.engine.open(root, readonly=True, block_cache_mb=0)
        # the cache on: each day read twice, the second read timed (a repeated read hits)
        lat, lat_off = [], []
        for d in picks:
            s, e = D.day_bounds(d)
            eng.read_range(sym, s, e)
            lat.append(timed(lambda s=s, e=e: eng.read_range(sym, s, e))[0])
            lat_off.append(timed(lambda s=s, e=e: len(off.read(key, s, e)))[0])
        off.close()
        for label, ts in (("on, repeated", lat), ("off", lat_off)):
            self.emit("9", f"sealed one-day read, warm, block cache {label}", median(ts) * 1e6,
                      "µs p50", "lower", p50_us=median(ts) * 1e6, p99_us=pct(ts, 99) * 1e6,
                      n=len(ts))
        s, e = D.day_bounds(picks[0])
        cold, resident = self.cold(root, eng.open_bars, lambda: eng.read_range(sym, s, e),
                                   max(5, self.R * 3))
        self.emit("9", "sealed one-day read, cold", median(cold) * 1e6, "µs p50", "lower",
                  p50_us=median(cold) * 1e6, p99_us=pct(cold, 99) * 1e6, n=len(cold),
                  resident_after_drop=resident)
        log(f"  sealed full read warm {want / median(warm) / 1e6:.1f} M rows/s block cache on, "
            f"{want / median(warm_off) / 1e6:.1f} M off; one-day warm p50 "
            f"{median(lat) * 1e6:.0f} µs on (repeated), {median(lat_off) * 1e6:.0f} µs off; "
            f"cold p50 {median(cold) * 1e6:.0f} µs")
        eng.close()

    def sealed_ceilings(self, eng: Any, sym: str, rows: int, off: Any) -> None:
        """The sealed full-year read, with the block cache and without (`off`: a handle with
        none), beside its ceilings, interleaved (benchmarks/sealceil.py)."""
        from benchmarks.sealceil import sealed_read_ceilings

        bucket = eng.db.catalog.get(eng.engine.parse_key(D.BAR_KEY.format(sym)))
        path = os.path.join(bucket.path, f"{self.size.bar_start.year}.sealed")
        got = sealed_read_ceilings(path, eng.db.read(D.BAR_KEY.format(sym)).array,
                                   lambda: eng.read_full(sym), rounds=max(5, self.R * 3),
                                   more={"the read, block cache off (db.read)":
                                         lambda: off.read(D.BAR_KEY.format(sym))})
        for case, (secs, faults) in got.items():
            self.emit("9", f"sealed full-year read, same rounds: {case}", rows / secs, "rows/s",
                      "higher", latency_ms=secs * 1e3, rows=rows, minor_faults=faults)
        log("  sealed full-year read and ceilings: " + ", ".join(
            f"{c} {s * 1e3:.2f} ms ({f:.0f} minor faults)" for c, (s, f) in got.items()))

    # -- scenario 2 ------------------------------------------------------------------
    def appends(self) -> None:
        size, eng = self.size, self.eng
        root = fresh(os.path.join(self.work, "appends"))
        start = int(dt.datetime(2025, 1, 2, tzinfo=dt.UTC).timestamp())
        caps = {1: 200_000, 100: 20_000}
        for vi, (variant, durable) in enumerate(eng.append_variants):
            eng.open_appends(root, variant)
            for batch in (1, 100):
                self.settle()  # the previous variant's dirty data must not slow this one
                probe = self.disk_probe(0.2 if self.size.name == "smoke" else 1.0)
                rates, lat_all = [], []
                rows = D.append_rows(start, caps[batch] * batch + 1)
                for r in range(self.R):
                    sym = f"A{batch}V{vi}R{r}"
                    eng.create_symbol(sym, rows[:1])
                    lat = []
                    i = 1
                    t_end = time.perf_counter() + size.append_seconds
                    while time.perf_counter() < t_end and i + batch <= len(rows):
                        chunk = eng.prepare_append(rows[i : i + batch])
                        t0 = time.perf_counter()
                        eng.append(sym, chunk)
                        lat.append(time.perf_counter() - t0)
                        i += batch
                    rates.append(len(lat) / sum(lat))
                    lat_all.extend(lat)
                case = f"{batch}-row appends, {'durable' if durable else 'not durable'}"
                self.emit("2", case, median(rates) * batch, "rows/s", "higher", variant=variant,
                          durable=durable, calls_per_s=median(rates), p50_us=median(lat_all) * 1e6,
                          p99_us=pct(lat_all, 99) * 1e6, calls=len(lat_all), runs=rates,
                          disk_probe=probe)
                log(f"  {batch}-row appends {variant}: {median(rates):,.0f} calls/s, p50 "
                    f"{median(lat_all) * 1e6:.0f} µs, p99 {pct(lat_all, 99) * 1e6:.0f} µs")
            eng.close()
        shutil.rmtree(root)
        if isinstance(eng, Mkts):
            self.writer_threads(start)

    def writer_threads(self, start: int) -> None:
        """mkts with 1 and 4 writer threads under sync=always, alternating round by round
        with raw.group_commit_appends (a minimal pure-Python group commit: no database work,
        one os.write + os.fdatasync per group) in this same process: the ceiling that group
        commit in CPython reaches on this machine. Its rows carry engine "raw"."""
        eng = self.eng
        assert isinstance(eng, Mkts)
        seconds = max(self.size.append_seconds, 0.05)
        rows = D.append_rows(start, 400_000)
        mk: dict[int, list[float]] = {1: [], 4: []}
        gc: dict[int, list[float]] = {1: [], 4: []}
        per_sync: dict[int, list[float]] = {1: [], 4: []}
        for r in range(self.R):
            for threads in (1, 4):
                self.settle()
                tr = fresh(os.path.join(self.work, f"threads{threads}_{r}"))
                n, el = eng.threaded_appends(tr, threads, rows, seconds)
                mk[threads].append(n / el)
                shutil.rmtree(tr)
                self.settle()
                path = os.path.join(self.work, f"groupcommit{threads}_{r}.bin")
                g = raw.group_commit_appends(path, threads, seconds=seconds)
                gc[threads].append(g.appends / g.elapsed)
                per_sync[threads].append(g.appends / max(g.syncs, 1))
                os.unlink(path)
        for threads in (1, 4):
            case = f"1-row appends, {threads} writer thread{'s' if threads > 1 else ''}"
            self.emit("2", case, median(mk[threads]), "appends/s", "higher",
                      variant="sync=always", durable=True, runs=mk[threads])
            self.emit("2", case, median(gc[threads]), "appends/s", "higher",
                      variant=GROUP_COMMIT_VARIANT, durable=True, runs=gc[threads],
                      appends_per_sync=median(per_sync[threads]), engine="raw")
            log(f"  {threads} threads sync=always: {median(mk[threads]):,.0f} appends/s; "
                f"raw minimal group commit {median(gc[threads]):,.0f} appends/s "
                f"({median(per_sync[threads]):.1f} per fdatasync)")

    def reads_after_appends(self, data: dict[str, np.ndarray]) -> None:
        size, eng = self.size, self.eng
        sym = next(iter(data))
        rows = data[sym]
        cut = len(rows) - min(size.reads_after, len(rows) // 5)
        base, tail = rows[:cut], rows[cut:]
        root = fresh(os.path.join(self.work, "after"))
        variant = eng.append_variants[0][0]
        eng.open_appends(root, variant)
        eng.create_symbol("RA", base)
        days = D.trading_days(size.bar_start, size.bar_end)
        days = [d for d in days if D.day_bounds(d)[1] < int(tail["Epoch"][0])]
        probe = days[len(days) // 2 : len(days) // 2 + 5] or days[:1]

        def sample() -> float:
            """p50 over rounds of the probe days: at least 2 rounds, then more until 3 s
            have passed or 80 rounds were made (20 rounds moved the p50 by ±8 % here)."""
            lat: list[float] = []
            t_end = time.perf_counter() + (0.2 if size.name == "smoke" else 3.0)
            rounds = 0
            while rounds < 2 or (rounds < 80 and time.perf_counter() < t_end):
                for d in probe:
                    s, e = D.day_bounds(d)
                    lat.append(timed(lambda s=s, e=e: eng.read_range("RA", s, e))[0])
                rounds += 1
            return median(lat)

        sample()  # warm up
        fresh_p50 = sample()
        app = []
        for i in range(len(tail)):
            chunk = eng.prepare_append(tail[i : i + 1])
            app.append(timed(lambda chunk=chunk: eng.append("RA", chunk))[0])
        after_p50 = sample()
        s, e = D.day_bounds(probe[0])
        n = eng.read_range("RA", s, e)
        ep = base["Epoch"]
        self.check(n == int(((ep >= s) & (ep <= e)).sum()), "read after appends: wrong row count")
        eng.close()
        shutil.rmtree(root)
        self.emit("2b", f"one-day read after {len(tail)} 1-row appends", after_p50 * 1e6,
                  "µs p50", "lower", variant=variant, fresh_us=fresh_p50 * 1e6,
                  after_us=after_p50 * 1e6, speed_vs_fresh=fresh_p50 / after_p50,
                  append_p50_us=median(app) * 1e6, appends=len(tail))
        log(f"  read after {len(tail)} appends: {fresh_p50 * 1e6:.0f} -> {after_p50 * 1e6:.0f} µs")

    # -- scenario 6 ------------------------------------------------------------------
    def ticks(self) -> None:
        size, eng = self.size, self.eng
        batches = D.tick_batches(size)
        total = sum(len(b) for b in batches)
        native = [eng.prepare_ticks(b) for b in batches]
        variant, durable = eng.tick_variant
        times = []
        keep = ""
        runs = max(1, self.R - 1)  # 10^7 ticks per run: two runs at full size
        for r in range(runs):
            root = fresh(os.path.join(self.work, f"ticks{r}"))
            el, _ = timed(lambda root=root: eng.tick_ingest(root, native))
            eng.close()
            times.append(el)
            if r == runs - 1:
                keep = root
            else:
                shutil.rmtree(root)
        self.emit("6", "tick ingest", total / median(times), "rows/s", "higher", variant=variant,
                  durable=durable, runs_s=times, rows=total)
        log(f"  tick ingest {total / median(times) / 1e6:.2f} M rows/s")
        if isinstance(eng, Mkts):  # issue 17: the same ticks as one durable bulk load
            bulk = []
            for r in range(max(3, runs)):
                root = fresh(os.path.join(self.work, f"tickbulk{r}"))
                el, _ = timed(lambda root=root: eng.tick_bulk_load(root, native))
                eng.close()
                bulk.append(el)
                shutil.rmtree(root)
            self.emit("6", "tick bulk load", total / median(bulk), "rows/s", "higher",
                      variant="sync=always, bulk load", durable=True, runs_s=bulk, rows=total)
            log(f"  tick bulk load {total / median(bulk) / 1e6:.2f} M rows/s")
        apparent, allocated = raw.disk_usage(keep)
        self.emit("7", "ticks: bytes per tick (apparent)", apparent / total, "B/row", "lower",
                  bytes=apparent)
        self.emit("7", "ticks: bytes per tick (allocated)", allocated / total, "B/row", "lower",
                  bytes=allocated)
        days = D.tick_days(size)
        day, day_ticks = days[len(days) // 2]
        s, e = D.day_bounds(day)
        eng.open_ticks(keep)
        n = eng.tick_read(s, e)
        self.check(n == len(day_ticks), f"tick day read returned {n}, expected {len(day_ticks)}")
        warm = [timed(lambda: eng.tick_read(s, e))[0] for _ in range(max(3, self.R))]
        self.emit("6", "tick day read, warm", n / median(warm), "rows/s", "higher",
                  latency_ms=median(warm) * 1e3, rows=n, runs_s=warm)
        cold, resident = self.cold(keep, eng.open_ticks, lambda: eng.tick_read(s, e),
                                   max(2, self.R))
        self.emit("6", "tick day read, cold", n / median(cold), "rows/s", "higher",
                  latency_ms=median(cold) * 1e3, rows=n, runs_s=cold,
                  resident_after_drop=resident)
        log(f"  tick day read warm {median(warm) * 1e3:.0f} ms, cold {median(cold) * 1e3:.0f} ms")
        eng.close()
        if isinstance(eng, Mkts):  # scenario 9: the same ticks sealed
            eng.open_ticks(keep)
            el, done = timed(lambda: eng.db.seal(year=day.year))
            eng.close()
            apparent, allocated = raw.disk_usage(keep)
            self.emit("7", "ticks: bytes per tick, sealed (apparent)", apparent / total,
                      "B/row", "lower", bytes=apparent, allocated=allocated)
            self.emit("9", "sealing the ticks", total / el, "rows/s", "higher", seconds=el,
                      rows=total)
            eng.open_ticks(keep)
            warm = [timed(lambda: eng.tick_read(s, e))[0] for _ in range(max(3, self.R))]
            self.emit("9", "sealed tick day read, warm", n / median(warm), "rows/s", "higher",
                      latency_ms=median(warm) * 1e3, rows=n, runs_s=warm)
            log(f"  sealed ticks: {apparent / total:.1f} B/tick, sealing "
                f"{total / el / 1e6:.1f} M rows/s, day read warm {median(warm) * 1e3:.0f} ms")
            eng.close()
        shutil.rmtree(keep)

    def single_ticks(self) -> None:
        """Issue 4: N single-tick appends into the current interval of a 1Min bucket; the
        cost per append must not grow with the ticks already in the interval."""
        from mkts import engine

        size = self.size
        n = size.single_ticks
        root = fresh(os.path.join(self.work, "single"))
        label = int(dt.datetime(2024, 3, 5, 15, 0, tzinfo=dt.UTC).timestamp())
        offs = (np.arange(n, dtype=np.int64) * (60_000_000_000 // n))
        ticks = np.zeros(n, dtype=D.TICK_DTYPE)
        ticks["Epoch"] = label + offs // 1_000_000_000
        ticks["Nanoseconds"] = offs % 1_000_000_000
        ticks["Price"] = 100.0 + np.arange(n) * 1e-4
        ticks["Size"] = 100
        key = "AAPL/1Min/TRADE"
        lat = np.empty(n)
        with engine.open(root, bulk_load_rows=0, sync="off") as db:
            for i in range(n):
                row = ticks[i : i + 1]
                t0 = time.perf_counter()
                db.write(key, row, variable=True)
                lat[i] = time.perf_counter() - t0
            got = len(db.read(key))
        shutil.rmtree(root)
        self.check(got == n, f"single-tick appends: read back {got}, expected {n}")
        early = lat[50:150] if n >= 150 else lat[: max(1, n // 2)]
        late = lat[-1000:] if n >= 10_000 else lat[-max(1, n // 4):]
        self.emit("6b", "single-tick append at ~10^2 ticks/interval", float(np.mean(early)) * 1e6,
                  "µs mean", "lower", p50_us=float(np.median(early)) * 1e6,
                  p99_us=float(np.percentile(early, 99)) * 1e6)
        self.emit("6b", f"single-tick append at ~{n:,} ticks/interval",
                  float(np.mean(late)) * 1e6, "µs mean", "lower",
                  p50_us=float(np.median(late)) * 1e6, p99_us=float(np.percentile(late, 99)) * 1e6,
                  growth_mean=float(np.mean(late) / np.mean(early)),
                  growth_p50=float(np.median(late) / np.median(early)),
                  overall_mean_us=float(lat.mean()) * 1e6, max_ms=float(lat.max()) * 1e3)
        log(f"  single ticks: early mean {np.mean(early) * 1e6:.0f} µs, late mean "
            f"{np.mean(late) * 1e6:.0f} µs, overall {lat.mean() * 1e6:.0f} µs, max "
            f"{lat.max() * 1e3:.1f} ms")

    def ondiskagg(self, data: dict[str, np.ndarray]) -> None:
        """Issue 5, ondiskagg on four destinations against no triggers, same sync mode:
        8, the cost per write of a stream of 1-row writes (back to back, one
        wait_for_triggers() at the end, so all aggregation is done and in the year files);
        8b, one write + wait_for_triggers() at a time (the latency until the aggregates are
        current). The result labels keep the older name, flush(), to stay comparable."""
        try:
            from mkts.plugins import ondiskagg
        except ImportError as exc:
            log(f"  ondiskagg not available ({exc}); scenario 8 skipped")
            return
        from mkts import engine

        rows = next(iter(data.values()))
        cut = len(rows) // 2
        n_stream = min(self.size.agg_writes, len(rows) - cut)
        n_one = min(300 if self.size.name != "smoke" else 30, len(rows) - cut)
        key = "AGG/1Min/OHLCV"

        def opened(tag: str, sync: str, agg: bool) -> tuple[str, Any]:
            root = fresh(os.path.join(self.work, f"agg{tag}{sync}{agg}"))
            trig = ([("*/1Min/OHLCV", ondiskagg.NewTrigger(
                {"destinations": ["5Min", "15Min", "1H", "1D"]}))] if agg else [])
            db = engine.open(root, bulk_load_rows=0, sync=sync, triggers=trig)
            db.write(key, rows[:cut])  # the history the bars are computed from
            db.wait_for_triggers()
            return root, db

        def done(root: str, db: Any, agg: bool) -> None:
            if agg:
                day = db.read("AGG/1D/OHLCV")
                base = db.read(key)
                self.check(int(np.asarray(day["Volume"]).sum())
                           == int(np.asarray(base["Volume"]).sum()),
                           "ondiskagg's 1D volume differs from the base's")
            db.close()
            shutil.rmtree(root)

        for sync in ("always", "off"):
            stream: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(self.R):  # alternate, so drift hits both alike
                for agg in (False, True):
                    self.settle()
                    root, db = opened("s", sync, agg)
                    t0 = time.perf_counter()
                    for i in range(cut, cut + n_stream):
                        db.write(key, rows[i : i + 1])
                    db.wait_for_triggers()
                    stream[agg].append((time.perf_counter() - t0) / n_stream)
                    done(root, db, agg)
            for agg in (False, True):
                per = median(stream[agg])
                extra = {"cost_vs_plain": per / median(stream[False])} if agg else {}
                self.emit("8", f"1-row write stream, {'ondiskagg' if agg else 'no triggers'}",
                          per * 1e6, "µs per write", "lower", variant=f"sync={sync}",
                          durable=sync == "always", writes=n_stream, runs=stream[agg], **extra)
            one: dict[bool, list[float]] = {}
            for agg in (False, True):
                root, db = opened("o", sync, agg)
                lat = []
                for i in range(cut, cut + n_one):
                    t0 = time.perf_counter()
                    db.write(key, rows[i : i + 1])
                    db.wait_for_triggers()
                    lat.append(time.perf_counter() - t0)
                done(root, db, agg)
                one[agg] = lat
                extra = {"latency_vs_plain": median(lat) / median(one[False])} if agg else {}
                self.emit("8b", f"1-row write + flush, {'ondiskagg' if agg else 'no triggers'}",
                          median(lat) * 1e6, "µs p50", "lower", variant=f"sync={sync}",
                          durable=sync == "always", p50_us=median(lat) * 1e6,
                          p99_us=pct(lat, 99) * 1e6, **extra)
            log(f"  ondiskagg sync={sync}: stream {median(stream[False]) * 1e6:.0f} -> "
                f"{median(stream[True]) * 1e6:.0f} µs per write; write + flush "
                f"{median(one[False]) * 1e6:.0f} -> {median(one[True]) * 1e6:.0f} µs")

    def disk_probe(self, seconds: float = 1.0) -> float:
        """fdatasyncs per second right now: 32-byte pwrite + fdatasync in a loop, as the raw
        durable append does. The shared disk's fsync latency drifts with other users' I/O,
        so durable figures are also compared with this probe, taken in the same process
        just before them."""
        path = os.path.join(self.work, "probe.bin")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        lat = []
        try:
            t_end = time.perf_counter() + seconds
            i = 0
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                os.pwrite(fd, b"\x01" * 32, 32 * i)
                os.fdatasync(fd)
                lat.append(time.perf_counter() - t0)
                i += 1
        finally:
            os.close(fd)
            os.unlink(path)
        return len(lat) / sum(lat)

    def settle(self) -> None:
        """Write back what earlier scenarios left dirty in our scratch directory, so that its
        writeback does not land in the next scenario's timings (ext4 journal commits wait
        for it). Only our own files: a global sync() would wait for other users' I/O."""
        for d, _, names in os.walk(self.work):
            for n in names:
                try:
                    raw.fsync_path(os.path.join(d, n))
                except OSError:
                    pass

    def step(self, name: str) -> None:
        self.rss_steps.append((name, maxrss_mb()))

    def run(self) -> None:
        t0 = time.perf_counter()
        self.rss_steps: list[tuple[str, float]] = []
        self.load = [os.getloadavg()[0]]
        self.io_pressure = [io_pressure()]
        data = D.bar_set(self.size)
        native = self.eng.prepare_bulk(data)
        self.rss_data_mb = maxrss_mb()
        log(f"{self.eng.name}: data ready ({sum(len(v) for v in data.values()):,} bars, RSS "
            f"{self.rss_data_mb:.0f} MB)")
        self.settle()
        root = self.bulk(data, native)
        del native
        self.step("bulk write")
        self.settle()
        self.reads(root, data)
        if isinstance(self.eng, Mkts):
            self.settle()
            self.sealed(root, data)
            self.step("sealed")
        shutil.rmtree(root)
        self.step("reads")
        self.settle()
        self.appends()
        self.step("appends")
        self.settle()
        self.reads_after_appends(data)
        self.step("reads after appends")
        self.settle()
        self.ticks()
        self.step("ticks")
        if isinstance(self.eng, Mkts):
            self.settle()
            self.single_ticks()
            self.step("single ticks")
            self.settle()
            self.ondiskagg(data)
            self.step("ondiskagg")
        self.elapsed = time.perf_counter() - t0
        self.load.append(os.getloadavg()[0])
        self.io_pressure.append(io_pressure())


def io_pressure() -> float | None:
    """Share of the last 60 s some task waited for I/O (/proc/pressure/io), in percent."""
    try:
        with open("/proc/pressure/io") as f:
            first = f.readline().split()
        return float(dict(x.split("=") for x in first[1:])["avg60"])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def worker_main(name: str, size: D.Size, workdir: str, repeats: int, result: str) -> int:
    out: dict[str, Any] = {"engine": name, "label": ENGINES[name].label}
    try:
        eng = make_engine(name)
    except Unavailable as exc:
        out.update(available=False, reason=str(exc))
        with open(result, "w") as f:
            json.dump(out, f)
        return 0
    out.update(available=True, version=eng.version(), files=eng.files_note())
    rss0 = maxrss_mb()
    w = Worker(eng, size, workdir, repeats)
    try:
        w.run()
    finally:
        try:
            eng.close()
        except Exception:
            pass
    out.update(results=w.rows, checks_failed=w.checks, elapsed_s=w.elapsed,
               rss_start_mb=rss0, rss_data_mb=w.rss_data_mb, rss_peak_mb=maxrss_mb(),
               load=w.load, io_pressure=w.io_pressure, rss_steps=w.rss_steps)
    with open(result, "w") as f:
        json.dump(out, f)
    return 0


# ------------------------------------------------------------------------------ report
def machine() -> dict[str, Any]:
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1), "cpu": cpu,
        "kernel": platform.release(), "python": platform.python_version(),
        "numpy": np.__version__,
        "load_at_start": os.getloadavg()[0],
    }


def _ref(rows: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any] | None:
    refs = [r for r in rows if r["engine"] == "mkts" and r["scenario"] == row["scenario"]
            and r["case"] == row["case"]]
    if not refs:
        return None
    same = [r for r in refs if r.get("durable") == row.get("durable")]
    return (same or refs)[0]


def add_ratios(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        ref = _ref(rows, row)
        if ref is not None and ref["value"]:
            row["vs_mkts"] = row["value"] / ref["value"]


def fmt(v: float, unit: str) -> str:
    if unit in ("rows/s", "appends/s"):
        if v >= 1e6:
            return f"{v / 1e6:.2f}M"
        if v >= 1e3:
            return f"{v / 1e3:.1f}k"
        return f"{v:.0f}"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def goals(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(goal, measured, verdict) for every goal that this run measured (the goals are listed in benchmarks/README.md)."""

    def get(engine: str, scenario: str, case: str, variant: str | None = None
            ) -> dict[str, Any] | None:
        for r in rows:
            if (r["engine"] == engine and r["scenario"] == scenario and r["case"] == case
                    and (variant is None or r["variant"] == variant)):
                return r
        return None

    out: list[tuple[str, str, str]] = []

    def ratio_goal(text: str, a: dict[str, Any] | None, b: dict[str, Any] | None, need: float,
                   *, lower_better: bool = False, what: str = "takes {r:.2f}× the time") -> None:
        """a = mkts, b = the reference; `need` is the required a/b for rates. For latencies
        (lower_better) mkts may take at most 1/need times the reference's latency."""
        if a is None or b is None:
            return
        vals = f"{fmt(a['value'], a['unit'])} vs {fmt(b['value'], b['unit'])} {a['unit']}"
        if lower_better:
            r = a["value"] / b["value"]
            out.append((text, f"mkts {what.format(r=r)} ({vals}; needs ≤ {1 / need:g}×)",
                        "met" if r <= 1 / need else "NOT met"))
            return
        r = a["value"] / b["value"]
        out.append((text, f"{r:.2f}× ({vals}; needs ≥ {need:g}×)",
                    "met" if r >= need else "NOT met"))

    def abs_goal(text: str, a: dict[str, Any] | None, value: float, need: float, unit: str,
                 *, lower_better: bool = False) -> None:
        if a is None:
            return
        ok = value <= need if lower_better else value >= need
        out.append((text, f"{fmt(value, unit)} {unit}", "met" if ok else "NOT met"))

    sealed_bars = get("mkts", "7", "bars: bytes per row, sealed (apparent)")
    ratio_goal("sealed bars: bytes per row ≤ 0.8× DuckDB's", sealed_bars,
               get("duckdb", "7", "bars: bytes per row (apparent)"), 1 / 0.8, lower_better=True,
               what="stores {r:.2f}× the bytes")
    if sealed_bars is not None:
        abs_goal("sealed bars ≤ 12 bytes per bar (cent-grid prices)", sealed_bars,
                 sealed_bars["value"], 12, "B/row", lower_better=True)
    ratio_goal("sealed ticks: bytes per tick ≤ DuckDB's",
               get("mkts", "7", "ticks: bytes per tick, sealed (apparent)"),
               get("duckdb", "7", "ticks: bytes per tick (apparent)"), 1.0, lower_better=True,
               what="stores {r:.2f}× the bytes")
    for label in ("on", "off"):
        ratio_goal(f"sealed full-year read warm ≥ 2× ArcticDB (block cache {label})",
                   get("mkts", "9", f"sealed full symbol-year read, warm, block cache {label}"),
                   get("arcticdb", "3", "full symbol-year read, warm"), 2.0)
    ratio_goal("sealed full-year read cold ≥ 2× the live year cold",
               get("mkts", "9", "sealed full symbol-year read, cold"),
               get("mkts", "3", "full symbol-year read, cold"), 2.0)
    for case, need in (("warm, block cache on, repeated", 300.0),
                       ("warm, block cache off", 300.0), ("cold", 2000.0)):
        r = get("mkts", "9", f"sealed one-day read, {case}")
        if r is not None:
            abs_goal(f"sealed one-day read {case} p50 ≤ {need:g} µs", r, r["value"], need,
                     "µs p50", lower_better=True)
    for case in ("sealing the bars", "sealing, encoding only (one thread)"):
        r = get("mkts", "9", case)
        if r is not None:
            abs_goal(f"sealing ≥ 50 M rows/s per core ({case})", r, r["value"], 50e6, "rows/s")
    ratio_goal("durable bulk load (written sealed) ≥ 2× ArcticDB",
               get("mkts", "1", "bulk write", "sync=always, bulk load"),
               get("arcticdb", "1", "bulk write"), 2.0)
    ratio_goal("durable tick bulk load (written sealed) ≥ 2× ArcticDB's tick write",
               get("mkts", "6", "tick bulk load"), get("arcticdb", "6", "tick ingest"), 2.0)
    m_bulk = get("mkts", "1", "bulk write", "sync=always")
    ratio_goal("durable bulk write ≥ 2× ArcticDB", m_bulk,
               get("arcticdb", "1", "bulk write"), 2.0)
    ratio_goal("bulk write sync=always ≥ 0.5× raw writes + fsync", m_bulk,
               get("raw", "1", "bulk write", "pwrite + fdatasync per file"), 0.5)
    m1 = get("mkts", "2", "1-row appends, durable", "sync=always")
    ratio_goal("durable 1-row appends ≥ 4× DuckDB", m1,
               get("duckdb", "2", "1-row appends, durable"), 4.0)
    ratio_goal("durable 1-row appends ≥ 0.5× raw write+fdatasync", m1,
               get("raw", "2", "1-row appends, durable"), 0.5)
    if m1 is not None and m1.get("disk_probe"):
        r = m1["calls_per_s"] / m1["disk_probe"]
        out.append(("… the same, against a raw pwrite+fdatasync probe run just before in the "
                    "same process", f"{r:.2f}× ({m1['calls_per_s']:,.0f} vs "
                    f"{m1['disk_probe']:,.0f}/s)", "met" if r >= 0.5 else "NOT met"))
    if m1 is not None:
        abs_goal("durable 1-row append p99 ≤ 1 ms", m1, m1["p99_us"] / 1e3, 1.0, "ms",
                 lower_better=True)
    m100 = get("mkts", "2", "100-row appends, durable", "sync=always")
    if m100 is not None:
        abs_goal("durable 100-row appends ≥ 300k rows/s", m100, m100["value"], 300e3,
                 "rows/s")
    for v in ("sync=interval", "sync=off"):
        r = get("mkts", "2", "1-row appends, not durable", v)
        if r is not None:
            abs_goal(f"1-row appends with {v} ≥ 100k/s; 50k/s is the floor for sync=off",
                     r, r["calls_per_s"], 100e3, "appends/s")
    t1, t4 = get("mkts", "2", "1-row appends, 1 writer thread"), get(
        "mkts", "2", "1-row appends, 4 writer threads")
    ratio_goal("4 writer threads ≥ 2× one thread under sync=always", t4, t1, 2.0)
    g1, g4 = get("raw", "2", "1-row appends, 1 writer thread", GROUP_COMMIT_VARIANT), get(
        "raw", "2", "1-row appends, 4 writer threads", GROUP_COMMIT_VARIANT)
    if g1 is not None and g4 is not None and g1["value"] and g4["value"]:
        text = (f"raw {g4['value'] / g1['value']:.2f}× ({fmt(g4['value'], 'appends/s')} vs "
                f"{fmt(g1['value'], 'appends/s')} appends/s, "
                f"{g4.get('appends_per_sync', 0):.1f} appends per fdatasync)")
        if t1 is not None and t4 is not None:
            text += (f"; mkts 4 threads = {t4['value'] / g4['value']:.2f}× the raw 4-thread "
                     f"rate (1 thread: {t1['value'] / g1['value']:.2f}×)")
        out.append(("… its same-run ceiling: a minimal pure-Python group commit (os.write + "
                    "fdatasync, no database), 4 threads vs 1", text, "info (not a goal)"))
    ra = get("mkts", "2b", next((r["case"] for r in rows if r["scenario"] == "2b"), ""))
    if ra is not None:
        abs_goal("reads after 3 000 appends ≥ 0.95× a fresh read", ra,
                 ra["speed_vs_fresh"], 0.95, "× fresh")
    fw = get("mkts", "3", "full symbol-year read, warm")
    ratio_goal("full symbol-year read warm ≥ 2.5× ArcticDB", fw,
               get("arcticdb", "3", "full symbol-year read, warm"), 2.5)
    ratio_goal("full-year read ≥ 0.5× raw memmap", fw,
               get("raw", "3", "full symbol-year read, warm"), 0.5)
    fc = get("mkts", "3", "full symbol-year read, cold")
    if fc is not None:
        abs_goal("full symbol-year read cold ≥ 40M rows/s", fc, fc["value"], 40e6,
                 "rows/s")
    dw = get("mkts", "4", "one-day read, warm")
    if dw is not None:
        abs_goal("one-day read warm p50 ≤ 150 µs", dw, dw["p50_us"], 150, "µs",
                 lower_better=True)
    ratio_goal("one-day read warm p50 within 2× raw", dw,
               get("raw", "4", "one-day read, warm"), 0.5, lower_better=True)
    dc = get("mkts", "4", "one-day read, cold")
    if dc is not None:
        abs_goal("one-day read cold ≤ 1 ms", dc, dc["p50_us"] / 1e3, 1.0, "ms",
                 lower_better=True)
    ratio_goal("tick ingest ≥ ArcticDB", get("mkts", "6", "tick ingest"),
               get("arcticdb", "6", "tick ingest"), 1.0)
    ratio_goal("tick day read (warm) ≥ ArcticDB", get("mkts", "6", "tick day read, warm"),
               get("arcticdb", "6", "tick day read, warm"), 1.0)
    for r in rows:
        if r["engine"] == "mkts" and r["scenario"] == "8" and "cost_vs_plain" in r:
            c = r["cost_vs_plain"]
            out.append((f"1-row write with ondiskagg ≤ 3× the write alone, {r['variant']}: a "
                        "stream of writes, cost per write",
                        f"{c:.1f}× ({r['value']:.0f} µs per write with aggregation)",
                        "met" if c <= 3.0 else "NOT met"))
        if r["engine"] == "mkts" and r["scenario"] == "8b" and "latency_vs_plain" in r:
            c = r["latency_vs_plain"]
            out.append((f"… one write + flush() at a time (until the aggregates are current), "
                        f"{r['variant']}", f"{c:.1f}× ({r['value']:.0f} µs p50)",
                        "info (not the goal's measure)"))
    late = [r for r in rows if r["engine"] == "mkts" and r["scenario"] == "6b" and "growth_mean" in r]
    if late:
        g = late[0]["growth_mean"]
        out.append(("single-tick append cost does not grow, 10^2 → 10^5 ticks/interval",
                    f"{g:.2f}× (mean; p50 {late[0]['growth_p50']:.2f}×)",
                    "met" if g <= 1.5 else "NOT met"))
    return out


def markdown(report: dict[str, Any]) -> str:
    m, size = report["machine"], report["size"]
    rows = report["rows"]
    engines = report["engines"]
    L = [f"# mkts side-by-side benchmark ({size['name']})", ""]
    L.append(f"- Date: {m['date']}; command: `{report['command']}`")
    L.append(f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux "
             f"{m['kernel']}; load average at start {m['load_at_start']:.2f} (shared machine)")
    L.append(f"- Python {m['python']}, numpy {m['numpy']}; "
             + "; ".join(f"{e['label']}: {e.get('version') or 'skipped'}" for e in engines))
    for e in engines:
        if not e.get("available"):
            L.append(f"- **{e['label']} skipped**: {e.get('reason')}")
        elif e.get("error"):
            L.append(f"- **{e['label']} failed**: {e['error']}")
        if e.get("checks_failed"):
            L.append(f"- **{e['label']} returned wrong rows**: {'; '.join(e['checks_failed'])}")
    # Reports written before issue 17 have no "prices": their bars were raw float walks.
    prices = size.get("prices", D.OLD_PRICES)
    L.append(f"- Data: plugins.synth, seed {D.SEED}: {size['symbols']} symbols × 1Min bars "
             f"{size['bar_start']}..{size['bar_end']} (market hours, holidays, 1% missing "
             f"minutes; bar prices: {prices}); ticks: {size['tick_days']} days × "
             f"{size['ticks_per_day']:,} bursty trades of one symbol, exact to the ns.")
    L.append(f"- Medians over {report['repeats']} runs (latencies: over every call). Ratios "
             "are competitor ÷ mkts in the same run (for `higher` metrics > 1 means the "
             "competitor is faster; for `lower` metrics > 1 means it is slower); durable "
             "rows are compared with mkts `sync=always`, others with mkts `sync=off`.")
    L.append("- Cold reads: the engine is closed and reopened, then every file under its root "
             "is fsynced and evicted with `posix_fadvise(POSIX_FADV_DONTNEED)`; the fraction of "
             "its allocated pages still resident (mincore) right after is shown. Timing starts "
             "after the reopen.")
    L.append("- Appends: the timer covers only the engine call; each engine's input (a numpy "
             "row, a DataFrame, an Arrow table, SQL parameters) is built before it.")
    L.append("- Peak RSS: each engine runs in its own subprocess; `ru_maxrss` of that process "
             "(it counts resident pages of memory-mapped files too). `engine part` = peak minus "
             "the RSS after the input data was built; `peak set by` names the scenarios that "
             "raised the high-water mark.")
    L.append("- Durable figures depend on the shared disk's fsync latency, which drifts with "
             "other users' I/O; each durable row shows a raw pwrite+fdatasync probe taken in the "
             "same process just before it (`disk probe`).")
    L.append("")
    names = [e["engine"] for e in engines if e.get("available")]
    for sc, title in SCENARIOS.items():
        srows = [r for r in rows if r["scenario"] == sc]
        if not srows:
            continue
        L.append(f"## {sc}. " + title.format(
            symbols=size["symbols"], seconds=size["append_seconds"], after=size["reads_after"],
            multi=size["multi_symbols"], ticks=f"{size['tick_days'] * size['ticks_per_day']:,}",
            batch=f"{size['tick_batch']:,}", per_day=f"{size['ticks_per_day']:,}",
            agg_writes=f"{size.get('agg_writes', 0):,}"))
        L.append("")
        L.append("| case | engine | variant | value | unit | better | vs mkts | detail |")
        L.append("|---|---|---|---:|---|---|---:|---|")
        cases = list(dict.fromkeys(x["case"] for x in srows))
        srows.sort(key=lambda r: (cases.index(r["case"]),
                                  ORDER.index(r["engine"]) if r["engine"] in ORDER else 99))
        for r in srows:
            detail = []
            if "p50_us" in r and r["scenario"] != "4" and r["scenario"] != "6b":
                detail.append(f"p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs")
            elif "p99_us" in r:
                detail.append(f"p99 {r['p99_us']:.0f} µs")
            if r.get("durable") and "disk_probe" in r:
                detail.append(f"disk probe {r['disk_probe']:,.0f} fdatasync/s")
            if "latency_ms" in r:
                detail.append(f"{r['latency_ms']:.2f} ms per read")
            if "rows_per_s" in r:
                detail.append(f"{fmt(r['rows_per_s'], 'rows/s')} rows/s")
            if r.get("resident_after_drop") is not None:
                detail.append(f"resident after drop {r['resident_after_drop'] * 100:.0f}%")
            if "speed_vs_fresh" in r:
                detail.append(f"fresh {r['fresh_us']:.0f} µs → after {r['after_us']:.0f} µs "
                              f"({r['speed_vs_fresh']:.2f}× fresh speed); appends p50 "
                              f"{r['append_p50_us']:.0f} µs")
            if "cost_vs_plain" in r:
                detail.append(f"{r['cost_vs_plain']:.1f}× the write without triggers")
            if "growth_mean" in r:
                detail.append(f"growth {r['growth_mean']:.2f}× mean / {r['growth_p50']:.2f}× "
                              f"p50; mean over all {r['overall_mean_us']:.0f} µs; max "
                              f"{r['max_ms']:.1f} ms")
            if "bytes" in r:
                detail.append(f"{r['bytes'] / 2**20:,.1f} MiB")
            if "appends_per_sync" in r:
                detail.append(f"{r['appends_per_sync']:.1f} appends per fdatasync; no database "
                              "work, measured in the mkts worker alternating with it")
            ratio = f"{r['vs_mkts']:.2f}×" if "vs_mkts" in r and r["engine"] != "mkts" else ""
            # a baseline measured in another engine's worker may name an engine not in the run
            label = next((e["label"] for e in engines if e["engine"] == r["engine"]),
                         ENGINES[r["engine"]].label if r["engine"] in ENGINES else r["engine"])
            dur = "" if r.get("durable") is None else (" (durable)" if r["durable"] else "")
            L.append(f"| {r['case']} | {label} | {r['variant']}{dur} | "
                     f"{fmt(r['value'], r['unit'])} | {r['unit']} | {r['better']} | {ratio} | "
                     f"{'; '.join(detail)} |")
        L.append("")
    L.append("## Peak memory")
    L.append("")
    L.append("| engine | peak RSS | after input data | engine part | peak set by | wall time | "
             "load avg start → end | I/O pressure avg60 start → end |")
    L.append("|---|---:|---:|---:|---|---:|---|---|")
    for e in engines:
        if e.get("available") and "rss_peak_mb" in e:
            io = " → ".join("?" if x is None else f"{x:.0f}%" for x in e.get("io_pressure", []))
            ld = " → ".join(f"{x:.1f}" for x in e.get("load", []))
            steps = e.get("rss_steps") or []
            prev, grew = e["rss_data_mb"], []
            for name, mb in steps:
                if mb - prev > 0.1 * e["rss_data_mb"]:
                    grew.append(f"{name} (+{mb - prev:.0f} MB)")
                prev = max(prev, mb)
            L.append(f"| {e['label']} | {e['rss_peak_mb']:.0f} MB | {e['rss_data_mb']:.0f} MB | "
                     f"{e['rss_peak_mb'] - e['rss_data_mb']:.0f} MB | {', '.join(grew) or '-'} | "
                     f"{e['elapsed_s']:.0f} s | {ld} | {io} |")
    L.append("")
    g = report.get("goals") or []
    if g:
        L.append("## Goals (ratios measured in this run)")
        L.append("")
        L.append("| goal | measured | verdict |")
        L.append("|---|---|---|")
        for text, measured, verdict in g:
            L.append(f"| {text} | {measured} | {verdict} |")
        L.append("")
    if names:
        L.append("Storage as used: " + "; ".join(
            f"{e['label']}: {e['files']}" for e in engines if e.get("available")))
        L.append("")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller data, fewer runs (< 2 min)")
    p.add_argument("--size", choices=sorted(D.SIZES), help="data size (default: full, or quick "
                   "with --quick; env MKTS_BENCH_SIZE)")
    p.add_argument("--only", default=",".join(ORDER),
                   help=f"comma-separated engines (default: {','.join(ORDER)})")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    p.add_argument("--repeats", type=int, default=None, help="runs per scenario")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--render", metavar="JSON",
                   help="only re-render the Markdown (and goals) of an earlier run's JSON")
    a = p.parse_args(argv)
    if a.render:
        with open(a.render) as f:
            report = json.load(f)
        add_ratios(report["rows"])
        report["goals"] = goals(report["rows"])
        md = markdown(report) + f"\nTotal wall time: {report['elapsed_s']:.0f} s.\n"
        with open(a.render[: -len(".json")] + ".md" if a.render.endswith(".json")
                  else a.render + ".md", "w") as f:
            f.write(md)
        with open(a.render, "w") as f:
            json.dump(report, f, indent=1, default=str)
        print(md)
        return 0
    size_name = a.size or os.environ.get("MKTS_BENCH_SIZE") or ("quick" if a.quick else "full")
    size = D.SIZES[size_name]
    repeats = a.repeats or size.repeats
    if a.worker:
        assert a.result and a.workdir
        return worker_main(a.worker, size, a.workdir, repeats, a.result)
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    for n in names:
        if n not in ENGINES:
            p.error(f"unknown engine {n!r}; choose from {', '.join(ORDER)}")
    names.sort(key=ORDER.index)
    started = time.perf_counter()
    m = machine()
    base = os.path.abspath(a.workdir or tempfile.mkdtemp(prefix="mkts-compare-"))
    os.makedirs(base, exist_ok=True)
    engines: list[dict[str, Any]] = []
    try:
        for n in names:
            wd = fresh(os.path.join(base, n))
            result = os.path.join(base, f"{n}.json")
            cmd = [sys.executable, "-m", "benchmarks.compare", "--worker", n, "--size", size_name,
                   "--workdir", wd, "--result", result, "--repeats", str(repeats)]
            log(f"engine {n} ...")
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
            proc = subprocess.run(cmd, cwd=root, env=env)
            if proc.returncode != 0 or not os.path.exists(result):
                engines.append({"engine": n, "label": ENGINES[n].label, "available": True,
                                "error": f"worker exited with status {proc.returncode}"})
            else:
                with open(result) as f:
                    engines.append(json.load(f))
                if not engines[-1].get("available"):
                    log(f"  skipped: {engines[-1]['reason']}")
            shutil.rmtree(wd, ignore_errors=True)
    finally:
        if a.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    rows = [r for e in engines for r in e.get("results", [])]
    add_ratios(rows)
    cmdline = "python -m benchmarks.compare" + (" " + " ".join(argv if argv is not None
                                                                  else sys.argv[1:])).rstrip()
    report = {
        "command": cmdline.strip(),
        "machine": m,
        "size": {**{k: (str(v) if isinstance(v, dt.date) else v)
                    for k, v in size.__dict__.items()}, "prices": D.PRICES},
        "repeats": repeats,
        "engines": [{k: v for k, v in e.items() if k != "results"} for e in engines],
        "rows": rows,
        "elapsed_s": time.perf_counter() - started,
    }
    report["goals"] = goals(rows)
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"compare-{size_name}")
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1, default=str)
    md = markdown(report)
    md += f"\nTotal wall time: {report['elapsed_s']:.0f} s.\n"
    with open(stem + ".md", "w") as f:
        f.write(md)
    print(md)
    failed = [e for e in engines if e.get("error") or e.get("checks_failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
