"""mkts.wire's body decoding: values are counted exactly before anything is built, a body
over its budget is refused, and any bytes raise only WireError."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mkts.wire import (
    JSON,
    MAX_VALUES,
    MSGPACK,
    BodyLimitError,
    WireError,
    _msgpack_values,
    decode_body,
    value_budget,
)

scalars = (st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1)
           | st.floats(allow_nan=False, width=32) | st.text(max_size=40) | st.binary(max_size=300))
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=20)
    | st.dictionaries(st.text(max_size=10), inner, max_size=10), max_leaves=200)


def count(obj: Any) -> int:
    if isinstance(obj, list):
        return 1 + sum(count(x) for x in obj)
    if isinstance(obj, dict):
        return 1 + sum(1 + count(v) for v in obj.values())
    return 1


@settings(max_examples=300, deadline=None)
@given(values, st.booleans())
def test_msgpack_values_are_counted_exactly(obj: Any, single_float: bool) -> None:
    body = msgpack.packb(obj, use_bin_type=True, use_single_float=single_float)
    assert _msgpack_values(body, 1 << 40) == count(obj)


def test_ext_types_are_skipped_whole() -> None:
    body = msgpack.packb([msgpack.ExtType(1, b"x" * n) for n in (1, 2, 4, 8, 16, 3, 300, 70_000)])
    assert _msgpack_values(body, 1 << 40) == 9


def test_the_count_stops_just_past_the_limit() -> None:
    body = b"\xdd" + (50_000_000).to_bytes(4, "big") + b"\x80" * 1000
    assert _msgpack_values(body, 100) == 101


@pytest.mark.parametrize("kind,body", [
    (MSGPACK, msgpack.packb([{}] * 200_000)),
    (JSON, b"[" + b",".join([b"{}"] * 100_000) + b"]"),
])
def test_a_body_of_empty_maps_is_refused(kind: str, body: bytes) -> None:
    with pytest.raises(BodyLimitError, match=r"holds more than \d+ values .*split it"):
        decode_body(body, kind)


def test_the_budget_grows_with_the_body_up_to_a_cap() -> None:
    assert value_budget(0) == 10_000
    assert value_budget(8_000) == 11_000
    assert value_budget(1 << 30) == MAX_VALUES


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_raise_only_wire_errors(body: bytes) -> None:
    for kind in (MSGPACK, JSON):
        try:
            decode_body(body, kind)
        except WireError:
            pass
