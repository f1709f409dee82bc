"""Bucket keys (engine/keys.py): validated before any path use. Patterns: test_patterns.py."""

from __future__ import annotations

import pytest

from mkts.engine.errors import InvalidInputError, InvalidKeyError, MktsError
from mkts.engine.keys import parse_key


@pytest.mark.parametrize(
    "key",
    ["AAPL/1Min/OHLCV", "BRK.B/1D/OHLCV", "BTC-USD/1H/OHLCV", "^GSPC/1D/OHLCV", "ES=F/5Min/TRADE",
     "a_b/10Sec/x1", "S" * 64 + "/1Min/OHLCV", "S" * 255 + "/1Min/" + "A" * 243],
)
def test_valid_keys_parse_into_their_parts(key: str) -> None:
    k = parse_key(key)
    sym, tf, attr = key.split("/")
    assert (k.symbol, k.timeframe, k.attrgroup) == (sym, tf, attr)
    assert str(k) == key
    assert parse_key(k) is k


def test_key_timeframe_is_parsed() -> None:
    assert parse_key("AAPL/5Min/OHLCV").tf.seconds == 300


@pytest.mark.parametrize(
    "key",
    [
        "../1Min/OHLCV",  # parent directory
        "AAPL/../OHLCV",
        "AAPL/1Min/..",
        "./1Min/OHLCV",
        ".hidden/1Min/OHLCV",  # dot files
        "A\\B/1Min/OHLCV",  # a Windows separator inside a part
        "A\0B/1Min/OHLCV",  # NUL
        "AAPL/1Min/OH\0",
        "/1Min/OHLCV",  # empty parts
        "AAPL//OHLCV",
        "AAPL/1Min/",
        "",
        "AAPL/1Min",  # wrong number of parts
        "AAPL/1Min/OHLCV/extra",
        "/AAPL/1Min/OHLCV",
        "AAPL/1Min/OHLCV/",
        "S" * 256 + "/1Min/OHLCV",  # a part longer than a directory name may be
        "AAPL/1Min/" + "A" * 244,  # no room for destroy's .<attr>.destroying
        "A" * 800,  # overlong key
        "AAPL,MSFT/1Min/OHLCV",  # a pattern is not a key
        "*/1Min/OHLCV",
        "AAPL/*/OHLCV",
        "AA PL/1Min/OHLCV",  # whitespace
        " AAPL/1Min/OHLCV",
        "AAPL:X/1Min/OHLCV",
        "AAPL/7Min/OHLCV",  # a bad timeframe
        "AAPL/1m/OHLCV",
    ],
)
def test_invalid_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        parse_key(key)


@pytest.mark.parametrize("symbol", ["wal", "WAL", "Wal", "lock", "LOCK", "mkts.root", "damaged"])
def test_reserved_symbols_are_rejected(symbol: str) -> None:
    with pytest.raises(InvalidKeyError, match="reserved"):
        parse_key(f"{symbol}/1Min/OHLCV")


@pytest.mark.parametrize("key", [None, 42, b"AAPL/1Min/OHLCV", ("AAPL", "1Min")])
def test_non_string_keys_are_rejected(key: object) -> None:
    with pytest.raises(InvalidKeyError):
        parse_key(key)  # type: ignore[arg-type]


def test_invalid_key_error_is_a_value_error_and_an_mkts_error() -> None:
    with pytest.raises(ValueError) as info:
        parse_key("../1Min/OHLCV")
    assert isinstance(info.value, MktsError)
    assert isinstance(info.value, InvalidInputError)
    assert "../1Min/OHLCV" in str(info.value)


def test_overlong_part_message_names_the_limit() -> None:
    with pytest.raises(InvalidKeyError, match="at most 255, as a directory name is at most 255 bytes"):
        parse_key("S" * 256 + "/1Min/OHLCV")
