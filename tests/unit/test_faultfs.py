"""FaultFS (tests/harness): crash modes, fault injection, crash points, and OS-identical errors."""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import random
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pytest
from harness.crashmodes import CrashMode, Link, Rename, Unlink, Write, apply_dir_op, apply_file_op
from harness.crashpoints import SimulatedCrash, run_to_crash
from harness.faultfs import FaultFS, TraceEntry

from mkts.wal.fs import OsFileSystem

ROOT = "/db"
RANDOM_MODES = [CrashMode.RANDOM_PREFIX, CrashMode.SECTOR_SUBSET, CrashMode.UNSAFE_APPEND]


@pytest.fixture
def fs() -> FaultFS:
    fs = FaultFS()
    fs.makedirs(ROOT)
    return fs


def _p(*parts: str) -> str:
    return os.path.join(ROOT, *parts)


def _durable_file(fs: FaultFS, name: str, data: bytes) -> None:
    """Create, write, sync and fsync the directory: the safe way."""
    f = fs.open(_p(name), create=True)
    f.pwrite(data, 0)
    f.sync()
    f.close()
    fs.fsync_dir(ROOT)


# --- crash modes ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(CrashMode))
def test_synced_write_in_fsynced_dir_survives_every_mode(fs: FaultFS, mode: CrashMode) -> None:
    _durable_file(fs, "a", b"x" * 1500)
    after = fs.crash(mode, random.Random(1))
    assert after.read_bytes(_p("a")) == b"x" * 1500


def test_unsynced_write_is_dropped_only_when_unsynced_data_is(fs: FaultFS) -> None:
    _durable_file(fs, "a", b"aaaa")
    f = fs.open(_p("a"), write=True)
    f.pwrite(b"bb", 0)
    assert fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED).read_bytes(_p("a")) == b"aaaa"
    assert fs.peek_crash(CrashMode.PROCESS_CRASH).read_bytes(_p("a")) == b"bbaa"
    assert fs.peek_crash(CrashMode.DROP_UNSYNCED_DIRENTS).read_bytes(_p("a")) == b"bbaa"


def test_process_crash_keeps_all_volatile_state(fs: FaultFS) -> None:
    fs.mkdir(_p("sub"))
    f = fs.open(_p("sub", "tmp"), create=True)
    f.pwrite(b"new", 0)
    fs.replace(_p("sub", "tmp"), _p("sub", "final"))
    after = fs.peek_crash(CrashMode.PROCESS_CRASH)
    assert after.snapshot() == {_p(): None, _p("sub"): None, _p("sub", "final"): b"new"}


@pytest.mark.parametrize("mode", [CrashMode.DROP_ALL_UNSYNCED, CrashMode.DROP_UNSYNCED_DIRENTS])
def test_synced_file_whose_dir_was_not_fsynced_vanishes(fs: FaultFS, mode: CrashMode) -> None:
    f = fs.open(_p("a"), create=True)
    f.pwrite(b"data", 0)
    f.sync()
    assert not fs.peek_crash(mode).exists(_p("a"))
    fs.fsync_dir(ROOT)
    assert fs.peek_crash(mode).read_bytes(_p("a")) == b"data"


def test_file_in_fsynced_dir_without_data_sync_is_empty_after_drop_all(fs: FaultFS) -> None:
    f = fs.open(_p("a"), create=True)
    fs.fsync_dir(ROOT)
    f.pwrite(b"data", 0)
    assert fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED).read_bytes(_p("a")) == b""


@pytest.mark.parametrize("mode", [CrashMode.DROP_ALL_UNSYNCED, CrashMode.DROP_UNSYNCED_DIRENTS])
def test_rename_is_durable_only_after_fsync_dir(fs: FaultFS, mode: CrashMode) -> None:
    _durable_file(fs, "current", b"old")
    _durable_file(fs, "current.tmp", b"new")
    fs.replace(_p("current.tmp"), _p("current"))
    before = fs.peek_crash(mode)
    assert before.read_bytes(_p("current")) == b"old"
    assert before.read_bytes(_p("current.tmp")) == b"new"
    fs.fsync_dir(ROOT)
    after = fs.peek_crash(mode)
    assert after.read_bytes(_p("current")) == b"new"
    assert not after.exists(_p("current.tmp"))


def test_unlink_reverts_until_fsync_dir(fs: FaultFS) -> None:
    _durable_file(fs, "a", b"data")
    fs.unlink(_p("a"))
    assert fs.peek_crash(CrashMode.DROP_UNSYNCED_DIRENTS).read_bytes(_p("a")) == b"data"
    fs.fsync_dir(ROOT)
    assert not fs.peek_crash(CrashMode.DROP_UNSYNCED_DIRENTS).exists(_p("a"))


def test_new_directory_needs_fsync_of_its_parent(fs: FaultFS) -> None:
    fs.mkdir(_p("sym"))
    f = fs.open(_p("sym", "2024.bin"), create=True)
    f.pwrite(b"rows", 0)
    f.sync()
    fs.fsync_dir(_p("sym"))
    assert not fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED).exists(_p("sym"))
    fs.fsync_dir(ROOT)
    assert fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED).read_bytes(_p("sym", "2024.bin")) == b"rows"


def test_unlinked_open_file_is_gone_after_crash_but_usable_before(fs: FaultFS) -> None:
    _durable_file(fs, "a", b"data")
    f = fs.open(_p("a"), write=True)
    fs.unlink(_p("a"))
    fs.fsync_dir(ROOT)
    f.pwrite(b"more", 4)
    f.sync()
    assert f.pread(8, 0) == b"datamore"
    assert fs.peek_crash(CrashMode.PROCESS_CRASH).snapshot() == {_p(): None}


def test_random_prefix_never_keeps_a_later_write_without_an_earlier_one(fs: FaultFS) -> None:
    _durable_file(fs, "wal", b"H" * 10)
    f = fs.open(_p("wal"), write=True)
    records = [bytes([65 + i]) * (i + 3) for i in range(8)]  # distinct bytes, distinct sizes
    offset = 10
    for rec in records:
        f.pwrite(rec, offset)
        offset += len(rec)
    seen_k: set[int] = set()
    torn = 0
    for seed in range(300):
        out = fs.peek_crash(CrashMode.RANDOM_PREFIX, random.Random(seed)).read_bytes(_p("wal"))
        assert out.startswith(b"H" * 10)
        body, k = out[10:], 0
        while k < len(records) and body.startswith(records[k]):
            body = body[len(records[k]) :]
            k += 1
        # Whatever follows the k whole records is a strict prefix of record k: a torn write.
        assert body == b"" or (k < len(records) and records[k].startswith(body)), (seed, out)
        torn += body != b""
        seen_k.add(k)
    assert seen_k == set(range(len(records) + 1))
    assert torn > 0


def test_random_prefix_applies_the_ops_in_order(fs: FaultFS) -> None:
    _durable_file(fs, "f", b"0000")
    f = fs.open(_p("f"), write=True)
    ops = [Write(0, b"1"), Write(0, b"22"), Write(3, b"333")]  # each overwrites the last
    for op in ops:
        f.pwrite(op.data, op.offset)
    f.truncate(2)
    allowed = set()
    for k in range(5):
        buf = bytearray(b"0000")
        for op in ops[:k]:
            apply_file_op(buf, op)
        if k == 4:
            del buf[2:]
        allowed.add(bytes(buf))
        if k < 3:  # op k torn to a byte prefix
            for keep in range(1, len(ops[k].data)):
                apply_file_op(buf, Write(ops[k].offset, ops[k].data[:keep]))
                allowed.add(bytes(buf))
    outs = {
        fs.peek_crash(CrashMode.RANDOM_PREFIX, random.Random(s)).read_bytes(_p("f"))
        for s in range(200)
    }
    assert outs <= allowed
    assert len(outs) >= 4


def test_random_prefix_dirents_are_an_ordered_subset_of_the_changes(fs: FaultFS) -> None:
    _durable_file(fs, "old", b"o")
    for name in ("a", "b"):
        fs.open(_p(name), create=True).close()
    fs.replace(_p("a"), _p("c"))
    fs.unlink(_p("old"))
    # The live nodes are opaque; compare names only.
    changes: list[Any] = [Link("a", 1), Link("b", 2), Rename("a", "c", 1), Unlink("old")]
    allowed = set()
    for keep in itertools.product([False, True], repeat=len(changes)):
        entries: dict[str, int] = {"old": 0}
        for op, k in zip(changes, keep, strict=True):
            if k:
                apply_dir_op(entries, op)
        allowed.add(tuple(sorted(entries)))
    outs = {
        tuple(fs.peek_crash(CrashMode.RANDOM_PREFIX, random.Random(s)).listdir(ROOT))
        for s in range(200)
    }
    assert outs <= allowed
    assert len(outs) >= 6
    assert ("a", "c", "old") not in outs  # a same-dir rename is never half done


@pytest.mark.parametrize("mode", RANDOM_MODES)
def test_crash_is_deterministic_for_a_seed(fs: FaultFS, mode: CrashMode) -> None:
    _durable_file(fs, "a", bytes(range(256)) * 8)
    f = fs.open(_p("a"), write=True)
    for i in range(6):
        f.pwrite(bytes([i]) * 700, i * 300)
    for name in "xyz":
        fs.open(_p(name), create=True).pwrite(name.encode() * 600, 0)
    first = [fs.peek_crash(mode, random.Random(s)).snapshot() for s in range(10)]
    again = [fs.peek_crash(mode, random.Random(s)).snapshot() for s in range(10)]
    assert first == again
    assert len({repr(s) for s in first}) > 1


def test_sector_subset_makes_each_touched_sector_old_new_or_garbage(fs: FaultFS) -> None:
    _durable_file(fs, "a", b"o" * 2048)
    fs.open(_p("a"), write=True).pwrite(b"n" * 1024, 512)  # sectors 1 and 2
    kinds = set()
    for seed in range(60):
        out = fs.peek_crash(CrashMode.SECTOR_SUBSET, random.Random(seed)).read_bytes(_p("a"))
        assert len(out) == 2048
        assert out[:512] == out[1536:] == b"o" * 512  # untouched sectors stay old
        for s in (1, 2):
            sector = out[s * 512 : (s + 1) * 512]
            kinds.add({b"o" * 512: "old", b"n" * 512: "new"}.get(sector, "garbage"))
    assert kinds == {"old", "new", "garbage"}


def test_sector_subset_size_is_old_or_new(fs: FaultFS) -> None:
    _durable_file(fs, "a", b"o" * 100)
    fs.open(_p("a"), write=True).pwrite(b"n" * 1000, 100)
    sizes = {
        len(fs.peek_crash(CrashMode.SECTOR_SUBSET, random.Random(s)).read_bytes(_p("a")))
        for s in range(40)
    }
    assert sizes == {100, 1100}


def test_unsafe_append_keeps_the_size_but_not_the_appended_data(fs: FaultFS) -> None:
    _durable_file(fs, "wal", b"o" * 700)
    f = fs.open(_p("wal"), write=True)
    f.pwrite(b"n" * 10, 0)  # an unsynced overwrite reverts too
    f.pwrite(b"n" * 1300, 700)
    kinds = set()
    for seed in range(40):
        out = fs.peek_crash(CrashMode.UNSAFE_APPEND, random.Random(seed)).read_bytes(_p("wal"))
        assert len(out) == 2000
        assert out[:700] == b"o" * 700
        assert b"n" * 8 not in out[700:]
        kinds.update("zeros" if not any(out[lo:hi]) else "junk" for lo, hi in _sectors(700, 2000))
    assert kinds == {"zeros", "junk"}


def _sectors(start: int, end: int) -> list[tuple[int, int]]:
    edges = [start, *range((start // 512 + 1) * 512, end, 512), end]
    return list(itertools.pairwise(edges))


def test_random_modes_need_an_rng(fs: FaultFS) -> None:
    with pytest.raises(ValueError, match="rng"):
        fs.crash(CrashMode.RANDOM_PREFIX)


def test_crash_invalidates_handles_and_releases_locks(fs: FaultFS) -> None:
    _durable_file(fs, "a", b"data")
    f = fs.open(_p("a"))
    fs.lock(_p("LOCK"))
    fs.fsync_dir(ROOT)
    after = fs.crash(CrashMode.PROCESS_CRASH)
    with pytest.raises(OSError) as err:
        f.pread(4, 0)
    assert err.value.errno == errno.EBADF
    with pytest.raises(OSError) as err:
        fs.exists(_p("a"))
    assert err.value.errno == errno.EBADF
    f.close()  # closing an old handle is harmless
    assert fs.crash(CrashMode.PROCESS_CRASH).snapshot() == after.snapshot()  # drawn again
    after.unlock(after.lock(_p("LOCK")))
    assert after.trace == [
        TraceEntry("lock", _p("LOCK"), None),
        TraceEntry("unlock", _p("LOCK"), 3),
    ]


# --- fault injection ------------------------------------------------------------------------


def test_injected_fault_fails_only_the_nth_call(fs: FaultFS) -> None:
    f = fs.open(_p("a"), create=True)
    fs.inject("sync", 2, errno.ENOSPC)
    f.sync()
    with pytest.raises(OSError) as err:
        f.sync()
    assert err.value.errno == errno.ENOSPC
    f.sync()
    assert ("fault", _p("a"), ("sync", "ENOSPC", None)) in fs.trace


def test_persistent_fault_fails_every_later_call(fs: FaultFS) -> None:
    fs.inject("mkdir", 2, persistent=True)
    fs.mkdir(_p("d1"))
    for name in ("d2", "d3", "d4"):
        with pytest.raises(OSError, match="Input/output error"):
            fs.mkdir(_p(name))
    assert fs.listdir(ROOT) == ["d1"]


def test_failed_sync_makes_nothing_durable(fs: FaultFS) -> None:
    _durable_file(fs, "a", b"old")
    f = fs.open(_p("a"), write=True)
    f.pwrite(b"new", 0)
    fs.inject("sync", 1)
    with pytest.raises(OSError):
        f.sync()
    assert fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED).read_bytes(_p("a")) == b"old"


@pytest.mark.parametrize(("short", "written"), [(True, 50), (10, 10), (500, 99)])
def test_short_write_writes_part_then_raises(fs: FaultFS, short: bool | int, written: int) -> None:
    f = fs.open(_p("wal"), create=True)
    fs.inject("pwrite", 1, errno.ENOSPC, short_write=short)
    with pytest.raises(OSError) as err:
        f.pwrite(b"z" * 100, 0)
    assert err.value.errno == errno.ENOSPC
    assert fs.read_bytes(_p("wal")) == b"z" * written
    assert fs.trace[-1] == ("fault", _p("wal"), ("pwrite", "ENOSPC", written))


def test_fault_path_glob_counts_only_matching_calls(fs: FaultFS) -> None:
    wal = fs.open(_p("000001.wal"), create=True)
    fs.mkdir(_p("sym"))
    data = fs.open(_p("sym", "2024.bin"), create=True)
    fs.inject("pwrite", 2, path="*.bin")
    wal.pwrite(b"w", 0)
    data.pwrite(b"d", 0)
    wal.pwrite(b"w", 1)
    with pytest.raises(OSError):
        data.pwrite(b"d", 1)


def test_star_counts_every_call(fs: FaultFS) -> None:
    fs.inject("*", 3, errno.EDQUOT)
    f = fs.open(_p("a"), create=True)  # 1
    f.pwrite(b"x", 0)  # 2
    assert fs.exists(_p("a"))  # never fails and is not counted
    with pytest.raises(OSError) as err:
        f.sync()  # 3
    assert err.value.errno == errno.EDQUOT


def test_clear_faults_disarms_faults_and_crash_points(fs: FaultFS) -> None:
    fs.inject("mkdir", 1)
    fs.crash_at("mkdir", 1)
    fs.clear_faults()
    fs.mkdir(_p("d"))


@pytest.mark.parametrize(
    ("op", "nth", "kwargs"),
    [("fsync", 1, {}), ("sync", 0, {}), ("exists", 1, {}), ("sync", 1, {"short_write": True})],
)
def test_inject_rejects_bad_requests(fs: FaultFS, op: str, nth: int, kwargs: Any) -> None:
    with pytest.raises(ValueError):
        fs.inject(op, nth, **kwargs)


def test_trace_and_counts_record_every_call_in_order(fs: FaultFS) -> None:
    f = fs.open(_p("seg.wal"), create=True)
    f.pwrite(b"frame", 0)
    f.sync()
    fs.fsync_dir(ROOT)
    fs.replace(_p("seg.wal"), _p("old.wal"))
    f.close()
    assert fs.trace == [
        ("open", _p("seg.wal"), "create"),
        ("pwrite", _p("seg.wal"), (0, 5)),
        ("sync", _p("seg.wal"), None),
        ("fsync_dir", ROOT, None),
        ("replace", _p("seg.wal"), _p("old.wal")),
        ("close", _p("seg.wal"), None),
    ]
    assert fs.counts == {
        "open": 1,
        "pwrite": 1,
        "sync": 1,
        "fsync_dir": 1,
        "replace": 1,
        "close": 1,
    }
    assert fs.open_file_count == 0


# --- crash points ---------------------------------------------------------------------------


def test_crash_at_raises_simulated_crash_after_the_nth_op_completes(fs: FaultFS) -> None:
    _durable_file(fs, "a", b"")
    f = fs.open(_p("a"), write=True)
    fs.crash_at("sync", 2)
    f.pwrite(b"1", 0)
    f.sync()
    f.pwrite(b"2", 1)
    with pytest.raises(SimulatedCrash):
        try:
            f.sync()
        except Exception:  # product code's handlers must not swallow it
            pytest.fail("SimulatedCrash was caught as an Exception")
    assert fs.crash(CrashMode.DROP_ALL_UNSYNCED).read_bytes(_p("a")) == b"12"


def test_frozen_fs_refuses_every_later_call_and_keeps_its_state(fs: FaultFS) -> None:
    f = fs.open(_p("a"), create=True)
    fs.crash_at("pwrite", 1)
    with pytest.raises(SimulatedCrash):
        f.pwrite(b"x", 0)
    for call in (lambda: f.pwrite(b"y", 0), f.sync, lambda: fs.fsync_dir(ROOT)):
        with pytest.raises(SimulatedCrash):
            call()
    f.close()  # cleanup code may close handles; it changes nothing
    assert fs.read_bytes(_p("a")) == b"x"
    assert fs.trace[-1] == ("crash", _p("a"), "pwrite")


def test_run_to_crash_reaches_every_counted_point() -> None:
    def workload(fs: FaultFS) -> None:
        for i in range(3):
            f = fs.open(_p(f"f{i}"), create=True)
            f.pwrite(b"x", 0)
            f.sync()
            fs.fsync_dir(ROOT)

    def fresh() -> FaultFS:
        fs = FaultFS()
        fs.makedirs(ROOT)
        return fs

    clean = fresh()
    workload(clean)
    assert clean.counts["fsync_dir"] == 3
    for k in range(1, 4):
        fs = fresh()
        assert run_to_crash(fs, workload, "fsync_dir", k)
        survivors = fs.crash(CrashMode.DROP_ALL_UNSYNCED)
        assert survivors.snapshot() == {_p(): None} | {_p(f"f{i}"): b"x" for i in range(k)}
    assert not run_to_crash(fresh(), workload, "fsync_dir", 4)


# --- locks and maps -------------------------------------------------------------------------


def test_second_lock_conflicts_until_unlock(fs: FaultFS) -> None:
    assert not fs.is_locked(_p("LOCK"))  # missing
    h = fs.lock(_p("LOCK"))
    assert fs.is_locked(_p("LOCK"))
    with pytest.raises(BlockingIOError):
        fs.lock(_p("LOCK"))
    assert fs.read_bytes(_p("LOCK")) == f"{os.getpid()}\n".encode()
    fs.unlock(h)
    assert not fs.is_locked(_p("LOCK"))
    fs.unlock(fs.lock(_p("LOCK")))


def test_os_filesystem_probes_a_lock_like_faultfs(tmp_path: Any) -> None:
    from mkts.wal.fs import OsFileSystem

    osfs, path = OsFileSystem(), str(tmp_path / "LOCK")
    assert not osfs.is_locked(path) and not os.path.exists(path)  # never created
    h = osfs.lock(path)
    assert osfs.is_locked(path)
    osfs.unlock(h)
    assert not osfs.is_locked(path)


def test_map_follows_later_pwrites_through_numpy(fs: FaultFS) -> None:
    f = fs.open(_p("2024.bin"), create=True)
    f.truncate(8 * 16)  # year files are created at full size, then written in place
    view = np.frombuffer(f.map(), dtype="<i8")
    assert not view.flags.writeable
    f.pwrite(np.array([7, 9], dtype="<i8").tobytes(), 8 * 3)
    assert view[3:5].tolist() == [7, 9]
    f.truncate(8 * 4)  # shrinking within capacity zeroes the cut-off tail
    assert view[4] == 0


def test_map_after_growth_needs_a_new_map(fs: FaultFS) -> None:
    f = fs.open(_p("a"), create=True)
    f.pwrite(b"ab", 0)
    old = f.map()
    f.pwrite(b"c" * 100, 2)  # grows past capacity: a new buffer
    assert bytes(old) == b"ab"
    assert bytes(f.map()) == b"ab" + b"c" * 100


def test_allocated_size_counts_written_blocks(fs: FaultFS) -> None:
    f = fs.open(_p("a"), create=True)
    f.truncate(1 << 20)
    assert fs.allocated_size(_p("a")) == 0
    f.pwrite(b"x", 8192)
    assert (fs.file_size(_p("a")), fs.allocated_size(_p("a"))) == (1 << 20, 4096)


# --- the same script on the real filesystem and on FaultFS ----------------------------------


class Opaque:
    """A result that differs between implementations (a lock handle): compared as a tag."""

    def __init__(self, value: object) -> None:
        self.value = value


Script = Callable[[Any, Callable[..., str]], Generator[Callable[[], object], object, None]]


def _namespace(fs: Any, p: Callable[..., str]) -> Generator[Callable[[], object], object, None]:
    yield lambda: fs.mkdir(p("d"))
    yield lambda: fs.mkdir(p("d"))
    yield lambda: fs.mkdir(p("nope", "x"))
    f = yield lambda: fs.open(p("d", "f"), create=True)
    yield lambda: f.close()
    yield lambda: fs.mkdir(p("d", "f", "x"))
    yield lambda: fs.open(p("d", "f"), create=True)
    yield lambda: fs.open(p("d"), create=True)
    yield lambda: fs.open(p("d"), write=True)
    yield lambda: fs.open(p("d", "nope"))
    yield lambda: fs.open(p("d", "nope"), write=True)
    yield lambda: fs.open(p("d", "f", "x"))
    yield lambda: fs.open(p("d", "f", "x"), create=True)
    yield lambda: fs.open(p("nope", "x"), create=True)
    yield lambda: fs.listdir(p())
    yield lambda: fs.listdir(p("d"))
    yield lambda: fs.listdir(p("d", "f"))
    yield lambda: fs.listdir(p("nope"))
    yield lambda: (fs.exists(p("d", "f")), fs.exists(p("d", "f", "x")), fs.exists(p("nope")))
    yield lambda: (fs.isdir(p("d")), fs.isdir(p("d", "f")), fs.isdir(p("nope")))
    yield lambda: fs.fsync_dir(p("d"))
    yield lambda: fs.fsync_dir(p("d", "f"))
    yield lambda: fs.fsync_dir(p("nope"))
    yield lambda: fs.file_size(p("d", "f"))
    yield lambda: fs.file_size(p("nope"))
    yield lambda: fs.allocated_size(p("nope"))
    yield lambda: fs.unlink(p("d"))
    yield lambda: fs.unlink(p("nope"))
    yield lambda: fs.unlink(p("d", "f", "x"))
    yield lambda: fs.rmdir(p("d"))
    yield lambda: fs.rmdir(p("d", "f"))
    yield lambda: fs.rmdir(p("nope"))
    yield lambda: fs.unlink(p("d", "f"))
    yield lambda: fs.rmdir(p("d"))
    yield lambda: (fs.exists(p("d")), fs.listdir(p()))


def _file_io(fs: Any, p: Callable[..., str]) -> Generator[Callable[[], object], object, None]:
    f: Any = yield lambda: fs.open(p("f"), create=True)
    yield lambda: f.map()
    yield lambda: f.pwrite(b"hello", 0)
    yield lambda: (f.size(), f.pread(3, 1), f.pread(10, 3), f.pread(5, 100))
    yield lambda: f.pwrite(b"x", 8)
    yield lambda: (f.size(), f.pread(100, 0))
    yield lambda: f.truncate(2)
    yield lambda: f.truncate(6)
    yield lambda: (f.size(), f.pread(100, 0))
    yield lambda: f.pwrite(b"", 100)
    yield lambda: f.pwrite(bytearray(b"ba"), 0)
    yield lambda: f.pwrite(memoryview(np.arange(2, dtype="<i4")), 2)
    yield lambda: f.pread(100, 0)
    yield lambda: f.pwrite(b"x", -1)
    yield lambda: f.pread(1, -1)
    yield lambda: f.pread(-1, 0)
    yield lambda: f.truncate(-1)
    m: Any = yield lambda: f.map()
    yield lambda: f.pwrite(b"Z", 0)
    yield lambda: bytes(m[:4])
    yield lambda: f.sync()
    yield lambda: (fs.file_size(p("f")), f.size())
    r: Any = yield lambda: fs.open(p("f"))
    yield lambda: r.pwrite(b"q", 0)
    yield lambda: r.truncate(0)
    yield lambda: r.sync()
    yield lambda: (r.pread(4, 0), r.size())
    yield lambda: r.close()
    yield lambda: f.close()
    yield lambda: f.pread(1, 0)
    yield lambda: f.pwrite(b"q", 0)
    yield lambda: f.sync()
    yield lambda: f.close()
    w: Any = yield lambda: fs.open(p("f"), write=True)
    yield lambda: (w.pwrite(b"W", 0), w.pread(2, 0))
    yield lambda: w.close()


def _rename(fs: Any, p: Callable[..., str]) -> Generator[Callable[[], object], object, None]:
    for name, data in (("a", b"A"), ("b", b"B"), ("full/x", b"X")):
        if name == "full/x":
            yield lambda: fs.mkdir(p("full"))
        f: Any = yield lambda name=name: fs.open(p(*name.split("/")), create=True)
        yield lambda f=f, data=data: (f.pwrite(data, 0), f.close())
    yield lambda: (fs.mkdir(p("e")), fs.mkdir(p("sub")))
    yield lambda: fs.replace(p("a"), p("b"))
    yield lambda: (fs.exists(p("a")), fs.listdir(p()))
    yield lambda: fs.replace(p("nope"), p("b"))
    yield lambda: fs.replace(p("b"), p("nodir", "x"))
    yield lambda: fs.replace(p("b", "x"), p("c"))
    yield lambda: fs.replace(p("b"), p("b", "x"))
    yield lambda: fs.replace(p("b"), p("e"))
    yield lambda: fs.replace(p("e"), p("b"))
    yield lambda: fs.replace(p("e"), p("full"))
    yield lambda: fs.replace(p("full", "x"), p("full"))
    yield lambda: fs.replace(p("b"), p())
    yield lambda: fs.replace(p("sub"), p("sub", "inner"))
    yield lambda: fs.replace(p("b"), p("b"))
    yield lambda: fs.replace(p("e"), p("e2"))
    yield lambda: fs.replace(p("b"), p("full", "y"))
    yield lambda: (fs.listdir(p()), fs.listdir(p("full")))
    yield lambda: fs.replace(p("sub"), p("e2"))
    yield lambda: (fs.listdir(p()), fs.isdir(p("e2")))


def _lock(fs: Any, p: Callable[..., str]) -> Generator[Callable[[], object], object, None]:
    h = yield lambda: Opaque(fs.lock(p("LOCK")))
    yield lambda: fs.lock(p("LOCK"))
    f: Any = yield lambda: fs.open(p("LOCK"))
    yield lambda: (f.pread(100, 0), f.close())
    yield lambda: fs.unlock(h)
    yield lambda: fs.unlock(h)
    h2 = yield lambda: Opaque(fs.lock(p("LOCK")))
    yield lambda: fs.unlock(h2)
    yield lambda: fs.mkdir(p("d"))
    yield lambda: fs.lock(p("d"))
    yield lambda: fs.lock(p("nope", "LOCK"))


def _plain(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, mmap.mmap):
        return value[:]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "pread"):
        return "<file>"
    return value


def _run(script: Script, fs: Any, root: str) -> list[object]:
    """Run `script`, recording each step's result or error (type, errno name, message)."""
    outcomes: list[object] = []
    steps = script(fs, lambda *parts: os.path.join(root, *parts))
    result: object = None
    while True:
        try:
            step = steps.send(result)
        except StopIteration:
            return outcomes
        try:
            result = step()
        except (OSError, ValueError) as e:
            if isinstance(e, OSError):
                code = e.errno and errno.errorcode[e.errno]
                outcomes.append((type(e).__name__, code, str(e)))
            else:  # a closed OsFile fails inside os.* with its fd of -1: compare the type only
                outcomes.append(type(e).__name__)
            result = None
            continue
        if isinstance(result, Opaque):
            outcomes.append("<opaque>")
            result = result.value
        else:
            outcomes.append(_plain(result))


@pytest.mark.parametrize("script", [_namespace, _file_io, _rename, _lock])
def test_faultfs_behaves_like_the_os(tmp_path: Any, script: Script) -> None:
    root = str(tmp_path / "root")
    os.mkdir(root)
    real = _run(script, OsFileSystem(), root)
    fake_fs = FaultFS()
    fake_fs.makedirs(root)
    fake = _run(script, fake_fs, root)
    assert fake == real
    assert any(isinstance(o, tuple) and len(o) == 3 and "Errno" in str(o[2]) for o in real)
