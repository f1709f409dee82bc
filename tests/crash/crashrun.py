"""Running crash workloads in-process on FaultFS and checking what survives.

`Runner` plays a list of steps (transactions, checkpoints, close+reopen) against a database
on a FaultFS and records which transactions were acknowledged (write_many() returned);
`recover` reopens the surviving filesystem and matches what it holds against the model
(crashwork.match_prefix). `lowest_surviving` says how many transactions each sync mode and
crash mode promise to keep.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from crash.crashorder import ordering_violations
from crash.crashwork import Model, Txn, Workload, ensure_tick_bucket, match_prefix, read_state
from harness.crashmodes import CrashMode
from harness.crashpoints import SimulatedCrash
from harness.faultfs import FaultFS, TraceEntry

from mkts import engine

__all__ = [
    "ROOT",
    "MODES",
    "STRICT_MODES",
    "crash_fs",
    "SectorAtomicRandom",
    "Step",
    "scenario",
    "fresh_fs",
    "open_db",
    "Runner",
    "recover",
    "lowest_surviving",
    "wal_synced_appends",
    "after_kill9",
    "with_spare_capacity",
    "Failures",
    "case_seed",
    "assert_ordered",
]

ROOT = "/data/db"
# The crash modes by name. SECTOR_ATOMIC is SECTOR_SUBSET on a disk whose sector writes are
# atomic and leave the rest of a sector alone (SQLite's "powersafe overwrite"): every sector
# written since the last sync is old or new, never garbage. SECTOR_GARBAGE is SECTOR_SUBSET
# as FaultFS draws it, where a sector may also turn to garbage, including the bytes of it
# that were synced before (a disk without powersafe overwrite): the engine promises nothing
# there beyond typed errors (see test_power_loss.py).
MODES = ("PROCESS_CRASH", "DROP_ALL_UNSYNCED", "RANDOM_PREFIX", "DROP_UNSYNCED_DIRENTS",
         "UNSAFE_APPEND", "SECTOR_ATOMIC", "SECTOR_GARBAGE")
STRICT_MODES = MODES[:-1]
RANDOM_MODES = ("RANDOM_PREFIX", "UNSAFE_APPEND", "SECTOR_ATOMIC", "SECTOR_GARBAGE")
# No background checkpoint or interval fsync: every FS call comes from the workload itself,
# so a run is deterministic and crash_at(op, k) hits the same call in every rerun.
SEALED_YEAR = 2023  # the year before the workloads' boundary (crashwork.BOUNDARY)
QUIET = {"checkpoint_interval_s": 1e9, "sync_interval_ms": 10**7}


@dataclass
class Step:
    op: str  # "txn" | "checkpoint" | "reopen" | "seal"
    txn: Txn | None = None

    def __repr__(self) -> str:
        return f"txn {self.txn.tid}" if self.txn is not None else self.op


def scenario(profile: str, seed: int, ntxn: int, *, checkpoint_at: int | None = None,
             reopen_at: int | None = None, seal_at: int | None = None) -> list[Step]:
    """`ntxn` transactions of a Workload profile, with a checkpoint() before transaction
    `checkpoint_at`, a close()+open() before transaction `reopen_at` and a seal of every
    bucket's year before the workload's year boundary (2023) before transaction `seal_at`
    (later transactions then write into the sealed year)."""
    wl = Workload(seed, profile=profile)
    steps: list[Step] = []
    for i in range(ntxn):
        if i == checkpoint_at:
            steps.append(Step("checkpoint"))
        if i == reopen_at:
            steps.append(Step("reopen"))
        if i == seal_at:
            steps.append(Step("seal"))
        steps.append(Step("txn", wl.next()))
    return steps


def fresh_fs() -> FaultFS:
    fs = FaultFS()
    fs.makedirs("/data")
    return fs


def open_db(fs: FaultFS, sync: str = "always", **kw: Any) -> Any:
    return engine.open(ROOT, fs=fs, sync=sync, **{**QUIET, **kw})


@dataclass
class Runner:
    """Plays `steps` on `fs`; after a SimulatedCrash, `acked`, `inflight` and `checkpointed`
    say what the caller was told before the machine died."""

    fs: FaultFS
    steps: list[Step]
    sync: str = "always"
    acked: list[Txn] = field(default_factory=list)
    inflight: Txn | None = None
    checkpointed: int = 0  # acknowledged transactions made durable by a finished checkpoint
    db: Any = None

    def run(self, *, close: bool = True) -> None:
        """Play every step, then close (unless `close` is False: the handle stays open)."""
        self.db = open_db(self.fs, self.sync)
        ensure_tick_bucket(self.db)
        for step in self.steps:
            self.do(step)
        if close:
            self.close()

    def do(self, step: Step) -> None:
        if step.txn is not None:
            self.inflight = step.txn
            step.txn.write(self.db)
            self.acked.append(step.txn)
            self.inflight = None
        elif step.op == "checkpoint":
            self.db.checkpoint()
            self.checkpointed = len(self.acked)
        elif step.op == "reopen":
            self.close()
            self.db = open_db(self.fs, self.sync)
        elif step.op == "seal":  # checkpoints first, like checkpoint()
            self.db.seal(year=SEALED_YEAR)
            self.checkpointed = len(self.acked)
        else:  # pragma: no cover - a typo in a test
            raise ValueError(step.op)

    def close(self) -> None:
        db, self.db = self.db, None
        db.close()
        self.checkpointed = len(self.acked)

    def abandon(self) -> None:
        """After a simulated crash: stop the dead handle's threads (its close() cannot touch
        the frozen FS)."""
        db, self.db = self.db, None
        if db is not None:
            try:
                db.close()
            except (SimulatedCrash, OSError):
                pass

    def stop_here(self) -> None:
        """The machine dies right now, after the last call: make every later call fail (so
        the abandoned handle's close() changes nothing), then abandon the handle. Draw the
        survivors with peek_crash/crash_fs."""
        self.fs.inject("*", 1, persistent=True)
        self.abandon()

    def run_to_crash(self) -> bool:
        """run(); True if a crash point fired (the handle is then abandoned)."""
        try:
            self.run()
        except SimulatedCrash:
            self.abandon()
            crashed = True
        else:
            crashed = False
        assert_ordered(self.fs, self.sync)
        return crashed

    def pending(self) -> list[Txn]:
        return self.acked + ([self.inflight] if self.inflight is not None else [])


class SectorAtomicRandom(random.Random):
    """An rng for CrashMode.SECTOR_SUBSET that never picks "garbage" for a sector.

    crashmodes._sector_subset draws rng.randrange(3) per sector: 0 old, 1 new, 2 garbage.
    test_power_loss.py checks that this still yields only old and new sectors."""

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if start == 3 and stop is None:
            return super().randrange(2)
        return super().randrange(start, stop, step)


def crash_fs(fs: FaultFS, mode: str, seed: int = 0) -> FaultFS:
    """What survives a crash of `fs` in the named mode (MODES), drawn with `seed`; its year
    files have room to grow under a mapped view (`with_spare_capacity`: a replay that reads
    the slots of a file, as a range delete does, and then appends to it sees its writes)."""
    if mode == "SECTOR_ATOMIC":
        out = fs.peek_crash(CrashMode.SECTOR_SUBSET, SectorAtomicRandom(seed))
    elif mode == "SECTOR_GARBAGE":
        out = fs.peek_crash(CrashMode.SECTOR_SUBSET, random.Random(seed))
    else:
        out = fs.peek_crash(CrashMode[mode], random.Random(seed))
    return with_spare_capacity(out)


def after_kill9(fs: FaultFS) -> FaultFS:
    """The machine after a kill -9 of the process using `fs`: everything written is still
    there (the page cache survives) but only what was synced is durable, so a later crash of
    the returned FS can still lose the rest. (crash(PROCESS_CRASH) would make it all durable.)

    Built from fs's durable state by redoing the differences as unsynced calls; the trace and
    counts of the result start empty."""
    out = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
    durable = out.snapshot()
    volatile = fs.peek_crash(CrashMode.PROCESS_CRASH).snapshot()
    for path, data in volatile.items():  # sorted: parents before children
        old = durable.get(path, False)
        if data is None:
            if old is False:
                out.makedirs(path, durable=False)
        elif old is False or old is None:
            out.write_bytes(path, data, durable=False)
        elif old != data:
            f = out.open(path, write=True)
            if len(data) < len(old):
                f.truncate(len(data))
            for lo, hi in _changed_ranges(old, data):
                f.pwrite(data[lo:hi], lo)
            f.close()
    for path in sorted(set(durable) - set(volatile), reverse=True):
        if durable[path] is None:
            out.rmdir(path)
        else:
            out.unlink(path)
    out.trace.clear()
    out.counts.clear()
    assert out.snapshot() == volatile
    return out


def _changed_ranges(old: bytes, new: bytes, block: int = 64) -> list[tuple[int, int]]:
    """Byte ranges (merged, in `block` steps) where `new` differs from `old`, growth included."""
    ranges: list[tuple[int, int]] = []
    n = min(len(old), len(new))
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        if old[lo:hi] != new[lo:hi]:
            if ranges and ranges[-1][1] == lo:
                ranges[-1] = (ranges[-1][0], hi)
            else:
                ranges.append((lo, hi))
    if len(new) > n:
        ranges.append((n, len(new)))
    return ranges


def with_spare_capacity(fs: FaultFS, extra: int = 1 << 20) -> FaultFS:
    """Give every year file of `fs` room to grow by `extra` bytes before FaultFS replaces its
    buffer; returns `fs`. Content, durability and the trace are unchanged.

    FaultFile.map() stops following a file once it grows past the largest size it ever had
    (faultfs.py), unlike the File protocol's map() and a real mmap; the engine keeps the slot
    view of a year file for the handle's life. A FaultFS drawn by crash() holds every file at
    exactly its size, so a tick write after recovery would grow the file under an older view
    and later writes to the same interval would plan from stale slots. Tests that go on
    writing after a crash call this on the recovered FS first."""
    for path, data in fs.snapshot().items():
        if data is not None and path.endswith(".bin"):
            fs.write_bytes(path, data + bytes(extra))  # the largest size so far ...
            fs.write_bytes(path, data)  # ... then the real content, synced as before
    return fs


def wal_synced_appends(trace: list[TraceEntry]) -> int:
    """How many log appends (pwrites to a segment past its header) a successful log fsync
    covered, reading the FaultFS trace. One transaction is one append in these workloads,
    except a seal's record (WAL op 6): the first append after a `.sealed.tmp` is renamed,
    which is not a transaction of the workload and is not counted."""
    appends = covered = 0
    seal_record = False
    for i, e in enumerate(trace):
        if e.op == "replace" and e.path.endswith(".sealed.tmp"):
            seal_record = True
        elif e.op == "pwrite" and e.path.endswith(".wal") and e.detail[0] > 0:  # type: ignore[index]
            if seal_record:
                seal_record = False
            else:
                appends += 1
        elif e.op == "sync" and e.path.endswith(".wal"):
            failed = i + 1 < len(trace) and trace[i + 1].op == "fault"
            if not failed:
                covered = appends
    return covered


def lowest_surviving(runner: Runner, sync: str, mode: str, trace: list[TraceEntry]) -> int:
    """How many of runner.pending() must survive a crash in `mode` (README "Durability")."""
    if sync == "always" or mode == "PROCESS_CRASH":
        return len(runner.acked)
    if sync == "interval":  # the acks the last successful log fsync covered
        return max(runner.checkpointed, min(wal_synced_appends(trace), len(runner.acked)))
    return runner.checkpointed


def recover(fs: FaultFS, runner: Runner, lowest: int, sync: str = "always",
            recovery: str = "tolerate_torn_tail") -> int:
    """Open the surviving FS (no intervention), read everything, match a prefix >= lowest."""
    db = open_db(fs, sync, recovery=recovery)
    try:
        observed = read_state(db)
    finally:
        db.close()
    assert_ordered(fs, sync)
    return match_prefix(observed, Model(), runner.pending(), lowest)


def assert_ordered(fs: FaultFS, sync: str) -> None:
    """The ordering checker (crashorder.py), always on for sync=always and sync=interval."""
    if sync != "off":
        violations = ordering_violations(fs.trace)
        assert not violations, "ordering violated:\n" + "\n".join(violations[:5])


def case_seed(*parts: object) -> int:
    """A seed derived from the case description: stable across runs and processes."""
    return random.Random(repr(parts)).getrandbits(32)


class Failures:
    """Collects failing cases so one test reports all of them (with their replay info)."""

    def __init__(self, limit: int = 12) -> None:
        self.cases = 0
        self.messages: list[str] = []
        self.count = 0
        self.limit = limit

    @contextmanager
    def case(self, describe: Callable[[], str]) -> Iterator[None]:
        self.cases += 1
        try:
            yield
        except (AssertionError, engine.MktsError, OSError, ValueError, KeyError,
                IndexError, TypeError) as exc:
            self.count += 1
            if len(self.messages) < self.limit:
                self.messages.append(f"{describe()}: {type(exc).__name__}: {exc}")

    def check(self) -> None:
        assert self.count == 0, (
            f"{self.count} of {self.cases} crash cases failed; first ones:\n"
            + "\n".join(self.messages)
        )
