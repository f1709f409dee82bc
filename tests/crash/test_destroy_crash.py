"""destroy() is all or nothing across crashes (power loss after every fsync, rename, unlink,
rmdir and write it makes, in every strict crash mode): after reopening, the bucket is either
there with every year it had, or gone with all its files. It used to unlink year files one by
one before the bucket header, so a crash midway left the bucket listed with part of its
years."""

from __future__ import annotations

from crash.crashrun import ROOT, STRICT_MODES, Failures, crash_fs, fresh_fs, open_db
from harness.crashmodes import CrashMode
from harness.crashpoints import run_to_crash
from harness.faultfs import FaultFS

KEY = "AAPL/1D/OHLCV"
OTHER = "MSFT/1D/OHLCV"
EPOCHS = [1_641_081_600, 1_672_617_600, 1_704_153_600, 1_704_240_000]  # 2022, 2023, 2024 x2
CRASH_OPS = ("sync", "fsync_dir", "replace", "unlink", "rmdir", "pwrite")


def _base() -> tuple[FaultFS, dict[str, list[float]]]:
    fs = fresh_fs()
    db = open_db(fs)
    try:
        db.write(KEY, {"Epoch": EPOCHS, "Close": [1.0, 2.0, 3.0, 4.0]})
        db.write(OTHER, {"Epoch": EPOCHS[:2], "Close": [5.0, 6.0]})
        want = {k: db.read(k)["Close"].tolist() for k in (KEY, OTHER)}
        assert db.info(KEY)["years"] == [2022, 2023, 2024]
    finally:
        db.close()
    return fs.peek_crash(CrashMode.PROCESS_CRASH), want


def _destroy(fs: FaultFS) -> None:
    db = open_db(fs)
    try:
        db.destroy(KEY)
    finally:
        db.close()


def _files_of_key(fs: FaultFS) -> list[str]:
    return [p for p, data in fs.snapshot().items()
            if data is not None and p.startswith(f"{ROOT}/AAPL/")]


def test_destroy_is_all_or_nothing_at_every_crash_point() -> None:
    base, want = _base()
    clean = base.peek_crash(CrashMode.PROCESS_CRASH)
    _destroy(clean)
    counts = {op: clean.counts[op] for op in CRASH_OPS}
    assert counts["unlink"] >= 4  # bucket.hdr and three year files
    failures = Failures()
    outcomes = set()
    for op in CRASH_OPS:
        for k in range(1, counts[op] + 1):
            fs = base.peek_crash(CrashMode.PROCESS_CRASH)
            assert run_to_crash(fs, _destroy, op, k), f"{op} #{k} was never reached"
            for mode in STRICT_MODES:
                with failures.case(lambda op=op, k=k, mode=mode: f"crash after {op} #{k}, {mode}"):
                    after = crash_fs(fs, mode, seed=k)
                    db = open_db(after)
                    try:
                        assert db.read(OTHER)["Close"].tolist() == want[OTHER]
                        if KEY in db.list_keys():
                            outcomes.add("kept")
                            assert db.info(KEY)["years"] == [2022, 2023, 2024]
                            assert db.read(KEY)["Close"].tolist() == want[KEY]
                        else:
                            outcomes.add("gone")
                    finally:
                        db.close()
                    # Whatever the crash left of a destroyed bucket is gone after an open.
                    left = _files_of_key(after)
                    assert not left or any(p.endswith("/bucket.hdr") for p in left), left
    failures.check()
    assert outcomes == {"kept", "gone"}


# -- a base destroyed with the buckets a trigger maintains from it --------------------------
class _Maintains:
    """A trigger that says it maintains `<SYM>/1D/DERIVED` from `<SYM>/1D/OHLCV` (what
    ondiskagg's `sources` says of its destinations); it writes nothing itself."""

    def fire(self, key_path: str, records: object) -> None:
        pass

    def sources(self, key: str) -> str | None:
        sym, _, attr = key.split("/")
        return f"{sym}/1D/OHLCV" if attr == "DERIVED" else None


DERIVED = "AAPL/1D/DERIVED"


def _base_with_derived() -> FaultFS:
    fs = fresh_fs()
    db = open_db(fs)
    try:
        db.write(KEY, {"Epoch": EPOCHS, "Close": [1.0, 2.0, 3.0, 4.0]})
        db.write(DERIVED, {"Epoch": EPOCHS[:2], "Close": [7.0, 8.0]})
        db.write(OTHER, {"Epoch": EPOCHS[:2], "Close": [5.0, 6.0]})
    finally:
        db.close()
    return fs.peek_crash(CrashMode.PROCESS_CRASH)


def _destroy_with_derived(fs: FaultFS) -> None:
    db = open_db(fs, triggers=[("*/1D/OHLCV", _Maintains())])
    try:
        assert db.destroy(KEY) == [KEY, DERIVED]
    finally:
        db.close()


def test_a_base_and_its_derived_buckets_go_all_or_nothing_at_every_crash_point() -> None:
    base = _base_with_derived()
    clean = base.peek_crash(CrashMode.PROCESS_CRASH)
    _destroy_with_derived(clean)
    counts = {op: clean.counts[op] for op in CRASH_OPS}
    failures = Failures()
    outcomes = set()
    for op in CRASH_OPS:
        for k in range(1, counts[op] + 1):
            fs = base.peek_crash(CrashMode.PROCESS_CRASH)
            assert run_to_crash(fs, _destroy_with_derived, op, k), f"{op} #{k} was never reached"
            for mode in STRICT_MODES:
                with failures.case(lambda op=op, k=k, mode=mode: f"crash after {op} #{k}, {mode}"):
                    after = crash_fs(fs, mode, seed=k)
                    db = open_db(after)
                    try:
                        keys = set(db.list_keys())
                        assert OTHER in keys
                        if KEY in keys or DERIVED in keys:
                            assert {KEY, DERIVED} <= keys, keys
                            outcomes.add("kept")
                            assert db.read(KEY)["Close"].tolist() == [1.0, 2.0, 3.0, 4.0]
                            assert db.read(DERIVED)["Close"].tolist() == [7.0, 8.0]
                        else:
                            outcomes.add("gone")
                    finally:
                        db.close()
                    # the open finished the destroy and removed its intent
                    assert after.snapshot().get(f"{ROOT}/.destroy") is None
    failures.check()
    assert outcomes == {"kept", "gone"}
