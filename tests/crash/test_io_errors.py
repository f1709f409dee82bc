"""I/O errors (docs/design.md §9 R2): EIO, ENOSPC or a short write on the k-th pwrite, fsync
or directory fsync of a workload, once or from then on.

The call that meets the error raises (StoreFailedError, or the OSError itself); every later
write raises StoreFailedError and is never acknowledged; no fsync is retried to claim
success. Reopening (on the same FaultFS once the faults are gone, after a process crash, or
after a power loss) recovers every acknowledged write, and at most the one transaction that
failed, never a part of it.

The workloads' buckets are created before the faults are armed: errors while a write creates
a bucket are the subject of the last test.
"""

from __future__ import annotations

import errno

import pytest
from crash.crashrun import Failures, fresh_fs, open_db, scenario
from crash.crashwork import (
    BOUNDARY,
    Model,
    Txn,
    checksum,
    create_buckets,
    ensure_tick_bucket,
    match_prefix,
    read_state,
)
from harness.crashmodes import CrashMode
from harness.faultfs import FaultFS

from mkts import engine

FAULT_OPS = ("pwrite", "sync", "fsync_dir")
WORKLOADS = {
    # name: (profile, seed, transactions, checkpoint before txn #, close+open before txn #)
    "multi": ("multi", 41, 6, 3, None),
    "ticks": ("ticks", 42, 7, 4, None),
    "mixed": ("mixed", 43, 8, 2, 5),
}


class Outcome:
    def __init__(self) -> None:
        self.acked: list[Txn] = []
        self.failed: Txn | None = None  # the first transaction whose write raised
        self.errors: list[tuple[str, BaseException]] = []
        self.db: object = None


def _setup(fs: FaultFS, steps: list, sync: str) -> object:
    db = open_db(fs, sync)
    ensure_tick_bucket(db)
    create_buckets(db, [s.txn for s in steps if s.txn is not None])
    return db


def play(fs: FaultFS, steps: list, sync: str, arm: object) -> Outcome:
    """Set up, arm the fault (`arm(fs)`), run the steps and close, carrying on after errors
    the way a careless caller would."""
    out = Outcome()
    out.db = db = _setup(fs, steps, sync)
    arm(fs)  # type: ignore[operator]
    for step in steps:
        if step.txn is not None:
            try:
                step.txn.write(db)
            except OSError as exc:  # StoreFailedError is an OSError too
                if out.errors:
                    assert isinstance(exc, engine.StoreFailedError), (
                        f"write after an I/O error raised {exc!r}, not StoreFailedError")
                out.errors.append((f"txn {step.txn.tid}", exc))
                out.failed = out.failed or step.txn
                continue
            assert not out.errors, (
                f"txn {step.txn.tid} was acknowledged after an I/O error: {out.errors}")
            out.acked.append(step.txn)
        elif out.errors:
            return out  # a user would now close and reopen: that is the recovery below
        elif step.op == "checkpoint":
            try:
                db.checkpoint()
            except OSError as exc:
                out.errors.append(("checkpoint", exc))
        else:
            out.db = None
            try:
                db.close()
                out.db = db = open_db(fs, sync)
            except OSError as exc:
                out.errors.append((step.op, exc))
                return out
    if not out.errors:
        out.db = None
        try:
            db.close()  # a checkpoint: it may be the call that meets the error
        except OSError as exc:
            out.errors.append(("close", exc))
    return out


def _fsync_retried(trace: list) -> list[str]:
    """Files synced again by the same handle after their fsync failed (up to the next open)."""
    failed: set[str] = set()
    out = []
    for i, e in enumerate(trace):
        if e.op == "lock":
            failed.clear()
        elif e.op == "fault" and e.detail[0] in ("sync", "fsync_dir"):
            failed.add(e.path)
        elif e.op in ("sync", "fsync_dir") and e.path in failed:
            nxt = trace[i + 1] if i + 1 < len(trace) else None
            if nxt is None or nxt.op != "fault":
                out.append(f"#{i} {e.op} {e.path} succeeded after it had failed")
    return out


def _close(db: object) -> None:
    if db is not None:
        try:
            db.close()  # type: ignore[attr-defined]
        except OSError:
            pass  # closing a failed handle must not hide the recovery check below


def _check_recovered(fs: FaultFS, out: Outcome, sync: str) -> None:
    db = open_db(fs, sync)
    try:
        observed = read_state(db)
        pending = out.acked + ([out.failed] if out.failed is not None else [])
        match_prefix(observed, Model(), pending, len(out.acked))
        assert db.write("A/1H/BAR", _row(0)) > 0  # the reopened handle accepts writes
    finally:
        db.close()


def _row(txn: int) -> dict[str, list]:
    return {"Epoch": [BOUNDARY], "Txn": [txn], "Pos": [0], "Sum": [int(checksum(txn, 0))],
            "F": [float(txn)]}


def _probe_counts(steps: list, sync: str) -> dict[str, int]:
    """FS calls of each kind after the setup, in a run without faults."""
    fs = fresh_fs()
    counts: dict[str, int] = {}

    def arm(fs: FaultFS) -> None:
        counts.update({op: -fs.counts[op] for op in FAULT_OPS})

    out = play(fs, steps, sync, arm)
    assert not out.errors
    return {op: fs.counts[op] + counts[op] for op in FAULT_OPS}


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_io_error_fails_the_handle_and_reopen_recovers_every_ack(workload: str,
                                                                  persistent: bool) -> None:
    profile, seed, n, ckpt, reopen = WORKLOADS[workload]
    steps = scenario(profile, seed, n, checkpoint_at=ckpt, reopen_at=reopen)
    counts = _probe_counts(steps, "always")
    failures = Failures()
    for op in FAULT_OPS:
        for k in range(1, counts[op] + 1):
            error = (errno.EIO, errno.ENOSPC)[k % 2]
            short = op == "pwrite" and k % 3 == 0

            def arm(fs: FaultFS, op: str = op, k: int = k, error: int = error,
                    short: bool = short) -> None:
                fs.inject(op, k, error, persistent=persistent, short_write=short)

            label = (f"{workload}: {errno.errorcode[error]}{' (short write)' if short else ''} "
                     f"on {op} #{k}{' and after' if persistent else ''}")
            with failures.case(lambda label=label: label):
                fs = fresh_fs()
                out = play(fs, steps, "always", arm)
                fired = any(e.op == "fault" for e in fs.trace)
                assert fired and out.errors, f"the fault fired={fired}, errors={out.errors}"
                _close(out.db)
                assert _fsync_retried(fs.trace) == []
                power_loss = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
                process_crash = fs.peek_crash(CrashMode.PROCESS_CRASH)
                fs.clear_faults()
                _check_recovered(fs, out, "always")
                _check_recovered(process_crash, out, "always")
                _check_recovered(power_loss, out, "always")
    failures.check()


@pytest.mark.parametrize("op", ["sync", "pwrite"])
def test_interval_mode_io_error_fails_the_handle(op: str) -> None:
    """sync=interval: the failed fsync (or write) surfaces at the write, checkpoint or close
    that needs it; nothing acknowledged is lost after a process crash."""
    profile, seed, n, ckpt, reopen = WORKLOADS["mixed"]
    steps = scenario(profile, seed, n, checkpoint_at=ckpt, reopen_at=reopen)
    counts = _probe_counts(steps, "interval")
    failures = Failures()
    for k in range(1, counts[op] + 1):
        def arm(fs: FaultFS, k: int = k) -> None:
            fs.inject(op, k, errno.EIO)

        with failures.case(lambda k=k: f"interval: EIO on {op} #{k}"):
            fs = fresh_fs()
            out = play(fs, steps, "interval", arm)
            assert out.errors, "the injected error was never reported"
            _close(out.db)
            assert _fsync_retried(fs.trace) == []
            process_crash = fs.peek_crash(CrashMode.PROCESS_CRASH)
            fs.clear_faults()
            _check_recovered(fs, out, "interval")
            _check_recovered(process_crash, out, "interval")
    failures.check()


def test_io_error_while_a_write_creates_a_bucket_fails_the_handle() -> None:
    failures = Failures()
    probe = fresh_fs()
    db = open_db(probe)
    db.write("A/1H/BAR", _row(1))
    before = dict(probe.counts)
    db.write("N/1D/BAR", _row(2))  # creates the bucket: directories, bucket.hdr
    during = {op: probe.counts[op] - before.get(op, 0) for op in FAULT_OPS}
    db.close()
    for op in FAULT_OPS:
        for k in range(1, during[op] + 1):
            with failures.case(lambda op=op, k=k: f"EIO on {op} #{k} while creating N/1D/BAR"):
                fs = fresh_fs()
                db = open_db(fs)
                try:
                    db.write("A/1H/BAR", _row(1))
                    fs.inject(op, k, errno.EIO)
                    try:
                        db.write("N/1D/BAR", _row(2))
                    except OSError:
                        pass
                    else:
                        raise AssertionError("the write that met the error was acknowledged")
                    fs.clear_faults()
                    try:
                        db.write("N/1D/BAR", _row(3))  # the handle must refuse writes now
                    except engine.StoreFailedError:
                        pass
                    else:
                        raise AssertionError("a write after the I/O error was acknowledged")
                finally:
                    _close(db)
                power_loss = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
                db = open_db(power_loss)  # opens without intervention
                try:
                    assert read_state(db).fixed["A/1H/BAR"] == {BOUNDARY: (1, 0)}
                finally:
                    db.close()
    failures.check()
