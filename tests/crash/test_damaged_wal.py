"""A damaged log at engine level (docs/design.md §9 R7): real writes left in the log (never
checkpointed; the year files hold none of them after the power loss), then the log's end is
truncated at every byte offset, each bit of the last record flipped, garbage or zeros
appended, the tail zeroed, and records in the middle damaged.

`engine.open` either recovers the valid prefix (the data then equals the model after exactly
the records wholly before the damage) or refuses with CorruptWALError naming the segment and
offset, changing nothing on disk. No corrupt record is ever applied; nothing else is raised.
"""

from __future__ import annotations

import random

import pytest
from crash.crashrun import ROOT, Failures, Runner, Step, fresh_fs, open_db, scenario
from crash.crashwork import BOUNDARY, Model, Txn, describe_diff, read_state
from harness.crashmodes import CrashMode
from harness.faultfs import FaultFS

from mkts import engine
from mkts.wal import WriteAheadLog

WAL_DIR = f"{ROOT}/wal"
RECORD_HEADER = 20


class Logged:
    """A database on FaultFS whose transactions are all in one log segment and nowhere else."""

    def __init__(self, seed: int = 31) -> None:
        steps = scenario("mixed", seed, 6)
        # A small last record keeps "every bit of the last record" affordable.
        steps.append(Step("txn", Txn(99, {"A/1H/BAR": [(BOUNDARY + 7, 0, 0)]})))
        fs = fresh_fs()
        runner = Runner(fs, steps)
        runner.run(close=False)
        runner.stop_here()  # a crash right after the last write returned
        self.base = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
        self.txns = runner.acked
        with WriteAheadLog.open(WAL_DIR, self.base, readonly=True) as log:
            records = list(log.records())
        segments = {r.segment for r in records}
        assert len(segments) == 1 and len(records) == len(self.txns)
        self.segment = records[0].segment
        self.ends = [r.offset + RECORD_HEADER + len(r.payload) for r in records]
        self.starts = [r.offset for r in records]
        self.bytes = self.base.read_bytes(self.segment)
        assert self.ends[-1] == len(self.bytes)
        self.models = [Model().after(self.txns[:k]).state() for k in range(len(records) + 1)]

    def with_segment(self, content: bytes) -> FaultFS:
        fs = self.base.peek_crash(CrashMode.PROCESS_CRASH)  # a copy
        fs.write_bytes(self.segment, content)
        return fs

    def prefix_before(self, offset: int) -> int:
        """How many records lie wholly before byte `offset`."""
        return sum(1 for end in self.ends if end <= offset)

    def expect_prefix(self, content: bytes, want: int, *, twice: bool = False) -> None:
        """Opening recovers exactly the first `want` records (and, `twice`, so does the next
        open, after the first one cut the tail off and checkpointed)."""
        fs = self.with_segment(content)
        for _ in range(2 if twice else 1):
            db = open_db(fs)
            try:
                got = read_state(db)
            finally:
                db.close()
            assert got == self.models[want], (
                f"expected the first {want} records: {describe_diff(got, self.models[want])}")

    def expect_corruption(self, content: bytes, offset: int) -> None:
        """Opening refuses with CorruptWALError(segment, offset) and changes nothing; then
        point-in-time recovery keeps the records before the damage."""
        fs = self.with_segment(content)
        before = _files(fs)
        try:
            open_db(fs).close()
        except engine.CorruptWALError as exc:
            assert exc.segment == self.segment and self.segment in str(exc)
            assert exc.offset == offset
        else:
            raise AssertionError("the damaged log was opened without an error")
        assert _files(fs) == before, "a failed open changed the files"
        db = open_db(fs, recovery="point_in_time")
        try:
            assert read_state(db) == self.models[self.prefix_before(offset)]
        finally:
            db.close()
        assert fs.listdir(f"{WAL_DIR}/damaged")


def _files(fs: FaultFS) -> dict[str, bytes | None]:
    return {p: b for p, b in fs.snapshot().items() if not p.endswith("/LOCK")}


@pytest.fixture(scope="module")
def logged() -> Logged:
    return Logged()


def test_truncation_at_every_byte_of_the_last_records(logged: Logged) -> None:
    failures = Failures()
    for cut in range(logged.starts[-3], len(logged.bytes) + 1):
        with failures.case(lambda cut=cut: f"log cut at byte {cut}"):
            logged.expect_prefix(logged.bytes[:cut], logged.prefix_before(cut),
                                 twice=cut in logged.ends or cut % 16 == 0)
    failures.check()


def test_every_bit_flip_in_the_last_record_is_a_torn_tail(logged: Logged) -> None:
    failures = Failures()
    n = len(logged.starts)
    for byte in range(logged.starts[-1], len(logged.bytes)):
        for bit in range(8):
            damaged = bytearray(logged.bytes)
            damaged[byte] ^= 1 << bit
            with failures.case(lambda byte=byte, bit=bit: f"bit {bit} of byte {byte} flipped"):
                logged.expect_prefix(bytes(damaged), n - 1, twice=bit == byte % 8)
    failures.check()


def test_garbage_or_zeros_after_the_last_record_are_cut_off(logged: Logged) -> None:
    rng = random.Random(5)
    last = logged.bytes[logged.starts[-1]:]
    tails = [rng.randbytes(n) for n in (1, 7, 19, 20, 21, 100, 4096)]
    tails += [bytes(n) for n in (1, 20, 512, 4096)]
    tails += [b"\xff" * 64, last, last[:-1]]  # a duplicate of the last frame, and a torn one
    failures = Failures()
    for i, tail in enumerate(tails):
        with failures.case(lambda i=i: f"tail #{i} ({len(tails[i])} bytes) appended"):
            logged.expect_prefix(logged.bytes + tail, len(logged.starts), twice=True)
    failures.check()


def test_zeroed_tail_loses_only_the_records_it_changes(logged: Logged) -> None:
    size = len(logged.bytes)
    failures = Failures()
    for z in [*range(1, 64), *range(64, size - logged.starts[-3], 37)]:
        zeroed = logged.bytes[: size - z] + bytes(z)
        changed = next((i for i in range(size - z, size) if logged.bytes[i]), size)
        with failures.case(lambda z=z: f"last {z} bytes zeroed"):
            logged.expect_prefix(zeroed, logged.prefix_before(changed))
    failures.check()


def test_damage_before_a_valid_record_is_corruption_and_changes_nothing(logged: Logged) -> None:
    """Every bit of the header of the second-to-last record and a sample of its payload; and a
    zeroed run in an early record: the last record still validates, so this is corruption."""
    victim = len(logged.starts) - 2
    lo, hi = logged.starts[victim], logged.ends[victim]
    failures = Failures()
    positions = [*range(lo, lo + RECORD_HEADER), *range(lo + RECORD_HEADER, hi, 11)]
    for byte in positions:
        for bit in range(8):
            damaged = bytearray(logged.bytes)
            damaged[byte] ^= 1 << bit
            with failures.case(lambda byte=byte, bit=bit: f"bit {bit} of byte {byte} flipped"):
                logged.expect_corruption(bytes(damaged), lo)
    first = logged.starts[1]
    zeroed = logged.bytes[:first] + bytes(64) + logged.bytes[first + 64:]
    with failures.case(lambda: "64 zero bytes over record 2"):
        logged.expect_corruption(zeroed, first)
    failures.check()
