"""A key part with a trailing newline (`"AAPL\\n/1Min/OHLCV"`) passed the key pattern (its `$`
matches before a final newline) and created a directory `AAPL\\n` that lists like `AAPL`.
Every key part is now matched whole: control characters are refused, nothing is created."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mkts.engine.errors import InvalidKeyError
from mkts.engine.keys import parse_key
from mkts.engine.patterns import parse_pattern
from mkts.engine.timeframes import parse_timeframe

BAD_KEYS = [
    "AAPL\n/1Min/OHLCV",
    "AAPL/1Min/OHLCV\n",
    "AAPL/1Min\n/OHLCV",
    "AA\rPL/1Min/OHLCV",
    "AAPL\t/1Min/OHLCV",
    "AAPL\x1b/1Min/OHLCV",
    "AAPL\x7f/1Min/OHLCV",
    "AAPL\x85/1Min/OHLCV",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_control_characters_in_a_key_are_refused(
        db: Any, key: str, snapshot: Callable[[str], dict[str, bytes | None]]) -> None:
    before = snapshot(db.root)
    rows = np.zeros(1, dtype=[("Epoch", "<i8"), ("Close", "<f4")])
    rows["Epoch"] = 1_704_153_600
    with pytest.raises(InvalidKeyError, match="character that is not allowed"):
        db.write(key, rows)
    with pytest.raises(InvalidKeyError, match="character that is not allowed"):
        db.create(key, {"Close": "f4"})
    with pytest.raises(InvalidKeyError):
        parse_pattern(key)
    assert snapshot(db.root) == before
    assert not any("\n" in name or "\t" in name for name in os.listdir(db.root))


def test_a_timeframe_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidKeyError):
        parse_timeframe("1Min\n")
    with pytest.raises(InvalidKeyError):
        parse_key("AAPL/1Min\n/OHLCV")
