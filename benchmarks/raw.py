"""The raw numpy baseline: the physical floor of mkts's design.

Bars: one direct-addressed file per symbol-year (slot i = minute i of the year, 32-byte
records, empty slots are holes), written with `os.pwrite` (one call per run of consecutive
minutes) and read with `np.memmap` (slice, drop empty slots, copy). Ticks: one append-only
file of packed records, written with `os.write`, read with `np.memmap` + `searchsorted`.
Nothing else: no log, no header checks, no validation.

Writer threads: `group_commit_appends` is the smallest leader/follower group commit in pure
Python (one file, `os.write` + `os.fdatasync`, no database work), the same-run ceiling for
mkts' 1 vs 4 writer threads under sync=always.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import mmap
import os
import threading
import time
from typing import NamedTuple

import numpy as np

__all__ = ["year_start", "slots_of", "write_bars", "BarFile", "TickFile", "drop_cache",
           "resident_fraction", "disk_usage", "fsync_path", "GroupCommitRun",
           "group_commit_appends"]

MINUTE = 60


def year_start(year: int) -> int:
    return int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp())


def nslots(year: int) -> int:
    return (year_start(year + 1) - year_start(year)) // MINUTE


def slots_of(epochs: np.ndarray, year: int) -> np.ndarray:
    return (epochs - year_start(year)) // MINUTE


def write_bars(path: str, rows: np.ndarray, year: int, *, fsync: bool) -> None:
    """Create the year file and pwrite every run of consecutive minutes in one call."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, nslots(year) * rows.dtype.itemsize)
        pwrite_runs(fd, rows, year)
        if fsync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def pwrite_runs(fd: int, rows: np.ndarray, year: int) -> None:
    slots = slots_of(rows["Epoch"], year)
    rs = rows.dtype.itemsize
    view = memoryview(np.ascontiguousarray(rows)).cast("B")
    breaks = np.flatnonzero(np.diff(slots) != 1) + 1
    starts = [0, *breaks.tolist()]
    ends = [*breaks.tolist(), len(rows)]
    for a, b in zip(starts, ends, strict=True):
        os.pwrite(fd, view[a * rs : b * rs], int(slots[a]) * rs)


class BarFile:
    """A read view of one raw year file (kept open, like a user of raw numpy would)."""

    def __init__(self, path: str, dtype: np.dtype, year: int) -> None:
        self.path = path
        self.year = year
        self.m = np.memmap(path, dtype=dtype, mode="r")

    def read(self, start: int | None = None, end: int | None = None) -> np.ndarray:
        lo = 0 if start is None else max(0, int((start - year_start(self.year)) // MINUTE))
        hi = len(self.m) if end is None else min(len(self.m),
                                                  int((end - year_start(self.year)) // MINUTE) + 1)
        view = self.m[lo:hi]
        return view[view["Epoch"] != 0]  # boolean index: a copy of the occupied slots


class TickFile:
    """Append-only packed tick records; reads binary-search the (sorted) Epoch column."""

    def __init__(self, path: str, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = dtype
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, rows: np.ndarray, *, fsync: bool) -> None:
        data = memoryview(np.ascontiguousarray(rows)).cast("B")
        done = 0
        while done < len(data):
            done += os.write(self.fd, data[done:])
        if fsync:
            os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def read(self, start: int, end: int) -> np.ndarray:
        m = np.memmap(self.path, dtype=self.dtype, mode="r")
        ep = m["Epoch"]  # strided: np.searchsorted would copy the whole column first
        a = _bisect(ep, start, right=False)
        b = _bisect(ep, end, right=True)
        return np.array(m[a:b])


def _bisect(a: np.ndarray, x: int, *, right: bool) -> int:
    """Binary search on a sorted (possibly strided, memory-mapped) array without copying."""
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        v = int(a[mid])
        if v < x or (right and v == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files(root: str) -> list[str]:
    out = []
    for d, _, names in os.walk(root):
        out.extend(os.path.join(d, n) for n in names)
    return out


def drop_cache(root: str) -> int:
    """Evict every file under `root` from the page cache: fsync it (dirty pages cannot be
    dropped), then posix_fadvise(POSIX_FADV_DONTNEED). Returns the number of files."""
    paths = _files(root) if os.path.isdir(root) else [root]
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return len(paths)


_libc = None


def resident_fraction(root: str) -> float | None:
    """Fraction of the allocated pages under `root` that are in the page cache (mincore),
    to check that a cold read really was cold. None where mincore is unavailable."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        if not name:
            return None
        _libc = ctypes.CDLL(name, use_errno=True)
        _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    page = mmap.PAGESIZE
    resident = total = 0
    paths = _files(root) if os.path.isdir(root) else [root]
    for p in paths:
        size = os.path.getsize(p)
        if size == 0:
            continue
        with open(p, "rb") as f:
            try:
                mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
            except (OSError, ValueError):
                continue
            try:
                npages = (size + page - 1) // page
                vec = ctypes.create_string_buffer(npages)
                buf = (ctypes.c_char * size).from_buffer(mm)
                try:
                    if _libc.mincore(ctypes.addressof(buf), size, vec) != 0:
                        return None
                finally:
                    del buf
                got = np.frombuffer(vec.raw, dtype=np.uint8) & 1
                # Count only allocated pages: holes of a sparse file are never resident.
                alloc = os.stat(p).st_blocks * 512 // page
                resident += int(got.sum())
                total += max(alloc, int(got.sum()))
            finally:
                mm.close()
    return resident / total if total else 0.0


def disk_usage(root: str) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of every file under root."""
    apparent = allocated = 0
    for p in _files(root):
        st = os.stat(p)
        apparent += st.st_size
        allocated += st.st_blocks * 512
    return apparent, allocated


# ------------------------------------------------------------------- minimal group commit
class _Waiter:
    """A follower's queued payload and its wake-up: a lock held until the leader releases it,
    either because the payload is durable or because the lead was handed to this writer."""

    __slots__ = ("payload", "wake", "lead")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.wake = threading.Lock()
        self.wake.acquire()
        self.lead = False


class _GroupCommit:
    """Leader/follower group commit onto one append-only file descriptor.

    A writer that finds no leader becomes the leader; the others queue their payload and
    sleep on their own lock. The leader takes every queued payload, appends its own and
    theirs with one `os.write`, makes them durable with one `os.fdatasync`, and wakes that
    batch. If writers queued while it was syncing, it hands the lead to the first of them
    (whose payload then goes first in the next batch); otherwise it steps down. A writer
    that queued after the leader took its batch is never left waiting: either the leader
    sees it in the queue when it hands over, or it found no leader and leads itself.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.mu = threading.Lock()
        self.queue: list[_Waiter] = []
        self.leading = False
        self.syncs = 0  # fdatasync calls
        self.max_batch = 0  # most payloads one fdatasync made durable

    def commit(self, payload: bytes) -> None:
        waiter = None
        with self.mu:
            if self.leading:
                waiter = _Waiter(payload)
                self.queue.append(waiter)
            else:
                self.leading = True
        if waiter is not None:
            waiter.wake.acquire()
            if not waiter.lead:
                return  # a leader made our payload durable
        # Leader from here on: our own payload is in no queue.
        with self.mu:
            batch, self.queue = self.queue, []
        data = b"".join([payload, *(w.payload for w in batch)])
        view = memoryview(data)
        done = 0
        while done < len(data):
            done += os.write(self.fd, view[done:])
        os.fdatasync(self.fd)
        self.syncs += 1  # only the leader counts, so no lock is needed
        self.max_batch = max(self.max_batch, 1 + len(batch))
        with self.mu:
            nxt = self.queue.pop(0) if self.queue else None
            if nxt is None:
                self.leading = False
        for w in batch:
            w.wake.release()
        if nxt is not None:
            nxt.lead = True
            nxt.wake.release()


class GroupCommitRun(NamedTuple):
    appends: int  # payloads committed (each durable when its commit() returned)
    elapsed: float  # seconds from the start barrier to the last writer's join
    syncs: int  # fdatasync calls: appends / syncs is the mean group size
    max_batch: int  # most payloads made durable by one fdatasync


def group_commit_appends(path: str, threads: int, *, seconds: float | None = None,
                         count: int | None = None, payload: int = 200) -> GroupCommitRun:
    """`threads` Python threads each commit `payload`-byte records, one per call, through a
    minimal group commit (`_GroupCommit`) onto `path` (created or truncated, O_APPEND).

    Each thread stops after `count` commits, or when `seconds` have passed, whichever
    comes first (give at least one). Timing as `threaded_appends` of the mkts engine: all
    threads wait at a start barrier, the clock starts when they are released and stops when
    the last one has been joined. Thread i writes bytes of value ord("A") + i % 26, so a
    test can check that every payload landed exactly once.
    """
    if seconds is None and count is None:
        raise ValueError("give seconds, count or both")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        gc = _GroupCommit(fd)
        counts = [0] * threads
        stop = threading.Event()
        start_gate = threading.Barrier(threads + 1)
        limit = count if count is not None else -1

        def run(i: int) -> None:
            rec = bytes([ord("A") + i % 26]) * payload
            start_gate.wait()
            n = 0
            while n != limit and not stop.is_set():
                gc.commit(rec)
                n += 1
            counts[i] = n

        # daemon: a writer that hung must not keep the interpreter (or a test run) alive
        ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
        for t in ts:
            t.start()
        start_gate.wait()
        t0 = time.perf_counter()
        if seconds is not None:
            deadline = t0 + seconds
            for t in ts:
                t.join(max(0.0, deadline - time.perf_counter()))
            stop.set()
        for t in ts:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
    return GroupCommitRun(sum(counts), elapsed, gc.syncs, gc.max_batch)
