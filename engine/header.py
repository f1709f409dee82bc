"""The self-describing header of year files and bucket templates: encode, decode, verify.

Byte layout in docs/format.md "Header" and "Header, format 3" (column ids, fill values and the
schema version of a bucket whose columns were changed). Decoding raises CorruptFileError or
UnsupportedFormatError; it never returns a guess.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mkts.engine.columns import ColumnTable, check_fill
from mkts.engine.errors import CorruptFileError, SchemaError, UnsupportedFormatError
from mkts.engine.schema import FIXED, MAX_COLUMNS, NAME_BYTES, VARIABLE, Schema, normalise_dtype
from mkts.engine.timeframes import parse_timeframe
from mkts.wal.crc import crc32c

__all__ = ["Header", "encode_header", "decode_header", "MAGIC", "FORMAT_VERSION",
           "TICK_FORMAT_VERSION", "COLUMNS_FORMAT_VERSION", "PAGE"]

MAGIC = b"MKTSYEAR"
FORMAT_VERSION = 1
# docs/format.md "Header": version 2 is a tick year file whose slots carry a checksum; fixed
# year files and bucket.hdr stay version 1 (their bytes did not change). Both are read.
TICK_FORMAT_VERSION = 2
# docs/format.md "Header, format 3": the header of every file of a bucket whose columns were
# changed (add/drop/rename): per column an id and a fill value, the schema version at 36.
COLUMNS_FORMAT_VERSION = 3
PAGE = 4096
# docs/format.md "Header": magic, version, kind, header size, year, ncols, timeframe seconds,
# record size, nslots, year start, timezone, timeframe name
_FIXED = struct.Struct("<8sHHIiIqIIqq64s16s")
_COLUMN = struct.Struct(f"<{NAME_BYTES}s8s")
# format 3: base generation (overlays only, 0 here), the highest column id ever assigned
# (docs/format.md "Header, format 3"); then per column name, dtype, id, flags, fill
_GEN = struct.Struct("<II")
_COLUMN3 = struct.Struct(f"<{NAME_BYTES}s8sHH4s")
_WIDE = struct.Struct("<8s")  # a fill table entry: an 8-byte value
_KINDS = {FIXED: 0, VARIABLE: 1}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_OVERLAY = 0x100  # record kind bit 8, format 3: the file is a `<YYYY>.overlay`
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
    table: ColumnTable | None = None  # format 3 only (None: ids 1..n, schema version 1)

    @cached_property
    def columns(self) -> ColumnTable:
        """Column ids, fills and the schema version this file was written with."""
        return self.table or ColumnTable.initial(self.schema)

    @property
    def schema_version(self) -> int:
        return 1 if self.table is None else self.table.version
    # `<YYYY>.overlay` only (record kind bit 8): the generation of the sealed file it
    # corrects, at offset 136 of its format-3 header (docs/format.md "Header, format 3");
    # 0 in every other file.
    base_generation: int = 0

    @property
    def overlay(self) -> bool:
        return self.base_generation != 0

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


def header_size_for(ncols: int, table: ColumnTable | None = None,
                    schema: Schema | None = None) -> int:
    if table is None:
        need = _FIXED.size + ncols * _COLUMN.size + 4
    else:
        wide = 0 if schema is None else sum(1 for _, d in schema.columns
                                            if d.kind != "U" and d.itemsize > 4)
        need = _FIXED.size + _GEN.size + ncols * _COLUMN3.size + wide * _WIDE.size + 4
    return -(-need // PAGE) * PAGE


def encode_header(schema: Schema, year: int, nslots: int, year_start: int, timezone: str,
                  table: ColumnTable | None = None, base_generation: int = 0) -> bytes:
    """The header bytes; format 3 when `table` is given (a bucket whose columns changed) or
    for an overlay (`base_generation` > 0: the generation of the sealed file it corrects),
    which is always format 3 (docs/format.md "Header, format 3")."""
    if base_generation and table is None:
        table = ColumnTable.initial(schema)
    size = header_size_for(len(schema.columns), table, schema)
    buf = bytearray(size)
    tz = timezone.encode("utf-8")
    if len(tz) > 64:
        raise SchemaError(f"timezone name {timezone!r} is longer than 64 bytes")
    version = TICK_FORMAT_VERSION if schema.kind == VARIABLE and year else FORMAT_VERSION
    if table is not None:
        version = COLUMNS_FORMAT_VERSION
    _FIXED.pack_into(
        buf, 0, MAGIC, version, _KINDS[schema.kind] | (_OVERLAY if base_generation else 0),
        size, year, len(schema.columns),
        schema.timeframe.seconds, schema.record_dtype.itemsize,
        0 if table is None else table.version, nslots, year_start, tz,
        schema.timeframe.name.encode("ascii"),
    )
    pos = _FIXED.size
    if table is None:
        for name, dt in schema.columns:
            _COLUMN.pack_into(buf, pos, name.encode("utf-8"), dt.str.encode("ascii"))
            pos += _COLUMN.size
    else:
        _GEN.pack_into(buf, pos, base_generation, table.last_id)
        pos += _GEN.size
        wide: list[bytes] = []
        for (name, dt), cid, fill in zip(schema.columns, table.ids, table.fills, strict=True):
            value = np.array(check_fill(fill, dt, name), dtype=dt).tobytes()
            if dt.kind == "U":
                small = b"\0" * 4  # strings are filled with "" only
            elif dt.itemsize <= 4:
                small = value.ljust(4, b"\0")
            else:
                small = struct.pack("<I", len(wide))
                wide.append(value)
            _COLUMN3.pack_into(buf, pos, name.encode("utf-8"), dt.str.encode("ascii"), cid, 0,
                               small)
            pos += _COLUMN3.size
        for value in wide:
            _WIDE.pack_into(buf, pos, value)
            pos += _WIDE.size
    struct.pack_into("<I", buf, size - 4, crc32c(memoryview(buf)[: size - 4]))
    return bytes(buf)


def decode_header(read: bytes, path: str) -> Header:
    """Decode the header at the start of `read` (at least its first page, or all of it)."""
    if len(read) < _FIXED.size:
        raise CorruptFileError(f"{path}: file is too short ({len(read)} bytes) to hold a header")
    try:
        (magic, version, kind, size, year, ncols, tf_seconds, recsize, schema_version, nslots,
         year_start, tz, tf_name) = _FIXED.unpack_from(read, 0)
    except struct.error as exc:  # pragma: no cover - length checked above
        raise CorruptFileError(f"{path}: unreadable header") from exc
    if magic != MAGIC:
        raise CorruptFileError(f"{path}: not an mkts data file (bad magic {magic!r})")
    if version not in (FORMAT_VERSION, TICK_FORMAT_VERSION, COLUMNS_FORMAT_VERSION):
        raise UnsupportedFormatError(
            f"{path}: data file format version {version}; this mkts reads versions "
            f"{FORMAT_VERSION} to {COLUMNS_FORMAT_VERSION}"
        )
    if size % PAGE or not PAGE <= size <= MAX_HEADER or ncols > MAX_COLUMNS:
        raise CorruptFileError(f"{path}: header size {size} / column count {ncols} are invalid")
    if len(read) < size:
        raise CorruptFileError(f"{path}: header is cut short ({len(read)} of {size} bytes)")
    (stored,) = struct.unpack_from("<I", read, size - 4)
    if crc32c(memoryview(read)[: size - 4]) != stored:
        raise CorruptFileError(f"{path}: header checksum does not match; the file is damaged")
    table = None
    try:
        if version == COLUMNS_FORMAT_VERSION:
            cols, table = _columns3(read, ncols, size, schema_version)
        else:
            cols = []
            pos = _FIXED.size
            for _ in range(ncols):
                name_b, dt_b = _COLUMN.unpack_from(read, pos)
                pos += _COLUMN.size
                name = name_b.rstrip(b"\0").decode("utf-8")
                cols.append((name, normalise_dtype(dt_b.rstrip(b"\0").decode("ascii"), name)))
        timeframe = parse_timeframe(tf_name.rstrip(b"\0").decode("ascii"))
        schema = Schema(timeframe, _KIND_NAMES[kind & ~_OVERLAY if version ==
                                               COLUMNS_FORMAT_VERSION else kind], tuple(cols))
        timezone = tz.rstrip(b"\0").decode("utf-8")
    except (KeyError, UnicodeDecodeError, SchemaError, ValueError, struct.error) as exc:
        raise CorruptFileError(f"{path}: header fields are invalid ({exc})") from exc
    if timeframe.seconds != tf_seconds or schema.record_dtype.itemsize != recsize:
        raise CorruptFileError(f"{path}: header timeframe or record size is inconsistent")
    if version == TICK_FORMAT_VERSION and (schema.kind != VARIABLE or not year):
        raise CorruptFileError(f"{path}: format version 2 is only for tick year files")
    base_generation = 0
    if version == COLUMNS_FORMAT_VERSION and kind & _OVERLAY:
        base_generation = _GEN.unpack_from(read, _FIXED.size)[0]
        if not base_generation or not year:
            raise CorruptFileError(f"{path}: overlay header without a base generation / year")
    return Header(schema, year, nslots, year_start, timezone, size, version, table,
                  base_generation)


def _columns3(read: bytes, ncols: int, size: int, schema_version: int
              ) -> tuple[list[tuple[str, np.dtype]], ColumnTable]:
    """The column table of a format-3 header (ValueError when it is inconsistent)."""
    pos = _FIXED.size
    _generation, last_id = _GEN.unpack_from(read, pos)
    pos += _GEN.size
    entries = []
    for _ in range(ncols):
        entries.append(_COLUMN3.unpack_from(read, pos))
        pos += _COLUMN3.size
    cols: list[tuple[str, np.dtype]] = []
    ids: list[int] = []
    fills: list[int | float | str] = []
    for name_b, dt_b, cid, _flags, small in entries:
        name = name_b.rstrip(b"\0").decode("utf-8")
        dt = normalise_dtype(dt_b.rstrip(b"\0").decode("ascii"), name)
        if dt.kind == "U":
            value = b""
        elif dt.itemsize <= 4:
            value = small[: dt.itemsize]
        else:
            (index,) = struct.unpack("<I", small)
            at = _FIXED.size + _GEN.size + ncols * _COLUMN3.size + index * _WIDE.size
            if at + _WIDE.size > size - 4:
                raise ValueError(f"column {name!r}: fill table index {index} is out of range")
            value = read[at : at + _WIDE.size]
        fills.append("" if dt.kind == "U" else np.frombuffer(value, dtype=dt)[0].item())
        cols.append((name, dt))
        ids.append(cid)
    if (schema_version < 1 or len(set(ids)) != len(ids) or 0 in ids
            or (ids and max(ids) > last_id)):
        raise ValueError(f"column ids {ids} / schema version {schema_version} are inconsistent")
    return cols, ColumnTable(schema_version, tuple(ids), tuple(fills), last_id)


def same_schema(a: Schema, b: Schema) -> bool:
    return (
        a.kind == b.kind
        and a.timeframe == b.timeframe
        and len(a.columns) == len(b.columns)
        and all(n1 == n2 and np.dtype(d1) == np.dtype(d2)
                for (n1, d1), (n2, d2) in zip(a.columns, b.columns, strict=True))
    )
