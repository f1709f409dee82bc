"""One year file of a bucket: its header and the direct-addressed slot array.

Reads go through a read-only mapping viewed as a numpy structured array; writes are
positional writes of runs of slots through the I/O seam. Layout: docs/format.md.
"""

from __future__ import annotations

import numpy as np

from engine.durable import atomic_write
from engine.errors import CorruptFileError
from engine.header import MAX_HEADER, PAGE, Header, decode_header
from wal.fs import File, FileSystem

__all__ = ["YearFile"]


class YearFile:
    """An open `<YYYY>.bin`. Not thread-safe by itself; the database serialises writers."""

    def __init__(self, path: str, header: Header, handle: File) -> None:
        self.path = path
        self.header = header
        self._f = handle
        self._slots: np.ndarray | None = None
        self.dirty = False

    @classmethod
    def open(cls, fs: FileSystem, path: str, *, writable: bool) -> YearFile:
        f = fs.open(path, write=writable)
        try:
            size = f.size()
            head = f.pread(PAGE, 0)
            want = decode_size(head, path)
            if PAGE < want <= MAX_HEADER:
                head = f.pread(want, 0)
            header = decode_header(head, path)
            if size < header.file_size:
                raise CorruptFileError(
                    f"{path}: file is {size} bytes, its header needs {header.file_size}; "
                    "it was truncated"
                )
        except BaseException:
            f.close()
            raise
        return cls(path, header, f)

    @classmethod
    def create(cls, fs: FileSystem, path: str, header_bytes: bytes, header: Header) -> YearFile:
        """Create the file durably (write to a temporary name, fsync, rename, fsync dir)."""
        atomic_write(fs, path, header_bytes, size=header.file_size)
        return cls.open(fs, path, writable=True)

    @property
    def slots(self) -> np.ndarray:
        """All slots as a read-only structured array (record dtype); follows later writes."""
        if self._slots is None:
            h = self.header
            buf = self._f.map()
            self._slots = np.frombuffer(
                buf, dtype=h.schema.record_dtype, count=h.nslots, offset=h.header_size
            )
        return self._slots

    def write_slots(self, slots: np.ndarray, records: bytes | memoryview) -> None:
        """Write records (len(slots) x record size bytes) into ascending, unique slots."""
        h = self.header
        rs = h.record_size
        n = len(slots)
        if n == 0:
            return
        if int(slots[0]) < 0 or int(slots[-1]) >= h.nslots:
            raise CorruptFileError(f"{self.path}: slot {int(slots[-1])} is outside 0..{h.nslots - 1}")
        view = memoryview(records).cast("B")
        breaks = np.flatnonzero(np.diff(slots) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [n]))
        base = h.header_size
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            self._f.pwrite(view[a * rs : b * rs], base + int(slots[a]) * rs)
        self.dirty = True

    def read(self, offset: int, size: int) -> bytes:
        data = self._f.pread(size, offset)
        if len(data) != size:
            raise CorruptFileError(f"{self.path}: {size} bytes at offset {offset} are past the end")
        return data

    def write_region(self, offset: int, data: bytes | memoryview) -> None:
        """Write tick blobs into the data region (which starts after the slot array)."""
        if offset < self.data_start:
            raise CorruptFileError(f"{self.path}: region offset {offset} is inside the slot array")
        self._f.pwrite(data, offset)
        self.dirty = True

    @property
    def data_start(self) -> int:
        return self.header.file_size

    def size(self) -> int:
        return self._f.size()

    def sync(self) -> None:
        self._f.sync()
        self.dirty = False

    def close(self) -> None:
        self._slots = None
        self._f.close()


def decode_size(head: bytes, path: str) -> int:
    """The header size field of a first page (to read the rest of a large header)."""
    if len(head) < 16:
        raise CorruptFileError(f"{path}: file is too short to hold a header")
    return int.from_bytes(head[12:16], "little")
