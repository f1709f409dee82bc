"""mkts.engine.uniq gives what np.unique gives, for the integer arrays the engine dedupes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mkts.engine.uniq import unique, unique_first, unique_inverse

ints = hnp.arrays(
    dtype=st.sampled_from([np.int64, np.int32, np.uint32, np.int16]),
    shape=st.integers(0, 300),
    elements=st.integers(0, 40),
)


@settings(max_examples=300, deadline=None)
@given(ints)
def test_same_answers_as_np_unique(a: np.ndarray) -> None:
    want, want_first, want_inv = np.unique(a, return_index=True, return_inverse=True)
    got = unique(a)
    assert got.dtype == a.dtype
    np.testing.assert_array_equal(got, want)
    v, first = unique_first(a)
    np.testing.assert_array_equal(v, want)
    np.testing.assert_array_equal(first, want_first)  # the FIRST occurrence of each value
    v, inv = unique_inverse(a)
    np.testing.assert_array_equal(v, want)
    np.testing.assert_array_equal(inv, want_inv.reshape(-1))
    np.testing.assert_array_equal(v[inv], a)
    v, first, inv = unique_inverse(a, first=True)
    np.testing.assert_array_equal(first, want_first)
    np.testing.assert_array_equal(v[inv], a)


def test_first_index_is_the_earliest_of_equal_values() -> None:
    a = np.array([7, 3, 7, 3, 1, 7], dtype=np.int64)
    v, first = unique_first(a)
    assert v.tolist() == [1, 3, 7]
    assert first.tolist() == [4, 1, 0]


def test_result_does_not_alias_the_input() -> None:
    a = np.array([5], dtype=np.int64)
    u = unique(a)
    u[0] = 9
    assert a[0] == 5
