"""Simulated power loss during `mkts backup` (docs/backup.md "Interrupting a backup"): a full
backup into a new destination and an incremental one into the destination of an earlier
backup run on FaultFS and crash after every fsync, directory fsync, rename, hard link and
exchange they make, in every crash mode. After each crash the destination is absent (first
backup) or opens as the earlier backup or the new one, whole: rows equal to the source's at
that backup's transaction, `check_root` clean; the source root is byte for byte unchanged.
`db.backup` beside its writer (open, write, checkpoint, back up) is crashed the same way.

By default each crash point is checked in DROP_ALL_UNSYNCED and one more mode (rotating), and
after every fourth one the next backup must complete; --run-slow checks every point in every
strict mode (three draws of the random ones) and completes a backup after each.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from crash.crashrun import QUIET, RANDOM_MODES, STRICT_MODES, Failures, case_seed, crash_fs
from harness.crashmodes import CrashMode
from harness.crashpoints import SimulatedCrash
from harness.faultfs import FaultFS

from mkts import engine
from mkts.check import check_root
from mkts.engine.backup import MANIFEST, BackupResult, backup_root

ROOT, DEST = "/data/db", "/data/backup"
CRASH_OPS = ("sync", "fsync_dir", "replace", "link", "exchange")
T0 = 1_699_999_200  # 2023-11-14 22:00 UTC
DAY = 86_400
HOUR_NS = 3600 * 10**9

State = dict[str, dict[str, bytes]]


def _clock() -> int:
    """File times an hour in the past: every file is old enough for the next backup to link
    it when unchanged (docs/backup.md "Incremental backups", the racy-mtime rule)."""
    return time.time_ns() - HOUR_NS


def _write_rows(fs: FaultFS, step: int) -> Any:
    """Writes of step 1 (the first backup's data: two years of 1H bars for AAA, BBB and
    CCC, and ticks), 1.5 (a day of AAA rewritten) or 2 (what the incremental backup adds: a
    day of AAA again, a new bucket DDD, more ticks; BBB and CCC are left alone, so their
    files are linked). Returns the open handle."""
    db = engine.open(ROOT, fs=fs, sync="always", **QUIET)
    rng = np.random.default_rng(int(step * 10))
    syms = {1: ("AAA", "BBB", "CCC"), 1.5: ("AAA",), 2: ("AAA", "DDD")}[step]
    for i, sym in enumerate(syms):
        base = T0 + (0 if step == 1 else 3 * DAY) + i * 7 * DAY
        for year_shift in ((0, 400 * DAY) if step == 1 else (400 * DAY,)):
            epochs = (base + year_shift + 3600 * np.arange(300)).astype("i8")
            db.write(f"{sym}/1H/OHLCV", {"Epoch": epochs, "Close": rng.random(300)})
    if step != 1.5:
        n = 400
        db.write("T/1H/TICK", {"Epoch": (T0 + int(step) * DAY + np.arange(n) // 4).astype("i8"),
                                 "Nanoseconds": (np.arange(n) % 4 * 1000).astype("i4"),
                                 "Price": rng.random(n)}, variable=True)
    return db


def _writer_dies(fs: FaultFS, db: Any) -> FaultFS:
    """kill -9 of the writer (no checkpoint: its last records are only in the log, and a
    backup replays them), then a clean shutdown of the machine: all of it is durable."""
    after = fs.crash(CrashMode.PROCESS_CRASH)
    try:
        db.close()  # stops its threads; the dead FaultFS refuses every call
    except (OSError, SimulatedCrash):
        pass
    return after


def _read(fs: FaultFS, root: str) -> State:
    """Every bucket's columns as bytes, read from a copy (opening replays the log)."""
    db = engine.open(root, fs=fs.peek_crash(CrashMode.PROCESS_CRASH), sync="always", **QUIET)
    try:
        out = {}
        for key in db.list_keys():
            r = db.read(key)
            out[key] = {c: np.ascontiguousarray(r[c]).tobytes() for c in r.columns}
        return out
    finally:
        db.close()


def _tree(fs: FaultFS, top: str) -> dict[str, bytes | None]:
    return {p: d for p, d in fs.snapshot().items() if p == top or p.startswith(top + "/")}


class Scenario:
    """A backup to crash: `base` is the machine before it (fully durable), `old` and `new`
    the destination states allowed after a crash (None: no destination)."""

    def __init__(self, name: str, base: FaultFS, old: State | None, new: State,
                 old_txn: int | None) -> None:
        self.name, self.base, self.old, self.new, self.old_txn = name, base, old, new, old_txn
        self.new_txn: int | None = None  # set by the clean run (_counts)
        self.source = _tree(base, ROOT)

    def fresh(self) -> FaultFS:
        return self.base.peek_crash(CrashMode.PROCESS_CRASH)

    def run(self, fs: FaultFS) -> BackupResult:
        return backup_root(ROOT, DEST, fs=fs)  # type: ignore[arg-type]


@cache
def _scenarios() -> dict[str, Scenario]:
    fs = FaultFS(clock=_clock)
    fs.makedirs("/data")
    _write_rows(fs, 1).close()
    base1 = _writer_dies(fs, _write_rows(fs, 1.5))
    state1 = _read(base1, ROOT)
    full = Scenario("full", base1, None, state1, None)
    after1 = full.fresh()
    first = full.run(after1)
    assert _read(after1, DEST) == state1
    base2 = _writer_dies(after1, _write_rows(after1, 2))
    incr = Scenario("incremental", base2, state1, _read(base2, ROOT), first.txn)
    return {"full": full, "incremental": incr}


def _counts(sc: Scenario, setup: Callable[[FaultFS], None] | None = None) -> dict[str, int]:
    fs = sc.fresh()
    if setup is not None:
        setup(fs)
    fs.trace.clear()
    fs.counts.clear()
    result = sc.run(fs)
    assert _read(fs, DEST) == sc.new
    sc.new_txn = result.txn
    if sc.old is not None:
        assert result.files_linked > 0 and result.files_copied > 0
    return {op: fs.counts[op] for op in CRASH_OPS}


def _check(sc: Scenario, after: FaultFS, tmp: Path, seen: dict[str, str]) -> str:
    """The promises after a crash; returns which destination state was found."""
    assert _tree(after, ROOT) == sc.source, "the backup changed the source root"
    dest = _tree(after, DEST)
    if not dest:
        assert sc.old is None, "the previous backup is gone"
        return "none"
    digest = hashlib.sha256(repr(sorted(dest.items())).encode()).hexdigest()
    if digest in seen:  # the same bytes were checked before
        return seen[digest]
    # check_root reads the real disk: put the destination there
    out = tmp / digest[:16]
    for path, data in dest.items():
        target = out / os.path.relpath(path, DEST)
        if data is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(data)
    report = check_root(str(out))
    assert not report.errors, f"check_root: {report}"
    state = _read(after, DEST)
    if state == sc.new:
        found, txn = "new", sc.new_txn
    else:
        assert state == sc.old, "the destination is neither the old backup nor the new one"
        found, txn = "old", sc.old_txn
    # the record of what the copy holds goes with it (the next backup links by it)
    manifest = json.loads(dest[f"{DEST}/{MANIFEST}"] or b"")
    assert txn is None or manifest["txn"] == txn, f"{MANIFEST} of another backup"
    seen[digest] = found
    return found


def _cases(k: int, every: bool) -> list[tuple[str, int]]:
    """(mode, draw) to check at crash point number k: DROP_ALL_UNSYNCED and one more mode
    (rotating); with --run-slow every strict mode, the random ones with three draws."""
    if every:
        return [(m, d) for m in STRICT_MODES for d in range(3 if m in RANDOM_MODES else 1)]
    others = [m for m in STRICT_MODES if m != "DROP_ALL_UNSYNCED"]
    return [("DROP_ALL_UNSYNCED", 0), (others[k % len(others)], 0)]


def _next_backup_completes(sc: Scenario, after: FaultFS) -> None:
    """The next backup on the machine after the crash cleans up and gives the new state."""
    sc.run(after)
    assert _read(after, DEST) == sc.new
    assert after.listdir("/data") == ["backup", "db"], "a backup left files behind"


def _sweep(name: str, tmp: Path, every: bool,
           setup: Callable[[FaultFS], None] | None = None) -> tuple[set[str], int]:
    sc = _scenarios()[name]
    counts = _counts(sc, setup)
    failures = Failures()
    found: set[str] = set()
    seen: dict[str, str] = {}
    points = 0
    for op in CRASH_OPS:
        for k in range(1, counts[op] + 1):
            fs = sc.fresh()
            if setup is not None:
                setup(fs)
            fs.crash_at(op, k)
            try:
                sc.run(fs)
            except SimulatedCrash:
                pass
            else:  # pragma: no cover - the clean run counted it
                raise AssertionError(f"{op} #{k} of {counts[op]} was never reached")
            points += 1
            for i, (mode, draw) in enumerate(_cases(points, every)):
                seed = case_seed("backup", name, op, k, mode, draw)
                with failures.case(lambda op=op, k=k, mode=mode, seed=seed: (
                        f"{name} backup: crash after {op} #{k}, {mode}, seed {seed}")):
                    after = crash_fs(fs, mode, seed)
                    found.add(_check(sc, after, tmp, seen))
                    if i == 0 and (every or points % 4 == 0):
                        _next_backup_completes(sc, after)
    failures.check()
    return found, points


def _every(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--run-slow"))


def test_power_loss_during_a_first_backup_leaves_no_backup_or_the_whole_new_one(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    found, points = _sweep("full", tmp_path, _every(request))
    assert found == {"none", "new"} and points > 20


def test_power_loss_during_an_incremental_backup_leaves_the_old_or_the_new_one(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    found, points = _sweep("incremental", tmp_path, _every(request))
    assert found == {"old", "new"} and points > 20


def _no_exchange(fs: FaultFS) -> None:
    fs.inject("exchange", error=errno.EINVAL, persistent=True)


def test_power_loss_during_a_swap_by_two_renames_is_repaired_by_the_next_backup(
        tmp_path: Path) -> None:
    """Where the file system cannot exchange, DEST is renamed aside and the new copy into
    place: a crash between the two leaves no DEST; the next backup puts the old one back
    before anything else (docs/backup.md "Interrupting a backup")."""
    sc = _scenarios()["incremental"]
    counts = _counts(sc, _no_exchange)
    found: set[str] = set()
    for k in range(1, counts["replace"] + 1):
        fs = sc.fresh()
        _no_exchange(fs)
        fs.crash_at("replace", k)
        with pytest.raises(SimulatedCrash):
            sc.run(fs)
        for mode in ("DROP_ALL_UNSYNCED", "PROCESS_CRASH"):
            after = crash_fs(fs, mode, 0)
            gone = not after.exists(DEST)
            after.inject("link", error=errno.EIO)  # the next backup: only its recovery
            try:
                sc.run(after)
            except OSError:
                pass
            state = "none" if not after.exists(DEST) else (
                "new" if _read(after, DEST) == sc.new else "old")
            assert state in ("old", "new"), f"replace #{k}, {mode}: no backup after recovery"
            if gone:
                found.add("repaired")
            found.add(state)
    assert "repaired" in found and {"old", "new"} <= found


def test_crash_outcomes_are_deterministic() -> None:
    """The same crash point, mode and seed give the same destination (so a reported case
    replays)."""
    sc = _scenarios()["incremental"]
    outs = []
    for _ in range(2):
        fs = sc.fresh()
        fs.crash_at("fsync_dir", 3)
        with pytest.raises(SimulatedCrash):
            sc.run(fs)
        outs.append(_tree(crash_fs(fs, "RANDOM_PREFIX", 7), "/data"))
    assert outs[0] == outs[1]




def _open_write_back_up(fs: FaultFS, out: list[Any]) -> None:
    """A writer opens the root, writes a day and calls db.backup (which checkpoints first)."""
    db = _write_rows(fs, 1.5)
    out.append(db)
    db.backup(DEST)
    db.close()


def test_power_loss_during_db_backup_beside_the_writer(tmp_path: Path) -> None:
    """db.backup on the writer's own file system: a crash anywhere in the writer's open,
    write, checkpoint or backup leaves no destination or the whole new one, and the source
    keeps every acknowledged transaction."""
    sc = _scenarios()["full"]
    fs0 = sc.fresh()
    _open_write_back_up(fs0, [])
    new = _read(fs0, DEST)
    assert new == _read(fs0, ROOT) == sc.new  # the day rewritten is the one in the log
    counts = {op: fs0.counts[op] for op in CRASH_OPS}
    failures = Failures()
    found: set[str] = set()
    seen: dict[str, str] = {}
    after_sc = Scenario("db.backup", sc.base, None, new, None)
    n = 0
    for op in CRASH_OPS:
        for k in range(1, counts[op] + 1):
            fs = sc.fresh()
            fs.crash_at(op, k)
            handles: list[Any] = []
            with pytest.raises(SimulatedCrash):
                _open_write_back_up(fs, handles)
            for db in handles:
                try:
                    db.close()
                except (SimulatedCrash, OSError):
                    pass
            n += 1
            mode, _ = _cases(n, False)[n % 2]
            seed = case_seed("db.backup", op, k, mode)
            with failures.case(lambda op=op, k=k, mode=mode, seed=seed: (
                    f"db.backup: crash after {op} #{k}, {mode}, seed {seed}")):
                after = crash_fs(fs, mode, seed)
                after_sc.source = _tree(after, ROOT)  # the writer changed it: checked below
                found.add(_check(after_sc, after, tmp_path, seen))
                assert _read(after, ROOT) == new, "the source lost acknowledged rows"
    failures.check()
    assert found == {"none", "new"} and n > 40
