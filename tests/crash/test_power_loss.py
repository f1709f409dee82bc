"""Simulated power loss on FaultFS (docs/design.md §10): crash after every fsync, directory
fsync, rename and pwrite of small workloads, in every crash mode; reopen without intervention
and compare with the model (crashwork.py).

- sync=always: every acknowledged transaction survives; the state is the model after the
  acknowledged ones, or after those and the one in flight.
- sync=interval: the state is the model after some prefix; what is lost is a suffix of the
  acknowledgements made after the last successful log fsync.
- sync=off: after a process crash nothing acknowledged is lost; after power loss the database
  still opens, and reads, without raising anything but mkts' own errors.
- SECTOR_GARBAGE (a disk that may scramble a whole sector, synced bytes included, when power
  fails during a write to part of it) breaks every engine that appends to a partly filled
  sector; there the test only asks for typed errors. See crashrun.MODES.

A failure lists each failing case with its crash point, mode and rng seed; the cases are
deterministic, so rerunning the test replays them. MKTS_CRASH_RUNS=N sets the size of the
randomized sweep (default 2500 crashes; --run-slow runs 20000).
"""

from __future__ import annotations

import os
import random

import pytest
from crash.crashrun import (
    STRICT_MODES,
    Failures,
    Runner,
    SectorAtomicRandom,
    Step,
    case_seed,
    crash_fs,
    fresh_fs,
    lowest_surviving,
    open_db,
    recover,
    scenario,
)
from crash.crashwork import ensure_tick_bucket
from harness.crashmodes import CrashMode
from harness.crashpoints import SimulatedCrash
from harness.faultfs import FaultFS

from mkts import engine

CRASH_OPS = ("sync", "fsync_dir", "replace", "pwrite")
WORKLOADS = {
    # name: (profile, seed, transactions, checkpoint before txn #, close+open before txn #
    # [, seal of 2023 before txn #])
    "append": ("append", 11, 8, 4, None),
    "multi": ("multi", 12, 7, None, 4),
    "overwrite": ("overwrite", 13, 8, 3, 6),
    "ticks": ("ticks", 14, 9, 5, 7),
    "sealed": ("mixed", 15, 8, None, 6, 3),
}
PROFILES = ("mixed", "append", "multi", "overwrite", "ticks", "corrections")


def _steps(name: str) -> list:
    profile, seed, n, ckpt, reopen, *seal = WORKLOADS[name]
    return scenario(profile, seed, n, checkpoint_at=ckpt, reopen_at=reopen,
                    seal_at=seal[0] if seal else None)


def _count_ops(steps: list, sync: str) -> dict[str, int]:
    fs = fresh_fs()
    Runner(fs, steps, sync).run()
    counts = {op: fs.counts[op] for op in CRASH_OPS}
    counts["*"] = len(fs.trace)
    return counts


def _only_typed_errors(fs: FaultFS, sync: str) -> None:
    """Open and read everything: mkts' own errors are acceptable, nothing else is."""
    try:
        db = open_db(fs, sync)
    except engine.MktsError:
        return
    try:
        for key in db.list_keys():
            try:
                db.read(key)
            except engine.MktsError:
                pass
    finally:
        db.close()


def check_crash(fs: FaultFS, runner: Runner, sync: str, mode: str, seed: int) -> int | None:
    """Crash `fs` (frozen at a crash point) in `mode`, reopen and check the promise of `sync`.
    Returns the number of pending transactions the database kept (None: not checked)."""
    after = crash_fs(fs, mode, seed)
    if mode == "SECTOR_GARBAGE" or (sync == "off" and mode != "PROCESS_CRASH"):
        _only_typed_errors(after, sync)
        return None
    lowest = lowest_surviving(runner, sync, mode, fs.trace)
    try:
        return recover(after, runner, lowest, sync)
    except engine.CorruptWALError:
        if sync == "always" or mode != "SECTOR_ATOMIC":
            raise
    # interval: several unsynced records, their sectors persisted out of order: reported as
    # corruption, nothing changed (docs/wal.md §9); point-in-time recovery keeps every synced
    # transaction.
    return recover(after, runner, lowest, sync, recovery="point_in_time")


def test_sector_atomic_rng_gives_only_old_or_new_sectors() -> None:
    """The SECTOR_ATOMIC mode relies on how crashmodes draws a sector; keep that in check."""
    kinds = set()
    for seed in range(40):
        fs = FaultFS()
        fs.makedirs("/d")
        fs.write_bytes("/d/f", b"o" * 2048)
        fs.open("/d/f", write=True).pwrite(b"n" * 1024, 512)
        out = fs.peek_crash(CrashMode.SECTOR_SUBSET, SectorAtomicRandom(seed)).read_bytes("/d/f")
        assert out[:512] == out[1536:] == b"o" * 512
        for s in (1, 2):
            sector = out[s * 512 : (s + 1) * 512]
            assert sector in (b"o" * 512, b"n" * 512)
            kinds.add(sector[:1])
    assert kinds == {b"o", b"n"}


@pytest.mark.parametrize("sync", ["always", "interval"])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_crash_after_every_sync_rename_and_write(workload: str, sync: str) -> None:
    steps = _steps(workload)
    counts = _count_ops(steps, sync)
    failures = Failures()
    kept: set[int | None] = set()
    for op in CRASH_OPS:
        for k in range(1, counts[op] + 1):
            fs = fresh_fs()
            runner = Runner(fs, steps, sync)
            fs.crash_at(op, k)
            assert runner.run_to_crash(), f"{op} #{k} of {counts[op]} was never reached"
            for mode in (*STRICT_MODES, "SECTOR_GARBAGE"):
                seed = case_seed(workload, sync, op, k, mode)
                with failures.case(lambda op=op, k=k, mode=mode, seed=seed: (
                        f"{workload}/{sync}: crash after {op} #{k}, {mode}, seed {seed}")):
                    kept.add(check_crash(fs, runner, sync, mode, seed))
    failures.check()
    assert len(kept - {None}) > 3  # the crashes landed all along the workload


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_sync_off_survives_a_process_crash_and_power_loss_still_opens(workload: str) -> None:
    steps = _steps(workload)
    counts = _count_ops(steps, "off")
    failures = Failures()
    for op in CRASH_OPS:
        for k in range(1, counts[op] + 1):
            fs = fresh_fs()
            runner = Runner(fs, steps, "off")
            fs.crash_at(op, k)
            assert runner.run_to_crash()
            for mode in (*STRICT_MODES, "SECTOR_GARBAGE"):
                seed = case_seed(workload, "off", op, k, mode)
                with failures.case(lambda op=op, k=k, mode=mode, seed=seed: (
                        f"{workload}/off: crash after {op} #{k}, {mode}, seed {seed}")):
                    check_crash(fs, runner, "off", mode, seed)
    failures.check()


def _sweep(total: int, master_seed: int) -> None:
    """Random workloads (profile, size, checkpoint and reopen positions, sync mode), each
    crashed at several random calls of any kind and in random modes."""
    rng = random.Random(master_seed)
    failures = Failures()
    done = 0
    while done < total:
        profile = rng.choice(PROFILES)
        wseed = rng.getrandbits(32)
        n = rng.randint(4, 12)
        sync = rng.choice(("always", "always", "interval"))
        ckpt = rng.choice((None, rng.randrange(n)))
        reopen = rng.choice((None, rng.randrange(n)))
        steps = scenario(profile, wseed, n, checkpoint_at=ckpt, reopen_at=reopen)
        ops = _count_ops(steps, sync)["*"]
        for _ in range(min(8, total - done)):
            k = rng.randint(1, ops)
            mode = rng.choice(STRICT_MODES)
            seed = rng.getrandbits(32)
            fs = fresh_fs()
            runner = Runner(fs, steps, sync)
            fs.crash_at("*", k)
            assert runner.run_to_crash()
            done += 1
            with failures.case(lambda k=k, mode=mode, seed=seed, wseed=wseed, n=n, ckpt=ckpt,
                               reopen=reopen, sync=sync, profile=profile: (
                    f"scenario({profile!r}, {wseed}, {n}, checkpoint_at={ckpt}, "
                    f"reopen_at={reopen}) sync={sync}: crash after call #{k}, {mode}, "
                    f"seed {seed} (master seed {master_seed})")):
                check_crash(fs, runner, sync, mode, seed)
    failures.check()


def _sweep_size(default: int) -> int:
    return int(os.environ.get("MKTS_CRASH_RUNS", "0")) or default


def test_random_crash_sweep() -> None:
    _sweep(_sweep_size(2500), int(os.environ.get("MKTS_CRASH_SEED", "20240101")))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_random_crash_sweep_long() -> None:
    _sweep(_sweep_size(20000), int(os.environ.get("MKTS_CRASH_SEED", "1")) + 7)


@pytest.mark.parametrize(("sync", "profile"), [("always", "mixed"), ("interval", "mixed"),
                                               ("always", "ticks")])
def test_crash_during_bulk_loads(sync: str, profile: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/format.md "Bulk loads": with the threshold at one row, the first write of every
    closed year a bucket (fixed or ticks) lacks goes through an `.ingest` file and WAL op 7,
    later ones to the year file or the overlay; a crash at any sync, rename or write keeps
    the promise."""
    import crash.crashrun as crashrun

    monkeypatch.setitem(crashrun.QUIET, "bulk_load_rows", 1)
    steps = scenario(profile, 16, 7, checkpoint_at=4, reopen_at=None)
    counts = _count_ops(steps, sync)
    assert counts["replace"] > 3  # the ingests' renames happened
    failures = Failures()
    for op in CRASH_OPS:
        for k in range(1, counts[op] + 1):
            fs = fresh_fs()
            runner = Runner(fs, steps, sync)
            fs.crash_at(op, k)
            assert runner.run_to_crash()
            for mode in STRICT_MODES:
                seed = case_seed("bulk", sync, op, k, mode)
                with failures.case(lambda op=op, k=k, mode=mode, seed=seed: (
                        f"bulk/{sync}/{profile}: crash after {op} #{k}, {mode}, seed {seed}")):
                    check_crash(fs, runner, sync, mode, seed)
    failures.check()


SWAP_OPS = ("pwrite", "sync", "fsync_dir", "replace", "unlink")  # every call that changes the FS
TWICE_MODES = ("PROCESS_CRASH", "DROP_UNSYNCED_DIRENTS")  # where replay-twice is also checked


def _seal_and_reseal() -> list[Step]:
    """The `sealed` workload with a second seal after three transactions wrote into the
    sealed year: it seals the years still live and re-seals those with an overlay."""
    steps = _steps("sealed")
    at = [i for i, st in enumerate(steps) if st.txn is not None][6]
    return [*steps[:at], Step("seal"), *steps[at:]]


def _seal_calls(steps: list[Step], sync: str) -> list[tuple[str, int]]:
    """(op, nth call of that op in the run) of every FS-changing call made by the seal
    steps: the checkpoints, the build's writes and fsyncs, the rename, the directory fsyncs,
    the op-6 record and its fsync, the unlinks of `.bin` and overlays, the file records."""
    fs = fresh_fs()
    runner = Runner(fs, steps, sync)
    runner.db = open_db(fs, sync)
    ensure_tick_bucket(runner.db)
    spans = []
    for st in steps:
        start = len(fs.trace)
        runner.do(st)
        if st.op == "seal":
            spans.append((start, len(fs.trace)))
    runner.close()
    seen: dict[str, int] = {}
    out = []
    for i, e in enumerate(fs.trace):
        seen[e.op] = seen.get(e.op, 0) + 1
        if e.op in SWAP_OPS and any(a <= i < b for a, b in spans):
            out.append((e.op, seen[e.op]))
    return out


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_crash_at_every_call_of_a_seal_and_a_reseal(sync: str) -> None:
    """docs/format.md "Sealing, re-sealing and the swap": a power loss or process crash
    after any call of a seal or re-seal (WAL op 6 and the unlinks it makes included) reopens
    to the model, with the year whole, once; and the reopened year files are those a second
    recovery of the same disk leaves (replaying the log again changes no byte)."""
    steps = _seal_and_reseal()
    calls = _seal_calls(steps, sync)
    assert {op for op, _ in calls} == set(SWAP_OPS) and len(calls) > 60
    failures = Failures()
    for op, k in calls:
        fs = fresh_fs()
        runner = Runner(fs, steps, sync)
        fs.crash_at(op, k)
        assert runner.run_to_crash(), f"{op} #{k} was never reached"
        for mode in STRICT_MODES:
            seed = case_seed("seal-reseal", sync, op, k, mode)
            with failures.case(lambda op=op, k=k, mode=mode, seed=seed: (
                    f"seal-reseal/{sync}: crash after {op} #{k}, {mode}, seed {seed}")):
                check_crash(fs, runner, sync, mode, seed)
                if mode in TWICE_MODES:
                    _recover_twice_same_bytes(crash_fs(fs, mode, seed), sync)
    failures.check()


def _data_files(fs: FaultFS) -> dict[str, bytes | None]:
    return {p: b for p, b in fs.snapshot().items()
            if p.endswith((".bin", ".sealed", ".overlay"))}


def _recover_twice_same_bytes(fs: FaultFS, sync: str) -> None:
    """Recover a copy of `fs` once; recover another copy but stop it after the replay and
    the data fsyncs, just before the checkpoint writes the log's new base (the log still
    holds every record), then recover that again: replaying the records a second time over
    files they were applied to leaves the same data-file bytes."""
    once = fs.peek_crash(CrashMode.PROCESS_CRASH)
    try:
        open_db(once, sync).close()
    except engine.MktsError:
        return  # judged by check_crash
    synced = [i for i, e in enumerate(once.trace) if e.op == "sync" and e.path.endswith(".wal")]
    heads = [i for i, e in enumerate(once.trace) if e.op == "pwrite" and e.path.endswith(".wal")
             and e.detail[0] == 0 and synced and i > synced[0]]  # type: ignore[index]
    if not heads:
        return  # nothing was replayed
    disk = fs.peek_crash(CrashMode.PROCESS_CRASH)
    disk.crash_at("*", heads[0])  # after the call before the new base's header
    with pytest.raises(SimulatedCrash):
        open_db(disk, sync).close()
    again = disk.peek_crash(CrashMode.PROCESS_CRASH)
    open_db(again, sync).close()
    assert _data_files(again) == _data_files(once), "replaying twice changed data-file bytes"
