"""Crashes during recovery (docs/design.md §9 R9): a crash after every fsync, rename, unlink and
pwrite of the replay at open and of the checkpoint that follows it, in every crash mode; then
recover again. The result equals the single-recovery result, recovery can be repeated, and
replaying twice leaves byte-identical year files. (Crashes in explicit checkpoint() and
close() calls are in test_power_loss.py, whose workloads make both.)

The logs to replay come from real workloads stopped before any checkpoint: either made
durable as they were (a power loss after the writes), or still in the page cache and not yet
synced (a kill -9, after which the next open's replay may itself be cut by a power loss).
"""

from __future__ import annotations

import pytest
from crash.crashrun import (
    STRICT_MODES,
    Failures,
    Runner,
    after_kill9,
    case_seed,
    crash_fs,
    fresh_fs,
    lowest_surviving,
    open_db,
    recover,
    scenario,
)
from crash.crashwork import Model, match_prefix, read_state
from harness.crashmodes import CrashMode
from harness.crashpoints import SimulatedCrash
from harness.faultfs import FaultFS

CRASH_OPS = ("sync", "fsync_dir", "replace", "pwrite", "unlink")
LOGS = {
    # name: (profile, seed, transactions[, seal before txn #]); no checkpoint, so all of them
    # are in the log (after a seal: its op-6 records and the transactions after it)
    "multi": ("multi", 21, 6),
    "mixed": ("mixed", 22, 10),
    "ticks": ("ticks", 23, 8),
    "corrections": ("corrections", 24, 10),
    "sealed": ("mixed", 25, 10, 3),
}


def _scenario(name: str) -> list:
    profile, seed, n, *seal = LOGS[name]
    return scenario(profile, seed, n, seal_at=seal[0] if seal else None)


def _left_in_log(name: str, sync: str = "always") -> tuple[FaultFS, Runner]:
    """A workload's FS frozen with every transaction logged and applied, nothing checkpointed
    (the handle is abandoned, as by a crash right after the last write returned)."""
    fs = fresh_fs()
    runner = Runner(fs, _scenario(name), sync)
    runner.run(close=False)
    runner.stop_here()
    return fs, runner


def _year_files(fs: FaultFS) -> dict[str, bytes | None]:
    return {p: b for p, b in fs.snapshot().items()
            if p.endswith((".bin", ".sealed", ".overlay"))}


def _recover_times(fs: FaultFS, times: int, sync: str = "always") -> list[tuple[object, dict]]:
    """Open, read and close `times` times; (state, year files) after each."""
    out = []
    for _ in range(times):
        db = open_db(fs, sync)
        try:
            state = read_state(db)
        finally:
            db.close()
        out.append((state, _year_files(fs)))
    return out


def _open_ops(pre: FaultFS, sync: str) -> dict[str, int]:
    """FS calls of one recovery (open, replay, checkpoint, close) of a copy of `pre`."""
    probe = pre.peek_crash(CrashMode.PROCESS_CRASH)
    open_db(probe, sync).close()
    return {op: probe.counts[op] for op in CRASH_OPS}


@pytest.mark.parametrize("log", sorted(LOGS))
def test_crash_during_replay_and_checkpoint_then_recover_again(log: str) -> None:
    fs, runner = _left_in_log(log)
    pre = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)  # power loss: the log and little else
    [(expected, years_once)] = _recover_times(pre.peek_crash(CrashMode.PROCESS_CRASH), 1)
    assert match_prefix(expected, Model(), runner.pending(), len(runner.acked)) == len(
        runner.acked)
    failures = Failures()
    for op, count in _open_ops(pre, "always").items():
        for k in range(1, count + 1):
            disk = pre.peek_crash(CrashMode.PROCESS_CRASH)
            disk.crash_at(op, k)
            try:
                open_db(disk).close()
            except SimulatedCrash:
                pass
            else:
                raise AssertionError(f"{op} #{k} of {count} was never reached")
            for mode in STRICT_MODES:
                seed = case_seed(log, op, k, mode)
                with failures.case(lambda op=op, k=k, mode=mode, seed=seed: (
                        f"{log}: crash after {op} #{k} of recovery, {mode}, seed {seed}")):
                    again = _recover_times(crash_fs(disk, mode, seed), 3)
                    for state, years in again:
                        assert state == expected
                        assert years == years_once, "replaying twice changed year-file bytes"
    failures.check()


@pytest.mark.parametrize("sync", ["always", "interval"])
@pytest.mark.parametrize("log", sorted(LOGS))
def test_power_loss_during_replay_of_a_log_still_in_the_page_cache(log: str, sync: str) -> None:
    """kill -9 leaves the log's tail (the transaction in flight under sync=always; the last
    acknowledged ones under interval) in the page cache, not yet synced. The next open replays
    it; a power loss during that replay must still leave a prefix, never a part of a
    transaction (WAL before data, docs/design.md §9 R3, holds for replay too)."""
    steps = _scenario(log)
    probe = fresh_fs()
    Runner(probe, steps, sync).run()
    wal_writes = [e for e in probe.trace if e.op == "pwrite" and e.path.endswith(".wal")]
    # Log appends, as ordinals among all pwrites to segments (headers are pwrites too).
    appends = [i + 1 for i, e in enumerate(wal_writes) if e.detail[0] > 0]
    failures = Failures()
    picks = sorted({2, len(appends) // 2 + 1, len(appends)})  # early, middle and last
    for a in picks:  # killed right after the a-th log append
        nth = appends[a - 1]
        fs = fresh_fs()
        runner = Runner(fs, steps, sync)
        fs.crash_at("pwrite", nth, path="*.wal")
        assert runner.run_to_crash()
        lowest = lowest_surviving(runner, sync, "DROP_ALL_UNSYNCED", fs.trace)
        counts = _open_ops(after_kill9(fs), sync)
        for op in ("sync", "pwrite", "fsync_dir"):
            for k in range(1, counts[op] + 1):
                disk = after_kill9(fs)
                disk.crash_at(op, k)
                try:
                    open_db(disk, sync).close()
                except SimulatedCrash:
                    pass
                else:
                    raise AssertionError(f"{op} #{k} of {counts[op]} was never reached")
                for mode in STRICT_MODES[1:]:  # (PROCESS_CRASH would keep everything)
                    mseed = case_seed(log, sync, a, op, k, mode)
                    with failures.case(lambda a=a, op=op, k=k, mode=mode, mseed=mseed: (
                            f"{log}/{sync}: kill -9 after log append #{a}, then crash after "
                            f"{op} #{k} of the replay, {mode}, seed {mseed}")):
                        recover(crash_fs(disk, mode, mseed), runner, lowest, sync)
    failures.check()

