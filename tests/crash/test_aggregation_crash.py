"""Aggregates after kill -9: a child process writes 1Min bars through the real write-ahead log
(then, in one case, range deletes and updates) and is killed after they were acknowledged
but while its ondiskagg trigger is stalled; reopening with the trigger re-fires it for the
replayed transactions (replayed=True) and, after flush(), every destination equals a
from-scratch aggregation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mkts import engine, wal
from mkts.plugins import aggfuncs, ondiskagg

pytestmark = pytest.mark.skipif(wal.WriteAheadLog.__module__ != "mkts.wal.log",
                                reason="needs the real write-ahead log (wal/log.py)")

REPO = Path(__file__).resolve().parents[2]
TZ = "America/New_York"
DESTS = ["5Min", "15Min", "1H", "1D"]
BASE = "AAPL/1Min/OHLCV"

# The child: write the workload unless told not to (each write acknowledged = durable in the
# log), stall the trigger on fire number `aggregate_first + 1`, say so, and wait to be killed.
CHILD = textwrap.dedent("""\
    import os, sys, time
    from mkts import engine
    from mkts.plugins import ondiskagg
    sys.path.insert(0, sys.argv[3])
    from test_aggregation_crash import workload, corrections, DESTS, TZ, BASE

    root, aggregate_first, write = sys.argv[1], int(sys.argv[2]), sys.argv[4] == "1"
    correct, bulk = sys.argv[5] == "1", int(sys.argv[6])

    class Stalling:
        def __init__(self):
            self.inner = ondiskagg.NewTrigger({"destinations": DESTS})
            self.fires = 0
        def start(self, db):
            self.inner.start(db)
        def fire(self, key_path, records):
            self.fires += 1
            if self.fires > aggregate_first:
                os.write(1, b"stalled\\n")  # one write: atomic beside the main thread's
                time.sleep(600)  # stall here until the test kills this process
            self.inner.fire(key_path, records)

    db = engine.open(root, timezone=TZ, sync="always", checkpoint_interval_s=600,
                     bulk_load_rows=bulk, triggers=[("*/1Min/OHLCV", Stalling())])
    for rows in workload() if write else []:
        db.write(BASE, rows)
    for start, end, rows in corrections() if correct else []:
        if rows is None:
            db.delete(BASE, start, end)
        else:
            db.update(BASE, rows, start=start, end=end)
    os.write(1, b"written\\n")
    time.sleep(600)  # wait to be killed
""")


def workload() -> list[np.ndarray]:
    """Out-of-order 1Min writes over two days around a year end, plus an overwrite."""
    from mkts.plugins import synth

    rng = np.random.default_rng(11)
    start = 1_703_998_800  # 2023-12-31 00:00 New York
    minutes = start + 60 * np.arange(2 * 1440)
    out = []
    for i, part in enumerate(np.array_split(rng.permutation(minutes), 6)):
        rows = np.zeros(len(part), dtype=synth.BAR_DTYPE)
        rows["Epoch"] = np.sort(part)
        v = rng.normal(50 + i, 1, len(part))
        rows["Open"], rows["Close"] = v, v + 0.25
        rows["High"], rows["Low"] = v + 1, v - 1
        rows["Volume"] = rng.integers(1, 1000, len(part))
        out.append(rows)
    again = out[0][:300].copy()
    again["Close"] += 7  # rewrite some minutes with new values
    out.append(again)
    return out


def corrections() -> list[tuple[int, int, np.ndarray | None]]:
    """(start, end, rows): deletes (rows None) and updates after `workload`: three hours of
    31 December, 23:00-01:00 across the year end replaced by 5-minute rows, all of 2023."""
    from mkts.plugins import synth

    start = 1_703_998_800  # 2023-12-31 00:00 New York
    rows = np.zeros(25, dtype=synth.BAR_DTYPE)
    rows["Epoch"] = start + 23 * 3600 + 300 * np.arange(25)
    rows["Open"] = rows["High"] = rows["Low"] = rows["Close"] = 99.0
    rows["Volume"] = 3
    return [(start + 10 * 3600, start + 13 * 3600 - 1, None),
            (start + 23 * 3600, start + 25 * 3600, rows),
            (start, start + 86400 - 1, None)]


def run_child_and_kill(root: str, aggregate_first: int, write: bool = True,
                       correct: bool = False, bulk: int = 0) -> None:
    """`bulk`: the child's bulk_load_rows (0: every write through the log)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, root, str(aggregate_first),
                             str(Path(__file__).parent), "1" if write else "0",
                             "1" if correct else "0", str(bulk)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines = {proc.stdout.readline().strip(), proc.stdout.readline().strip()}
        assert lines == {"written", "stalled"}, proc.stderr.read() if proc.stderr else lines
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()


class Replays:
    """Records whether each fire was for a replayed transaction."""

    def __init__(self) -> None:
        self.replayed: list[bool] = []

    def fire(self, key_path: str, records: Any) -> None:
        self.replayed.append(bool(records.replayed))


def assert_aggregates_match_scratch(db: engine.Database, rows: int = 2 * 1440) -> None:
    r = db.read(BASE)
    cols = {c: np.asarray(r[c]) for c in r.columns}
    assert len(r) == rows
    for d in DESTS:
        exp = aggfuncs.aggregate(cols, db.calendar, d)
        got = db.read(f"AAPL/{d}/OHLCV")
        for c, v in exp.items():
            np.testing.assert_array_equal(np.asarray(got[c]), v, err_msg=f"{d} {c}")


@pytest.mark.parametrize(("aggregate_first", "bulk"), [(0, 0), (3, 0), (0, 100)],
                         ids=["all-replayed", "some-replayed", "bulk-loads-replayed"])
def test_aggregates_are_recomputed_for_replayed_writes_after_kill(tmp_path: Path,
                                                                  aggregate_first: int,
                                                                  bulk: int) -> None:
    """With `bulk` 100 the first write of each (closed) year is a bulk load (WAL op 7),
    whose replayed rows come back from its sealed file; the later ones go to overlays."""
    root = str(tmp_path / "db")
    run_child_and_kill(root, aggregate_first, bulk=bulk)
    if bulk:
        assert sorted(os.listdir(os.path.join(root, BASE))) == [
            "2023.overlay", "2023.sealed", "2024.overlay", "2024.sealed", "bucket.hdr"]
    seen = Replays()
    agg = ondiskagg.NewTrigger({"destinations": DESTS})
    with engine.open(root, triggers=[("*/1Min/OHLCV", agg), (BASE, seen)]) as db:
        assert db.flush(timeout=60)
        assert seen.replayed == [True] * 14  # seven base writes x two year files, replayed
        assert_aggregates_match_scratch(db)
    with engine.open(root) as db:  # and they stay that way without the trigger
        assert_aggregates_match_scratch(db)


def test_a_second_crash_during_recovery_still_recomputes(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    run_child_and_kill(root, 0)
    run_child_and_kill(root, 0, write=False)  # killed again while re-aggregating
    agg = ondiskagg.NewTrigger({"destinations": DESTS})
    with engine.open(root, triggers=[("*/1Min/OHLCV", agg)]) as db:
        assert db.flush(timeout=60)
        assert_aggregates_match_scratch(db)


@pytest.mark.parametrize("aggregate_first", [0, 12])
def test_aggregates_follow_deletes_and_updates_replayed_after_kill(tmp_path: Path,
                                                                   aggregate_first: int) -> None:
    root = str(tmp_path / "db")
    run_child_and_kill(root, aggregate_first, correct=True)
    agg = ondiskagg.NewTrigger({"destinations": DESTS})
    with engine.open(root, triggers=[("*/1Min/OHLCV", agg)]) as db:
        assert db.flush(timeout=60)
        # 2023 (all of 31 December) is gone with its file; 2024 keeps 1 440 - 60 + 12 rows
        assert db.info(BASE)["years"] == [2024]
        assert_aggregates_match_scratch(db, 1440 - 60 + 12)
        assert db.info("AAPL/1D/OHLCV")["years"] == [2024]
    with engine.open(root) as db:
        assert_aggregates_match_scratch(db, 1440 - 60 + 12)
