"""The key-pattern language (engine/patterns.py): one parser for queries, triggers' `on:`,
subscriptions, the stream hub, the CLI and the server."""

from __future__ import annotations

import pytest

from mkts.engine.errors import InvalidInputError, InvalidKeyError
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.patterns import KeyPattern, parse_pattern

KEYS = ["MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV", "AAPL/1D/OHLCV", "AAX/1Min/OHLCV",
        "XAAPL/1Min/OHLCV", "AAPL/1Min/TRADE", "AAPL/5Min/OHLCV2"]


def select(pattern: str) -> list[str]:
    return parse_pattern(pattern).select(KEYS)


# -- what matches --------------------------------------------------------------------------
def test_an_exact_pattern_matches_its_key_only() -> None:
    p = parse_pattern("AAPL/1Min/OHLCV")
    assert p.exact
    assert select("AAPL/1Min/OHLCV") == ["AAPL/1Min/OHLCV"]
    assert p.matches(parse_key("AAPL/1Min/OHLCV")) and p.matches("AAPL/1Min/OHLCV")
    assert not p.matches("AAPL/1Min/OHLC") and not p.matches("AAPL/1Min/OHLCV/x")


def test_star_matches_every_value_of_one_part() -> None:
    assert select("*/1Min/OHLCV") == ["AAPL/1Min/OHLCV", "AAX/1Min/OHLCV", "MSFT/1Min/OHLCV",
                                      "XAAPL/1Min/OHLCV"]
    assert select("AAPL/*/*") == ["AAPL/1D/OHLCV", "AAPL/1Min/OHLCV", "AAPL/1Min/TRADE",
                                  "AAPL/5Min/OHLCV2"]
    assert len(select("*/*/*")) == len(KEYS)
    assert not parse_pattern("*/*/*").exact


def test_a_glob_is_anchored_and_stays_inside_its_part() -> None:
    assert select("AA*/1Min/OHLCV") == ["AAPL/1Min/OHLCV", "AAX/1Min/OHLCV"]  # not XAAPL
    assert select("*APL/1Min/OHLCV") == ["AAPL/1Min/OHLCV", "XAAPL/1Min/OHLCV"]
    assert select("A*L/1Min/OHLCV") == ["AAPL/1Min/OHLCV"]
    assert select("AAPL/*Min/OHLCV*") == ["AAPL/1Min/OHLCV", "AAPL/5Min/OHLCV2"]
    assert select("AAPL/1Min/OHLC") == []  # no prefix match without a *
    assert not parse_pattern("A*/1Min/OHLCV").matches("A/B/1Min/OHLCV")
    assert parse_pattern("AAPL*/1Min/OHLCV").matches("AAPL/1Min/OHLCV")  # * matches nothing too


def test_a_comma_list_keeps_request_order_sorted_within_a_glob() -> None:
    assert select("MSFT,AAPL/1Min/OHLCV") == ["MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV"]
    assert select("MSFT,AA*/1Min/OHLCV") == ["MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV",
                                             "AAX/1Min/OHLCV"]
    # a key matched by two alternatives comes once, at the first
    assert select("AAPL,A*,AAPL/1Min/OHLCV") == ["AAPL/1Min/OHLCV", "AAX/1Min/OHLCV"]
    assert select("AAPL/1D,1Min/OHLCV,TRADE") == ["AAPL/1D/OHLCV", "AAPL/1Min/OHLCV",
                                                  "AAPL/1Min/TRADE"]
    assert select(" MSFT , AAPL /1Min/OHLCV") == ["MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV"]


def test_unknown_symbols_select_nothing() -> None:
    assert select("NOPE,MSFT/1Min/OHLCV") == ["MSFT/1Min/OHLCV"]


def test_select_keeps_the_type_of_its_keys() -> None:
    keys = [parse_key(k) for k in KEYS]
    got = parse_pattern("MSFT,AA*/1Min/OHLCV").select(keys)
    assert all(isinstance(k, BucketKey) for k in got)
    assert [str(k) for k in got] == select("MSFT,AA*/1Min/OHLCV")


def test_patterns_are_values() -> None:
    p = parse_pattern("AA*/1Min/OHLCV")
    assert p == KeyPattern("AA*/1Min/OHLCV") and hash(p) == hash(KeyPattern("AA*/1Min/OHLCV"))
    assert parse_pattern(p) is p
    assert str(p) == "AA*/1Min/OHLCV" and "AA*/1Min/OHLCV" in repr(p)


# -- what is refused -----------------------------------------------------------------------
@pytest.mark.parametrize(("pattern", "message"), [
    ("A,,B/1Min/OHLCV", "the symbol part 'A,,B' has an empty name between commas"),
    (",A/1Min/OHLCV", "the symbol part ',A' has an empty name"),
    ("AAPL//OHLCV", "the timeframe part is empty"),
    ("AA?/1Min/OHLCV", "the symbol part 'AA?' has a character that is not allowed"),
    ("[AB]*/1Min/OHLCV", "the symbol part '[AB]*' has a character"),
    ("{A,B}/1Min/OHLCV", "the symbol part '{A' has a character"),
    ("A,B\0/1Min/OHLCV", "the symbol part 'B\\x00'"),
    ("A,../1Min/OHLCV", "the symbol part '..' may not start with '.'"),
    ("AAPL/1Min/a\\b", "the attribute group part 'a\\\\b'"),
    ("AAPL/7Min/OHLCV", "the timeframe part: timeframe '7Min'"),
    ("AAPL/2D/OHLCV", "the timeframe part: timeframe '2D'"),
    ("AAPL/1Minute/OHLCV", "the timeframe part: timeframe '1Minute' is not valid"),
    ("S" * 256 + "/1Min/OHLCV", "longer than 255 characters"),
    ("AAPL/1Min", "must have three parts"),
    ("AAPL/1Min/OHLCV/x", "must have three parts"),
    ("", "must have three parts"),
])
def test_invalid_patterns_name_the_part(pattern: str, message: str) -> None:
    with pytest.raises(InvalidKeyError) as exc:
        parse_pattern(pattern)
    assert message in str(exc.value)
    assert isinstance(exc.value, InvalidInputError) and isinstance(exc.value, ValueError)


def test_non_string_pattern_is_rejected() -> None:
    with pytest.raises(InvalidKeyError, match="must be a string"):
        parse_pattern(["AAPL/1Min/OHLCV"])  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError, match="must be a string"):
        parse_pattern(None)  # type: ignore[arg-type]


# -- the same language at the edges -----------------------------------------------------------
def test_ws_streams_are_key_patterns() -> None:
    from mkts.streaming import StreamError, parse_streams

    got = parse_streams(["AA*/1Min/OHLCV", "{MSFT,IBM}/1D/*"])
    assert got == [parse_pattern("AA*/1Min/OHLCV"), parse_pattern("MSFT,IBM/1D/*")]
    assert got[0].select(KEYS) == select("AA*/1Min/OHLCV")
    with pytest.raises(StreamError, match=r"AA\?/1Min/OHLCV is an invalid stream: .*the "
                                          r"symbol part 'AA\?'"):
        parse_streams(["AA?/1Min/OHLCV"])


def test_config_on_is_a_key_pattern() -> None:
    from mkts import config

    cfg = config.from_dict({"root_directory": "/tmp/x", "triggers": [
        {"module": "stream.so", "on": "MSFT,AA*/1Min/*"}]})
    assert cfg.triggers[0].on == "MSFT,AA*/1Min/*"
    with pytest.raises(config.ConfigError, match=r"triggers\[0\]\.on: .*the timeframe part"):
        config.from_dict({"root_directory": "/tmp/x", "triggers": [
            {"module": "stream.so", "on": "*/1Minute/OHLCV"}]})


def test_ws_streams_are_refused_one_by_one() -> None:
    from mkts.streaming import StreamError, split_streams

    patterns, texts, refused = split_streams(["AA*/1Min/OHLCV", "AA?/1Min/OHLCV", 5,
                                              "{MSFT,IBM}/1D/*"])
    assert patterns == [parse_pattern("AA*/1Min/OHLCV"), parse_pattern("MSFT,IBM/1D/*")]
    assert texts == ["AA*/1Min/OHLCV", "{MSFT,IBM}/1D/*"]
    assert [r.stream for r in refused] == ["AA?/1Min/OHLCV", "5"]
    assert refused[0].error.startswith("AA?/1Min/OHLCV is an invalid stream: ")
    assert refused[1].error.startswith("5 is an invalid stream: a stream is a text")
    with pytest.raises(StreamError, match="must be a list"):
        split_streams("AAPL/1Min/OHLCV")


def test_keys_lists_the_named_buckets_and_none_for_wildcards() -> None:
    assert parse_pattern("AAPL,MSFT/1Min,1D/OHLCV").keys() == [
        parse_key(k) for k in ("AAPL/1Min/OHLCV", "AAPL/1D/OHLCV", "MSFT/1Min/OHLCV",
                               "MSFT/1D/OHLCV")]
    assert parse_pattern("AAPL,wal/1D/OHLCV").keys() == [parse_key("AAPL/1D/OHLCV")]
    assert parse_pattern("*/1D/OHLCV").keys() is None
    assert parse_pattern("AA*/1D/OHLCV").keys() is None
