"""Bucket keys and query patterns (engine/keys.py): validated before any path use."""

from __future__ import annotations

import pytest

from mkts.engine.errors import InvalidInputError, InvalidKeyError, MktsError
from mkts.engine.keys import BucketKey, parse_key, parse_pattern


@pytest.mark.parametrize(
    "key",
    ["AAPL/1Min/OHLCV", "BRK.B/1D/OHLCV", "BTC-USD/1H/OHLCV", "^GSPC/1D/OHLCV", "ES=F/5Min/TRADE",
     "a_b/10Sec/x1", "S" * 64 + "/1Min/OHLCV"],
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
        "S" * 65 + "/1Min/OHLCV",  # overlong part
        "AAPL/1Min/" + "A" * 65,
        "A" * 300,  # overlong key
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
    with pytest.raises(InvalidKeyError, match="64"):
        parse_key("S" * 65 + "/1Min/OHLCV")


# -- patterns ------------------------------------------------------------------------------
def test_pattern_keeps_symbols_in_request_order() -> None:
    assert parse_pattern("MSFT,AAPL/1Min/OHLCV").symbols == ("MSFT", "AAPL")
    assert parse_pattern("AAPL,MSFT/1Min/OHLCV").symbols == ("AAPL", "MSFT")


def test_pattern_drops_repeated_symbols() -> None:
    assert parse_pattern("B,A,B/1Min/OHLCV").symbols == ("B", "A")


def test_pattern_star_means_every_value() -> None:
    p = parse_pattern("*/*/*")
    assert (p.symbols, p.timeframe, p.attrgroup) == (None, None, None)
    assert p.matches(BucketKey("X", "1D", "Y"))


def test_pattern_matches_whole_parts_only() -> None:
    p = parse_pattern("AAPL,MSFT/1Min/OHLCV")
    assert p.matches(parse_key("AAPL/1Min/OHLCV"))
    assert p.matches(parse_key("MSFT/1Min/OHLCV"))
    assert not p.matches(parse_key("AAPLX/1Min/OHLCV"))
    assert not p.matches(parse_key("AAPL/5Min/OHLCV"))
    assert not p.matches(parse_key("AAPL/1Min/OHLC"))
    q = parse_pattern("*/1D/OHLCV")
    assert q.matches(parse_key("ZZ/1D/OHLCV"))
    assert not q.matches(parse_key("ZZ/1H/OHLCV"))
    r = parse_pattern("AAPL/*/*")
    assert r.matches(parse_key("AAPL/1H/TRADE"))
    assert not r.matches(parse_key("MSFT/1H/TRADE"))


@pytest.mark.parametrize(
    "pattern",
    [
        "A,,B/1Min/OHLCV",  # an empty symbol in the list
        ",A/1Min/OHLCV",
        "A,../1Min/OHLCV",
        "A,B\0/1Min/OHLCV",
        "AA*/1Min/OHLCV",  # '*' only as a whole part
        "A,*/1Min/OHLCV",
        "AAPL/7Min/OHLCV",
        "AAPL/2D/OHLCV",
        "AAPL/1Min",
        "AAPL/1Min/OHLCV/x",
        "AAPL//OHLCV",
        "AAPL/1Min/a\\b",
    ],
)
def test_invalid_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(InvalidKeyError):
        parse_pattern(pattern)


def test_non_string_pattern_is_rejected() -> None:
    with pytest.raises(InvalidKeyError):
        parse_pattern(["AAPL/1Min/OHLCV"])  # type: ignore[arg-type]
