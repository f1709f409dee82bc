"""Query-function call strings as MarketStore writes them: `candlecandler('1H',Open,High,Low,
Close,Sum::Volume)`. Splits a call into its name, single-quoted literals and column tokens,
and binds the tokens to a function's declared parameters. Pure text; no lookup, no data.

The error texts are MarketStore's, so clients that match on them keep working
(docs/server.md "Query functions").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mkts.engine.errors import FunctionError

__all__ = ["Call", "parse_call", "bind", "go_list"]


@dataclass(frozen=True, slots=True)
class Call:
    """One parsed call: `name` as typed (spaces removed), the `literals` in order and the
    column `tokens` (`Open`, `Sum::Volume`, `*`) in order."""

    text: str
    name: str
    literals: tuple[str, ...]
    tokens: tuple[str, ...]


def go_list(items: Sequence[str]) -> str:
    """A list as Go's `%s` prints it: `[a b c]` (MarketStore's messages use it)."""
    return "[" + " ".join(items) + "]"


def parse_call(text: str) -> Call:
    """Split `name(args)`: the name before the first `(`, the arguments up to the last `)`
    (anything after it is ignored). Single-quoted literals are taken out first, contents kept
    exactly; the rest is split on commas, each piece stripped of spaces, empty ones dropped.
    Double quotes are not quotes: `"1Min"` is a column token."""
    if not isinstance(text, str):
        raise FunctionError(f"a function call must be a string like \"count(*)\", not {text!r}")
    s = text.strip(" ")
    open_at, close_at = s.find("("), s.rfind(")")
    if open_at < 0 or close_at < 0 or close_at < open_at:
        raise FunctionError(f"unable to parse function call {s}")
    name = s[:open_at].replace(" ", "")
    inner = s[open_at + 1 : close_at]
    literals: list[str] = []
    rest: list[str] = []
    i = 0
    while True:
        q = inner.find("'", i)
        if q < 0:
            rest.append(inner[i:])
            break
        end = inner.find("'", q + 1)
        if end < 0:
            raise FunctionError(f"unclosed literal {inner[q + 1 :]}")
        rest.append(inner[i:q])
        literals.append(inner[q + 1 : end])
        i = end + 1
    tokens = tuple(t for t in (p.strip(" ") for p in "".join(rest).split(",")) if t)
    return Call(s, name, tuple(literals), tokens)


def bind(call: Call, required: Sequence[str], optional: Sequence[str]) -> dict[str, list[str]]:
    """Bind the call's column tokens to parameter names: {parameter: [columns]}.

    `Param::Column` binds to `Param` (again: one more column); required parameters still
    unbound take the positional tokens in order, and the leftovers fill the optional ones in
    order. Unlike MarketStore a single leftover token is bound too (MarketStore needs two:
    an off-by-one); a named prefix must be a declared parameter (MarketStore ignores unknown
    ones silently). Errors carry MarketStore's text behind `Argument mapping error for name`."""
    tokens = list(call.tokens)
    prefix = f"Argument mapping error for {call.name}: "
    if len(tokens) < len(required):
        raise FunctionError(f"{prefix}have {go_list(tokens)}, need {go_list(list(required))}")
    declared = set(required) | set(optional)
    out: dict[str, list[str]] = {}
    positional: list[str] = []
    for tok in tokens:
        parts = tok.split("::")
        if len(parts) == 2:
            if parts[0] not in declared:
                names = ", ".join(list(required) + list(optional)) or "none"
                raise FunctionError(f"{prefix}unknown parameter {parts[0]!r} in {tok!r}; "
                                    f"{call.name} takes {names} (names are case-sensitive)")
            out.setdefault(parts[0], []).append(parts[1])
        else:
            positional.append(tok)
    unbound = [r for r in required if r not in out]
    if len(positional) < len(unbound):
        raise FunctionError(f"{prefix}insufficient args: have {go_list(tokens)}, "
                            f"required {go_list(list(required))}")
    for name in unbound:
        out[name] = [positional.pop(0)]
    for name in optional:
        if not positional:
            break
        if name not in out:
            out[name] = [positional.pop(0)]
    if positional:
        raise FunctionError(f"{prefix}extra args used: have {go_list(tokens)}, required "
                            f"{go_list(list(required))}, optional {go_list(list(optional))}")
    return out
