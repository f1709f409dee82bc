"""One year file of a bucket: its header and the direct-addressed slot array.

Reads go through a read-only mapping viewed as a numpy structured array; writes are
positional writes of runs of slots through the I/O seam (engine/slotwrite.py). Layout:
docs/format.md.
"""

from __future__ import annotations

import mmap

import numpy as np

from mkts.engine.durable import atomic_write
from mkts.engine.errors import CorruptFileError
from mkts.engine.header import MAX_HEADER, PAGE, Header, decode_header
from mkts.engine.schema import SLOT_FIELD
from mkts.engine.slotcheck import bad_checks
from mkts.engine.slotwrite import SlotWriter
from mkts.wal.fs import File, FileSystem

__all__ = ["YearFile", "not_a_file", "pread_file"]

# A scan reads across holes up to this size rather than visit each data extent on its own
# (a 1Min year of market hours is ~250 extents, one per session; nights are ~42 KiB holes,
# weekends ~160 KiB): fewer, longer passes; a hole reads as zeros, i.e. empty slots.
SCAN_GAP_BYTES = 1 << 18


def not_a_file(path: str) -> CorruptFileError:
    return CorruptFileError(f"{path} is a directory, not an mkts data file; move it out of "
                            "the bucket's directory (or restore the file from a backup)")


def pread_file(f: File, size: int, offset: int) -> bytes:
    """f.pread, where a directory opened read-only is damage, not an OSError."""
    try:
        return f.pread(size, offset)
    except IsADirectoryError as exc:
        raise not_a_file(f.path) from exc


class YearFile(SlotWriter):
    """An open `<YYYY>.bin`. Not thread-safe by itself; the database serialises writers."""

    def __init__(self, path: str, header: Header, handle: File, *, writable: bool = True) -> None:
        self.path = path
        # Only the writer knows every change; a read-only handle (another process may be
        # writing) must look at the slots themselves each time.
        self.writable = writable
        self.header = header
        self._f = handle
        self._slots: np.ndarray | None = None
        self._words: np.ndarray | None = None
        self._map: object = None
        self._scanned = False  # a read-only handle has scanned this file before
        self._occ: np.ndarray | None = None  # sorted occupied slots, capacity-grown
        self._nocc = 0
        self.dirty = False
        # One entry per user holding it open (engine/filecache.py): added under the cache's
        # lock, removed by list.pop, which is atomic.
        self.pins: list[None] = []

    @classmethod
    def open(cls, fs: FileSystem, path: str, *, writable: bool,
             prefetch: tuple[int, int] | None = None) -> YearFile:
        """Open and check the header. `prefetch` (offset, length): bytes the caller will
        read next, requested before the header is read so both reads are in flight at once
        (a hint, for files that support it)."""
        try:
            f = fs.open(path, write=writable)
        except IsADirectoryError as exc:
            raise not_a_file(path) from exc
        try:
            hint = None if prefetch is None else getattr(f, "prefetch", None)
            if hint is not None and prefetch is not None:
                hint(*prefetch)
            size = f.size()
            head = pread_file(f, PAGE, 0)
            want = decode_size(head, path)
            if PAGE < want <= MAX_HEADER:
                head = pread_file(f, want, 0)
            header = decode_header(head, path)
            if size < header.file_size:
                raise CorruptFileError(
                    f"{path}: file is {size} bytes, its header needs {header.file_size}; "
                    "it was truncated"
                )
        except BaseException:
            f.close()
            raise
        return cls(path, header, f, writable=writable)

    @classmethod
    def create(cls, fs: FileSystem, path: str, header_bytes: bytes, header: Header) -> YearFile:
        """Create the file durably (write to a temporary name, fsync, rename, fsync dir)."""
        atomic_write(fs, path, header_bytes, size=header.file_size)
        f = cls.open(fs, path, writable=True)
        f._occ = np.empty(0, dtype=np.int64)  # a new file is empty: no scan needed
        return f

    @property
    def slots(self) -> np.ndarray:
        """All slots as a read-only structured array (record dtype); follows later writes."""
        if self._slots is None:
            h = self.header
            buf = self._f.map()
            self._map = buf
            self._slots = np.frombuffer(
                buf, dtype=h.schema.record_dtype, count=h.nslots, offset=h.header_size
            )
        return self._slots

    @property
    def words(self) -> np.ndarray:
        """The slot array as rows of 8-byte words (record sizes are multiples of 8)."""
        w = self._words
        if w is None:
            slots = self.slots
            w = self._words = slots.view(np.int64).reshape(len(slots), slots.dtype.itemsize // 8)
        return w

    def read_words(self, lo: int, hi: int) -> np.ndarray:
        """Slots [lo, hi) as a read-only (hi - lo, record words) int64 array, read with one
        pread (no page faults; a cold read is one I/O of exactly these bytes)."""
        h = self.header
        rs = h.record_size
        size = (hi - lo) * rs
        data = self._f.pread(size, h.header_size + lo * rs)
        if len(data) != size:
            raise CorruptFileError(f"{self.path}: slots {lo}..{hi - 1} are past the end")
        return np.frombuffer(data, dtype=np.int64).reshape(hi - lo, rs // 8)

    def _scan(self, lo: int, hi: int, *, prefetch: bool = False) -> np.ndarray:
        """Occupied slots in [lo, hi) read from the file, visiting only the parts of the slot
        array that are not holes (a 1Sec year is 31.6M slots, mostly holes). `prefetch`
        queues the reads of all those parts first (for a scan that is probably cold)."""
        h = self.header
        rs = h.record_size
        ranges = getattr(self._f, "data_ranges", None)
        spans = [(lo, hi)]
        if ranges is not None and hi > lo:
            spans = self._spans(ranges(h.header_size + lo * rs, h.header_size + hi * rs),
                                lo, hi)
        if prefetch:
            self._prefetch(spans)
        words = self.words
        parts = []
        for a, b in spans:
            nz = (words[a:b, 0] != 0).nonzero()[0]
            nz += a
            parts.append(nz)
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _spans(self, ranges: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
        """The byte ranges holding data as slot spans within [lo, hi), sorted, those
        less than SCAN_GAP_BYTES apart merged (numpy: a year has hundreds of ranges)."""
        h = self.header
        rs = h.record_size
        if not ranges:
            return []
        r = np.array(ranges, dtype=np.int64) - h.header_size
        s0 = np.maximum(r[:, 0] // rs, lo)
        s1 = np.minimum(-(-r[:, 1] // rs), hi)
        keep = s1 > s0
        s0, s1 = s0[keep], s1[keep]
        if not len(s0):
            return []
        reach = np.maximum.accumulate(s1)  # the furthest slot covered so far
        new = np.flatnonzero(s0[1:] > reach[:-1] + SCAN_GAP_BYTES // rs) + 1
        firsts = np.concatenate(([0], new))
        lasts = np.concatenate((new - 1, [len(s0) - 1]))
        return list(zip(s0[firsts].tolist(), reach[lasts].tolist(), strict=True))

    def _prefetch(self, spans: list[tuple[int, int]]) -> None:
        """Ask the kernel to start reading these slot ranges now (MADV_WILLNEED): a cold scan
        then waits on reads already queued together instead of faulting page by page."""
        advise = getattr(self._map, "madvise", None)
        if advise is None or not hasattr(mmap, "MADV_WILLNEED"):
            return
        h = self.header
        rs = h.record_size
        try:
            for a, b in spans:
                start = (h.header_size + a * rs) // PAGE * PAGE
                advise(mmap.MADV_WILLNEED, start, h.header_size + b * rs - start)
        except (OSError, ValueError):  # only a hint
            pass

    def check_size(self) -> None:
        """Raise `CorruptFileError` if the file is shorter than its header says (truncated by
        something else since it was opened): reads call this before they touch the mapping,
        so they fail with an error instead of a SIGBUS or a silent subset of the rows."""
        size = self._f.size()
        if size < self.header.file_size:
            raise CorruptFileError(
                f"{self.path}: file is {size} bytes, its header needs {self.header.file_size}; "
                "it was truncated while open (by another process?). Restore it from a backup; "
                "mkts never shortens a year file"
            )

    def occupied_in(self, lo: int, hi: int) -> np.ndarray:
        """Sorted slot numbers in [lo, hi) holding data."""
        if not self.writable:
            self.check_size()
            # Each read looks at the file itself (another process may be writing); only
            # the first scan of this handle is likely cold enough to be worth a prefetch.
            first, self._scanned = not self._scanned, True
            return self._scan(lo, hi, prefetch=first)
        occ = self.occupied()
        a, b = np.searchsorted(occ, [lo, hi])
        return occ[a:b]

    def occupied(self) -> np.ndarray:
        """Sorted slot numbers holding data (an index kept in memory, built on first use and
        updated by write_slots, so reads never scan empty slots)."""
        self.check_size()
        if self._occ is None or not self.writable:
            occ = self._scan(0, self.header.nslots, prefetch=self._occ is None)
            self._occ = occ
            self._nocc = len(occ)
        return self._occ[: self._nocc]

    def verify_slots(self, slots: np.ndarray, recs: np.ndarray) -> None:
        """Raise `CorruptFileError` naming the first slot among `slots` whose record (`recs`,
        read from this file) fails its checksum; nothing to do for files without checksums."""
        if not self.header.slot_checks or not len(recs):
            return
        bad = bad_checks(recs)
        bad = bad[recs[SLOT_FIELD][bad] != 0]  # an empty slot (all zeros) has no checksum
        if len(bad):
            raise CorruptFileError(
                f"{self.path}: tick slot {int(slots[bad[0]])} fails its checksum"
                + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                + "; the slot record is damaged")

    def read(self, offset: int, size: int) -> bytes:
        data = self._f.pread(size, offset)
        if len(data) != size:
            raise CorruptFileError(f"{self.path}: {size} bytes at offset {offset} are past the end")
        return data

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
        self._words = None
        self._map = None
        self._f.close()


def decode_size(head: bytes, path: str) -> int:
    """The header size field of a first page (to read the rest of a large header)."""
    if len(head) < 16:
        raise CorruptFileError(f"{path}: file is too short to hold a header")
    return int.from_bytes(head[12:16], "little")
