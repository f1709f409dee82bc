"""Column ids, fills and schema versions (engine/columns.py) and the format-3 header that
carries them (engine/header.py, docs/format.md "Header, format 3"): round trips, what each
change gives, what it refuses, and `translate`."""

from __future__ import annotations

import struct

import crc32c
import numpy as np
import pytest

from mkts.engine.columns import (
    ColumnTable,
    add_column,
    check_fill,
    drop_column,
    rename_column,
    translate,
)
from mkts.engine.errors import CorruptFileError, SchemaError, UnknownColumnError
from mkts.engine.header import COLUMNS_FORMAT_VERSION, decode_header, encode_header
from mkts.engine.schema import FIXED, VARIABLE, Schema
from mkts.engine.timeframes import parse_timeframe

OHLCV = {"Open": "f4", "High": "f4", "Low": "f4", "Close": "f4", "Volume": "i8"}
KEY = "AAPL/1Min/OHLCV"


def _schema(columns: dict[str, str] = OHLCV, kind: str = FIXED) -> Schema:
    return Schema.from_spec(parse_timeframe("1Min"), kind, columns)


def _start() -> tuple[Schema, ColumnTable]:
    s = _schema()
    return s, ColumnTable.initial(s)


def test_format_1_columns_have_ids_1_to_n_and_schema_version_1() -> None:
    raw = encode_header(_schema(), 2024, 527_040, 1_704_067_200, "UTC")
    h = decode_header(raw, "x")
    assert h.table is None and h.version == 1
    assert h.columns == ColumnTable(1, (1, 2, 3, 4, 5), (0, 0, 0, 0, 0), 5)


@pytest.mark.parametrize("kind", [FIXED, VARIABLE])
@pytest.mark.parametrize("year", [0, 2024])
def test_format_3_header_round_trips_ids_fills_and_version(kind: str, year: int) -> None:
    s, t = _schema({"Price": "f8", "Size": "i8", "Venue": "U8", "Flag": "u1"}, kind), None
    t = ColumnTable(7, (3, 9, 4, 12), (-1.25, 2**62 + 1, "", 200), 15)
    raw = encode_header(s, year, 8784 if year else 0, 0, "Europe/London", t)
    h = decode_header(raw, "x")
    assert h.version == COLUMNS_FORMAT_VERSION and h.table == t
    assert h.schema == s and h.timezone == "Europe/London" and h.year == year
    assert h.slot_checks == (kind == VARIABLE)


def test_format_3_header_of_96_wide_columns_takes_two_pages() -> None:
    s = _schema({f"c{i}": "f8" for i in range(96)})
    t = ColumnTable(2, tuple(range(1, 97)), tuple(float(i) for i in range(96)), 96)
    raw = encode_header(s, 0, 0, 0, "UTC", t)
    assert len(raw) == 8192  # 144 + 48 x 96 + 8 x 96 + 4 bytes
    assert decode_header(raw, "x").table == t


def _damaged(change: int) -> bytes:
    s, t = _start()
    buf = bytearray(encode_header(s, 0, 0, 0, "UTC", ColumnTable(2, t.ids, t.fills, 5)))
    struct.pack_into("<H", buf, 144 + 48 * 1 + 40, change)  # the id of the second column
    struct.pack_into("<I", buf, len(buf) - 4, crc32c.crc32c(bytes(buf[:-4])))
    return bytes(buf)


@pytest.mark.parametrize("bad_id", [0, 1, 6])  # 0, a duplicate, above the last id
def test_format_3_header_with_inconsistent_ids_is_corrupt(bad_id: int) -> None:
    with pytest.raises(CorruptFileError, match="column ids"):
        decode_header(_damaged(bad_id), "x")


def test_add_column_assigns_a_new_id_and_bumps_the_version() -> None:
    s, t = add_column(*_start(), "VWAP", "f8", 1.5, KEY)
    assert s.names[-1] == "VWAP" and t == ColumnTable(2, (1, 2, 3, 4, 5, 6),
                                                       (0, 0, 0, 0, 0, 1.5), 6)


def test_a_dropped_columns_id_is_never_given_again() -> None:
    s, t = drop_column(*_start(), "Volume", KEY)
    assert t.ids == (1, 2, 3, 4) and t.last_id == 5
    s, t = add_column(s, t, "Volume", "i8", 0, KEY)
    assert t.ids == (1, 2, 3, 4, 6) and t.version == 3


def test_rename_keeps_the_id() -> None:
    s, t = rename_column(*_start(), "Close", "Last", KEY)
    assert s.names == ["Open", "High", "Low", "Last", "Volume"] and t.ids == (1, 2, 3, 4, 5)


@pytest.mark.parametrize(("change", "error", "match"), [
    (lambda s, t: add_column(s, t, "Open", "f8", 0, KEY), SchemaError, "exists already"),
    (lambda s, t: add_column(s, t, "Epoch", "i8", 0, KEY), SchemaError, "reserved"),
    (lambda s, t: add_column(s, t, "Nanoseconds", "i4", 0, KEY), SchemaError, "reserved"),
    (lambda s, t: add_column(s, t, "", "f8", 0, KEY), SchemaError, "non-empty"),
    (lambda s, t: add_column(s, t, "x" * 33, "f8", 0, KEY), SchemaError, "32 bytes"),
    (lambda s, t: add_column(s, t, "V", "c16", 0, KEY), SchemaError, "not supported"),
    (lambda s, t: add_column(s, t, "V", "i2", 1.5, KEY), SchemaError, "not an integer"),
    (lambda s, t: add_column(s, t, "V", "u1", 256, KEY), SchemaError, "does not fit"),
    (lambda s, t: add_column(s, t, "V", "U4", "x", KEY), SchemaError, "filled with ''"),
    (lambda s, t: add_column(s, t, "V", "f8", "x", KEY), SchemaError, "not a number"),
    (lambda s, t: drop_column(s, t, "Epoch", KEY), SchemaError, "keeps its times"),
    (lambda s, t: drop_column(s, t, "Nope", KEY), UnknownColumnError, "no column 'Nope'"),
    (lambda s, t: rename_column(s, t, "Nope", "X", KEY), UnknownColumnError, "no column"),
    (lambda s, t: rename_column(s, t, "Open", "High", KEY), SchemaError, "exists already"),
    (lambda s, t: rename_column(s, t, "Nanoseconds", "N", KEY), SchemaError, "keeps its"),
])
def test_bad_changes_are_refused_with_a_named_error(change, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        change(*_start())


def test_the_only_column_cannot_be_dropped() -> None:
    s = _schema({"Price": "f8"})
    with pytest.raises(SchemaError, match="only column"):
        drop_column(s, ColumnTable.initial(s), "Price", KEY)


def test_check_fill_keeps_exact_values() -> None:
    assert check_fill(3.0, np.dtype("i8"), "c") == 3
    assert check_fill(-128, np.dtype("i1"), "c") == -128
    assert check_fill(0, np.dtype("U8"), "c") == ""
    with pytest.raises(SchemaError, match="f4"):
        check_fill(1e300, np.dtype("f4"), "c")
    with pytest.raises(SchemaError, match="not a number"):
        check_fill(True, np.dtype("i8"), "c")


def test_translate_copies_by_id_fills_added_and_leaves_out_dropped() -> None:
    s0, t0 = _start()
    s1, t1 = rename_column(s0, t0, "Close", "Last", KEY)
    s1, t1 = drop_column(s1, t1, "High", KEY)
    s1, t1 = add_column(s1, t1, "VWAP", "f8", 7.5, KEY)
    rows = np.zeros(3, dtype=s0.result_dtype)
    rows["Epoch"] = [10, 20, 30]
    rows["Close"] = [1, 2, 3]
    rows["High"] = 99
    rows["Volume"] = [4, 5, 6]
    out = translate(rows, (s0, t0), (s1, t1), s1.result_dtype)
    assert out.dtype == s1.result_dtype
    assert out["Epoch"].tolist() == [10, 20, 30]
    assert out["Last"].tolist() == [1, 2, 3] and out["Volume"].tolist() == [4, 5, 6]
    assert out["VWAP"].tolist() == [7.5] * 3
    assert "High" not in (out.dtype.names or ())


def test_translate_of_a_reused_name_does_not_read_the_dropped_values() -> None:
    s0, t0 = _start()
    s1, t1 = drop_column(s0, t0, "Volume", KEY)
    s1, t1 = add_column(s1, t1, "Volume", "i8", -1, KEY)  # a new column with an old name
    rows = np.zeros(2, dtype=s0.result_dtype)
    rows["Volume"] = [100, 200]
    out = translate(rows, (s0, t0), (s1, t1), s1.result_dtype)
    assert out["Volume"].tolist() == [-1, -1]


def test_translate_of_tick_records_keeps_nanoseconds() -> None:
    s0 = _schema({"Price": "f8", "Size": "i8"}, VARIABLE)
    t0 = ColumnTable.initial(s0)
    s1, t1 = add_column(s0, t0, "Venue", "U4", "", KEY)
    rows = np.zeros(2, dtype=s0.result_dtype)
    rows["Nanoseconds"] = [5, 6]
    rows["Price"] = [1.5, 2.5]
    out = translate(rows, (s0, t0), (s1, t1), s1.result_dtype)
    assert out["Nanoseconds"].tolist() == [5, 6] and out["Venue"].tolist() == ["", ""]
    assert list(out.dtype.names or ()) == ["Epoch", "Price", "Size", "Venue", "Nanoseconds"]


@pytest.mark.parametrize("added", ["i2", "f8", "U3"])
def test_translate_between_row_sizes_of_any_alignment(added: str) -> None:
    # 24-byte rows (a multiple of 8) into rows of 26, 32 or 36 bytes, and back
    s0 = _schema({"Price": "f8", "Size": "i4"}, VARIABLE)
    t0 = ColumnTable.initial(s0)
    s1, t1 = add_column(s0, t0, "X", added, 0, KEY)
    rows = np.zeros(3, dtype=s0.result_dtype)
    rows["Price"], rows["Size"], rows["Nanoseconds"] = [1.5, 2.5, 3.5], [1, 2, 3], [7, 8, 9]
    out = translate(rows, (s0, t0), (s1, t1), s1.result_dtype)
    assert out["Price"].tolist() == [1.5, 2.5, 3.5] and out["Size"].tolist() == [1, 2, 3]
    assert out["Nanoseconds"].tolist() == [7, 8, 9]
    back = translate(out, (s1, t1), (s0, t0), s0.result_dtype)
    assert back.tobytes() == rows.tobytes()
