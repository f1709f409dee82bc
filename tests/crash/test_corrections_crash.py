"""Simulated power loss during range deletes and updates (docs/wal.md §10 ops 3 and 5): a
crash after every fsync, directory fsync, unlink, rename and pwrite of a workload of writes,
deletes (ranges that cut tick intervals, open ends, whole years whose file goes) and updates,
in every strict crash mode; reopen without intervention and compare with the model.

As for writes (test_power_loss.py): with sync=always every acknowledged transaction
survives, with sync=interval a prefix does, and nothing is ever half there.
"""

from __future__ import annotations

import pytest
from crash.crashrun import (
    STRICT_MODES,
    Failures,
    Runner,
    case_seed,
    fresh_fs,
    scenario,
)
from crash.test_power_loss import check_crash

CRASH_OPS = ("sync", "fsync_dir", "unlink", "replace", "pwrite")
STEPS = ("corrections", 31, 9, 3, 6)  # profile, seed, transactions, checkpoint, reopen


def _steps() -> list:
    profile, seed, n, ckpt, reopen = STEPS
    return scenario(profile, seed, n, checkpoint_at=ckpt, reopen_at=reopen)


def test_workload_deletes_updates_and_drops_a_year() -> None:
    """The workload exercises what it is for: deletes, updates, a removed year file."""
    steps = _steps()
    txns = [s.txn for s in steps if s.txn is not None]
    assert sum(len(t.deletes) for t in txns) >= 2
    assert sum(len(t.updates) for t in txns) >= 2
    fs = fresh_fs()
    Runner(fs, steps, "always").run()
    assert any(e.op == "unlink" and e.path.endswith(".bin") for e in fs.trace)  # op 5


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_power_loss_at_every_step_of_deletes_and_updates(sync: str) -> None:
    steps = _steps()
    fs0 = fresh_fs()
    Runner(fs0, steps, sync).run()
    counts = {op: fs0.counts[op] for op in CRASH_OPS}
    failures = Failures()
    kept: set[int | None] = set()
    for op in CRASH_OPS:
        for k in range(1, counts[op] + 1):
            fs = fresh_fs()
            runner = Runner(fs, steps, sync)
            fs.crash_at(op, k)
            assert runner.run_to_crash(), f"{op} #{k} of {counts[op]} was never reached"
            for mode in STRICT_MODES:
                seed = case_seed("corrections", sync, op, k, mode)
                with failures.case(lambda op=op, k=k, mode=mode, seed=seed: (
                        f"corrections/{sync}: crash after {op} #{k}, {mode}, seed {seed}")):
                    kept.add(check_crash(fs, runner, sync, mode, seed))
    failures.check()
    assert len(kept - {None}) > 3  # the crashes landed all along the workload


# Deletes and updates of a sealed year (docs/format.md "Deletes and updates", sealed rows):
# 2023 is sealed before transaction 2, so the later deletes around the year boundary write
# tombstones into its overlay, cut tick intervals into replacing slots, or remove the year.
# Seed 31: tombstones in a tick overlay and a sealed fixed year removed; seed 36: tombstones
# in a fixed overlay and a sealed tick year removed.
SEALED_SEEDS = (31, 36)


def _sealed_steps(seed: int) -> list:
    return scenario("corrections", seed, 9, seal_at=2, reopen_at=6)


@pytest.mark.parametrize("seed", SEALED_SEEDS)
def test_sealed_workload_deletes_inside_the_sealed_year(seed: int) -> None:
    fs = fresh_fs()
    Runner(fs, _sealed_steps(seed), "always").run()
    overlay = [e for e in fs.trace if e.path.endswith("2023.overlay")]
    assert overlay, "no delete or write reached the sealed year's overlay"
    assert any(e.op == "unlink" and e.path.endswith("2023.sealed") for e in fs.trace) or \
        any(e.op == "pwrite" for e in overlay)


@pytest.mark.parametrize("seed", SEALED_SEEDS)
def test_power_loss_at_every_fsync_of_deletes_in_a_sealed_year(seed: int) -> None:
    steps = _sealed_steps(seed)
    fs0 = fresh_fs()
    Runner(fs0, steps, "always").run()
    failures = Failures()
    for op in ("sync", "fsync_dir", "unlink"):
        for k in range(1, fs0.counts[op] + 1):
            fs = fresh_fs()
            runner = Runner(fs, steps, "always")
            fs.crash_at(op, k)
            assert runner.run_to_crash(), f"{op} #{k} of {fs0.counts[op]} was never reached"
            for mode in STRICT_MODES:
                draw = case_seed("sealed-corrections", str(seed), op, k, mode)
                with failures.case(lambda op=op, k=k, mode=mode, draw=draw: (
                        f"sealed corrections: crash after {op} #{k}, {mode}, seed {draw}")):
                    check_crash(fs, runner, "always", mode, draw)
    failures.check()
