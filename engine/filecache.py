"""The open-file cache: a bounded LRU of open year files, like LevelDB's table cache.

Owns how many year files a handle keeps open, which one is closed when another must open,
and the pins that keep a file open while a caller uses it. What a file is and how it is
opened belong to the catalog (engine/catalog.py) and engine/yearfile.py.

Rules (docs/format.md "Open files"):
- a caller pins a file for the span of one use (`acquire` / `release`, or
  `Catalog.pinned`); a pinned file is never closed, so a descriptor is never closed under
  a reader or the writer (a closed descriptor number can be reused by the next open);
- when a file must open and the cache is full, the least recently used unpinned file is
  closed, a clean one before a dirty one; a dirty file (written since the last checkpoint)
  is fsynced before it is closed, never left to a later reopen (an fsync after close can
  miss a writeback error);
- when every file is pinned the cache holds more than its capacity until the next open
  after the pins are released; an open that finds the process out of descriptors (EMFILE)
  closes an unpinned file and tries again. Neither fails a transaction.

A hit costs one lock, a dict lookup and OrderedDict.move_to_end (O(1)); a release is one
list.pop, atomic without the lock (a pin is an entry in `YearFile.pins`, added under it).
"""

from __future__ import annotations

import errno
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mkts.engine.errors import StoreFailedError
from mkts.engine.yearfile import YearFile

__all__ = ["FileCache", "default_max_open_files", "MIN_OPEN_FILES"]

MIN_OPEN_FILES = 8  # the floor of any capacity: a transaction pins a few files at once
_DEFAULT_CAP = 10_000  # default ceiling however high the limit (LevelDB's is 1,000)
_RESERVE_MIN = 64  # descriptors left to the log, the lock, sockets, plugins and the server
_SCAN = 64  # unpinned entries looked at for a clean victim before taking a dirty one
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)

Files = dict[int, YearFile]  # a bucket's open files by year (Bucket.files)


def default_max_open_files(soft_limit: int | None = None) -> int:
    """The capacity when none is configured, from the soft RLIMIT_NOFILE: a quarter of the
    limit (at least 64 descriptors) is left for the log, sockets and the server, and each
    cached file counts as two descriptors (Python's mmap duplicates the file's descriptor);
    at least MIN_OPEN_FILES, at most 10,000."""
    if soft_limit is None:
        try:
            import resource
        except ImportError:  # pragma: no cover - not POSIX
            return 1000
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_limit == resource.RLIM_INFINITY:
            return _DEFAULT_CAP
    budget = soft_limit - max(_RESERVE_MIN, soft_limit // 4)
    return max(MIN_OPEN_FILES, min(_DEFAULT_CAP, budget // 2))


class FileCache:
    """Open year files, least recently used first. Thread-safe: one lock guards the order,
    the pins and the buckets' `files` maps; opens, fsyncs and closes of evicted files run
    under it, so a file leaves the cache only once it is durable and closed."""

    def __init__(self, capacity: int,
                 on_sync_error: Callable[[BaseException], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"max_open_files={capacity} must be at least 1")
        self.capacity = capacity
        # Called with the error when the fsync of an evicted dirty file fails (the database
        # fails the handle: the data is in the log, replayed at the next open).
        self.on_sync_error = on_sync_error
        self._lock = threading.Lock()
        self._lru: OrderedDict[YearFile, tuple[Files, int]] = OrderedDict()
        self.evictions = 0  # files closed to make room
        self.eviction_syncs = 0  # of them, dirty files fsynced first

    def __len__(self) -> int:
        return len(self._lru)

    # -- pins ------------------------------------------------------------------------------
    def acquire(self, files: Files, year: int, opener: Callable[..., YearFile | None],
                *args: Any) -> YearFile | None:
        """The open file of `year` in `files`, pinned; `opener(*args)` opens it when it is
        not cached (None: no such file, nothing pinned). Release it with `release`."""
        lock = self._lock
        lock.acquire()
        try:
            f = files.get(year)
            if f is None:
                f = self._open(files, year, opener, args)
                if f is None:
                    return None
            else:
                self._lru.move_to_end(f)
            f.pins.append(None)
            return f
        finally:
            lock.release()

    @staticmethod
    def release(f: YearFile) -> None:
        """Unpin a file `acquire` returned (once per acquire)."""
        f.pins.pop()

    def sync_dirty(self) -> int:
        """fsync every cached dirty file (a checkpoint); returns how many. The files are
        pinned meanwhile, so no eviction closes one under the fsync; files evicted earlier
        were fsynced then."""
        with self._lock:
            dirty = [f for f in self._lru if f.dirty]
            for f in dirty:
                f.pins.append(None)
        try:
            for f in dirty:
                f.sync()
        finally:
            for f in dirty:
                f.pins.pop()
        return len(dirty)

    # -- removal ---------------------------------------------------------------------------
    def drop(self, files: Files, year: int | None = None) -> None:
        """Close the cached files of `files` (one year or all) without fsync: for destroy
        and compaction, which hold every lock that pins are taken under."""
        with self._lock:
            for y in [year] if year is not None else list(files):
                f = files.pop(y, None)
                if f is not None:
                    self._lru.pop(f, None)
                    f.close()

    def detach(self, files: Files, year: int) -> YearFile | None:
        """Take the cached file of `year` out of the cache (a read-only handle whose file was
        replaced on disk): closed now if unpinned, else returned for the caller to close
        once its pins are released (it can no longer be pinned)."""
        with self._lock:
            f = files.pop(year, None)
            if f is None:
                return None
            self._lru.pop(f, None)
            if f.pins:
                return f
            f.close()
            return None

    def close(self) -> None:
        """Close every file (the database is closing; its checkpoint has synced them)."""
        with self._lock:
            for f, (files, year) in self._lru.items():
                files.pop(year, None)
                f.close()
            self._lru.clear()

    # -- internals (under the lock) --------------------------------------------------------
    def _open(self, files: Files, year: int, opener: Callable[..., YearFile | None],
              args: tuple[Any, ...]) -> YearFile | None:
        self._shrink(self.capacity - 1)
        while True:
            try:
                f = opener(*args)
                break
            except OSError as exc:
                # Out of descriptors (other parts of the process hold many): make room.
                if exc.errno not in _OUT_OF_FDS or not self._evict_one():
                    raise
        if f is not None:
            files[year] = f
            self._lru[f] = (files, year)
        return f

    def _shrink(self, target: int) -> None:
        while len(self._lru) > target and self._evict_one():
            pass

    def _evict_one(self) -> bool:
        victim = self._victim()
        if victim is None:
            return False
        files, year = self._lru.pop(victim)
        if files.get(year) is victim:
            del files[year]
        self.evictions += 1
        try:
            if victim.dirty:
                self.eviction_syncs += 1
                try:
                    victim.sync()
                except OSError as exc:
                    if self.on_sync_error is not None:
                        self.on_sync_error(exc)
                    raise StoreFailedError(
                        f"fsync of {victim.path} before closing it (the open-file cache, "
                        f"storage.max_open_files = {self.capacity}) failed ({exc}); this "
                        "handle refuses further writes: close it and open the database again "
                        "(the log is replayed)") from exc
        finally:
            victim.close()
        return True

    def _victim(self) -> YearFile | None:
        """The least recently used unpinned file, a clean one if one of the oldest _SCAN
        unpinned files is clean."""
        dirty: YearFile | None = None
        seen = 0
        for f in self._lru:
            if f.pins:
                continue
            if not f.dirty:
                return f
            if dirty is None:
                dirty = f
            seen += 1
            if seen >= _SCAN:
                break
        return dirty
