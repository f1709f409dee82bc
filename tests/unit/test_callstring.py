"""Call strings as MarketStore writes them (engine.callstring): literals, tokens, binding and
MarketStore's error texts; the departures of docs/server.md "Query functions"."""

from __future__ import annotations

import pytest

from mkts.engine.callstring import bind, parse_call
from mkts.engine.errors import FunctionError

CANDLE = (("Open", "High", "Low", "Close"), ("Sum", "Avg"))
TICK = (("CandlePrice",), ("Sum", "Avg"))


def test_literals_and_tokens_are_split_in_order() -> None:
    c = parse_call("F(P1, 'L1', P2, 'L2', Sum::P5)")
    assert c.name == "F"
    assert c.literals == ("L1", "L2")
    assert c.tokens == ("P1", "P2", "Sum::P5")


def test_a_space_before_the_parenthesis_is_part_of_no_name() -> None:
    assert parse_call("  COUNT (Open)  ").name == "COUNT"


def test_literal_contents_are_kept_exactly() -> None:
    assert parse_call("gap(' 1H ')").literals == (" 1H ",)


def test_text_after_the_last_parenthesis_is_ignored() -> None:
    c = parse_call("count(*) trailing")
    assert (c.name, c.tokens) == ("count", ("*",))


def test_double_quotes_are_part_of_a_column_token() -> None:
    assert parse_call('tickcandler("1Min", Price)').tokens == ('"1Min"', "Price")


def test_empty_pieces_are_dropped() -> None:
    assert parse_call("f(a,, ,b,)").tokens == ("a", "b")


def test_no_parentheses_is_unable_to_parse() -> None:
    with pytest.raises(FunctionError, match=r"^unable to parse function call count$"):
        parse_call(" count ")


def test_an_unclosed_quote_names_the_rest() -> None:
    with pytest.raises(FunctionError, match=r"^unclosed literal 1H, Price$"):
        parse_call("tickcandler('1H, Price)")


def test_positional_tokens_bind_required_in_order() -> None:
    got = bind(parse_call("candlecandler('1H', O, H, L, C)"), *CANDLE)
    assert got == {"Open": ["O"], "High": ["H"], "Low": ["L"], "Close": ["C"]}


def test_named_tokens_bind_first_and_repeat_appends() -> None:
    got = bind(parse_call("tickcandler('1H', CandlePrice::Bid, CandlePrice::Ask, Sum::V, "
                          "Sum::W)"), *TICK)
    assert got == {"CandlePrice": ["Bid", "Ask"], "Sum": ["V", "W"]}


def test_two_leftover_tokens_fill_sum_and_avg() -> None:
    got = bind(parse_call("tickcandler('1Min', Price, Size, Size)"), *TICK)
    assert got == {"CandlePrice": ["Price"], "Sum": ["Size"], "Avg": ["Size"]}


def test_one_leftover_token_binds_too() -> None:
    """MarketStore rejects a single leftover (an off-by-one); mkts binds it to Sum."""
    got = bind(parse_call("tickcandler('1Min', Price, Size)"), *TICK)
    assert got == {"CandlePrice": ["Price"], "Sum": ["Size"]}


def test_too_few_tokens_is_have_need() -> None:
    with pytest.raises(FunctionError, match=r"^Argument mapping error for candlecandler: "
                       r"have \[Open\], need \[Open High Low Close\]$"):
        bind(parse_call("candlecandler('1H', Open)"), *CANDLE)


def test_a_literal_alone_is_no_token() -> None:
    with pytest.raises(FunctionError, match=r"have \[\], need \[\*\]"):
        bind(parse_call("count('x')"), ("*",), ())


def test_named_tokens_leaving_required_unbound_is_insufficient() -> None:
    with pytest.raises(FunctionError, match=r"insufficient args: have \[Sum::V Sum::W "
                       r"Sum::X Sum::Y\], required \[Open High Low Close\]"):
        bind(parse_call("candlecandler('1H', Sum::V, Sum::W, Sum::X, Sum::Y)"), *CANDLE)


def test_surplus_tokens_are_extra_args() -> None:
    with pytest.raises(FunctionError, match=r"^Argument mapping error for gap: extra args "
                       r"used: have \[X\], required \[\], optional \[\]$"):
        bind(parse_call("gap(X)"), (), ())


def test_an_unknown_parameter_prefix_is_an_error_not_ignored() -> None:
    """MarketStore ignores `sum::Volume` silently; mkts names the parameters."""
    with pytest.raises(FunctionError, match=r"unknown parameter 'sum' in 'sum::Volume'.*Sum"):
        bind(parse_call("tickcandler('1H', Price, sum::Volume)"), *TICK)
