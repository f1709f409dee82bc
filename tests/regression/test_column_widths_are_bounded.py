"""A string column of `U100000` was accepted and made a 210 GB (apparent) year file. String
columns hold at most 256 characters and a record (Epoch and every column) at most 4 KiB;
more is a SchemaError naming the column, its width and the limit, and nothing is created."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mkts.engine.errors import SchemaError
from mkts.engine.schema import MAX_RECORD_BYTES, MAX_STRING_CHARS

T0 = 1_704_153_600
KEY = "WIDE/1Min/OHLCV"


def test_the_limits_are_the_documented_ones() -> None:
    assert (MAX_STRING_CHARS, MAX_RECORD_BYTES) == (256, 4096)


@pytest.mark.parametrize("variable", [False, True])
def test_a_string_column_wider_than_the_limit_is_refused(
        db: Any, variable: bool, snapshot: Callable[[str], dict[str, Any]]) -> None:
    before = snapshot(db.root)
    with pytest.raises(SchemaError, match=r"column 'Note': U100000 is 100000 characters wide; "
                                          r"string columns hold at most 256"):
        db.create(KEY, {"Close": "f8", "Note": "U100000"}, variable=variable)
    rows = np.zeros(1, dtype=[("Epoch", "<i8"), ("Note", "<U257")])
    rows["Epoch"] = T0
    with pytest.raises(SchemaError, match=r"column 'Note': U257 is 257 characters wide"):
        db.write(KEY, rows, variable=variable)
    assert snapshot(db.root) == before
    assert not os.path.exists(os.path.join(db.root, "WIDE"))


def test_the_widest_string_is_accepted(db: Any) -> None:
    rows = np.zeros(1, dtype=[("Epoch", "<i8"), ("Note", "<U256")])
    rows["Epoch"] = T0
    rows["Note"] = "x" * 256
    db.write(KEY, rows)
    assert db.query(KEY)[KEY]["Note"][0] == "x" * 256


def test_a_record_over_4_kib_is_refused(db: Any) -> None:
    columns = {f"s{i}": "U256" for i in range(4)}  # 4 KiB of text + Epoch
    with pytest.raises(SchemaError, match=r"a record of these columns is 4104 bytes; at most "
                                          r"4096 .*'s0' U256 \(1024 bytes\)"):
        db.create(KEY, columns)
    columns["s3"] = "U254"  # 8 + 3 * 1024 + 1016 = 4096
    db.create(KEY, columns)
    assert db.info(KEY)["columns"]["s0"] == "U256"
