"""The ordering checker (crashorder.py) on FaultFS traces: WAL before data (R3) and checkpoint
before log truncation (R4), the rules of docs/design.md §9, in sync=always and sync=interval,
for whole workloads, for the recoveries that follow crashes at every fsync, and for the
checker itself: each seeded mutant of the write path must be caught.
"""

from __future__ import annotations

import pytest
from crash.crashorder import ordering_violations
from crash.crashrun import (
    STRICT_MODES,
    Runner,
    case_seed,
    crash_fs,
    fresh_fs,
    open_db,
    scenario,
)
from harness.faultfs import FaultFS

import mkts.engine.commit
import mkts.engine.writepath
import mkts.wal.log

WORKLOADS = {
    "append": ("append", 51, 8, 4, None),
    "multi": ("multi", 52, 7, None, 4),
    "overwrite": ("overwrite", 53, 8, 3, 6),
    "ticks": ("ticks", 54, 9, 5, 7),
    "mixed": ("mixed", 55, 12, 5, 9),
}


def _traced_run(name: str, sync: str) -> FaultFS:
    profile, seed, n, ckpt, reopen = WORKLOADS[name]
    fs = fresh_fs()
    runner = Runner(fs, scenario(profile, seed, n, checkpoint_at=ckpt, reopen_at=reopen), sync)
    runner.run()
    return fs


@pytest.mark.parametrize("sync", ["always", "interval"])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_workloads_write_the_log_before_the_data(workload: str, sync: str) -> None:
    fs = _traced_run(workload, sync)
    assert ordering_violations(fs.trace) == []
    assert any(e.op == "unlink" and e.path.endswith(".wal") for e in fs.trace)  # R4 exercised


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_recoveries_after_crashes_keep_the_order(sync: str) -> None:
    """Crash the mixed workload after every fsync of either kind, in every mode; the trace of
    the run up to the crash and of the recovery (replay, checkpoint) are both in order."""
    profile, seed, n, ckpt, reopen = WORKLOADS["mixed"]
    steps = scenario(profile, seed, n, checkpoint_at=ckpt, reopen_at=reopen)
    probe = fresh_fs()
    Runner(probe, steps, sync).run()
    bad: list[str] = []
    for op in ("sync", "fsync_dir"):
        for k in range(1, probe.counts[op] + 1):
            fs = fresh_fs()
            runner = Runner(fs, steps, sync)
            fs.crash_at(op, k)
            assert runner.run_to_crash()
            bad += [f"run to {op} #{k}: {v}" for v in ordering_violations(fs.trace)]
            for mode in STRICT_MODES:
                after = crash_fs(fs, mode, case_seed("order", sync, op, k, mode))
                open_db(after, sync).close()
                bad += [f"recovery after {op} #{k}, {mode}: {v}"
                        for v in ordering_violations(after.trace)]
    assert bad == []


# --- the checker catches each mutant -------------------------------------------------------

def _apply_before_log_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """sync=always: the log fsync happens after the data files are written."""
    original = mkts.engine.commit.CommitPipeline._process

    def process(self, batch):  # type: ignore[no-untyped-def]
        log = self._log
        real_sync = log.sync
        log.sync = lambda: None
        try:
            original(self, batch)
        finally:
            log.sync = real_sync
        real_sync()

    monkeypatch.setattr(mkts.engine.commit.CommitPipeline, "_process", process)


def _interval_applies_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """sync=interval: transactions are applied when logged, not after the covering fsync."""
    original = mkts.engine.commit.CommitPipeline._process

    def process(self, batch):  # type: ignore[no-untyped-def]
        mode, self.sync_mode = self.sync_mode, "off"
        try:
            original(self, batch)
        finally:
            self.sync_mode = mode

    monkeypatch.setattr(mkts.engine.commit.CommitPipeline, "_process", process)


def _checkpoint_without_data_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint retires the log without syncing the year files."""
    monkeypatch.setattr(mkts.engine.writepath.WritePath, "sync_data", lambda self: None)


def _unlink_before_new_segment_is_durable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log checkpoint deletes the old segments before syncing the new one."""
    original = mkts.wal.log.WriteAheadLog._switch_to_new_segment

    def switch(self, *, base):  # type: ignore[no-untyped-def]
        real_sync = self._fs.fsync_dir
        self._fs.fsync_dir = lambda path: None  # its directory entry is never synced
        try:
            original(self, base=base)
        finally:
            self._fs.fsync_dir = real_sync

    monkeypatch.setattr(mkts.wal.log.WriteAheadLog, "_switch_to_new_segment", switch)


def _replay_without_log_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay at open applies records without first syncing the log it read."""
    original = mkts.engine.writepath.WritePath.replay

    def replay(self, wal):  # type: ignore[no-untyped-def]
        real_sync = wal.sync
        wal.sync = lambda: None
        try:
            return original(self, wal)
        finally:
            wal.sync = real_sync

    monkeypatch.setattr(mkts.engine.writepath.WritePath, "replay", replay)


MUTANTS = {
    "apply_before_log_sync": (_apply_before_log_sync, "always", "R3"),
    "interval_applies_at_once": (_interval_applies_at_once, "interval", "R3"),
    "checkpoint_without_data_sync": (_checkpoint_without_data_sync, "always", "R4"),
    "unlink_before_new_segment_is_durable": (_unlink_before_new_segment_is_durable, "always",
                                             "R4"),
    "replay_without_log_sync": (_replay_without_log_sync, "always", "R3"),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_checker_catches_mutant(mutant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    install, sync, rule = MUTANTS[mutant]
    profile, seed, n, ckpt, reopen = WORKLOADS["mixed"]
    steps = scenario(profile, seed, n, checkpoint_at=ckpt, reopen_at=reopen)
    fs = fresh_fs()
    runner = Runner(fs, steps, sync)
    runner.run(close=False)
    runner.stop_here()  # leave records in the log, for the replay mutant
    install(monkeypatch)
    after = crash_fs(fs, "PROCESS_CRASH")
    Runner(after, steps[:6], sync).run()  # replays, then writes, checkpoints, closes
    found = ordering_violations(after.trace)
    assert found, f"mutant {mutant} was not caught"
    assert all(f"({rule})" in v for v in found), found


def test_interval_trace_has_appends_waiting_for_their_fsync() -> None:
    """Sanity: in interval mode writes are logged before any fsync covers them, so the R3
    rule is exercised with appends pending."""
    fs = _traced_run("mixed", "interval")
    appends = pending = 0
    most = 0
    for e in fs.trace:
        if e.op == "pwrite" and e.path.endswith(".wal") and e.detail[0] > 0:  # type: ignore[index]
            appends += 1
            pending += 1
            most = max(most, pending)
        elif e.op == "sync" and e.path.endswith(".wal"):
            pending = 0
    assert appends > 5 and most > 1, (appends, most)
