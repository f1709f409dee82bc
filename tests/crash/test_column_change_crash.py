"""Column changes and the migration of a year file across crashes (docs/format.md "Column
changes"): power loss after every fsync, directory fsync, rename and write of a workload of
writes, add/rename/drop and writes that migrate year files, in every strict crash mode, and
a kill -9 in the middle of it. After reopening, the database reads exactly as after the
acknowledged steps, or as after those and the step in flight: acknowledged means durable,
and nothing is half changed (a schema without its data, a file in two layouts).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from crash.crashrun import STRICT_MODES, Failures, case_seed, crash_fs, fresh_fs, open_db
from harness.crashpoints import SimulatedCrash
from harness.faultfs import FaultFS

from mkts import engine

# hourly buckets: FaultFS keeps whole files in memory, and a year of 1Min or 1Sec slots is
# tens of megabytes or more
BARS, TICKS = "AAPL/1H/OHLCV", "AAPL/1H/TRADE"
Y2023, Y2024 = 1_672_669_800, 1_704_205_800  # 2 January 14:30 UTC
CRASH_OPS = ("sync", "fsync_dir", "replace", "pwrite")


def _bars(t0: int, n: int, cols: dict[str, str], first: float) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"Epoch": t0 + 3600 * np.arange(n, dtype=np.int64)}
    for i, (name, dt) in enumerate(cols.items()):
        out[name] = (first + i + np.arange(n)).astype(dt)
    return out


def _ticks(t0: int, n: int, cols: dict[str, str], first: float) -> dict[str, np.ndarray]:
    out = _bars(t0, n, cols, first)
    out["Epoch"] = t0 + 1800 * (np.arange(n, dtype=np.int64) // 2)
    out["Nanoseconds"] = (np.arange(n) * 1000).astype(np.int32)
    return out


OHLCV = {"Open": "f4", "Close": "f4", "Volume": "i8"}
TRADE = {"Price": "f8", "Size": "i8"}

# Each step: what it does to an open database. The first steps fill two years of each kind.
STEPS: list[Callable[[Any], object]] = [
    lambda db: db.write(BARS, _bars(Y2023, 5, OHLCV, 1.0)),
    lambda db: db.write(BARS, _bars(Y2024, 5, OHLCV, 10.0)),
    lambda db: db.write(TICKS, _ticks(Y2023, 6, TRADE, 1.0), variable=True),
    lambda db: db.write(TICKS, _ticks(Y2024, 6, TRADE, 5.0), variable=True),
    lambda db: db.add_column(BARS, "VWAP", "f8", fill=2.5),
    lambda db: db.write(BARS, _bars(Y2024 + 36000, 2, {**OHLCV, "VWAP": "f8"}, 50.0)),  # migrates
    lambda db: db.rename_column(TICKS, "Size", "Qty"),
    lambda db: db.write(TICKS, _ticks(Y2023 + 900, 4, {"Price": "f8", "Qty": "i8"}, 70.0)),
    lambda db: db.drop_column(BARS, "Volume"),
    lambda db: db.add_column(TICKS, "Venue", "i2", fill=-1),
    lambda db: db.write(BARS, _bars(Y2023 + 36000, 1, {"Open": "f4", "Close": "f4",
                                                     "VWAP": "f8"}, 90.0)),  # migrates 2023
]


def _state(db: Any) -> dict[str, dict[str, list[Any]]]:
    """Every bucket's rows. An empty bucket is left out: a crash between creating a bucket
    and logging its first write leaves one (docs/format.md "Directory")."""
    out = {}
    for key in db.list_keys():
        r = db.read(key)
        if len(r["Epoch"]):
            out[key] = {c: np.asarray(r[c]).tolist() for c in r.columns}
    return out


def _expected_states() -> list[dict[str, dict[str, list[Any]]]]:
    """The state after 0, 1, ... steps, from a run without a crash."""
    fs = fresh_fs()
    db = open_db(fs)
    states = [_state(db)]
    for step in STEPS:
        step(db)
        states.append(_state(db))
    db.close()
    return states


EXPECTED = _expected_states()


def _run_to_crash(fs: FaultFS) -> tuple[int, bool]:
    """Play the steps until the crash point fires: (steps acknowledged, whether it fired)."""
    done = 0
    db = None
    try:
        db = open_db(fs)
        for step in STEPS:
            step(db)
            done += 1
        db.close()
        return done, False
    except SimulatedCrash:
        if db is not None:
            try:
                db.close()
            except (SimulatedCrash, OSError):
                pass
        return done, True


def _count_ops() -> dict[str, int]:
    fs = fresh_fs()
    _run_to_crash(fs)
    return {op: fs.counts[op] for op in CRASH_OPS}


def _check(after: FaultFS, acked: int) -> int:
    db = open_db(after)
    try:
        got = _state(db)
    finally:
        db.close()
    for j in (acked, acked + 1):
        if j < len(EXPECTED) and got == EXPECTED[j]:
            return j
    raise AssertionError(f"after {acked} acknowledged steps the database reads as none of the "
                         f"states {acked} or {acked + 1}: {got}")


def test_steps_change_what_a_read_returns() -> None:
    # the workload does what it says: the states differ step by step, and the last one has
    # the renamed, added and dropped columns with the fills of the rows of before
    assert all(a != b for a, b in zip(EXPECTED, EXPECTED[1:], strict=False))
    last = EXPECTED[-1]
    assert list(last[BARS]) == ["Epoch", "Open", "Close", "VWAP"]
    assert last[BARS]["VWAP"][:5] == [2.5] * 5
    assert list(last[TICKS]) == ["Epoch", "Price", "Qty", "Venue", "Nanoseconds"]
    assert set(last[TICKS]["Venue"]) == {-1}


@pytest.mark.parametrize("op", CRASH_OPS)
def test_power_loss_at_every_point_of_column_changes_and_migrations(op: str) -> None:
    count = _count_ops()[op]
    failures = Failures()
    reached: set[int] = set()
    for k in range(1, count + 1):
        fs = fresh_fs()
        fs.crash_at(op, k)
        acked, fired = _run_to_crash(fs)
        assert fired, f"{op} #{k} of {count} was never reached"
        for mode in STRICT_MODES:
            seed = case_seed("columns", op, k, mode)
            with failures.case(lambda k=k, mode=mode, seed=seed: (
                    f"crash after {op} #{k}, {mode}, seed {seed}")):
                reached.add(_check(crash_fs(fs, mode, seed), acked))
    failures.check()
    assert len(reached) > 5  # the crashes landed all along the workload


def test_kill9_during_column_changes_keeps_every_acknowledged_step() -> None:
    # kill -9: the page cache survives, so every call made before it is there (a crash of
    # the process at any call); checked at every call of the workload
    total = sum(_count_ops().values())
    failures = Failures()
    for k in range(1, total + 1, 3):
        fs = fresh_fs()
        fs.crash_at("*", k)
        acked, fired = _run_to_crash(fs)
        if not fired:
            break
        with failures.case(lambda k=k: f"kill -9 at call #{k}"):
            _check(crash_fs(fs, "PROCESS_CRASH"), acked)
    failures.check()


def _crashed_after_step(n: int) -> FaultFS:
    """The filesystem of a process killed right after step `n` returned (no close, no
    checkpoint after it: its log records are replayed at the next open)."""
    fs = fresh_fs()
    db = open_db(fs)
    for step in STEPS[:n]:
        step(db)
    fs.inject("*", 1, persistent=True)  # the machine stops here: close() changes nothing
    try:
        db.close()
    except OSError:
        pass
    return crash_fs(fs, "PROCESS_CRASH")


def test_replaying_a_column_change_twice_gives_the_same_bytes() -> None:
    after = _crashed_after_step(5)  # add_column returned: its op 4 is the log's last record
    before = after.snapshot()
    # a first replay cut short right after it replaced bucket.hdr, then a second one
    cut = crash_fs(after, "PROCESS_CRASH")
    cut.crash_at("replace", 1, path="*bucket.hdr")
    with pytest.raises(SimulatedCrash):
        open_db(cut)
    again = crash_fs(cut, "DROP_ALL_UNSYNCED")
    db = open_db(again)
    assert _state(db) == EXPECTED[5]
    db.close()
    hdr = f"/data/db/{BARS}/bucket.hdr"
    assert again.read_bytes(hdr) == before[hdr]
    for year in (2023, 2024):  # no data file was touched by the change or its replays
        path = f"/data/db/{BARS}/{year}.bin"
        assert again.read_bytes(path) == before[path]


_CHILD = """
import os, sys, time
sys.path[:0] = [{tests!r}, {repo!r}]
from crash import test_column_change_crash as t
from mkts import engine
db = engine.open({root!r}, sync="always")
for i, step in enumerate(t.STEPS):
    step(db)
    os.write(1, f"A {{i + 1}}\\n".encode())
time.sleep(300)
"""


@pytest.mark.parametrize("after", [4, 5, 6, 9])
def test_kill9_of_a_real_process_during_column_changes(tmp_path: Path, after: int) -> None:
    # a real process killed with SIGKILL right after step `after` returned, a few
    # milliseconds into the next one (a column change or a migrating write)
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = os.fspath(tmp_path / "db")
    code = _CHILD.format(tests=tests, repo=os.path.dirname(tests), root=root)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    acked = 0
    assert proc.stdout is not None
    try:
        while acked < after:
            line = proc.stdout.readline()
            assert line, "the writer died before the kill"
            acked = int(line.split()[1])
        time.sleep(random.Random(after).uniform(0, 0.02))
    finally:
        proc.send_signal(signal.SIGKILL)
        rest = proc.communicate(timeout=60)[0]
    acked = max([acked, *(int(x.split()[1]) for x in rest.splitlines())])
    db = engine.open(root)
    try:
        got = _state(db)
    finally:
        db.close()
    assert got in (EXPECTED[acked], EXPECTED[min(acked + 1, len(EXPECTED) - 1)])
