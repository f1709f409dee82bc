"""`mkts backup` of the benchmark universe (benchmarks/data.py: `symbols` x one year of 1Min
bars, and `tick_days` x `ticks_per_day` trades) beside plain copies of the same files in the
same run: `cp -a` (holes kept by seeking them), `cp -a --sparse=always`, `cp -a` followed by an fsync of every file (mkts fsyncs
what it copies), and `shutil.copytree`. Then the incremental case: a small write, and a
backup into the previous one.

    python -m benchmarks.backup [--size quick|full|smoke] [--repeats 3] [--workdir DIR]

Prints a markdown table: medians of `repeats` runs, MB/s over the data bytes of the root
(holes excluded; the same figure for every copy), warm page cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

from benchmarks import data as D
from mkts import engine
from mkts.engine.backup import backup_root


def build(root: str, size: D.Size) -> None:
    with engine.open(root, bulk_load_rows=0, sync="off") as db:
        for sym, rows in D.bar_set(size).items():
            db.write(D.BAR_KEY.format(sym), rows)
        for _, ticks in D.tick_days(size):
            db.write(D.TICK_KEY.format("AAPL"), ticks, variable=True)


def data_bytes(root: str) -> tuple[int, int]:
    """(allocated, apparent) bytes of the root's files: what a sparse-aware copy has to
    move, and what a copy that fills the holes writes."""
    alloc = apparent = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            st = os.stat(os.path.join(dirpath, n))
            alloc += st.st_blocks * 512
            apparent += st.st_size
    return alloc, apparent


def fsync_tree(path: str) -> None:
    for dirpath, _, names in os.walk(path):
        for n in names:
            fd = os.open(os.path.join(dirpath, n), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def fresh(path: str) -> str:
    if os.path.exists(path):
        shutil.rmtree(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="quick", choices=sorted(D.SIZES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", default=None)
    p.add_argument("--reuse", action="store_true", help="keep a universe already built in "
                   "WORKDIR/db (the incremental case changes it; the sizes stay)")
    args = p.parse_args(argv)
    size = D.SIZES[args.size]
    work = args.workdir or tempfile.mkdtemp(prefix="mkts-bench-backup-")
    os.makedirs(work, exist_ok=True)
    root = os.path.join(work, "db")
    if not (args.reuse and os.path.exists(os.path.join(root, "mkts.root"))):
        print(f"building the {size.name} universe in {root} ...", file=sys.stderr)
        build(fresh(root), size)
        time.sleep(2.1)  # the universe was written before the backups, not during them
    alloc, apparent = data_bytes(root)
    mb = alloc / 1e6
    cases: dict[str, list[float]] = {}
    dest = os.path.join(work, "dest")

    def cp() -> None:
        subprocess.run(["cp", "-a", "--sparse=always", root, fresh(dest)], check=True)

    def cp_auto() -> None:
        subprocess.run(["cp", "-a", root, fresh(dest)], check=True)

    def cp_fsync() -> None:
        cp()
        fsync_tree(dest)

    def copytree() -> None:
        shutil.copytree(root, fresh(dest))

    def backup() -> None:
        fresh(dest)
        backup_root(root, dest)

    for _ in range(args.repeats):  # interleaved, so machine load hits every case alike
        for name, fn in (("mkts backup (full)", backup), ("cp -a", cp_auto),
                         ("cp -a --sparse=always", cp),
                         ("cp -a --sparse=always, then fsync every file", cp_fsync),
                         ("shutil.copytree", copytree)):
            cases.setdefault(name, []).append(timed(fn))
    # incremental: one new day of bars for 5 symbols, then a backup into the previous one
    fresh(dest)
    backup_root(root, dest)
    inc: list[float] = []
    copied = linked = 0
    with engine.open(root, bulk_load_rows=0) as db:
        for k in range(args.repeats):
            for sym in list(D.bar_set(size))[:5]:
                rows = np.array(D.bars(sym, size)[-390:])
                rows["Close"] += 1.0 + k
                db.write(D.BAR_KEY.format(sym), rows)
            t = time.perf_counter()
            r = db.backup(dest)
            inc.append(time.perf_counter() - t)
            copied, linked = r.files_copied, r.files_linked
    cases["mkts backup (incremental: 5 bar files changed, db.backup with its checkpoint)"] = inc
    base = statistics.median(cases["cp -a"])
    print(f"\n{size.name} universe: {mb:.1f} MB of data ({apparent / 1e6:.0f} MB with the "
          f"holes) in {root}; {args.repeats} runs, "
          f"medians; machine: {os.cpu_count()} CPU(s)\n")
    print("| copy | median s | min s | MB/s (median) | time vs cp -a |")
    print("|---|---:|---:|---:|---:|")
    for name, xs in cases.items():
        m = statistics.median(xs)
        rate = "—" if "incremental" in name else f"{mb / m:.0f}"
        print(f"| {name} | {m:.3f} | {min(xs):.3f} | {rate} | {m / base:.2f} |")
    print(f"\nincremental: {copied} file(s) copied, {linked} linked (unchanged), of them "
          "data files: see the summary line of `mkts backup`")
    if args.workdir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
