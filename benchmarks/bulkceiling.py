"""The durable bulk load of scenario 1's universe (issue 17) beside its ceilings, in one
process, rounds interleaved so that the shared disk's load falls on every case alike:

- mkts: `db.write` per symbol, `sync="always"`, bulk loads on (each symbol-year written as
  a sealed file, WAL op 7 logged); and all symbols in one `db.write_many` (one transaction,
  one log record and one log fdatasync for all);
- ArcticDB (LMDB, if installed): `lib.write` per symbol, as scenario 1 writes it;
- raw protocol: plain os calls doing what a durable bulk load must do per symbol — write a
  file of the size of its sealed file and fsync it, fsync its directory, append a 64-byte
  record to a log and fdatasync it — with no encoding: the disk's floor for mkts;
- encode only: `encode_sealed` of each symbol-year (CPU, no I/O);
- zstd only: zstd level 1 over the same raw column bytes, no transforms.

    python -m benchmarks.bulkceiling [--size quick|full|smoke] [--rounds 5]

Prints rows/s per case (median of the rounds) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zstandard

from benchmarks import data as D

KEY = "{}/1Min/OHLCV"


def _mkts(root: str, bars: dict[str, np.ndarray]) -> None:
    from mkts import engine

    with engine.open(root, sync="always", bulk_load_rows=10_000) as db:
        for sym, rows in bars.items():
            db.write(KEY.format(sym), rows)


def _mkts_many(root: str, bars: dict[str, np.ndarray]) -> None:
    from mkts import engine

    with engine.open(root, sync="always", bulk_load_rows=10_000) as db:
        db.write_many({KEY.format(s): rows for s, rows in bars.items()})


def _arctic(root: str, frames: dict[str, Any]) -> None:
    import arcticdb

    lib = arcticdb.Arctic(f"lmdb://{root}").get_library("bench", create_if_missing=True)
    for sym, df in frames.items():
        lib.write(sym, df)


def _raw(root: str, sizes: dict[str, int]) -> None:
    """The durable-ingest protocol with plain os calls and no encoding."""
    os.makedirs(os.path.join(root, "wal"))
    log = os.open(os.path.join(root, "wal", "0.wal"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for sym, size in sizes.items():
            d = os.path.join(root, sym)
            os.makedirs(d)
            fd = os.open(os.path.join(d, "2024.sealed"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"\x5a" * size)
                os.fsync(fd)
            finally:
                os.close(fd)
            dfd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            os.write(log, b"\x07" * 64)
            os.fdatasync(log)
    finally:
        os.close(log)


def _encode_inputs(root: str, bars: dict[str, np.ndarray]) -> list[tuple[Any, ...]]:
    """(meta, slots, columns) of each symbol-year, as the bulk load encodes them."""
    from mkts import engine
    from mkts.engine.sealfile import SealMeta

    out = []
    with engine.open(root, readonly=True) as db:
        for sym, rows in bars.items():
            b = db.catalog.get(engine.parse_key(KEY.format(sym)))
            years, slots = db.calendar.slots(rows["Epoch"], b.schema.timeframe)
            h = db.catalog.year_header(b, int(years[0]))
            meta = SealMeta(b.schema, int(years[0]), h.nslots, h.year_start, db.calendar.tz)
            out.append((meta, slots, {n: np.ascontiguousarray(rows[n]) for n in b.schema.names}))
    return out


def _encode(inputs: list[tuple[Any, ...]]) -> None:
    from mkts.engine.sealfile import encode_sealed

    for meta, slots, cols in inputs:
        encode_sealed(meta, slots, cols)


def _zstd(bars: dict[str, np.ndarray]) -> None:
    c = zstandard.ZstdCompressor(level=1)
    for rows in bars.values():
        for n in rows.dtype.names:
            c.compress(np.ascontiguousarray(rows[n]).tobytes())


def _timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="quick", choices=sorted(D.SIZES))
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    bars = D.bar_set(D.SIZES[args.size])
    total = sum(len(v) for v in bars.values())
    work = tempfile.mkdtemp(prefix="mkts-bulkceiling-")
    try:
        frames: dict[str, Any] | None = None
        try:
            import pandas as pd

            frames = {s: pd.DataFrame({n: r[n] for n in r.dtype.names if n != "Epoch"},
                                      index=pd.DatetimeIndex(r["Epoch"] * 10**9))
                      for s, r in bars.items()}
            import arcticdb  # noqa: F401
        except ImportError:
            frames = None
        probe = os.path.join(work, "probe")
        _mkts(probe, bars)
        sizes = {s: os.path.getsize(os.path.join(probe, KEY.format(s), "2024.sealed"))
                 for s in bars}
        inputs = _encode_inputs(probe, bars)
        shutil.rmtree(probe)
        cases: dict[str, Callable[[str], None]] = {
            "mkts bulk load (sync=always)": lambda root: _mkts(root, bars),
            "mkts bulk load, one write_many of all symbols": lambda root: _mkts_many(root, bars),
            "raw protocol: write+fsync file, fsync dir, log+fdatasync": lambda root: _raw(root,
                                                                                       sizes),
            "encode only (encode_sealed)": lambda root: _encode(inputs),
            "zstd level 1 only, raw columns": lambda root: _zstd(bars),
        }
        if frames is not None:
            cases["ArcticDB lib.write per symbol"] = lambda root: _arctic(root, frames)
        times: dict[str, list[float]] = {c: [] for c in cases}
        for r in range(args.rounds):
            for name, fn in cases.items():
                root = os.path.join(work, f"r{r}-{len(times[name])}")
                times[name].append(_timed(lambda fn=fn, root=root: fn(root)))
                shutil.rmtree(root, ignore_errors=True)
        rate = {c: total / statistics.median(t) for c, t in times.items()}
        print(f"{args.size}: {len(bars)} symbols, {total:,} bars, sealed files "
              f"{sum(sizes.values()) / len(sizes) / 1e3:.0f} kB each; median of {args.rounds}")
        base = rate.get("ArcticDB lib.write per symbol")
        for c, v in rate.items():
            vs = f"  {v / base:.2f}× ArcticDB" if base else ""
            print(f"  {c:58s} {v / 1e6:7.2f} M rows/s{vs}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
