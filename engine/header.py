"""The self-describing header of year files and bucket templates: encode, decode, verify.

Byte layout in docs/format.md "Header". Decoding raises CorruptFileError or
UnsupportedFormatError; it never returns a guess.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from mkts.engine.errors import CorruptFileError, SchemaError, UnsupportedFormatError
from mkts.engine.schema import FIXED, MAX_COLUMNS, NAME_BYTES, VARIABLE, Schema, normalise_dtype
from mkts.engine.timeframes import parse_timeframe
from mkts.wal.crc import crc32c

__all__ = ["Header", "encode_header", "decode_header", "MAGIC", "FORMAT_VERSION",
           "TICK_FORMAT_VERSION", "PAGE"]

MAGIC = b"MKTSYEAR"
FORMAT_VERSION = 1
# docs/format.md "Header": version 2 is a tick year file whose slots carry a checksum; fixed
# year files and bucket.hdr stay version 1 (their bytes did not change). Both are read.
TICK_FORMAT_VERSION = 2
PAGE = 4096
# docs/format.md "Header": magic, version, kind, header size, year, ncols, timeframe seconds,
# record size, nslots, year start, timezone, timeframe name
_FIXED = struct.Struct("<8sHHIiIqIIqq64s16s")
_COLUMN = struct.Struct(f"<{NAME_BYTES}s8s")
_KINDS = {FIXED: 0, VARIABLE: 1}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
MAX_HEADER = PAGE * 4


@dataclass(frozen=True)
class Header:
    schema: Schema
    year: int  # 0 in a bucket template
    nslots: int
    year_start: int  # epoch seconds of local midnight, 1 January (0 in a template)
    timezone: str
    header_size: int
    version: int = FORMAT_VERSION
    # `<YYYY>.overlay` only: the generation of the sealed file it corrects, at offset 36
    # (docs/format.md "Sealing, re-sealing and the swap"); 0 in every other file.
    base_generation: int = 0

    @property
    def slot_checks(self) -> bool:
        """Whether the slots carry a checksum (tick year files of version 2)."""
        return self.version >= TICK_FORMAT_VERSION and self.schema.kind == VARIABLE

    @property
    def record_size(self) -> int:
        return self.schema.record_dtype.itemsize

    @property
    def file_size(self) -> int:
        return self.header_size + self.nslots * self.record_size


def header_size_for(ncols: int) -> int:
    need = _FIXED.size + ncols * _COLUMN.size + 4
    return -(-need // PAGE) * PAGE


def encode_header(schema: Schema, year: int, nslots: int, year_start: int, timezone: str,
                  base_generation: int = 0) -> bytes:
    size = header_size_for(len(schema.columns))
    buf = bytearray(size)
    tz = timezone.encode("utf-8")
    if len(tz) > 64:
        raise SchemaError(f"timezone name {timezone!r} is longer than 64 bytes")
    version = TICK_FORMAT_VERSION if schema.kind == VARIABLE and year else FORMAT_VERSION
    _FIXED.pack_into(
        buf, 0, MAGIC, version, _KINDS[schema.kind], size, year, len(schema.columns),
        schema.timeframe.seconds, schema.record_dtype.itemsize, base_generation, nslots,
        year_start, tz,
        schema.timeframe.name.encode("ascii"),
    )
    pos = _FIXED.size
    for name, dt in schema.columns:
        _COLUMN.pack_into(buf, pos, name.encode("utf-8"), dt.str.encode("ascii"))
        pos += _COLUMN.size
    struct.pack_into("<I", buf, size - 4, crc32c(memoryview(buf)[: size - 4]))
    return bytes(buf)


def decode_header(read: bytes, path: str) -> Header:
    """Decode the header at the start of `read` (at least its first page, or all of it)."""
    if len(read) < _FIXED.size:
        raise CorruptFileError(f"{path}: file is too short ({len(read)} bytes) to hold a header")
    try:
        (magic, version, kind, size, year, ncols, tf_seconds, recsize, base_generation, nslots,
         year_start, tz, tf_name) = _FIXED.unpack_from(read, 0)
    except struct.error as exc:  # pragma: no cover - length checked above
        raise CorruptFileError(f"{path}: unreadable header") from exc
    if magic != MAGIC:
        raise CorruptFileError(f"{path}: not an mkts data file (bad magic {magic!r})")
    if version not in (FORMAT_VERSION, TICK_FORMAT_VERSION):
        raise UnsupportedFormatError(
            f"{path}: data file format version {version}; this mkts reads versions "
            f"{FORMAT_VERSION} and {TICK_FORMAT_VERSION}"
        )
    if size % PAGE or not PAGE <= size <= MAX_HEADER or ncols > MAX_COLUMNS:
        raise CorruptFileError(f"{path}: header size {size} / column count {ncols} are invalid")
    if len(read) < size:
        raise CorruptFileError(f"{path}: header is cut short ({len(read)} of {size} bytes)")
    (stored,) = struct.unpack_from("<I", read, size - 4)
    if crc32c(memoryview(read)[: size - 4]) != stored:
        raise CorruptFileError(f"{path}: header checksum does not match; the file is damaged")
    try:
        cols = []
        pos = _FIXED.size
        for _ in range(ncols):
            name_b, dt_b = _COLUMN.unpack_from(read, pos)
            pos += _COLUMN.size
            name = name_b.rstrip(b"\0").decode("utf-8")
            cols.append((name, normalise_dtype(dt_b.rstrip(b"\0").decode("ascii"), name)))
        timeframe = parse_timeframe(tf_name.rstrip(b"\0").decode("ascii"))
        schema = Schema(timeframe, _KIND_NAMES[kind], tuple(cols))
        timezone = tz.rstrip(b"\0").decode("utf-8")
    except (KeyError, UnicodeDecodeError, SchemaError, ValueError) as exc:
        raise CorruptFileError(f"{path}: header fields are invalid ({exc})") from exc
    if timeframe.seconds != tf_seconds or schema.record_dtype.itemsize != recsize:
        raise CorruptFileError(f"{path}: header timeframe or record size is inconsistent")
    if version == TICK_FORMAT_VERSION and (schema.kind != VARIABLE or not year):
        raise CorruptFileError(f"{path}: format version 2 is only for tick year files")
    return Header(schema, year, nslots, year_start, timezone, size, version, base_generation)


def same_schema(a: Schema, b: Schema) -> bool:
    return (
        a.kind == b.kind
        and a.timeframe == b.timeframe
        and len(a.columns) == len(b.columns)
        and all(n1 == n2 and np.dtype(d1) == np.dtype(d2)
                for (n1, d1), (n2, d2) in zip(a.columns, b.columns, strict=True))
    )
