"""The one I/O seam: every byte mkts reads from or writes to disk goes through a FileSystem.

`OsFileSystem` is the real implementation (POSIX calls, real fsync). Tests substitute a
fault-injecting implementation with the same methods to simulate crashes and I/O errors.
The log (wal/) and the storage engine (engine/) both use it; nothing else opens files.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from typing import Protocol, runtime_checkable

__all__ = ["BackupFileSystem", "File", "FileSystem", "OsFileSystem", "OsFile"]

_IOV_MAX = 1024  # buffers per pwritev call (POSIX minimum of IOV_MAX)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: str, b: str) -> None:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", a)
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), a, None, b)


class File(Protocol):
    """An open file. Positional I/O only; no shared cursor."""

    path: str

    def pread(self, size: int, offset: int) -> bytes: ...

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None: ...

    def size(self) -> int: ...

    def truncate(self, size: int) -> None: ...

    def sync(self) -> None:
        """Make the file's data (and the size needed to read it) durable: fdatasync."""
        ...

    def map(self) -> memoryview | mmap.mmap:
        """A read-only view of the whole file as it is now; it follows later pwrites."""
        ...

    def close(self) -> None: ...


class FileSystem(Protocol):
    def open(self, path: str, *, write: bool = False, create: bool = False) -> File:
        """Open a file; `create=True` creates it (exclusively: an existing file is an error)."""
        ...

    def exists(self, path: str) -> bool: ...

    def isdir(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]: ...

    def mkdir(self, path: str) -> None:
        """Create one directory (its parent must exist). Not durable until fsync_dir(parent)."""
        ...

    def fsync_dir(self, path: str) -> None: ...

    def replace(self, src: str, dst: str) -> None:
        """Atomically rename src over dst. Not durable until fsync_dir of the parent."""
        ...

    def unlink(self, path: str) -> None: ...

    def rmdir(self, path: str) -> None: ...

    def file_size(self, path: str) -> int: ...

    def allocated_size(self, path: str) -> int: ...

    def lock(self, path: str) -> int:
        """Take an exclusive, non-blocking lock on `path` and write our pid into it.

        Returns a handle for unlock(); raises BlockingIOError when another handle holds it."""
        ...

    def unlock(self, handle: int) -> None: ...

    def is_locked(self, path: str) -> bool:
        """Whether some handle (this process's included) holds the lock on `path`. Never
        creates, locks for longer than the probe, or changes the file; False when missing."""
        ...


@runtime_checkable
class BackupFileSystem(FileSystem, Protocol):
    """A FileSystem with the optional calls backups make (engine/backup.py); OsFileSystem
    is one, and so is the tests' fault-injecting one."""

    def stat(self, path: str) -> os.stat_result: ...

    def link(self, src: str, dst: str) -> None: ...

    def exchange(self, a: str, b: str) -> None: ...


class OsFile:
    __slots__ = ("path", "_fd", "_map", "_map_size")

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._map: mmap.mmap | None = None
        self._map_size = -1

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        if type(data) is bytes and os.pwrite(self._fd, data, offset) == len(data):
            return  # the common case: one call wrote it all
        view = memoryview(data).cast("B")
        total = len(view)
        done = 0
        while done < total:
            n = os.pwrite(self._fd, view[done:], offset + done)
            if n <= 0:  # pragma: no cover - the kernel reports ENOSPC as an exception
                raise OSError(errno.EIO, f"short write to {self.path}")
            done += n

    def data_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) that hold data rather than holes (optional: callers
        treat a file without this method as all data). Uses SEEK_DATA / SEEK_HOLE."""
        seek_data = getattr(os, "SEEK_DATA", None)
        seek_hole = getattr(os, "SEEK_HOLE", None)
        if seek_data is None or seek_hole is None:
            return [(start, end)]
        out: list[tuple[int, int]] = []
        pos = start
        try:
            while pos < end:
                try:
                    a = os.lseek(self._fd, pos, seek_data)
                except OSError as exc:
                    if exc.errno == errno.ENXIO:  # no data after pos
                        break
                    raise
                if a >= end:
                    break
                b = min(os.lseek(self._fd, a, seek_hole), end)
                out.append((a, b))
                pos = b
        except OSError:
            return [(start, end)]  # the filesystem cannot tell: treat it all as data
        return out

    def prefetch(self, offset: int, length: int) -> None:
        """Start reading [offset, offset + length) into the page cache without waiting for
        it (optional: callers skip it on a file without this method). A hint: never fails."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is not None and length > 0:
            try:
                advise(self._fd, offset, length, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass

    def pwritev(self, buffers: list[bytes | bytearray | memoryview], offset: int) -> None:
        """Write the concatenation of `buffers` at offset with one syscall where the kernel
        allows, without joining them first (optional: callers fall back to pwrite)."""
        views = [memoryview(b).cast("B") for b in buffers]
        views = [v for v in views if len(v)]
        while views:
            n = os.pwritev(self._fd, views[:_IOV_MAX], offset)
            if n <= 0:  # pragma: no cover - the kernel reports ENOSPC as an exception
                raise OSError(errno.EIO, f"short write to {self.path}")
            offset += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if n:
                views[0] = views[0][n:]

    def copy_range(self, dst: OsFile, offset: int, length: int) -> int:
        """Copy [offset, offset + length) of this file to the same offset of `dst` inside the
        kernel (copy_file_range); returns the bytes copied, fewer at this file's end
        (optional: callers fall back to pread and pwrite)."""
        done = 0
        while done < length:
            n = os.copy_file_range(self._fd, dst._fd, length - done, offset + done,
                                   offset + done)
            if n == 0:
                break
            done += n
        return done

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def map(self) -> mmap.mmap:
        size = self.size()
        if self._map is None or self._map_size != size:
            if size == 0:
                raise ValueError(f"cannot map empty file {self.path}")
            self._map = mmap.mmap(self._fd, size, access=mmap.ACCESS_READ)
            self._map_size = size
        return self._map

    def close(self) -> None:
        # A mapping may still be referenced by numpy views handed to callers; mmap keeps
        # its own reference to the pages, so only the descriptor is closed here.
        self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    """The real filesystem. `file_type` is the class of the files it opens (a subclass of
    OsFile may observe them, e.g. time their fsyncs)."""

    file_type: type[OsFile] = OsFile

    def open(self, path: str, *, write: bool = False, create: bool = False) -> OsFile:
        if create:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        elif write:
            flags = os.O_RDWR
        else:
            flags = os.O_RDONLY
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        return self.file_type(path, fd)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def file_size(self, path: str) -> int:
        return os.stat(path).st_size

    # Optional (a FileSystem without them is not a backup source or target; engine/backup.py)
    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def link(self, src: str, dst: str) -> None:
        """A hard link `dst` to `src`. Not durable until fsync_dir of dst's parent."""
        os.link(src, dst)

    def exchange(self, a: str, b: str) -> None:
        """Swap the paths `a` and `b` in one atomic step (renameat2 RENAME_EXCHANGE). Raises
        OSError (ENOSYS, EINVAL) where the kernel or filesystem cannot. Not durable until
        fsync_dir of their parent."""
        _exchange(a, b)

    def allocated_size(self, path: str) -> int:
        return os.stat(path).st_blocks * 512

    def lock(self, path: str) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def unlock(self, handle: int) -> None:
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            os.close(handle)

    def is_locked(self, path: str) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)
