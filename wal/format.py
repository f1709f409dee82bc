"""The bytes of the log: segment names, the segment header and record frames (docs/wal.md §1–§3).

Pure functions and constants, no I/O. Reading files and deciding what a damaged byte means is
left to wal/scan.py and wal/recovery.py.
"""

from __future__ import annotations

import re
import secrets
import struct
from collections.abc import Sequence
from typing import NamedTuple

from mkts.wal.crc import crc32c

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "RECORD_HEADER_SIZE",
    "MAX_PAYLOAD",
    "MAX_HEADER_SIZE",
    "FLAG_BASE",
    "RT_DATA",
    "SegmentHeader",
    "HeaderProblem",
    "segment_name",
    "parse_segment_name",
    "new_salt",
    "encode_segment_header",
    "decode_segment_header",
    "record_seed",
    "unpack_record_header",
    "check_payload_sizes",
    "frame_parts",
    "frame_one",
    "encode_frames",
    "as_bytes_view",
    "Payload",
    "HIGHEST_NAME",
    "encode_highest",
    "decode_highest",
]

# docs/wal.md §2: segment header.
MAGIC = b"MKTSWAL\x00"
VERSION = 1
HEADER_SIZE = 40
MAX_HEADER_SIZE = 4096  # the largest header_size any version may declare
FLAG_BASE = 0x1  # every txn below first_txn is durable outside the log
_KNOWN_FLAGS = FLAG_BASE
_SEG_PREFIX = struct.Struct("<8sHH")  # magic, version, header_size: fixed for every version
_SEG_BODY = struct.Struct("<8sHHIQQI")  # the 36 bytes covered by header_crc
_U32 = struct.Struct("<I")

# docs/wal.md §3: record frame.
RECORD_HEADER_SIZE = 20
MAX_PAYLOAD = 1 << 30  # 1 GiB
RT_DATA = 1
_REC_TAIL = struct.Struct("<IQB3x")  # length, txn, rtype, reserved: bytes 4..19
_REC_HEADER = struct.Struct("<IIQB3s")  # crc, length, txn, rtype, reserved

_NAME_RE = re.compile(r"^([0-9]{20})\.wal$")


class SegmentHeader(NamedTuple):
    version: int
    flags: int
    sequence: int
    first_txn: int
    salt: int

    @property
    def is_base(self) -> bool:
        return bool(self.flags & FLAG_BASE)


def segment_name(sequence: int) -> str:
    """`00000000000000000001.wal` for sequence 1."""
    return f"{sequence:020d}.wal"


def parse_segment_name(name: str) -> int | None:
    """The sequence of a segment file name, or None when `name` is not a segment."""
    m = _NAME_RE.match(name)
    return int(m.group(1)) if m else None


# docs/wal.md §1 "The highest segment": magic, the highest sequence ever created, CRC-32C.
HIGHEST_NAME = "HIGHEST"
_HIGHEST_MAGIC = b"MKTSWHI\x00"
_HIGHEST = struct.Struct("<8sQ")


def encode_highest(sequence: int) -> bytes:
    """The 20 bytes of `<dir>/HIGHEST` naming `sequence` as the highest segment created."""
    body = _HIGHEST.pack(_HIGHEST_MAGIC, sequence)
    return body + _U32.pack(crc32c(body))


def decode_highest(data: bytes) -> int:
    """The sequence `<dir>/HIGHEST` names; raises HeaderProblem when it is not valid."""
    if len(data) != _HIGHEST.size + 4:
        raise HeaderProblem(f"{len(data)} bytes, expected {_HIGHEST.size + 4}")
    magic, sequence = _HIGHEST.unpack_from(data, 0)
    (stored,) = _U32.unpack_from(data, _HIGHEST.size)
    if magic != _HIGHEST_MAGIC or crc32c(data[: _HIGHEST.size]) != stored:
        raise HeaderProblem("bad magic or checksum")
    return int(sequence)


def new_salt() -> int:
    """A random salt for a new segment (docs/wal.md §8: stale frames never validate)."""
    return secrets.randbits(32)


def encode_segment_header(sequence: int, first_txn: int, *, flags: int, salt: int) -> bytes:
    body = _SEG_BODY.pack(MAGIC, VERSION, HEADER_SIZE, flags, sequence, first_txn, salt)
    return body + _U32.pack(crc32c(body))


class HeaderProblem(Exception):
    """Internal: why a segment header is not valid (turned into a typed error by the caller)."""

    def __init__(self, reason: str, *, unsupported_version: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unsupported_version = unsupported_version


def decode_segment_header(data: bytes | memoryview) -> SegmentHeader:
    """Decode the first bytes of a segment; raises HeaderProblem when they are not a valid header.

    `data` is the start of the file (at least MAX_HEADER_SIZE bytes when the file is that long).
    A header of another version whose CRC validates raises HeaderProblem with
    `unsupported_version` set."""
    if len(data) < _SEG_PREFIX.size:
        raise HeaderProblem(f"segment header cut short: {len(data)} of {HEADER_SIZE} bytes")
    magic, version, size = _SEG_PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise HeaderProblem(f"bad magic {bytes(magic)!r}")
    if version != VERSION:
        if 16 <= size <= MAX_HEADER_SIZE and len(data) >= size:
            (stored,) = _U32.unpack_from(data, size - 4)
            if crc32c(data[: size - 4]) == stored:
                raise HeaderProblem(
                    f"segment format version {version} (this build reads {VERSION})",
                    unsupported_version=version,
                )
        raise HeaderProblem(f"damaged segment header (version field {version})")
    if size != HEADER_SIZE:
        raise HeaderProblem(f"header_size {size}, expected {HEADER_SIZE}")
    if len(data) < HEADER_SIZE:
        raise HeaderProblem(f"segment header cut short: {len(data)} of {HEADER_SIZE} bytes")
    (stored,) = _U32.unpack_from(data, HEADER_SIZE - 4)
    if crc32c(data[: HEADER_SIZE - 4]) != stored:
        raise HeaderProblem("segment header checksum mismatch")
    _, _, _, flags, sequence, first_txn, salt = _SEG_BODY.unpack_from(data, 0)
    if flags & ~_KNOWN_FLAGS:
        raise HeaderProblem(f"unknown header flags {flags:#x}")
    if first_txn < 1:
        raise HeaderProblem("first_txn is 0")
    return SegmentHeader(version, flags, sequence, first_txn, salt)


def record_seed(salt: int) -> int:
    """The running CRC every record checksum of a segment starts from: crc32c(salt as 4 LE bytes)."""
    return crc32c(_U32.pack(salt))


def unpack_record_header(data: bytes | memoryview, offset: int) -> tuple[int, int, int, int, bytes]:
    """(crc, length, txn, rtype, reserved) of the 20 bytes at `offset` (which must be there)."""
    crc, length, txn, rtype, reserved = _REC_HEADER.unpack_from(data, offset)
    return crc, length, txn, rtype, reserved


def as_bytes_view(payload: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """`payload` as something whose len() is its size in bytes (a C-contiguous byte view)."""
    if isinstance(payload, (bytes, bytearray)):
        return payload
    if not isinstance(payload, memoryview):
        raise TypeError(f"a payload must be bytes or memoryview, not {type(payload).__name__}")
    if not payload.c_contiguous:
        return payload.tobytes()
    if payload.format != "B" or payload.ndim != 1:
        return payload.cast("B")
    return payload


Buffer = bytes | bytearray | memoryview
# One transaction's payload: a buffer, or a tuple of buffers logged as their concatenation
# (so a large payload need not be joined into one copy first).
Payload = Buffer | tuple[Buffer, ...]


def _views(raw: Payload) -> list[Buffer]:
    if isinstance(raw, tuple):
        return [as_bytes_view(b) for b in raw]
    return [as_bytes_view(raw)]


def check_payload_sizes(payloads: Sequence[Payload]) -> None:
    """Raise ValueError (or TypeError) for a payload encode_frames would refuse."""
    for raw in payloads:
        n = sum(len(v) for v in _views(raw))
        if n > MAX_PAYLOAD:
            raise ValueError(f"payload of {n} bytes exceeds MAX_PAYLOAD ({MAX_PAYLOAD} bytes)")


def frame_parts(
    payloads: Sequence[Payload], first_txn: int, rtype: int, seed: int
) -> tuple[list[Buffer], int]:
    """The frames of `payloads` with txns first_txn, first_txn+1, …: a list of buffers (header,
    payload, header, payload, …) to be written back to back, and their total size.

    Payloads are not copied; ValueError for one larger than MAX_PAYLOAD."""
    parts: list[Buffer] = []
    pack_tail = _REC_TAIL.pack
    pack_crc = _U32.pack
    txn = first_txn
    total = 0
    for raw in payloads:
        views = _views(raw)
        n = sum(len(v) for v in views)
        if n > MAX_PAYLOAD:
            raise ValueError(f"payload of {n} bytes exceeds MAX_PAYLOAD ({MAX_PAYLOAD} bytes)")
        tail = pack_tail(n, txn, rtype)
        crc = crc32c(tail, seed)
        for v in views:
            crc = crc32c(v, crc)
        parts.append(pack_crc(crc) + tail)
        parts.extend(views)
        total += RECORD_HEADER_SIZE + n
        txn += 1
    return parts, total


def frame_one(payload: bytes, txn: int, rtype: int, seed: int) -> bytes:
    """The frame of one payload (bytes of at most MAX_PAYLOAD), joined: frame_parts of one."""
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueError(f"payload of {n} bytes exceeds MAX_PAYLOAD ({MAX_PAYLOAD} bytes)")
    tail = _REC_TAIL.pack(n, txn, rtype)
    return b"".join((_U32.pack(crc32c(payload, crc32c(tail, seed))), tail, payload))


def encode_frames(payloads: Sequence[Payload], first_txn: int, rtype: int, seed: int) -> bytes:
    """The frames of `payloads` joined into one buffer (each payload copied once)."""
    return b"".join(frame_parts(payloads, first_txn, rtype, seed)[0])
