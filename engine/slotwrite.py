"""Writing a year file's slots: runs of records by positional writes (sparse slots gathered
into few spans, gaps rewritten with their content), single rows, range clears, the tick data
region, and the occupancy index kept current as it goes (docs/format.md "Writing slots").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mkts.engine.errors import CorruptFileError
from mkts.engine.header import Header
from mkts.engine.slotcheck import with_checks
from mkts.wal.fs import File

__all__ = ["SlotWriter", "GAP_BYTES"]

GAP_BYTES = 4096  # docs/format.md "Writing slots": gaps up to a page are rewritten, not skipped


class SlotWriter:
    """The write half of `YearFile` (engine/yearfile.py mixes it in)."""

    path: str
    writable: bool
    header: Header
    _f: File
    _occ: np.ndarray | None
    _nocc: int
    dirty: bool

    if TYPE_CHECKING:
        @property
        def data_start(self) -> int: ...

        def occupied(self) -> np.ndarray: ...

    def _note_written(self, slots: np.ndarray) -> None:
        if self._occ is None:
            return  # built from the file on first use
        n, k = self._nocc, len(slots)
        if n == 0 or int(slots[0]) > int(self._occ[n - 1]):
            if n + k > len(self._occ):
                grown = np.empty(max(2 * len(self._occ), n + k, 64), dtype=np.int64)
                grown[:n] = self._occ[:n]
                self._occ = grown
            self._occ[n : n + k] = slots
            self._nocc = n + k
        else:  # overwrites and back-fills: insert only slots not yet in the index
            occ = self._occ[:n]
            pos = np.searchsorted(occ, slots)
            present = np.zeros(k, dtype=bool)
            inside = pos < n
            present[inside] = occ[pos[inside]] == slots[inside]
            if present.all():
                return
            merged = np.insert(occ, pos[~present], slots[~present])
            self._occ = merged
            self._nocc = len(merged)

    def write_slots(self, slots: np.ndarray, records: bytes | memoryview) -> None:
        """Write records (len(slots) x record size bytes) into ascending, unique slots."""
        h = self.header
        rs = h.record_size
        n = len(slots)
        if n == 0:
            return
        first, last = int(slots[0]), int(slots[-1])
        if first < 0 or last >= h.nslots:
            raise CorruptFileError(f"{self.path}: slot {last} is outside 0..{h.nslots - 1}")
        if h.slot_checks:
            records = with_checks(records).data.cast("B")
        view = memoryview(records).cast("B")
        base = h.header_size
        if last - first == n - 1:  # one contiguous run (always for a single row)
            self._f.pwrite(view, base + first * rs)
        else:
            self._write_spans(slots, view)
        self.dirty = True
        self._note_written(slots)

    def write_row(self, slot: int, record: bytes) -> None:
        """Write one record (record size bytes) into `slot`: write_slots of one slot."""
        h = self.header
        if slot < 0 or slot >= h.nslots:
            raise CorruptFileError(f"{self.path}: slot {slot} is outside 0..{h.nslots - 1}")
        self._f.pwrite(record, h.header_size + slot * h.record_size)
        self.dirty = True
        occ, n = self._occ, self._nocc
        if occ is None:
            return  # built from the file on first use
        if n < len(occ) and (n == 0 or slot > occ[n - 1]):
            occ[n] = slot  # the append: past the last occupied slot, room left
            self._nocc = n + 1
        else:
            pos = int(occ[:n].searchsorted(slot))
            if pos < n and occ[pos] == slot:
                return  # an overwrite: already in the index
            self._note_written(np.array([slot], dtype=np.int64))

    def clear_range(self, first: int, last: int) -> int:
        """Zero the records of the occupied slots in [first, last] (a range delete, WAL
        op 3: docs/wal.md §10); holes stay holes. Returns how many slots it cleared.
        Applying it again leaves the same bytes."""
        h = self.header
        first, last = max(first, 0), min(last, h.nslots - 1)
        if last < first:
            return 0
        occ = self.occupied()
        a, b = (int(x) for x in np.searchsorted(occ, [first, last + 1]))
        gone = np.array(occ[a:b])
        if not len(gone):
            return 0
        rs = h.record_size
        cuts = np.flatnonzero(np.diff(gone) != 1) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(gone)]))
        for i, j in zip(starts.tolist(), ends.tolist(), strict=True):
            n = j - i
            at = h.header_size + int(gone[i]) * rs
            done = 0
            while done < n:  # bounded buffers: a year of 1Sec slots is large
                k = min(n - done, max(1, (1 << 22) // rs))
                self._f.pwrite(bytes(k * rs), at + done * rs)
                done += k
        self.dirty = True
        if self._occ is not None and self.writable:
            kept = np.concatenate((self._occ[:a], self._occ[b : self._nocc]))
            self._occ = kept
            self._nocc = len(kept)
        return len(gone)

    def _write_spans(self, slots: np.ndarray, view: memoryview) -> None:
        """Write sparse slots with few system calls: runs separated by small gaps are
        merged into one span whose gap slots are rewritten with their current content
        (read back first, unless the occupancy index says the span is empty, or the span has
        no gap), so empty slots stay empty and data is never lost; gaps longer than a page
        stay holes. All spans are assembled in one buffer (one scatter), then written one
        pwrite each."""
        h = self.header
        rs = h.record_size
        max_gap = max(1, GAP_BYTES // rs)
        n = len(slots)
        cuts = np.flatnonzero(np.diff(slots) > max_gap + 1) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [n]))
        first, last = slots[starts], slots[ends - 1]
        lengths = last - first + 1  # slots per span
        at = np.zeros(len(starts), dtype=np.int64)  # where each span starts in the buffer
        np.cumsum(lengths[:-1], out=at[1:])
        total = int(at[-1] + lengths[-1])
        base = h.header_size
        buf = bytearray(total * rs)  # zeros: gap slots of spans the index says are empty
        occ = None if self._occ is None else self._occ[: self._nocc]
        gappy = lengths != ends - starts
        if occ is not None:  # spans holding no occupied slot need no read-back
            gappy &= np.searchsorted(occ, first) != np.searchsorted(occ, last, side="right")
        for i in np.flatnonzero(gappy).tolist():  # current content, gaps included
            lo, count = int(at[i]) * rs, int(lengths[i]) * rs
            current = self._f.pread(count, base + int(first[i]) * rs)
            if len(current) != count:
                raise CorruptFileError(f"{self.path}: slots past the end of the file")
            buf[lo : lo + count] = current
        pos = slots - np.repeat(first - at, ends - starts)  # each record's buffer slot
        whole = np.dtype(f"V{rs}")  # a record as one opaque item: the cheapest scatter
        np.frombuffer(buf, dtype=whole)[pos] = np.frombuffer(view, dtype=whole)
        out = memoryview(buf)
        for lo, count, slot in zip((at * rs).tolist(), (lengths * rs).tolist(),
                                   first.tolist(), strict=True):
            self._f.pwrite(out[lo : lo + count], base + slot * rs)

    def write_region(self, offset: int, data: bytes | memoryview) -> None:
        """Write tick blobs into the data region (which starts after the slot array)."""
        if offset < self.data_start:
            raise CorruptFileError(f"{self.path}: region offset {offset} is inside the slot array")
        self._f.pwrite(data, offset)
        self.dirty = True
