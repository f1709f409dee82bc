"""benchmarks/ceilings.py (issue 17's goals beside their same-run ceilings) must not rot: the
raw gathers return the rows mkts returns, the same bytes, and the runner reports every case
and ratio on tiny data (MKTS_BENCH_SIZE=smoke). No timing is asserted."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import ceilings
from benchmarks import data as D

ROOT = Path(__file__).resolve().parents[2]


def test_raw_gathers_return_the_records_mkts_reads(tmp_path: Path) -> None:
    from mkts import engine

    size = D.SIZES["smoke"]
    rows = D.multi_year_bars(size)
    year = size.bar_end.year
    with engine.open(os.fspath(tmp_path / "db"), sync="off", bulk_load_rows=0) as db:  # live files
        db.write(ceilings.MY_KEY, rows)
        db.flush()
        folder = tmp_path / "db" / "MY" / "1Min" / "OHLCV"
        sources = []
        for y in (year - 1, year):
            words = ceilings._year_words(os.fspath(folder / f"{y}.bin"))
            sources.append((words, (words[:, 0] != 0).nonzero()[0]))
        got = ceilings.raw_gathers(sources)()
        starts = [int(dt.datetime(y, 1, 1, tzinfo=dt.UTC).timestamp()) for y in (year - 1, year)]
        same, epochs = ceilings.raw_same_work(sources, starts, 60)()
        want = db.read(ceilings.MY_KEY).array
    assert got.shape == (len(rows), want.dtype.itemsize // 8)
    # word 0 is the slot + 1 on disk, the Epoch label in a result: compare the other words
    assert np.array_equal(got[:, 1:], want.view(np.int64).reshape(got.shape)[:, 1:])
    assert np.array_equal(same, got)
    assert np.array_equal(epochs, rows["Epoch"])


def test_ceilings_runner_reports_every_case(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    env = dict(os.environ)
    env["MKTS_BENCH_SIZE"] = "smoke"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["TMPDIR"] = os.fspath(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.ceilings", "--size", "smoke", "--rounds", "2",
         "--burst", "2", "--dask-rounds", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for line in ("raw: two-year / one-year rate", "raw + check + labels: two-year / one-year",
                 "mkts writer: two-year / one-year rate", "mkts read-only: two-year / one-year",
                 "dask tasks, no work", "dask dataframe, precomputed frames",
                 "dask tasks, db.read only", "read_dask: per-worker rate / one process",
                 "share of read_dask over base/2: frames and the rest"):
        assert line in proc.stdout, line
