"""Reading one segment: its header, its valid prefix of records, and what follows a bad record.

Read-only; it judges bytes against docs/wal.md §3 and reports. Deciding what a bad record means
for the whole log (torn tail or corruption) and repairing it is wal/recovery.py's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from mkts.wal.crc import crc32c
from mkts.wal.errors import CorruptWALError
from mkts.wal.format import (
    HEADER_SIZE,
    MAX_HEADER_SIZE,
    MAX_PAYLOAD,
    RECORD_HEADER_SIZE,
    SegmentHeader,
    decode_segment_header,
    record_seed,
    unpack_record_header,
)
from mkts.wal.fs import File

__all__ = [
    "SegmentReader",
    "BadRecord",
    "SegmentScan",
    "read_header",
    "scan_segment",
    "iter_segment_records",
    "find_valid_frame",
]

_CHUNK = 1 << 20  # read granularity; larger payloads are read (or checksummed) on their own
_NO_RESERVED = b"\x00\x00\x00"


class SegmentReader:
    """Positional reads of one file of known size, buffered in chunks of _CHUNK bytes."""

    def __init__(self, file: File, size: int) -> None:
        self.file = file
        self.size = size
        self._buf = b""
        self._buf_off = 0

    def pread_exact(self, n: int, offset: int) -> bytes:
        """Exactly n bytes at offset; raises CorruptWALError if the file is shorter than it was."""
        data = self.file.pread(n, offset)
        if len(data) == n:
            return data
        parts = [data]
        got = len(data)
        while got < n:
            more = self.file.pread(n - got, offset + got)
            if not more:
                raise CorruptWALError(
                    f"{self.file.path} shrank while being read (wanted {n} bytes at {offset})",
                    segment=self.file.path,
                    offset=offset,
                )
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def view(self, offset: int, n: int) -> memoryview:
        """n bytes at offset (offset + n <= size) without a copy when they fit in a chunk."""
        start = offset - self._buf_off
        if 0 <= start and start + n <= len(self._buf):
            return memoryview(self._buf)[start : start + n]
        if n > _CHUNK:
            return memoryview(self.pread_exact(n, offset))
        self._buf = self.pread_exact(min(_CHUNK, self.size - offset), offset)
        self._buf_off = offset
        return memoryview(self._buf)[:n]

    def crc(self, offset: int, n: int, value: int) -> int:
        """CRC-32C of n bytes at offset continuing from value, reading at most a chunk at a time."""
        end = offset + n
        while offset < end:
            step = min(_CHUNK, end - offset)
            value = crc32c(self.view(offset, step), value)
            offset += step
        return value


def read_header(file: File, size: int) -> SegmentHeader:
    """The header of a segment file of `size` bytes; raises HeaderProblem when it is not valid."""
    data = SegmentReader(file, size).pread_exact(min(size, MAX_HEADER_SIZE), 0)
    return decode_segment_header(data)


class BadRecord(NamedTuple):
    offset: int  # where the first record that is not valid starts
    reason: str
    later_valid: int | None  # offset of a later frame that validates (None: none, or not searched)


class SegmentScan(NamedTuple):
    path: str
    header: SegmentHeader
    size: int  # file size when scanned
    valid_end: int  # end of the last valid record (HEADER_SIZE when there is none)
    n_records: int  # valid records
    last_txn: int  # txn of the last valid record (header.first_txn - 1 when there is none)
    bad: BadRecord | None  # None: the segment ends cleanly at valid_end == size


def _check_frame(reader: SegmentReader, off: int, seed: int, expected_txn: int) -> tuple[int, str]:
    """(payload length, "") when the frame at off is valid, else (-1, reason)."""
    size = reader.size
    if size - off < RECORD_HEADER_SIZE:
        return -1, f"record header cut short: {size - off} of {RECORD_HEADER_SIZE} bytes"
    hdr = reader.view(off, RECORD_HEADER_SIZE)
    stored, length, txn, rtype, reserved = unpack_record_header(hdr, 0)
    if length > MAX_PAYLOAD:
        return -1, f"payload length {length} exceeds the {MAX_PAYLOAD}-byte cap"
    end = off + RECORD_HEADER_SIZE + length
    if end > size:
        return -1, f"record of {length} payload bytes runs {end - size} bytes past the end"
    if rtype == 0 or reserved != _NO_RESERVED:
        return -1, "record type 0 or nonzero reserved bytes"
    crc = crc32c(hdr[4:], seed)
    crc = reader.crc(off + RECORD_HEADER_SIZE, length, crc)
    if crc != stored:
        return -1, f"checksum mismatch (stored {stored:#010x}, computed {crc:#010x})"
    if txn != expected_txn:
        return -1, f"txn {txn} where txn {expected_txn} was expected"
    return length, ""


def scan_segment(
    file: File, size: int, header: SegmentHeader, *, search_after_bad: bool
) -> SegmentScan:
    """Validate the records of a segment whose header is valid, in order, up to the first bad one.

    With `search_after_bad`, the bytes from a bad record to the end are searched for a frame
    that validates (BadRecord.later_valid)."""
    reader = SegmentReader(file, size)
    seed = record_seed(header.salt)
    off = HEADER_SIZE
    txn = header.first_txn
    n_records = 0
    while off < size:
        length, reason = _check_frame(reader, off, seed, txn)
        if length < 0:
            later = find_valid_frame(reader, off, seed, txn - 1) if search_after_bad else None
            return SegmentScan(
                file.path, header, size, off, n_records, txn - 1, BadRecord(off, reason, later)
            )
        off += RECORD_HEADER_SIZE + length
        txn += 1
        n_records += 1
    return SegmentScan(file.path, header, size, off, n_records, txn - 1, None)


def find_valid_frame(reader: SegmentReader, start: int, seed: int, last_txn: int) -> int | None:
    """The offset of the first frame at or after `start` that validates on its own: sane length
    inside the file, type and reserved bytes, CRC for this segment's seed, and a txn above
    `last_txn` (and no further above it than the bytes left could hold). None if there is none.

    Every byte offset is a candidate; numpy narrows them down a window at a time."""
    import numpy as np

    size = reader.size
    hi_txn = last_txn + 1 + (size - start) // RECORD_HEADER_SIZE
    window = _CHUNK
    pos = start
    while size - pos >= RECORD_HEADER_SIZE:
        n = min(window, size - pos - RECORD_HEADER_SIZE + 1)  # candidate starts in this window
        a = np.frombuffer(reader.pread_exact(n + RECORD_HEADER_SIZE - 1, pos), dtype=np.uint8)
        mask = a[16 : 16 + n] != 0
        mask &= a[17 : 17 + n] == 0
        mask &= a[18 : 18 + n] == 0
        mask &= a[19 : 19 + n] == 0
        idx = np.flatnonzero(mask)
        if idx.size:
            txn = np.zeros(idx.size, dtype=np.uint64)
            for k in range(8):
                txn |= a[idx + 8 + k].astype(np.uint64) << np.uint64(8 * k)
            keep = (txn > np.uint64(last_txn)) & (txn <= np.uint64(hi_txn))
            for i, t in zip(idx[keep].tolist(), txn[keep].tolist(), strict=True):
                off = pos + i
                if _check_frame(reader, off, seed, t)[0] >= 0:
                    return int(off)
        pos += n
    return None


def iter_segment_records(
    file: File, size: int, header: SegmentHeader, valid_end: int
) -> Iterator[tuple[int, int, int, bytes]]:
    """(offset, txn, rtype, payload) of each record before valid_end, checked again on the way:
    a record that no longer validates raises CorruptWALError."""
    reader = SegmentReader(file, size)
    seed = record_seed(header.salt)
    off = HEADER_SIZE
    txn = header.first_txn
    while off < valid_end:
        if valid_end - off < RECORD_HEADER_SIZE:
            raise CorruptWALError(
                f"{file.path}: record at offset {off} changed since open",
                segment=file.path,
                offset=off,
            )
        hdr = reader.view(off, RECORD_HEADER_SIZE)
        stored, length, rec_txn, rtype, _ = unpack_record_header(hdr, 0)
        end = off + RECORD_HEADER_SIZE + length
        if rec_txn != txn or length > MAX_PAYLOAD or end > valid_end:
            raise CorruptWALError(
                f"{file.path}: record at offset {off} changed since open",
                segment=file.path,
                offset=off,
            )
        crc = crc32c(hdr[4:], seed)
        if length > _CHUNK:
            payload = reader.pread_exact(length, off + RECORD_HEADER_SIZE)
        else:
            payload = bytes(reader.view(off + RECORD_HEADER_SIZE, length))
        if crc32c(payload, crc) != stored:
            raise CorruptWALError(
                f"{file.path}: checksum of the record at offset {off} no "
                "longer matches (changed since open)",
                segment=file.path,
                offset=off,
            )
        yield off, txn, rtype, payload
        off = end
        txn += 1
