"""The year-file header (engine/header.py): round trip, and damage is always detected."""

from __future__ import annotations

import struct

import crc32c
import numpy as np
import pytest

from mkts.engine.errors import CorruptFileError, UnsupportedFormatError
from mkts.engine.header import decode_header, encode_header, header_size_for, same_schema
from mkts.engine.schema import FIXED, VARIABLE, Schema
from mkts.engine.timeframes import parse_timeframe

OHLCV = {"Open": "f4", "High": "f4", "Low": "f4", "Close": "f4", "Volume": "i8"}
YEAR_START_2024 = 1_704_067_200
PATH = "AAPL/1Min/OHLCV/2024.bin"


def _schema(columns: dict[str, str] | None = None, tf: str = "1Min", kind: str = FIXED) -> Schema:
    return Schema.from_spec(parse_timeframe(tf), kind, columns or OHLCV)


def _encoded() -> bytes:
    return encode_header(_schema(), 2024, 527_040, YEAR_START_2024, "UTC")


def _with_crc(buf: bytearray) -> bytes:
    struct.pack_into("<I", buf, len(buf) - 4, crc32c.crc32c(bytes(buf[:-4])))
    return bytes(buf)


def test_round_trip() -> None:
    schema = _schema()
    raw = encode_header(schema, 2024, 527_040, YEAR_START_2024, "UTC")
    assert len(raw) == 4096
    h = decode_header(raw, PATH)
    assert same_schema(h.schema, schema)
    assert h.schema.names == list(OHLCV)
    assert [str(d) for _, d in h.schema.columns] == ["float32"] * 4 + ["int64"]
    assert (h.year, h.nslots, h.year_start, h.timezone, h.header_size) == (
        2024, 527_040, YEAR_START_2024, "UTC", 4096)
    assert h.schema.timeframe.name == "1Min" and h.schema.kind == FIXED
    assert h.record_size == 32
    assert h.file_size == 4096 + 527_040 * 32


def test_round_trip_of_other_schemas() -> None:
    cases = [
        (_schema({"Price": "f8", "Size": "u4", "Venue": "U16"}, "1Sec", VARIABLE), 1970, 0,
         "America/New_York"),
        (_schema({"A": "i1", "B": "u8"}, "1D"), 1900, 365, "Asia/Kolkata"),
        (_schema({f"c{i}": "f8" for i in range(96)}, "4H"), 2261, 2190, "UTC"),
    ]
    for schema, year, nslots, tz in cases:
        raw = encode_header(schema, year, nslots, -12345, tz)
        assert len(raw) == header_size_for(len(schema.columns))
        h = decode_header(raw, PATH)
        assert same_schema(h.schema, schema)
        assert (h.year, h.nslots, h.year_start, h.timezone) == (year, nslots, -12345, tz)
        assert h.schema.kind == schema.kind


def test_large_schemas_get_a_larger_page_aligned_header() -> None:
    assert header_size_for(5) == 4096
    assert header_size_for(96) % 4096 == 0
    assert header_size_for(96) >= 136 + 96 * 40 + 4


def test_magic_and_documented_fields_are_where_the_format_says() -> None:
    raw = _encoded()
    assert raw[:8] == b"MKTSYEAR"
    assert struct.unpack_from("<HHIiIqI", raw, 8) == (1, 0, 4096, 2024, 5, 60, 32)
    assert struct.unpack_from("<Qq", raw, 40) == (527_040, YEAR_START_2024)
    assert raw[56:59] == b"UTC" and raw[120:124] == b"1Min"
    assert struct.unpack_from("<I", raw, 4092)[0] == crc32c.crc32c(raw[:4092])


def test_every_bit_flip_in_the_first_200_bytes_is_detected() -> None:
    raw = _encoded()
    for pos in range(200):
        for mask in (1, 2, 4, 8, 16, 32, 64, 128, 0xFF):
            damaged = bytearray(raw)
            damaged[pos] ^= mask
            with pytest.raises((CorruptFileError, UnsupportedFormatError)):
                decode_header(bytes(damaged), PATH)


def test_damage_in_the_checksum_or_padding_is_detected() -> None:
    raw = _encoded()
    for pos in (1000, 4000, 4092, 4093, 4095):
        damaged = bytearray(raw)
        damaged[pos] ^= 0x01
        with pytest.raises(CorruptFileError, match="checksum"):
            decode_header(bytes(damaged), PATH)


def test_short_header_is_corrupt() -> None:
    raw = _encoded()
    for n in (0, 10, 100, 4095):
        with pytest.raises(CorruptFileError):
            decode_header(raw[:n], PATH)


def test_zeroed_header_is_corrupt_not_empty() -> None:
    with pytest.raises(CorruptFileError, match="magic"):
        decode_header(bytes(4096), PATH)


def test_unknown_version_is_unsupported_even_with_a_valid_checksum() -> None:
    buf = bytearray(_encoded())
    struct.pack_into("<H", buf, 8, 4)
    with pytest.raises(UnsupportedFormatError, match="version 4"):
        decode_header(_with_crc(buf), PATH)


def test_version_2_is_only_for_tick_year_files() -> None:
    buf = bytearray(_encoded())  # a fixed bucket's year file
    struct.pack_into("<H", buf, 8, 2)
    with pytest.raises(CorruptFileError, match="only for tick year files"):
        decode_header(_with_crc(buf), PATH)


@pytest.mark.parametrize(
    "offset,fmt,value",
    [
        (10, "<H", 7),  # unknown record kind
        (20, "<I", 200),  # too many columns
        (24, "<q", 61),  # timeframe seconds disagree with the name
        (32, "<I", 40),  # record size disagrees with the columns
        (120, "<16s", b"7Min"),  # invalid timeframe
        (136 + 32, "<8s", b"<c16"),  # unsupported column type
        (136, "<32s", b"\xff\xfe"),  # column name not UTF-8
        (12, "<I", 4097),  # header size not a page multiple
    ],
)
def test_inconsistent_fields_with_a_valid_checksum_are_corrupt(offset: int, fmt: str,
                                                               value: object) -> None:
    buf = bytearray(_encoded())
    struct.pack_into(fmt, buf, offset, value)
    with pytest.raises(CorruptFileError):
        decode_header(_with_crc(buf), PATH)


def test_error_names_the_file() -> None:
    with pytest.raises(CorruptFileError, match="AAPL/1Min/OHLCV/2024.bin"):
        decode_header(bytes(4096), PATH)


def test_same_schema_compares_kind_timeframe_names_and_types() -> None:
    a = _schema()
    assert same_schema(a, _schema())
    assert not same_schema(a, _schema(tf="5Min"))
    assert not same_schema(a, _schema(kind=VARIABLE))
    assert not same_schema(a, _schema({**OHLCV, "Volume": "i4"}))
    assert not same_schema(a, _schema({"High": "f4", "Open": "f4", "Low": "f4", "Close": "f4",
                                       "Volume": "i8"}))
    assert np.dtype("f4") == a.dtype_of("Open")


@pytest.mark.parametrize("kind", [FIXED, VARIABLE])
def test_an_overlay_header_is_format_3_with_its_base_generation_at_136(kind: str) -> None:
    """docs/format.md "Header, format 3": record kind bit 8 marks an overlay, offset 136 its
    sealed file's generation; offset 36 stays the schema version (1: columns never changed)."""
    schema = _schema(tf="1Sec" if kind == VARIABLE else "1Min", kind=kind)
    raw = encode_header(schema, 2024, 1000, YEAR_START_2024, "UTC", base_generation=7)
    h = decode_header(raw, PATH)
    assert (h.version, h.base_generation, h.schema_version, h.schema.kind) == (3, 7, 1, kind)
    assert struct.unpack_from("<H", raw, 10)[0] == 0x100 | (kind == VARIABLE)
    assert struct.unpack_from("<I", raw, 36)[0] == 1  # schema version
    assert struct.unpack_from("<I", raw, 136)[0] == 7
    plain = decode_header(encode_header(schema, 2024, 1000, YEAR_START_2024, "UTC"), PATH)
    assert plain.base_generation == 0 and not plain.overlay
    buf = bytearray(raw)
    struct.pack_into("<I", buf, 136, 0)  # an overlay bit without a generation is damage
    with pytest.raises(CorruptFileError, match="base generation"):
        decode_header(_with_crc(buf), PATH)
