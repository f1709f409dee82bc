"""Every parser of outside bytes raises only its documented errors, whatever it is given:
year-file headers (random bytes, and damaged fields under a *valid* checksum), column type
strings, tick-block payloads (damaged raw bytes under a valid checksum) and RPC datasets.
A builtin exception escaping (numpy's SyntaxError, IndexError, struct.error...) is a bug."""

from __future__ import annotations

import struct
from typing import Any

import crc32c
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mkts.engine.errors import CorruptFileError, SchemaError, UnsupportedFormatError
from mkts.engine.header import decode_header, encode_header
from mkts.engine.schema import FIXED, VARIABLE, Schema, normalise_dtype
from mkts.engine.tickblock import BLOCK_HEADER, BLOCK_MAGIC, ENTRY_DTYPE, decode_blocks
from mkts.engine.timeframes import parse_timeframe
from mkts.wire import WireError, decode_dataset, parse_wire_type

FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
PATH = "FUZZ/1Min/OHLCV/2024.bin"
COLUMNS_AT = struct.calcsize("<8sHHIiIqIIqq64s16s")  # docs/format.md "Header"
COLUMN_SIZE = 40


def _header(kind: str = FIXED) -> bytes:
    schema = Schema.from_spec(parse_timeframe("1Min"), kind,
                              {"Open": "f4", "Close": "f8", "Venue": "U4", "Size": "u2"})
    return encode_header(schema, 2024, 527_040, 1_704_067_200, "UTC")


def _with_crc(buf: bytearray) -> bytes:
    struct.pack_into("<I", buf, len(buf) - 4, crc32c.crc32c(bytes(buf[:-4])))
    return bytes(buf)


def _decode(raw: bytes) -> None:
    try:
        decode_header(raw, PATH)
    except (CorruptFileError, UnsupportedFormatError) as exc:
        assert PATH in str(exc)


@FUZZ
@given(st.binary(max_size=5000))
def test_random_bytes_are_never_a_header(raw: bytes) -> None:
    _decode(raw)


@FUZZ
@given(st.sampled_from([FIXED, VARIABLE]), st.integers(0, COLUMNS_AT + 4 * COLUMN_SIZE - 1),
       st.binary(min_size=1, max_size=24))
def test_damaged_fields_under_a_valid_checksum_are_detected(kind: str, at: int,
                                                            patch: bytes) -> None:
    buf = bytearray(_header(kind))
    buf[at : at + len(patch)] = patch
    _decode(_with_crc(buf[:4096]))


# a type string as a header stores it: 8 ASCII bytes (docs/format.md "Header")
type_strings = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=8)


@FUZZ
@given(st.integers(0, 3), type_strings)
def test_any_stored_type_string_is_a_clean_error(column: int, text: str) -> None:
    buf = bytearray(_header())
    at = COLUMNS_AT + column * COLUMN_SIZE + 32
    buf[at : at + 8] = text.encode("ascii").ljust(8, b"\0")
    _decode(_with_crc(buf))


@pytest.mark.parametrize("text", [",i8", "i8,", "(", "i8)", "U4,U4", "[(1,2)]", "f8\n"])
def test_a_stored_type_string_numpy_cannot_parse_is_corrupt(text: str) -> None:
    buf = bytearray(_header())
    at = COLUMNS_AT + 32
    buf[at : at + 8] = text.encode("ascii").ljust(8, b"\0")
    with pytest.raises(CorruptFileError, match="header fields are invalid"):
        decode_header(_with_crc(buf), PATH)


@FUZZ
@given(st.one_of(st.text(max_size=30), st.binary(max_size=30), st.integers(), st.none(),
                 st.floats(), st.lists(st.text(max_size=5), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)))
def test_any_column_type_is_supported_or_a_schema_error(spec: Any) -> None:
    try:
        dt = normalise_dtype(spec, "c")
    except SchemaError as exc:
        assert "'c'" in str(exc)
    else:
        assert dt.kind in "fiuU"
    try:
        parse_wire_type(spec)
    except WireError:
        pass


def _valid_raw() -> tuple[Schema, bytes, int, int]:
    schema = Schema.from_spec(parse_timeframe("1Min"), VARIABLE, {"Price": "f8", "Size": "i4"})
    entries = np.zeros(2, dtype=ENTRY_DTYPE)
    entries["slot"] = [3, 7]
    entries["rows"] = [2, 1]
    ns = np.array([1, 2, 3], dtype="<u4")
    price = np.array([1.5, 2.25, 3.0], dtype="<f8")
    size = np.array([100, 200, 300], dtype="<i4")
    table = bytes(8)  # every column stored at full width
    return schema, entries.tobytes() + table + ns.tobytes() + price.tobytes() + \
        size.tobytes(), 2, 3


def _block(raw: bytes, entries: int, rows: int, flags: int = 1) -> bytes:
    frame = zstandard.ZstdCompressor().compress(raw)
    head = BLOCK_HEADER.pack(BLOCK_MAGIC, flags, 0, entries, rows, len(raw), len(frame), 0)
    crc = crc32c.crc32c(frame, crc32c.crc32c(head[:-4]))
    return head[:-4] + struct.pack("<I", crc) + frame


def test_the_block_builder_makes_a_valid_block() -> None:
    schema, raw, entries, rows = _valid_raw()
    (block,) = decode_blocks([(4096, _block(raw, entries, rows))], schema, PATH, ["block"],
                             nslots=100)
    assert list(block.slots) == [3, 7]


@FUZZ
@given(st.integers(0, 200), st.binary(min_size=1, max_size=16), st.integers(0, 1),
       st.integers(-1, 1), st.integers(-1, 1))
def test_damaged_tick_blocks_under_a_valid_checksum_are_corrupt(
        at: int, patch: bytes, flags: int, dentries: int, drows: int) -> None:
    schema, raw, entries, rows = _valid_raw()
    damaged = bytearray(raw)
    damaged[at : at + len(patch)] = patch
    block = _block(bytes(damaged), max(entries + dentries, 0), max(rows + drows, 0), flags)
    try:
        decode_blocks([(4096, block)], schema, PATH, ["block"], nslots=100)
    except (CorruptFileError, UnsupportedFormatError) as exc:
        assert PATH in str(exc)


datasets = st.fixed_dictionaries({}, optional={
    "names": st.lists(st.one_of(st.text(max_size=6), st.binary(max_size=6), st.integers()),
                      max_size=4),
    "types": st.lists(st.one_of(st.sampled_from(["i8", "f4", "U3", "b1", "f8\n"]), st.text(
        max_size=4), st.none()), max_size=4),
    "data": st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=20), st.integers()),
                     max_size=4),
    "length": st.one_of(st.integers(-2, 5), st.booleans(), st.text(max_size=2)),
    "startindex": st.one_of(st.dictionaries(st.text(max_size=20), st.integers(-2, 6),
                                            max_size=3), st.integers()),
    "lengths": st.one_of(st.dictionaries(st.text(max_size=20), st.integers(-2, 6), max_size=3),
                         st.lists(st.integers())),
})


@FUZZ
@given(datasets)
def test_any_rpc_dataset_decodes_or_is_a_wire_error(ds: dict[str, Any]) -> None:
    try:
        decode_dataset(ds)
    except WireError:
        pass
