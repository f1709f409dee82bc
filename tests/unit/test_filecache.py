"""The open-file cache (engine/filecache.py): least recently used first, clean before dirty,
pinned files never closed, dirty files fsynced before they are closed, the default capacity."""

from __future__ import annotations

import errno
import threading
from typing import Any

import pytest

from mkts.engine.errors import StoreFailedError
from mkts.engine.filecache import FileCache, default_max_open_files


class FakeFile:
    """What the cache touches of a YearFile, recording syncs and closes in one event log."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.path = name
        self.pins: list[None] = []
        self.dirty = False
        self.closed = False
        self.fail_sync = False
        self._log = log

    def sync(self) -> None:
        assert not self.closed
        if self.fail_sync:
            raise OSError(errno.EIO, "Input/output error")
        self._log.append(f"sync {self.path}")
        self.dirty = False

    def close(self) -> None:
        assert not self.closed, f"{self.path} closed twice"
        self.closed = True
        self._log.append(f"close {self.path}")

    def use(self) -> None:
        assert not self.closed, f"{self.path} was closed while pinned"


class Store:
    """Files by name, as buckets' `files` maps are by year: one map per name here."""

    def __init__(self, capacity: int, **kw: Any) -> None:
        self.log: list[str] = []
        self.cache = FileCache(capacity, **kw)
        self.maps: dict[str, dict[int, Any]] = {}
        self.opened: list[str] = []

    def open(self, name: str) -> FakeFile:
        self.opened.append(name)
        return FakeFile(name, self.log)

    def acquire(self, name: str) -> Any:
        files = self.maps.setdefault(name, {})
        return self.cache.acquire(files, 0, self.open, name)

    def touch(self, name: str, *, dirty: bool = False) -> Any:
        f = self.acquire(name)
        f.use()
        if dirty:
            f.dirty = True
        self.cache.release(f)
        return f

    def cached(self) -> list[str]:
        return sorted(name for name, m in self.maps.items() if m)


def test_least_recently_used_file_is_closed_first() -> None:
    s = Store(3)
    for name in "abc":
        s.touch(name)
    s.touch("a")  # now b is the least recently used
    s.touch("d")
    assert s.log == ["close b"]
    s.touch("e")
    assert s.log == ["close b", "close c"]
    assert s.cached() == ["a", "d", "e"] and len(s.cache) == 3


def test_cached_file_is_not_opened_again() -> None:
    s = Store(2)
    s.touch("a")
    s.touch("a")
    assert s.opened == ["a"] and s.log == []


def test_clean_file_is_closed_before_an_older_dirty_one() -> None:
    s = Store(3)
    s.touch("a", dirty=True)
    s.touch("b")
    s.touch("c")
    s.touch("d")
    assert s.log == ["close b"]  # a is older but dirty


def test_dirty_file_is_synced_before_it_is_closed() -> None:
    s = Store(2)
    s.touch("a", dirty=True)
    s.touch("b", dirty=True)
    s.touch("c")
    assert s.log == ["sync a", "close a"]
    assert s.cache.evictions == 1 and s.cache.eviction_syncs == 1


def test_pinned_file_is_never_closed() -> None:
    s = Store(2)
    a = s.acquire("a")  # held
    for name in "bcdefg":
        s.touch(name)
        a.use()
    assert "close a" not in s.log and not a.closed
    s.cache.release(a)
    s.touch("h")
    s.touch("i")
    assert "close a" in s.log


def test_cache_grows_past_capacity_only_while_every_file_is_pinned() -> None:
    s = Store(2)
    held = [s.acquire(name) for name in "abcd"]
    assert len(s.cache) == 4 and s.log == []
    for f in held:
        s.cache.release(f)
    s.touch("e")  # the next open shrinks the cache back to its capacity
    assert len(s.cache) == 2
    assert s.log == ["close a", "close b", "close c"]


def test_failed_sync_of_an_evicted_file_fails_the_handle_and_closes_it() -> None:
    failures: list[BaseException] = []
    s = Store(1, on_sync_error=failures.append)
    a = s.touch("a", dirty=True)
    a.fail_sync = True
    with pytest.raises(StoreFailedError, match="fsync of a before closing it"):
        s.touch("b")
    assert len(failures) == 1 and isinstance(failures[0], OSError)
    assert a.closed and s.cached() == []  # never left open to be synced (and trusted) later


def test_open_out_of_descriptors_closes_a_file_and_retries() -> None:
    s = Store(10)
    s.touch("a")
    s.touch("b")
    calls = []

    def opener(name: str) -> FakeFile:
        calls.append(name)
        if len(calls) == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return FakeFile(name, s.log)

    f = s.cache.acquire(s.maps.setdefault("c", {}), 0, opener, "c")
    s.cache.release(f)
    assert calls == ["c", "c"] and s.log == ["close a"]


def test_out_of_descriptors_with_every_file_pinned_is_an_error() -> None:
    s = Store(10)
    s.acquire("a")

    def opener(name: str) -> FakeFile:
        raise OSError(errno.EMFILE, "Too many open files")

    with pytest.raises(OSError, match="Too many open files"):
        s.cache.acquire(s.maps.setdefault("b", {}), 0, opener, "b")


def test_sync_dirty_syncs_every_dirty_file_and_keeps_them_open() -> None:
    s = Store(4)
    s.touch("a", dirty=True)
    s.touch("b")
    s.touch("c", dirty=True)
    assert s.cache.sync_dirty() == 2
    assert sorted(s.log) == ["sync a", "sync c"] and s.cached() == ["a", "b", "c"]


def test_readers_and_an_opener_on_other_threads_never_see_a_closed_file() -> None:
    s = Store(3)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader(names: str) -> None:
        try:
            while not stop.is_set():
                for name in names:
                    f = s.acquire(name)
                    for _ in range(20):
                        f.use()
                    s.cache.release(f)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in ("abcdef", "fedcba", "xyz")]
    for t in threads:
        t.start()
    for i in range(2000):
        s.touch(f"w{i % 50}", dirty=True)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert s.cache.evictions > 100
    # every dirty file that was closed was synced just before
    for i, event in enumerate(s.log):
        if event.startswith("close w"):
            assert s.log[i - 1] == "sync " + event[6:]


@pytest.mark.parametrize(("soft", "files"), [
    (256, 96),  # 256 - 64 reserved = 192 descriptors, two per mapped file
    (1024, 384),  # a quarter (256) reserved
    (20, 8),  # the floor
    (1 << 20, 10_000),  # the ceiling
])
def test_default_capacity_follows_the_descriptor_limit(soft: int, files: int) -> None:
    assert default_max_open_files(soft) == files


def test_detach_closes_an_unpinned_file_and_hands_back_a_pinned_one() -> None:
    s = Store(4)
    a = s.acquire("a")
    s.cache.release(a)
    b = s.acquire("b")  # stays pinned: a read in another thread
    assert s.cache.detach(s.maps["a"], 0) is None and a.closed
    got = s.cache.detach(s.maps["b"], 0)
    assert got is b and not b.closed and 0 not in s.maps["b"] and len(s.cache) == 0
    b.use()
    c = s.acquire("b")  # the next acquire opens the file again
    assert c is not b and s.opened == ["a", "b", "b"]
