"""WriteAheadLog behaviour: appends, reopen, rotation, checkpoint, read-only, I/O failures."""

from __future__ import annotations

import errno
import os
import random

import pytest
from harness.crashmodes import CrashMode
from harness.crashpoints import run_to_crash
from harness.faultfs import FaultFS

from mkts.wal import CorruptWALError, OsFileSystem, Record, WalError, WriteAheadLog

DIR = "/db/wal"
HIGHEST = f"{DIR}/HIGHEST"


def seg(n: int) -> str:
    return f"{DIR}/{n:020d}.wal"


@pytest.fixture
def fs() -> FaultFS:
    fs = FaultFS()
    fs.makedirs("/db")
    return fs


def _records(fs: FaultFS, **kw: object) -> list[Record]:
    with WriteAheadLog.open(DIR, fs, **kw) as log:  # type: ignore[arg-type]
        return list(log.records())


def _segments(fs: FaultFS) -> list[str]:
    return sorted(n for n in fs.listdir(DIR) if n.endswith(".wal"))


def test_new_log_is_created_durably_and_empty(fs):
    log = WriteAheadLog.open("/db/a/b/wal", fs)
    assert log.last_txn == 0 and list(log.records()) == [] and log.size_bytes == 40
    log.close()
    ops = [
        (e.op, e.path, e.detail)
        for e in fs.trace
        if e.op in ("mkdir", "fsync_dir", "open", "pwrite", "sync")
    ]
    seg1 = "/db/a/b/wal/00000000000000000001.wal"
    assert ops == [
        ("mkdir", "/db/a", None),
        ("fsync_dir", "/db", None),
        ("mkdir", "/db/a/b", None),
        ("fsync_dir", "/db/a", None),
        ("mkdir", "/db/a/b/wal", None),
        ("fsync_dir", "/db/a/b", None),
        ("open", seg1, "create"),
        ("pwrite", seg1, (0, 40)),
        ("sync", seg1, None),
        ("fsync_dir", "/db/a/b/wal", None),
        # then, the segment being durable, the mark naming it as the highest (docs/wal.md §1)
        ("open", "/db/a/b/wal/HIGHEST.tmp", "create"),
        ("pwrite", "/db/a/b/wal/HIGHEST.tmp", (0, 20)),
        ("sync", "/db/a/b/wal/HIGHEST.tmp", None),
        ("fsync_dir", "/db/a/b/wal", None),
    ]
    after = fs.crash(CrashMode.DROP_ALL_UNSYNCED)  # all of it survives a power cut
    assert after.read_bytes(seg1)[:8] == b"MKTSWAL\x00"


def test_appends_round_trip_and_numbering_continues_across_reopen(fs):
    with WriteAheadLog.open(DIR, fs) as log:
        assert log.append([b"a"]) == 1
        assert log.append([b"b", b"c"]) == 3
        assert log.last_txn == 3
        log.sync()
    with WriteAheadLog.open(DIR, fs) as log:
        assert [(r.txn, r.payload) for r in log.records()] == [(1, b"a"), (2, b"b"), (3, b"c")]
        assert log.last_txn == 3
        assert log.append([b"d"]) == 4
    assert [r.txn for r in _records(fs)] == [1, 2, 3, 4]


def test_append_is_one_write(fs):
    with WriteAheadLog.open(DIR, fs) as log:
        n = len(fs.trace)
        log.append([b"x" * 10, b"y" * 5000, b""])
        writes = [e for e in fs.trace[n:] if e.op == "pwrite"]
    assert writes and len(writes) == 1 and writes[0].detail == (40, 3 * 20 + 5010)


def test_append_does_not_sync_and_sync_makes_it_durable(fs):
    log = WriteAheadLog.open(DIR, fs)
    log.append([b"one"])
    log.sync()
    log.append([b"two"])
    lost = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
    assert [r.payload for r in _records(lost)] == [b"one"]
    log.sync()
    kept = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
    assert [r.payload for r in _records(kept)] == [b"one", b"two"]
    log.close()


def test_rotation_starts_a_new_segment_after_syncing_the_old_one(fs):
    with WriteAheadLog.open(DIR, fs, segment_max_bytes=100) as log:
        log.append([b"x" * 50])  # 40 + 70 = 110 > 100
        n = len(fs.trace)
        log.append([b"y"])
        ops = [(e.op, e.path) for e in fs.trace[n:] if e.op != "close"]
        assert ops[:5] == [
            ("sync", seg(1)),
            ("open", seg(2)),
            ("pwrite", seg(2)),
            ("sync", seg(2)),
            ("fsync_dir", DIR),
        ]
        assert ops[5:10] == [("exists", HIGHEST + ".tmp"), ("open", HIGHEST + ".tmp"),
                             ("pwrite", HIGHEST + ".tmp"), ("sync", HIGHEST + ".tmp"),
                             ("replace", HIGHEST + ".tmp")]
        assert ops[10:12] == [("fsync_dir", DIR), ("pwrite", seg(2))]
        assert log.size_bytes == 110 + 40 + 21
    assert _segments(fs) == [os.path.basename(seg(1)), os.path.basename(seg(2))]
    recs = _records(fs)
    assert [(r.txn, r.segment, r.offset) for r in recs] == [(1, seg(1), 40), (2, seg(2), 40)]


def test_rotated_segments_stay_consecutive_across_many_appends(fs):
    rng = random.Random(5)
    payloads = [rng.randbytes(rng.randrange(0, 300)) for _ in range(200)]
    with WriteAheadLog.open(DIR, fs, segment_max_bytes=1000) as log:
        for p in payloads:
            log.append([p])
        size = log.size_bytes
    assert len(_segments(fs)) > 10
    assert size == sum(len(fs.read_bytes(f"{DIR}/{n}")) for n in _segments(fs))
    assert [r.payload for r in _records(fs)] == payloads


def test_checkpoint_retires_old_segments_and_numbering_continues_across_reopen(fs):
    with WriteAheadLog.open(DIR, fs, segment_max_bytes=100) as log:
        for i in range(5):
            log.append([bytes([i]) * 80])
        assert len(_segments(fs)) == 5
        log.checkpoint(5)
        assert _segments(fs) == [os.path.basename(seg(6))]
        assert log.size_bytes == 40 and log.last_txn == 5
        assert log.append([b"after"]) == 6
    with WriteAheadLog.open(DIR, fs) as log:
        assert [(r.txn, r.payload) for r in log.records()] == [(6, b"after")]
        assert log.last_txn == 6
        log.checkpoint(6)
    with WriteAheadLog.open(DIR, fs) as log:
        assert list(log.records()) == [] and log.last_txn == 6
        assert log.append([b"next"]) == 7
    assert _segments(fs) == [os.path.basename(seg(7))]


def test_checkpoint_must_cover_every_appended_txn(fs):
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([b"a", b"b"])
        for wrong in (1, 3):
            with pytest.raises(ValueError, match="ends at txn 2"):
                log.checkpoint(wrong)
        assert log.append([b"c"]) == 3  # a refused checkpoint changes nothing


def test_checkpoint_makes_the_new_segment_durable_before_deleting_the_old(fs):
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([b"a"])
        n = len(fs.trace)
        log.checkpoint(1)
        ops = [
            (e.op, e.path)
            for e in fs.trace[n:]
            if e.op in ("open", "pwrite", "sync", "fsync_dir", "unlink")
        ]
    assert ops == [
        ("open", seg(2)),
        ("pwrite", seg(2)),
        ("sync", seg(2)),
        ("fsync_dir", DIR),
        ("open", HIGHEST + ".tmp"),
        ("pwrite", HIGHEST + ".tmp"),
        ("sync", HIGHEST + ".tmp"),
        ("fsync_dir", DIR),
        ("unlink", seg(1)),
        ("fsync_dir", DIR),
    ]


def test_records_are_not_available_after_checkpoint(fs):
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([b"a"])
        log.checkpoint(1)
        with pytest.raises(WalError, match="checkpoint"):
            log.records()


def _log_mid_checkpoint() -> tuple[FaultFS, WriteAheadLog]:
    """Six synced records over several segments and a seventh not synced."""
    fs = FaultFS()
    fs.makedirs("/db")
    log = WriteAheadLog.open(DIR, fs, segment_max_bytes=200)
    for i in range(6):
        log.append([bytes([65 + i]) * 120])
    log.sync()
    log.append([b"unsynced"])
    return fs, log


@pytest.mark.parametrize(
    "mode",
    [
        CrashMode.PROCESS_CRASH,
        CrashMode.DROP_ALL_UNSYNCED,
        CrashMode.RANDOM_PREFIX,
        CrashMode.DROP_UNSYNCED_DIRENTS,
        CrashMode.UNSAFE_APPEND,
    ],
)
def test_crash_at_every_step_of_a_checkpoint_reopens_to_a_valid_log(mode):
    """A crash after every file-system call of checkpoint(): reopening works, keeps every synced
    txn (or none, once the new base segment is durable), and numbering continues."""
    fs0, log0 = _log_mid_checkpoint()
    n0 = len(fs0.trace)
    log0.checkpoint(7)
    steps = len(fs0.trace) - n0
    outcomes = set()
    for k in range(1, steps + 1):
        for seed in range(4):
            fs, log = _log_mid_checkpoint()
            assert run_to_crash(fs, lambda _fs, log=log: log.checkpoint(7), "*", k)
            after = fs.crash(mode, random.Random(seed))
            with WriteAheadLog.open(DIR, after) as reopened:
                txns = [r.txn for r in reopened.records()]
                last = reopened.last_txn
                if txns:  # the old log: every synced txn, maybe the unsynced one
                    assert txns == list(range(1, last + 1)) and last in (6, 7)
                else:  # the new base segment: everything before it is retired
                    assert last == 7
                outcomes.add(bool(txns))
                assert reopened.append([b"new"]) == last + 1
            assert [r.txn for r in _records(after)][-1] == last + 1
    assert outcomes == {True, False}


def test_failed_fsync_makes_the_log_refuse_further_changes(fs):
    log = WriteAheadLog.open(DIR, fs)
    log.append([b"a"])
    fs.inject("sync", error=errno.EIO)
    with pytest.raises(OSError) as info:
        log.sync()
    assert info.value.errno == errno.EIO
    syncs = fs.counts["sync"]
    for call in (lambda: log.append([b"b"]), log.sync, lambda: log.checkpoint(1)):
        with pytest.raises(WalError, match="failed earlier") as refused:
            call()
        assert "EIO" in str(refused.value) or "Input/output" in str(refused.value)
    assert fs.counts["sync"] == syncs  # the fsync is never retried
    assert log.last_txn == 1
    log.close()
    log.close()  # idempotent


def test_failed_write_makes_the_log_refuse_further_appends(fs):
    log = WriteAheadLog.open(DIR, fs)
    log.append([b"first"])
    log.sync()
    fs.inject("pwrite", error=errno.ENOSPC, short_write=True)
    with pytest.raises(OSError) as info:
        log.append([b"x" * 1000])
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(WalError, match="No space left|ENOSPC"):
        log.append([b"y"])
    assert log.last_txn == 1
    log.close()
    fs.clear_faults()
    assert [r.payload for r in _records(fs)] == [b"first"]  # the half record is a torn tail


def test_failed_rotation_makes_the_log_refuse_further_appends(fs):
    log = WriteAheadLog.open(DIR, fs, segment_max_bytes=50)
    log.append([b"x" * 40])
    fs.inject("fsync_dir", error=errno.EIO)
    with pytest.raises(OSError):
        log.append([b"y"])
    with pytest.raises(WalError):
        log.append([b"z"])
    log.close()
    fs.clear_faults()
    assert [r.txn for r in _records(fs)] == [1]


def test_failed_fsync_on_the_real_filesystem_wrapper(tmp_path):
    """A tiny wrapper around OsFileSystem whose files fail sync: the log refuses appends."""

    class FailingFile:
        def __init__(self, inner):
            self._inner = inner
            self.path = inner.path

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def sync(self):
            raise OSError(errno.EIO, "injected fsync failure")

    class FailingSyncFS(OsFileSystem):
        armed = False

        def open(self, path, *, write=False, create=False):
            f = super().open(path, write=write, create=create)
            return FailingFile(f) if self.armed else f

    ffs = FailingSyncFS()
    log = WriteAheadLog.open(str(tmp_path / "wal"), ffs)
    log.append([b"a"])
    log.sync()
    log.close()
    ffs.armed = True
    log = WriteAheadLog.open(str(tmp_path / "wal"), ffs)
    log.append([b"b"])
    with pytest.raises(OSError, match="injected fsync failure"):
        log.sync()
    with pytest.raises(WalError, match="injected fsync failure"):
        log.append([b"c"])
    log.close()


def test_readonly_log_reads_but_never_writes(fs):
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([b"a", b"b"])
    before = fs.snapshot()
    n = len(fs.trace)
    with WriteAheadLog.open(DIR, fs, readonly=True) as log:
        assert [r.payload for r in log.records()] == [b"a", b"b"]
        assert log.last_txn == 2
        for call in (lambda: log.append([b"c"]), log.sync, lambda: log.checkpoint(2)):
            with pytest.raises(WalError, match="read-only"):
                call()
    assert fs.snapshot() == before
    assert not [
        e
        for e in fs.trace[n:]
        if e.op in ("pwrite", "truncate", "unlink", "mkdir", "replace")
        or e.detail in ("write", "create")
    ]


def test_readonly_open_of_a_missing_directory_is_an_empty_log(fs):
    with WriteAheadLog.open("/db/nothing", fs, readonly=True) as log:
        assert log.last_txn == 0 and list(log.records()) == []
    assert not fs.exists("/db/nothing")


def test_closed_log_refuses_appends_and_leaks_no_handles(fs):
    log = WriteAheadLog.open(DIR, fs, segment_max_bytes=60)
    for _ in range(5):
        log.append([b"z" * 30])
    list(log.records())
    log.checkpoint(5)
    log.close()
    log.close()
    assert fs.open_file_count == 0
    with pytest.raises(WalError, match="closed"):
        log.append([b"x"])


def test_unknown_recovery_mode_and_bad_segment_size_are_refused(fs):
    with pytest.raises(ValueError, match="recovery"):
        WriteAheadLog.open(DIR, fs, recovery="salvage")
    with pytest.raises(ValueError, match="segment_max_bytes"):
        WriteAheadLog.open(DIR, fs, segment_max_bytes=0)


def test_records_recheck_checksums_when_read(fs):
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([b"abc", b"def"])
    log = WriteAheadLog.open(DIR, fs, readonly=True)
    data = bytearray(fs.read_bytes(seg(1)))
    data[40 + 20] ^= 1  # damage record 1 after open validated it
    fs.write_bytes(seg(1), bytes(data))
    with pytest.raises(CorruptWALError) as info:
        list(log.records())
    assert info.value.segment == seg(1) and info.value.offset == 40
    log.close()


def test_big_payload_append_on_the_real_filesystem(tmp_path):
    payload = os.urandom(8 << 20)
    path = str(tmp_path / "wal")
    with WriteAheadLog.open(path, OsFileSystem()) as log:
        assert log.append([b"small", memoryview(payload), b""]) == 3
        log.sync()
    with WriteAheadLog.open(path, OsFileSystem()) as log:
        assert [r.payload for r in log.records()] == [b"small", payload, b""]


def test_sync_may_run_concurrently_with_appends_that_rotate(fs):
    """Group commit: one thread appends (rotating often), another syncs in a loop."""
    import threading

    log = WriteAheadLog.open(DIR, fs, segment_max_bytes=500)
    done = threading.Event()
    errors: list[BaseException] = []

    def syncer() -> None:
        try:
            while not done.is_set():
                log.sync()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=syncer)
    t.start()
    try:
        for i in range(2000):
            log.append([i.to_bytes(4, "little") * 10])
    finally:
        done.set()
        t.join()
    log.sync()
    log.close()
    assert errors == []
    durable = fs.crash(CrashMode.DROP_ALL_UNSYNCED)
    assert [r.payload for r in _records(durable)] == [
        i.to_bytes(4, "little") * 10 for i in range(2000)
    ]


def test_a_payload_of_several_buffers_is_logged_as_their_concatenation(fs):
    big = os.urandom(300 << 10)  # large enough for the vectored write
    payloads = [(b"ab", memoryview(b"cd")), b"single", (b"", b"x"), (b"head", memoryview(big))]
    with WriteAheadLog.open(DIR, fs) as log:
        assert log.append(payloads[:2]) == 2
        assert log.append([payloads[2]]) == 3
        assert log.append([payloads[3]]) == 4
        size = log.size_bytes
    assert [r.payload for r in _records(fs)] == [b"abcd", b"single", b"x", b"head" + big]
    assert size == 40 + 4 * 20 + 4 + 6 + 1 + 4 + len(big)


def test_the_same_bytes_whether_a_payload_is_split_or_joined(tmp_path):
    from mkts.wal.format import encode_frames

    parts = (b"abc", memoryview(b"defg"), b"", b"h")
    assert encode_frames([parts], 7, 1, 12345) == encode_frames([b"abcdefgh"], 7, 1, 12345)
