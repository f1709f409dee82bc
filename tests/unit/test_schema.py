"""Schemas and the casting rules for incoming columns (engine/schema.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mkts.engine.errors import InvalidInputError, SchemaError
from mkts.engine.schema import FIXED, VARIABLE, Schema, cast_column, normalise_dtype
from mkts.engine.timeframes import parse_timeframe

TF = parse_timeframe("1Min")


# -- casting -------------------------------------------------------------------------------
@pytest.mark.parametrize("src", ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"])
@pytest.mark.parametrize("target", ["f4", "f8"])
def test_int_to_float_always_casts(src: str, target: str) -> None:
    values = np.array([0, 1, 100], dtype=src)
    out = cast_column(values, np.dtype(target), "Open")
    assert out.dtype == np.dtype(target)
    assert out.tolist() == [0.0, 1.0, 100.0]


def test_large_int_to_float_is_allowed_with_rounding() -> None:
    out = cast_column(np.array([2**53 + 1], dtype="i8"), np.dtype("f8"), "Volume")
    assert out.tolist() == [float(2**53)]


def test_f8_to_f4_casts() -> None:
    out = cast_column(np.array([1.5, -2.25, 1e10]), np.dtype("f4"), "Close")
    assert out.dtype == np.dtype("f4")
    assert out.tolist() == [1.5, -2.25, np.float32(1e10)]


def test_f4_to_f8_casts() -> None:
    out = cast_column(np.array([1.5], dtype="f4"), np.dtype("f8"), "Close")
    assert out.dtype == np.dtype("f8") and out.tolist() == [1.5]


@pytest.mark.parametrize(
    "src,target,values",
    [("i8", "i4", [-(2**31), 0, 2**31 - 1]), ("i8", "i1", [-128, 127]), ("i8", "u1", [0, 255]),
     ("u8", "i8", [0, 2**63 - 1]), ("i4", "u2", [0, 65535]), ("i2", "i8", [-5, 5]),
     ("u4", "i8", [2**32 - 1])],
)
def test_int_to_narrower_int_casts_when_every_value_fits(src: str, target: str,
                                                          values: list[int]) -> None:
    out = cast_column(np.array(values, dtype=src), np.dtype(target), "Volume")
    assert out.dtype == np.dtype(target)
    assert out.tolist() == values


@pytest.mark.parametrize(
    "src,target,values,bad",
    [("i8", "i4", [1, 2**31], 2**31), ("i8", "i4", [-(2**31) - 1, 0], -(2**31) - 1),
     ("i8", "u4", [5, -1], -1), ("i2", "i1", [300], 300), ("u8", "i8", [2**63], 2**63),
     ("i8", "u1", [256], 256), ("u2", "u1", [1, 256], 256)],
)
def test_int_to_narrower_int_that_does_not_fit_names_column_and_value(
    src: str, target: str, values: list[int], bad: int
) -> None:
    with pytest.raises(SchemaError) as info:
        cast_column(np.array(values, dtype=src), np.dtype(target), "Volume")
    assert "Volume" in str(info.value)
    assert str(bad) in str(info.value)


def test_empty_int_column_casts_to_a_narrower_int() -> None:
    out = cast_column(np.array([], dtype="i8"), np.dtype("i1"), "Volume")
    assert out.dtype == np.dtype("i1") and len(out) == 0


@pytest.mark.parametrize("src", ["f4", "f8"])
@pytest.mark.parametrize("target", ["i1", "i4", "i8", "u8"])
def test_float_to_int_is_an_error(src: str, target: str) -> None:
    with pytest.raises(SchemaError, match="Volume"):
        cast_column(np.array([1.0, 2.0], dtype=src), np.dtype(target), "Volume")


@pytest.mark.parametrize("src", ["<U8", "S8", "O"])
@pytest.mark.parametrize("target", ["f4", "i8"])
def test_strings_to_numbers_are_errors(src: str, target: str) -> None:
    with pytest.raises(SchemaError, match="Open"):
        cast_column(np.array(["1", "2"], dtype=src), np.dtype(target), "Open")


@pytest.mark.parametrize("src", ["f8", "i8", "u1"])
def test_numbers_to_strings_are_errors(src: str) -> None:
    with pytest.raises(SchemaError, match="Venue"):
        cast_column(np.array([1, 2], dtype=src), np.dtype("<U16"), "Venue")


@pytest.mark.parametrize("target", ["f8", "i8", "u1", "<U16"])
def test_bool_is_an_error(target: str) -> None:
    with pytest.raises(SchemaError, match="Flag"):
        cast_column(np.array([True, False]), np.dtype(target), "Flag")


def test_strings_cast_to_a_wider_or_narrower_width_when_they_fit() -> None:
    out = cast_column(np.array(["NYSE", "ARCA"], dtype="<U32"), np.dtype("<U4"), "Venue")
    assert out.dtype == np.dtype("<U4") and out.tolist() == ["NYSE", "ARCA"]
    out = cast_column(np.array(["X"], dtype="<U1"), np.dtype("<U16"), "Venue")
    assert out.tolist() == ["X"]


def test_strings_too_long_for_the_column_are_an_error() -> None:
    with pytest.raises(SchemaError, match="Venue"):
        cast_column(np.array(["NASDAQ"], dtype="<U8"), np.dtype("<U4"), "Venue")


def test_same_type_is_returned_unchanged() -> None:
    values = np.array([1.0, 2.0], dtype="f4")
    assert cast_column(values, np.dtype("f4"), "Open") is values


def test_schema_error_is_a_value_error() -> None:
    assert issubclass(SchemaError, ValueError)
    assert issubclass(SchemaError, InvalidInputError)


# -- dtypes --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                                  np.float32, ">f8", ">i4"])
def test_numeric_dtypes_are_stored_little_endian(spec: object) -> None:
    dt = normalise_dtype(spec, "x")
    assert dt.byteorder in ("<", "|")
    assert dt == np.dtype(spec).newbyteorder("<")


def test_strings_need_a_width() -> None:
    assert normalise_dtype("U16", "x") == np.dtype("<U16")
    with pytest.raises(SchemaError, match="width"):
        normalise_dtype("U", "Venue")


@pytest.mark.parametrize("spec", ["?", "c8", "c16", "O", "M8[s]", "m8[s]", "f2", "S8", "V8",
                                  "not a type", object])
def test_unsupported_dtypes_are_rejected(spec: object) -> None:
    with pytest.raises(SchemaError):
        normalise_dtype(spec, "x")


# -- schemas -------------------------------------------------------------------------------
def test_schema_from_a_dict_keeps_column_order() -> None:
    s = Schema.from_spec(TF, FIXED, {"Close": "f8", "Open": "f4", "Venue": "U4"})
    assert s.names == ["Close", "Open", "Venue"]
    assert s.describe() == {"Epoch": "i8", "Close": "f8", "Open": "f4", "Venue": "U4"}


def test_schema_from_a_dtype_skips_epoch() -> None:
    dtype = np.dtype([("Epoch", "i8"), ("Open", "f4"), ("Volume", "i8")])
    s = Schema.from_spec(TF, FIXED, dtype)
    assert s.names == ["Open", "Volume"]
    assert s.dtype_of("Volume") == np.dtype("i8")


def test_variable_schema_describes_nanoseconds_last() -> None:
    s = Schema.from_spec(TF, VARIABLE, {"Price": "f8"})
    assert list(s.describe()) == ["Epoch", "Price", "Nanoseconds"]


def test_record_layout_is_packed_and_padded_to_8_bytes() -> None:
    s = Schema.from_spec(TF, FIXED, {"Open": "f4", "High": "f4", "Low": "f4", "Close": "f4",
                                     "Volume": "i8"})
    assert s.record_dtype.itemsize == 32  # 8 + 4*4 + 8
    assert s.record_dtype.fields["Volume"][1] == 24
    s2 = Schema.from_spec(TF, FIXED, {"A": "u1"})
    assert s2.record_dtype.itemsize == 16  # 8 + 1, padded
    assert s2.result_dtype.names == ("Epoch", "A")


@pytest.mark.parametrize(
    "columns",
    [{"_slot": "i8"}, {"": "f4"}, {"x" * 33: "f4"}, {"a\0b": "f4"},
     {f"c{i}": "f4" for i in range(97)}, {"Open": "f2"}],
)
def test_bad_schemas_are_rejected(columns: dict[str, str]) -> None:
    with pytest.raises(SchemaError):
        Schema.from_spec(TF, FIXED, columns)


@pytest.mark.parametrize("columns", [{}, {"Epoch": "i8"}])
def test_a_fixed_bucket_may_hold_epoch_alone(columns: dict[str, str]) -> None:
    s = Schema.from_spec(TF, FIXED, columns)
    assert s.names == [] and s.result_names == ["Epoch"]
    assert s.record_dtype.itemsize == 8
    with pytest.raises(SchemaError, match="tick bucket needs at least one column"):
        Schema.from_spec(TF, VARIABLE, columns)


def test_nanoseconds_is_ordinary_in_fixed_buckets_and_the_time_in_tick_buckets() -> None:
    spec = {"Ask": "f4", "Nanoseconds": "i4"}
    assert Schema.from_spec(TF, FIXED, spec).result_names == ["Epoch", "Ask", "Nanoseconds"]
    assert Schema.from_spec(TF, VARIABLE, spec).names == ["Ask"]
    with pytest.raises(SchemaError, match="reserved"):
        Schema(TF, VARIABLE, (("Nanoseconds", np.dtype("i4")),))


def test_duplicate_column_is_rejected() -> None:
    with pytest.raises(SchemaError, match="twice"):
        Schema(TF, FIXED, (("A", np.dtype("f4")), ("A", np.dtype("f8"))))


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(SchemaError):
        Schema.from_spec(TF, "ticks", {"A": "f4"})


def test_dtype_of_unknown_column_is_an_error() -> None:
    s = Schema.from_spec(TF, FIXED, {"A": "f4"})
    with pytest.raises(SchemaError, match="B"):
        s.dtype_of("B")
