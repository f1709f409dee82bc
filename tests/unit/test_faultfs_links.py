"""FaultFS's model of the calls backups use (stat, hard links, exchange, copy_range): what
each does, what survives a crash of it, and the same results and errors as the OS."""

from __future__ import annotations

import errno
import os
import random
import stat
from collections.abc import Callable, Generator
from typing import Any

import pytest
from harness.crashmodes import CrashMode, Exchange, apply_dir_op
from harness.faultfs import FaultFS

from mkts.wal.fs import OsFileSystem

ROOT = "/db"


@pytest.fixture
def fs() -> FaultFS:
    fs = FaultFS()
    fs.makedirs(ROOT)
    return fs


def _p(*parts: str) -> str:
    return os.path.join(ROOT, *parts)


def _durable_file(fs: FaultFS, path: str, data: bytes) -> None:
    f = fs.open(path, create=True)
    f.pwrite(data, 0)
    f.sync()
    f.close()
    fs.fsync_dir(os.path.dirname(path))


def _write(fs: FaultFS, path: str, data: bytes, offset: int = 0, *, sync: bool = False) -> None:
    f = fs.open(path, write=True)
    f.pwrite(data, offset)
    if sync:
        f.sync()
    f.close()


# --- hard links ------------------------------------------------------------------------------


def test_hard_link_shares_content_inode_and_link_count(fs: FaultFS) -> None:
    _durable_file(fs, _p("a"), b"old")
    fs.link(_p("a"), _p("b"))
    _write(fs, _p("b"), b"NEW")
    assert fs.read_bytes(_p("a")) == b"NEW"
    sa, sb = fs.stat(_p("a")), fs.stat(_p("b"))
    assert (sa.st_ino, sa.st_nlink, sa.st_mtime_ns) == (sb.st_ino, 2, sb.st_mtime_ns)
    fs.unlink(_p("a"))
    assert fs.stat(_p("b")).st_nlink == 1 and fs.read_bytes(_p("b")) == b"NEW"


@pytest.mark.parametrize("mode", [CrashMode.DROP_ALL_UNSYNCED, CrashMode.DROP_UNSYNCED_DIRENTS])
def test_hard_link_is_durable_only_after_fsync_dir_of_its_parent(
        fs: FaultFS, mode: CrashMode) -> None:
    _durable_file(fs, _p("a"), b"data")
    fs.mkdir(_p("d"))
    fs.fsync_dir(ROOT)
    fs.link(_p("a"), _p("d", "b"))
    assert not fs.peek_crash(mode).exists(_p("d", "b"))
    fs.fsync_dir(_p("d"))
    after = fs.peek_crash(mode)
    assert after.read_bytes(_p("d", "b")) == b"data"
    assert after.stat(_p("d", "b")).st_ino == after.stat(_p("a")).st_ino
    assert after.stat(_p("a")).st_nlink == 2


def test_synced_through_one_name_is_durable_under_both(fs: FaultFS) -> None:
    _durable_file(fs, _p("a"), b"v1")
    fs.link(_p("a"), _p("b"))
    fs.fsync_dir(ROOT)
    _write(fs, _p("a"), b"v2", sync=True)
    _write(fs, _p("b"), b"v3")  # unsynced: lost
    after = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
    assert after.read_bytes(_p("a")) == after.read_bytes(_p("b")) == b"v2"
    _write(after, _p("a"), b"v4")  # still one inode after the crash
    assert after.read_bytes(_p("b")) == b"v4"


@pytest.mark.parametrize("mode", [CrashMode.RANDOM_PREFIX, CrashMode.SECTOR_SUBSET,
                                  CrashMode.UNSAFE_APPEND])
def test_linked_file_survives_a_random_crash_as_one_content(fs: FaultFS, mode: CrashMode) -> None:
    _durable_file(fs, _p("a"), b"x" * 2048)
    fs.link(_p("a"), _p("b"))
    fs.fsync_dir(ROOT)
    _write(fs, _p("b"), b"y" * 1024, 512)
    for seed in range(10):
        after = fs.peek_crash(mode, random.Random(seed))
        assert after.read_bytes(_p("a")) == after.read_bytes(_p("b"))


# --- exchange ----------------------------------------------------------------------------


def _two_dirs(fs: FaultFS) -> None:
    for name, data in (("x", b"X"), ("y", b"Y")):
        fs.mkdir(_p(name))
        fs.fsync_dir(ROOT)
        _durable_file(fs, _p(name, "f"), data)


def test_exchange_swaps_two_directories(fs: FaultFS) -> None:
    _two_dirs(fs)
    ino_x = fs.stat(_p("x")).st_ino
    fs.exchange(_p("x"), _p("y"))
    assert fs.read_bytes(_p("x", "f")) == b"Y" and fs.read_bytes(_p("y", "f")) == b"X"
    assert fs.stat(_p("y")).st_ino == ino_x


@pytest.mark.parametrize("mode", [CrashMode.DROP_ALL_UNSYNCED, CrashMode.DROP_UNSYNCED_DIRENTS])
def test_exchange_is_durable_only_after_fsync_dir_of_the_parent(
        fs: FaultFS, mode: CrashMode) -> None:
    _two_dirs(fs)
    fs.exchange(_p("x"), _p("y"))
    assert fs.peek_crash(mode).read_bytes(_p("x", "f")) == b"X"
    assert fs.peek_crash(CrashMode.PROCESS_CRASH).read_bytes(_p("x", "f")) == b"Y"
    fs.fsync_dir(ROOT)
    assert fs.peek_crash(mode).read_bytes(_p("x", "f")) == b"Y"


def test_exchange_in_one_directory_is_never_half_done(fs: FaultFS) -> None:
    _two_dirs(fs)
    fs.exchange(_p("x"), _p("y"))
    outcomes = set()
    for seed in range(40):
        after = fs.peek_crash(CrashMode.RANDOM_PREFIX, random.Random(seed))
        outcomes.add((after.read_bytes(_p("x", "f")), after.read_bytes(_p("y", "f"))))
    assert outcomes == {(b"X", b"Y"), (b"Y", b"X")}


def test_exchange_op_applies_as_one_change() -> None:
    entries = {"a": 1, "b": 2, "c": 3}
    apply_dir_op(entries, Exchange("a", "b", 1, 2))
    assert entries == {"a": 2, "b": 1, "c": 3}


def test_injected_einval_models_a_file_system_that_cannot_exchange(fs: FaultFS) -> None:
    _two_dirs(fs)
    fs.inject("exchange", error=errno.EINVAL, persistent=True)
    with pytest.raises(OSError) as exc:
        fs.exchange(_p("x"), _p("y"))
    assert exc.value.errno == errno.EINVAL
    assert fs.read_bytes(_p("x", "f")) == b"X"


# --- copy_range and stat -------------------------------------------------------------------


def test_copy_range_is_an_unsynced_write_to_the_destination(fs: FaultFS) -> None:
    _durable_file(fs, _p("src"), b"0123456789")
    src = fs.open(_p("src"))
    dst = fs.open(_p("dst"), create=True)
    fs.fsync_dir(ROOT)
    assert src.copy_range(dst, 2, 100) == 8
    dst.truncate(10)
    assert fs.read_bytes(_p("dst")) == b"\0\x0023456789"
    assert fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED).read_bytes(_p("dst")) == b""
    dst.sync()
    assert fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED).read_bytes(_p("dst")) == b"\0\x0023456789"
    src.close()
    dst.close()
    assert fs.counts["copy_range"] == 1


def test_copy_range_into_a_read_only_handle_fails_like_the_os(fs: FaultFS) -> None:
    _durable_file(fs, _p("src"), b"abc")
    _durable_file(fs, _p("dst"), b"")
    with pytest.raises(OSError) as exc:
        fs.open(_p("src")).copy_range(fs.open(_p("dst")), 0, 3)
    assert exc.value.errno == errno.EBADF


def test_stat_mtime_changes_with_every_write_and_follows_what_survives(fs: FaultFS) -> None:
    fs = FaultFS(clock=lambda: 1_000)  # a stopped clock still gives increasing times
    fs.makedirs(ROOT)
    _durable_file(fs, _p("a"), b"v1")
    synced = fs.stat(_p("a"))
    _write(fs, _p("a"), b"v2")
    changed = fs.stat(_p("a"))
    assert changed.st_mtime_ns > synced.st_mtime_ns and changed.st_ino == synced.st_ino
    lost = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED).stat(_p("a"))
    kept = fs.peek_crash(CrashMode.PROCESS_CRASH).stat(_p("a"))
    assert (lost.st_mtime_ns, lost.st_ino) == (synced.st_mtime_ns, synced.st_ino)
    assert kept.st_mtime_ns == changed.st_mtime_ns
    assert stat.S_ISREG(kept.st_mode) and stat.S_ISDIR(fs.stat(ROOT).st_mode)


def test_inode_numbers_stay_unique_after_a_crash(fs: FaultFS) -> None:
    _durable_file(fs, _p("a"), b"a")
    after = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
    _durable_file(after, _p("b"), b"b")
    assert after.stat(_p("b")).st_ino != after.stat(_p("a")).st_ino


# --- the same script on the real filesystem and on FaultFS ------------------------------------


def _shape(st: os.stat_result) -> tuple[bool, int, int]:
    """Kind, links and size (a directory's size depends on the file system: 0 here)."""
    return stat.S_ISDIR(st.st_mode), st.st_nlink, 0 if stat.S_ISDIR(st.st_mode) else st.st_size


def _script(fs: Any, p: Callable[..., str]) -> Generator[Callable[[], object], object, None]:
    f: Any = yield lambda: fs.open(p("a"), create=True)
    yield lambda: (f.pwrite(b"hello", 0), f.close())
    yield lambda: (fs.mkdir(p("d")), fs.mkdir(p("e")))
    yield lambda: fs.link(p("a"), p("d", "b"))
    yield lambda: (_shape(fs.stat(p("a"))), _shape(fs.stat(p("d"))),
                   fs.stat(p("a")).st_ino == fs.stat(p("d", "b")).st_ino)
    yield lambda: fs.link(p("a"), p("d", "b"))
    yield lambda: fs.link(p("nope"), p("c"))
    yield lambda: fs.link(p("d"), p("c"))
    yield lambda: fs.link(p("a"), p("nope", "c"))
    yield lambda: fs.stat(p("nope"))
    yield lambda: fs.stat(p("a", "x"))
    yield lambda: fs.exchange(p("d"), p("e"))
    yield lambda: (fs.listdir(p("d")), fs.listdir(p("e")))
    yield lambda: fs.exchange(p("e", "b"), p("a"))
    yield lambda: fs.exchange(p("d"), p("nope"))
    yield lambda: fs.exchange(p("e"), p("e", "b"))
    yield lambda: fs.unlink(p("a"))
    yield lambda: _shape(fs.stat(p("e", "b")))
    src: Any = yield lambda: fs.open(p("e", "b"))
    dst: Any = yield lambda: fs.open(p("c"), create=True)
    yield lambda: (src.copy_range(dst, 1, 3), src.copy_range(dst, 4, 10),
                   src.copy_range(dst, 9, 5))
    yield lambda: (dst.pread(100, 0), src.close(), dst.close())


def _run(script: Callable[..., Any], fs: Any, root: str) -> list[object]:
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
        except OSError as e:
            outcomes.append((type(e).__name__, e.errno and errno.errorcode[e.errno], str(e)))
            result = None
            continue
        outcomes.append(result if not hasattr(result, "pread") else "<file>")


def test_backup_calls_behave_like_the_os(tmp_path: Any) -> None:
    root = str(tmp_path / "root")
    os.mkdir(root)
    try:
        OsFileSystem().exchange(root, root)
    except OSError:
        pytest.skip("this file system cannot exchange two names (renameat2)")
    real = _run(_script, OsFileSystem(), root)
    fake_fs = FaultFS()
    fake_fs.makedirs(root)
    assert _run(_script, fake_fs, root) == real
    assert sum(isinstance(o, tuple) and len(o) == 3 and "Errno" in str(o[2]) for o in real) >= 6
