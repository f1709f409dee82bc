"""FaultFS: an in-memory, deterministic FileSystem (the wal/fs.py protocol) for crash tests.

Each file has durable and volatile content and each directory durable and volatile entries;
File.sync() and fsync_dir() make them durable, crash(mode, rng) returns a new FaultFS holding
what survives (the per-mode rules are in crashmodes.py). It also injects I/O errors, arms crash
points (crashpoints.py) and traces every call. Modelled on RocksDB's FaultInjectionTestFS and
SQLite's crash VFS. The optional calls of OsFileSystem that backups use are modelled too:
stat (inode numbers and modification times), hard links (one inode, so one content and one
durability), exchange of two names, and copy_range.
"""

from __future__ import annotations

import errno
import fnmatch
import itertools
import os
import random
import stat as stat_mode
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

from harness.crashmodes import (
    CrashMode,
    DirOp,
    Exchange,
    FileOp,
    Link,
    Rename,
    Truncate,
    Unlink,
    Write,
    apply_file_op,
    surviving_content,
    surviving_entries,
)
from harness.crashpoints import SimulatedCrash

__all__ = ["OPS", "CrashMode", "FaultFS", "FaultFile", "SimulatedCrash", "TraceEntry"]

BLOCK = 4096  # the allocation unit allocated_size() counts in
DEV = 0xFA17  # st_dev of every FaultFS path: one file system

# Every traced operation; inject() and crash_at() take one of these, or "*" for all of them.
OPS = frozenset(
    {
        "open", "exists", "isdir", "listdir", "mkdir", "fsync_dir", "replace", "unlink",
        "rmdir", "file_size", "allocated_size", "lock", "unlock", "is_locked",
        "pread", "pwrite", "size", "truncate", "sync", "map", "close",
        "stat", "link", "exchange", "copy_range",
    }
)  # fmt: skip
_NEVER_FAIL = frozenset({"exists", "isdir"})  # os.path.exists/isdir never raise
_RANDOM_MODES = (CrashMode.RANDOM_PREFIX, CrashMode.SECTOR_SUBSET, CrashMode.UNSAFE_APPEND)


class TraceEntry(NamedTuple):
    """One call: (op, normalised path, detail). Extra entries ("fault", path, (op, errno
    name, bytes written or None)) and ("crash", path, op) follow a call that was failed or
    crashed."""

    op: str
    path: str
    detail: object


def _norm(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"FaultFS takes absolute str paths, got {path!r}")
    return "/" + os.path.normpath(path).lstrip("/")


def _err(code: int, path: str | None = None, path2: str | None = None) -> OSError:
    # OSError(...) picks the subclass from the errno: FileNotFoundError, IsADirectoryError...
    return OSError(code, os.strerror(code), path, None, path2)


class _FileNode:
    """One inode. `buf` is the volatile content (only buf[:size] is the file; the rest is
    zeroed spare capacity); `durable` the content at the last sync; `ops` the changes since.
    `nlink` counts the directory entries naming it (hard links share the node); `mtime_ns`
    is set by every change, `durable_mtime_ns` at the last sync."""

    __slots__ = ("buf", "size", "durable", "ops", "lock_owner", "ino", "nlink", "mtime_ns",
                 "durable_mtime_ns")

    def __init__(self, content: bytes | bytearray = b"", ino: int = 0, mtime_ns: int = 0) -> None:
        self.buf = bytearray(content)
        self.size = len(content)
        self.durable = bytearray(content)
        self.ops: list[FileOp] = []
        self.lock_owner: int | None = None
        self.ino = ino
        self.nlink = 0
        self.mtime_ns = self.durable_mtime_ns = mtime_ns

    def content(self) -> memoryview:
        return memoryview(self.buf)[: self.size]

    def _reserve(self, size: int) -> None:
        # Never resize buf in place: maps (memoryviews) of it may be alive. A new, larger
        # buffer is made instead, so maps taken before a growth see the old buffer.
        if size > len(self.buf):
            grown = bytearray(max(size, 2 * len(self.buf)))
            grown[: self.size] = self.content()
            self.buf = grown

    def write(self, offset: int, data: bytes) -> None:
        if not data:
            return
        end = offset + len(data)
        self._reserve(end)
        self.buf[offset:end] = data
        self.size = max(self.size, end)
        self.ops.append(Write(offset, data))

    def truncate(self, size: int) -> None:
        if size < self.size:
            self.buf[size : self.size] = bytes(self.size - size)
        else:
            self._reserve(size)
        self.ops.append(Truncate(size, self.size))
        self.size = size

    def sync(self) -> None:
        for op in self.ops:
            apply_file_op(self.durable, op)
        self.ops.clear()
        self.durable_mtime_ns = self.mtime_ns


def _count_link(node: _Node | None, delta: int) -> None:
    if isinstance(node, _FileNode):
        node.nlink += delta


class _DirNode:
    """A directory: volatile `entries`, `durable` entries at the last fsync_dir, `ops` since."""

    __slots__ = ("entries", "durable", "ops", "ino")

    def __init__(self, ino: int = 0) -> None:
        self.entries: dict[str, _Node] = {}
        self.durable: dict[str, _Node] = {}
        self.ops: list[DirOp[_Node]] = []
        self.ino = ino

    def link(self, name: str, node: _Node) -> None:
        _count_link(self.entries.get(name), -1)
        _count_link(node, 1)
        self.entries[name] = node
        self.ops.append(Link(name, node))

    def unlink(self, name: str) -> None:
        _count_link(self.entries.pop(name), -1)
        self.ops.append(Unlink(name))

    def rename(self, src: str, dst: str) -> None:
        node = self.entries.pop(src)
        _count_link(self.entries.get(dst), -1)
        self.entries[dst] = node
        self.ops.append(Rename(src, dst, node))

    def exchange(self, a: str, b: str) -> None:
        na, nb = self.entries[a], self.entries[b]
        self.entries[a], self.entries[b] = nb, na
        self.ops.append(Exchange(a, b, na, nb))

    def sync(self) -> None:
        self.durable = dict(self.entries)
        self.ops.clear()


_Node = _FileNode | _DirNode


@dataclass
class _Trigger:
    """An armed fault or crash point; counts the matching calls it has seen."""

    op: str
    nth: int
    path: str | None
    error: int = errno.EIO
    persistent: bool = False
    short_write: bool | int = False
    seen: int = 0

    def hit(self, op: str, paths: tuple[str, ...]) -> bool:
        if self.op not in ("*", op):
            return False
        if self.path is not None and not any(fnmatch.fnmatchcase(p, self.path) for p in paths):
            return False
        self.seen += 1
        return self.seen == self.nth or (self.persistent and self.seen > self.nth)


def _check_op(op: str, nth: int) -> None:
    if op != "*" and op not in OPS:
        raise ValueError(f"unknown FaultFS op {op!r}; expected one of {sorted(OPS)} or '*'")
    if nth < 1:
        raise ValueError(f"nth counts calls from 1, got {nth}")


class FaultFile:
    """An open FaultFS file (the wal/fs.py File protocol). Errors match OsFile's: EBADF for
    pwrite on a read-only handle or any use after close() (but ValueError for sync, as
    os.fdatasync(-1) gives), EINVAL for a negative offset or size or a truncate on a
    read-only handle."""

    __slots__ = ("path", "_fs", "_node", "_writable", "_closed")

    def __init__(self, fs: FaultFS, path: str, node: _FileNode, writable: bool) -> None:
        self.path = path
        self._fs = fs
        self._node = node
        self._writable = writable
        self._closed = False

    def _live(self) -> _FileNode:
        if self._closed:  # OsFile's fd is then -1: the kernel answers EBADF
            raise _err(errno.EBADF)
        return self._node

    def pread(self, size: int, offset: int) -> bytes:
        fs = self._fs
        with fs._mu:
            fs._enter("pread", self.path, (offset, size))
            node = self._live()
            if size < 0 or offset < 0:
                raise _err(errno.EINVAL)
            data = bytes(node.content()[offset : offset + size])
            fs._done("pread", self.path)
            return data

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        fs = self._fs
        blob = bytes(memoryview(data).cast("B"))
        with fs._mu:
            short = fs._enter("pwrite", self.path, (offset, len(blob)))
            node = self._live()
            if not self._writable:
                raise _err(errno.EBADF)
            if offset < 0:
                raise _err(errno.EINVAL)
            if short is not None:
                n = len(blob) // 2 if short.short_write is True else int(short.short_write)
                n = max(0, min(n, len(blob) - 1))
                node.write(offset, blob[:n])
                node.mtime_ns = fs._now()
                fs._fail(short, "pwrite", self.path, n)
            node.write(offset, blob)
            node.mtime_ns = fs._now()
            fs._done("pwrite", self.path)

    def size(self) -> int:
        fs = self._fs
        with fs._mu:
            fs._enter("size", self.path, None)
            size = self._live().size
            fs._done("size", self.path)
            return size

    def truncate(self, size: int) -> None:
        fs = self._fs
        with fs._mu:
            fs._enter("truncate", self.path, size)
            node = self._live()
            if not self._writable or size < 0:  # ftruncate on O_RDONLY is EINVAL on Linux
                raise _err(errno.EINVAL)
            node.truncate(size)
            node.mtime_ns = fs._now()
            fs._done("truncate", self.path)

    def sync(self) -> None:
        """fdatasync: the file's current content and size become durable (not its name)."""
        fs = self._fs
        with fs._mu:
            fs._enter("sync", self.path, None)
            if self._closed:  # as OsFile: os.fdatasync(-1) refuses fd -1 before the kernel
                raise ValueError(f"sync of closed file {self.path}")
            self._live().sync()
            fs._done("sync", self.path)

    def map(self) -> memoryview:
        """A read-only view of the volatile content, for np.frombuffer. It follows later
        pwrites and truncates within its length; if the file later grows beyond the capacity
        it had (a pwrite or truncate past its largest size so far), the view keeps showing the
        old buffer, so map again after growing. Raises ValueError on an empty file, like
        OsFile."""
        fs = self._fs
        with fs._mu:
            fs._enter("map", self.path, None)
            node = self._live()
            if node.size == 0:
                raise ValueError(f"cannot map empty file {self.path}")
            view = node.content().toreadonly()
            fs._done("map", self.path)
            return view

    def copy_range(self, dst: FaultFile, offset: int, length: int) -> int:
        """Copy [offset, offset + length) of this file to the same offset of `dst` (as
        OsFile.copy_range: copy_file_range); returns the bytes copied, fewer at this file's
        end. The copy is an unsynced write to `dst`, like a pwrite."""
        fs = self._fs
        with fs._mu:
            fs._enter("copy_range", self.path, (dst.path, offset, length), (self.path, dst.path))
            node, out = self._live(), dst._live()
            if not dst._writable:
                raise _err(errno.EBADF)
            if offset < 0 or length < 0 or dst._fs is not fs:
                raise _err(errno.EINVAL)
            data = bytes(node.content()[offset : offset + length])
            if data:
                out.write(offset, data)
                out.mtime_ns = fs._now()
            fs._done("copy_range", self.path, (self.path, dst.path))
            return len(data)

    def close(self) -> None:
        """Idempotent; a no-op after a crash point fired or the FS crashed."""
        fs = self._fs
        with fs._mu:
            if self._closed or fs._dead or fs._frozen is not None:
                self._closed = True
                return
            self._closed = True  # like close(2): the descriptor is gone even if it fails
            fs._open_files -= 1
            fs._enter("close", self.path, None)
            fs._done("close", self.path)


class FaultFS:
    """An in-memory FileSystem (wal/fs.py) with durable/volatile state, faults and crashes.

    Paths must be absolute; they are normalised with os.path.normpath. Errors are the OS's
    (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, OSError with
    ENOTEMPTY/EINVAL/EBADF, BlockingIOError), checked against OsFileSystem by
    tests/unit/test_faultfs.py. Known differences: opening a directory read-only raises
    IsADirectoryError at open (the OS fails the first read instead); file_size() of a
    directory is 0; allocated_size() counts 4 KiB blocks that hold a non-zero byte.
    Thread-safe: one lock serialises every call.
    """

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._mu = threading.RLock()
        self._next_ino = 2  # inode numbers, kept by crash(); the root is 1
        self._root = _DirNode(1)
        # Modification times come from `clock` (ns), made strictly increasing so that every
        # change gives a new mtime. A test may pass a clock that lags the real one.
        self.clock = clock
        self._last_ns = 0
        self._faults: list[_Trigger] = []
        self._crash_points: list[_Trigger] = []
        self._locks: dict[int, tuple[str, _FileNode]] = {}
        self._handles = itertools.count(3)
        self._open_files = 0
        self._frozen: str | None = None  # set when a crash point fired
        self._dead = False  # set by crash(): this FS and its handles are gone
        self.trace: list[TraceEntry] = []
        self.counts: Counter[str] = Counter()

    def _ino(self) -> int:
        self._next_ino += 1
        return self._next_ino - 1

    def _now(self) -> int:
        self._last_ns = max(self.clock(), self._last_ns + 1)
        return self._last_ns

    def _new_file(self) -> _FileNode:
        return _FileNode(ino=self._ino(), mtime_ns=self._now())

    # --- faults, crash points and the call wrapper ---------------------------------------

    def inject(
        self,
        op: str,
        nth: int = 1,
        error: int = errno.EIO,
        *,
        persistent: bool = False,
        short_write: bool | int = False,
        path: str | None = None,
    ) -> None:
        """Make the nth call of `op` from now (1-based; "*" counts every op) raise
        OSError(error); `persistent` fails every later matching call too. `path` is a glob
        (fnmatch, `*` crosses `/`) the call's path must match; replace matches src or dst.
        `short_write` (pwrite only): write the first half (True) or that many bytes (an int,
        at most len-1) and then raise. A failed sync or fsync_dir makes nothing durable."""
        _check_op(op, nth)
        if op in _NEVER_FAIL:
            raise ValueError(f"{op} cannot fail on the real filesystem; inject another op")
        if short_write is not False and op not in ("pwrite", "*"):
            raise ValueError("short_write applies to pwrite only")
        with self._mu:
            self._faults.append(_Trigger(op, nth, path, error, persistent, short_write))

    def crash_at(self, op: str, nth: int = 1, *, path: str | None = None) -> None:
        """After the nth successful call of `op` from now (optionally only on paths matching
        the glob `path`), freeze the FS and raise SimulatedCrash from inside that call. Then
        call crash(mode, rng) and reopen on the FaultFS it returns."""
        _check_op(op, nth)
        with self._mu:
            self._crash_points.append(_Trigger(op, nth, path))

    def clear_faults(self) -> None:
        """Disarm every injected fault and crash point (a fired crash point stays fired)."""
        with self._mu:
            self._faults.clear()
            self._crash_points.clear()

    def _enter(
        self, op: str, path: str, detail: object, paths: tuple[str, ...] | None = None
    ) -> _Trigger | None:
        """Start a call: refuse it if crashed, trace it, fire a matching fault. Returns a
        short-write fault for pwrite to carry out."""
        if self._dead:
            raise OSError(
                errno.EBADF, "FaultFS has crashed; use the FaultFS that crash() returned", path
            )
        if self._frozen is not None:
            raise SimulatedCrash(self._frozen)
        self.trace.append(TraceEntry(op, path, detail))
        self.counts[op] += 1
        if op in _NEVER_FAIL:
            return None
        fired = [f for f in self._faults if f.hit(op, paths or (path,))]
        if not fired:
            return None
        if op == "pwrite" and fired[0].short_write is not False:
            return fired[0]
        self._fail(fired[0], op, path, None)

    def _fail(self, fault: _Trigger, op: str, path: str, written: int | None) -> NoReturn:
        self.trace.append(TraceEntry("fault", path, (op, errno.errorcode[fault.error], written)))
        raise _err(fault.error, path)

    def _done(self, op: str, path: str, paths: tuple[str, ...] | None = None) -> None:
        """End a successful call: fire a matching crash point."""
        fired = [c for c in self._crash_points if c.hit(op, paths or (path,))]
        if fired:
            self._frozen = f"simulated crash after {op} #{fired[0].nth} on {path}"
            self.trace.append(TraceEntry("crash", path, op))
            raise SimulatedCrash(self._frozen)

    def _lookup(
        self, path: str, report: tuple[str, str] | None = None
    ) -> tuple[_DirNode | None, str, _Node | None]:
        """(parent, name, node or None); ENOENT/ENOTDIR for a bad intermediate component,
        naming `path` or the two paths in `report` (as os.replace does)."""
        if path == "/":
            return None, "", self._root
        parts = path[1:].split("/")
        cur = self._root
        for part in parts[:-1]:
            nxt = cur.entries.get(part)
            if nxt is None:
                raise _err(errno.ENOENT, *(report or (path,)))
            if not isinstance(nxt, _DirNode):
                raise _err(errno.ENOTDIR, *(report or (path,)))
            cur = nxt
        return cur, parts[-1], cur.entries.get(parts[-1])

    def _dir(self, path: str) -> _DirNode:
        node = self._lookup(path)[2]
        if node is None:
            raise _err(errno.ENOENT, path)
        if not isinstance(node, _DirNode):
            raise _err(errno.ENOTDIR, path)
        return node

    def _file(self, path: str) -> _FileNode:
        node = self._lookup(path)[2]
        if node is None:
            raise _err(errno.ENOENT, path)
        if not isinstance(node, _FileNode):
            raise _err(errno.EISDIR, path)
        return node

    # --- the FileSystem protocol -----------------------------------------------------------

    def open(self, path: str, *, write: bool = False, create: bool = False) -> FaultFile:
        p = _norm(path)
        with self._mu:
            self._enter("open", p, "create" if create else "write" if write else "read")
            parent, name, node = self._lookup(p)
            if create:
                if node is not None or parent is None:
                    raise _err(errno.EEXIST, p)
                node = self._new_file()
                parent.link(name, node)
            elif node is None:
                raise _err(errno.ENOENT, p)
            elif isinstance(node, _DirNode):
                raise _err(errno.EISDIR, p)
            handle = FaultFile(self, p, node, write or create)
            self._open_files += 1
            self._done("open", p)
            return handle

    def exists(self, path: str) -> bool:
        return self._probe("exists", path) is not None

    def isdir(self, path: str) -> bool:
        return isinstance(self._probe("isdir", path), _DirNode)

    def _probe(self, op: str, path: str) -> _Node | None:
        p = _norm(path)
        with self._mu:
            self._enter(op, p, None)
            try:
                node = self._lookup(p)[2]
            except OSError:
                node = None
            self._done(op, p)
            return node

    def listdir(self, path: str) -> list[str]:
        p = _norm(path)
        with self._mu:
            self._enter("listdir", p, None)
            names = sorted(self._dir(p).entries)
            self._done("listdir", p)
            return names

    def mkdir(self, path: str) -> None:
        """Create one directory; durable only after fsync_dir of its parent."""
        p = _norm(path)
        with self._mu:
            self._enter("mkdir", p, None)
            parent, name, node = self._lookup(p)
            if node is not None or parent is None:
                raise _err(errno.EEXIST, p)
            parent.link(name, _DirNode(self._ino()))
            self._done("mkdir", p)

    def fsync_dir(self, path: str) -> None:
        """Make the directory's current entries (name -> inode) durable."""
        p = _norm(path)
        with self._mu:
            self._enter("fsync_dir", p, None)
            self._dir(p).sync()
            self._done("fsync_dir", p)

    def replace(self, src: str, dst: str) -> None:
        """rename(2) semantics; durable only after fsync_dir of the parent(s)."""
        s, d = _norm(src), _norm(dst)
        with self._mu:
            self._enter("replace", s, d, (s, d))
            if "/" in (s, d):
                raise _err(errno.EBUSY, s, d)
            sparent, sname, snode = self._lookup(s, (s, d))
            if snode is None:
                raise _err(errno.ENOENT, s, d)
            dparent, dname, dnode = self._lookup(d, (s, d))
            assert sparent is not None and dparent is not None
            if snode is not dnode:
                self._check_rename(s, d, snode, dnode)
                if sparent is dparent:
                    sparent.rename(sname, dname)
                else:
                    sparent.unlink(sname)
                    dparent.link(dname, snode)
            self._done("replace", s, (s, d))

    @staticmethod
    def _check_rename(s: str, d: str, snode: _Node, dnode: _Node | None) -> None:
        if d.startswith(s + "/"):
            raise _err(errno.EINVAL, s, d)
        if s.startswith(d + "/"):
            raise _err(errno.ENOTEMPTY, s, d)
        if dnode is None:
            return
        if isinstance(snode, _DirNode):
            if not isinstance(dnode, _DirNode):
                raise _err(errno.ENOTDIR, s, d)
            if dnode.entries:
                raise _err(errno.ENOTEMPTY, s, d)
        elif isinstance(dnode, _DirNode):
            raise _err(errno.EISDIR, s, d)

    def unlink(self, path: str) -> None:
        """Remove a file's name; open handles keep working. Durable after fsync_dir."""
        p = _norm(path)
        with self._mu:
            self._enter("unlink", p, None)
            parent, name, node = self._lookup(p)
            if node is None:
                raise _err(errno.ENOENT, p)
            if isinstance(node, _DirNode) or parent is None:
                raise _err(errno.EISDIR, p)
            parent.unlink(name)
            self._done("unlink", p)

    def rmdir(self, path: str) -> None:
        p = _norm(path)
        with self._mu:
            self._enter("rmdir", p, None)
            parent, name, node = self._lookup(p)
            if parent is None:
                raise _err(errno.EBUSY, p)
            if node is None:
                raise _err(errno.ENOENT, p)
            if not isinstance(node, _DirNode):
                raise _err(errno.ENOTDIR, p)
            if node.entries:
                raise _err(errno.ENOTEMPTY, p)
            parent.unlink(name)
            self._done("rmdir", p)

    # optional calls of OsFileSystem (backups)

    def stat(self, path: str) -> os.stat_result:
        """os.stat of `path`: mode, inode, device (DEV), link count, size and modification
        time (ns; a directory's is 0). Hard links give the same inode."""
        p = _norm(path)
        with self._mu:
            self._enter("stat", p, None)
            node = self._lookup(p)[2]
            if node is None:
                raise _err(errno.ENOENT, p)
            if isinstance(node, _FileNode):
                mode, nlink, size, mtime = (stat_mode.S_IFREG | 0o644, node.nlink, node.size,
                                            node.mtime_ns)
            else:
                subdirs = sum(isinstance(n, _DirNode) for n in node.entries.values())
                mode, nlink, size, mtime = stat_mode.S_IFDIR | 0o755, 2 + subdirs, 0, 0
            sec = mtime // 1_000_000_000
            result = os.stat_result((mode, node.ino, DEV, nlink, 0, 0, size, sec, sec, sec,
                                     mtime / 1e9, mtime / 1e9, mtime / 1e9, mtime, mtime, mtime))
            self._done("stat", p)
            return result

    def link(self, src: str, dst: str) -> None:
        """A hard link: `dst` names `src`'s inode (one content, synced by either name).
        Durable only after fsync_dir of dst's parent."""
        s, d = _norm(src), _norm(dst)
        with self._mu:
            self._enter("link", s, d, (s, d))
            snode = self._lookup(s, (s, d))[2]
            dparent, dname, dnode = self._lookup(d, (s, d))
            if snode is None:
                raise _err(errno.ENOENT, s, d)
            if dnode is not None:
                raise _err(errno.EEXIST, s, d)
            if isinstance(snode, _DirNode):
                raise _err(errno.EPERM, s, d)
            assert dparent is not None
            dparent.link(dname, snode)
            self._done("link", s, (s, d))

    def exchange(self, a: str, b: str) -> None:
        """Swap what `a` and `b` name in one step (renameat2 RENAME_EXCHANGE). In one
        directory the swap survives a crash whole or not at all; durable after fsync_dir of
        the parent(s). ENOENT if either is missing, EINVAL if one contains the other.
        inject("exchange", error=errno.EINVAL) models a file system that cannot."""
        pa, pb = _norm(a), _norm(b)
        with self._mu:
            self._enter("exchange", pa, pb, (pa, pb))
            aparent, aname, anode = self._lookup(pa, (pa, pb))
            bparent, bname, bnode = self._lookup(pb, (pa, pb))
            if anode is None or bnode is None:
                raise _err(errno.ENOENT, pa, pb)
            if aparent is None or bparent is None or pb.startswith(pa + "/") \
                    or pa.startswith(pb + "/"):
                raise _err(errno.EINVAL, pa, pb)
            if aparent is bparent:
                if aname != bname:
                    aparent.exchange(aname, bname)
            else:
                aparent.link(aname, bnode)
                bparent.link(bname, anode)
            self._done("exchange", pa, (pa, pb))

    def file_size(self, path: str) -> int:
        p = _norm(path)
        with self._mu:
            self._enter("file_size", p, None)
            node = self._lookup(p)[2]
            if node is None:
                raise _err(errno.ENOENT, p)
            size = node.size if isinstance(node, _FileNode) else 0
            self._done("file_size", p)
            return size

    def allocated_size(self, path: str) -> int:
        """Bytes in 4 KiB blocks holding a non-zero byte (so a file extended by truncate is
        sparse); 0 for a directory."""
        p = _norm(path)
        with self._mu:
            self._enter("allocated_size", p, None)
            node = self._lookup(p)[2]
            if node is None:
                raise _err(errno.ENOENT, p)
            blocks = 0
            if isinstance(node, _FileNode):
                content, zero = node.content(), bytes(BLOCK)
                for lo in range(0, node.size, BLOCK):
                    chunk = content[lo : lo + BLOCK]
                    blocks += chunk != zero[: len(chunk)]
            self._done("allocated_size", p)
            return blocks * BLOCK

    def lock(self, path: str) -> int:
        """Create `path` if needed, take its lock (per inode, like flock: a second lock()
        conflicts even from this process) and write our pid into it."""
        p = _norm(path)
        with self._mu:
            self._enter("lock", p, None)
            parent, name, node = self._lookup(p)
            if node is None:
                assert parent is not None
                node = self._new_file()
                parent.link(name, node)
            if isinstance(node, _DirNode):
                raise _err(errno.EISDIR, p)
            if node.lock_owner is not None:
                raise _err(errno.EAGAIN)
            handle = next(self._handles)
            node.lock_owner = handle
            self._locks[handle] = (p, node)
            node.truncate(0)
            node.write(0, f"{os.getpid()}\n".encode())
            node.mtime_ns = self._now()
            self._done("lock", p)
            return handle

    def is_locked(self, path: str) -> bool:
        """Whether a handle holds the lock on `path` (False when it does not exist)."""
        node = self._probe("is_locked", path)
        return isinstance(node, _FileNode) and node.lock_owner is not None

    def unlock(self, handle: int) -> None:
        """Release a lock; EBADF for an unknown handle. A no-op after a crash."""
        with self._mu:
            if self._dead or self._frozen is not None:
                return
            p, node = self._locks.get(handle, ("", None))
            self._enter("unlock", p, handle)
            if node is None:
                raise _err(errno.EBADF)
            del self._locks[handle]
            node.lock_owner = None
            self._done("unlock", p)

    # --- crashes ---------------------------------------------------------------------------

    def crash(self, mode: CrashMode, rng: random.Random | None = None) -> FaultFS:
        """The machine dies: return a new FaultFS holding what survives `mode` (see
        crashmodes.CrashMode), fully synced, with no locks, faults, trace or counts. This FS
        and its handles then raise OSError(EBADF) (close() and unlock() do nothing), but
        crash() and peek_crash() still work on it, to draw other outcomes from the same
        pre-crash state. `rng` makes every random choice (required for RANDOM_PREFIX,
        SECTOR_SUBSET and UNSAFE_APPEND); the same state, mode and seed give the same result."""
        with self._mu:
            survivors = self.peek_crash(mode, rng)
            self._dead = True
            return survivors

    def peek_crash(self, mode: CrashMode, rng: random.Random | None = None) -> FaultFS:
        """What crash(mode, rng) would return, leaving this FS and its handles usable."""
        if rng is None:
            if mode in _RANDOM_MODES:
                raise ValueError(f"{mode} needs an rng")
            rng = random.Random(0)
        with self._mu:
            new = FaultFS(self.clock)
            new._next_ino, new._last_ns = self._next_ino, self._last_ns
            copies: dict[int, _Node] = {id(self._root): new._root}
            queue = deque([(self._root, new._root)])
            while queue:  # breadth-first over what survives, names sorted: deterministic
                old_dir, new_dir = queue.popleft()
                kept = surviving_entries(mode, old_dir.durable, old_dir.entries, old_dir.ops, rng)
                for name in sorted(kept):
                    child = kept[name]
                    copy = copies.get(id(child))
                    if copy is None:
                        if isinstance(child, _DirNode):
                            copy = _DirNode(child.ino)
                            queue.append((child, copy))
                        else:
                            content = child.content()
                            kept_bytes = surviving_content(
                                mode, child.durable, content, child.ops, rng
                            )
                            # the mtime of the content that survived (metadata of data
                            # that did not survive is lost with it)
                            mtime = child.mtime_ns if kept_bytes == content else (
                                child.durable_mtime_ns)
                            copy = _FileNode(kept_bytes, child.ino, mtime)
                        copies[id(child)] = copy
                    _count_link(copy, 1)
                    new_dir.entries[name] = copy
                new_dir.durable = dict(new_dir.entries)
            return new

    # --- test helpers (not traced, never fail) ---------------------------------------------

    @property
    def open_file_count(self) -> int:
        """Handles opened and not yet closed (to catch leaks)."""
        return self._open_files

    def makedirs(self, path: str, *, durable: bool = True) -> None:
        """Create `path` and its missing parents. durable=True: as if they existed before the
        test (their entries already fsynced)."""
        p = _norm(path)
        with self._mu:
            cur = self._root
            for part in p.split("/")[1:] if p != "/" else []:
                nxt = cur.entries.get(part)
                if nxt is None:
                    nxt = _DirNode(self._ino())
                    if durable:
                        cur.entries[part] = cur.durable[part] = nxt
                    else:
                        cur.link(part, nxt)
                elif not isinstance(nxt, _DirNode):
                    raise _err(errno.ENOTDIR, p)
                cur = nxt

    def write_bytes(self, path: str, data: bytes, *, durable: bool = True) -> None:
        """Set a file's content (creating it; the parent must exist). durable=True: as if it
        had been written, synced and its directory fsynced before the test."""
        p = _norm(path)
        with self._mu:
            parent, name, node = self._lookup(p)
            if node is None:
                assert parent is not None
                node = self._new_file()
                if durable:
                    parent.entries[name] = parent.durable[name] = node
                    node.nlink = 1
                else:
                    parent.link(name, node)
            if not isinstance(node, _FileNode):
                raise _err(errno.EISDIR, p)
            node.truncate(0)
            node.write(0, bytes(data))
            node.mtime_ns = self._now()
            if durable:
                node.sync()

    def read_bytes(self, path: str) -> bytes:
        """A file's current (volatile) content."""
        p = _norm(path)
        with self._mu:
            return bytes(self._file(p).content())

    def snapshot(self) -> dict[str, bytes | None]:
        """Every path under / (sorted) -> its volatile content, or None for a directory."""
        out: dict[str, bytes | None] = {}
        with self._mu:
            stack: list[tuple[str, _DirNode]] = [("", self._root)]
            while stack:
                prefix, d = stack.pop()
                for name, node in d.entries.items():
                    p = f"{prefix}/{name}"
                    if isinstance(node, _DirNode):
                        out[p] = None
                        stack.append((p, node))
                    else:
                        out[p] = bytes(node.content())
        return dict(sorted(out.items()))
