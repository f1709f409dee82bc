"""Timeframe strings (engine/timeframes.py): N x Sec|Min|H|D that divides a day."""

from __future__ import annotations

import pytest

from mkts.engine.errors import InvalidKeyError
from mkts.engine.timeframes import STANDARD_TIMEFRAMES, parse_timeframe

SECONDS = {
    "1Sec": 1, "10Sec": 10, "30Sec": 30, "1Min": 60, "5Min": 300, "15Min": 900, "30Min": 1800,
    "1H": 3600, "2H": 7200, "4H": 14400, "1D": 86400,
}  # fmt: skip


@pytest.mark.parametrize("name", list(SECONDS))
def test_standard_timeframes_parse_to_their_length(name: str) -> None:
    tf = parse_timeframe(name)
    assert tf.seconds == SECONDS[name]
    assert tf.name == name
    assert str(tf) == name


def test_standard_list_is_the_documented_one() -> None:
    assert tuple(STANDARD_TIMEFRAMES) == tuple(SECONDS)


@pytest.mark.parametrize(
    "name,seconds",
    [("2Sec", 2), ("15Sec", 15), ("2Min", 120), ("3Min", 180), ("20Min", 1200), ("3H", 10800),
     ("6H", 21600), ("8H", 28800), ("12H", 43200), ("24H", 86400), ("1440Min", 86400),
     ("86400Sec", 86400)],
)
def test_other_lengths_that_divide_a_day_are_accepted(name: str, seconds: int) -> None:
    assert parse_timeframe(name).seconds == seconds


@pytest.mark.parametrize(
    "name",
    ["7Min", "7Sec", "11Min", "5H", "7H", "13H", "25H", "2D", "7D", "1441Min", "86401Sec"],
)
def test_lengths_that_do_not_divide_a_day_are_rejected(name: str) -> None:
    with pytest.raises(InvalidKeyError, match=name):
        parse_timeframe(name)


@pytest.mark.parametrize(
    "name",
    ["", "Min", "0Min", "01Min", "-1Min", "1.5H", "1 Min", "1min", "1M", "1h", "1d", "1S",
     "1Secs", "1Minute", "1W", "1Y", " 1Min", "1Min ", "1000000Sec"],
)
def test_malformed_timeframes_are_rejected(name: str) -> None:
    with pytest.raises(InvalidKeyError):
        parse_timeframe(name)


def test_non_string_timeframe_is_rejected() -> None:
    with pytest.raises(InvalidKeyError):
        parse_timeframe(60)  # type: ignore[arg-type]


def test_only_a_whole_day_is_daily() -> None:
    assert parse_timeframe("1D").is_daily
    assert parse_timeframe("24H").is_daily
    assert not parse_timeframe("12H").is_daily
    assert not parse_timeframe("1Min").is_daily


def test_timeframe_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_timeframe("7Min")
