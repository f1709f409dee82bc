"""Query-time functions: the contract a function plugin meets, finding one by name (entry-point
group `mkts.functions`), and running a chain of calls over a read's result.

Parsing and binding call strings is engine.callstring; the bundled functions are plugins
(mkts.plugins.functions), found through their entry points like anyone else's. The contract
for authors is in docs/plugins.md "Query functions".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mkts.engine.callstring import Call, bind, parse_call
from mkts.engine.entrypoints import entry_point
from mkts.engine.errors import FunctionError, MktsError
from mkts.engine.result import Result
from mkts.engine.timeutil import Calendar

__all__ = ["GROUP", "Function", "FunctionArgs", "FunctionContext", "FunctionSpec",
           "find_function", "apply_functions", "columns_of", "to_result"]

GROUP = "mkts.functions"

Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class FunctionArgs:
    """What `NewFunction(args)` receives: the call's `name` as typed, its single-quoted
    `literals` in order, and `columns`: each declared parameter bound to the input columns
    it names ({"Open": ["Open"], "Sum": ["Volume"]}; a parameter bound twice holds two)."""

    name: str
    literals: tuple[str, ...]
    columns: Mapping[str, list[str]]


@dataclass(frozen=True)
class FunctionContext:
    """What a function may know besides its input: the bucket `key` being processed
    ("AAPL/1Min/OHLCV"), the database `calendar` (its zone: candle boundaries) and `read`,
    which returns every row of another bucket as columns, or None when it does not exist."""

    key: str
    calendar: Calendar
    read: Callable[[str], Mapping[str, np.ndarray] | None]


@runtime_checkable
class Function(Protocol):
    """A built function: `apply(columns, ctx)` takes the input table ({name: array}, Epoch
    first, rows in time order unless an earlier function reordered them) and returns the
    output table the same way. It must not modify its input."""

    def apply(self, columns: Mapping[str, np.ndarray], ctx: FunctionContext) -> Columns: ...


@dataclass(frozen=True)
class FunctionSpec:
    """A function found by name: its constructor and declared parameters (module attributes
    REQUIRED, OPTIONAL, INIT_ARGS of the plugin; defaults (), (), 0)."""

    name: str
    factory: Callable[[FunctionArgs], Function]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    init_args: int = 0


_specs: dict[str, FunctionSpec] = {}
_lock = threading.Lock()


def find_function(name: str) -> FunctionSpec:
    """The function `name` (case-insensitive) registered in the entry-point group
    `mkts.functions`; FunctionError with MarketStore's text when there is none."""
    key = name.lower()
    spec = _specs.get(key)
    if spec is not None:
        return spec
    ep = entry_point(GROUP, name, ignore_case=True)
    if ep is None:
        raise FunctionError(f'no function in the UDA Registry named "{name}"')
    try:
        target = ep.load()
    except Exception as exc:
        raise FunctionError(f"function {name!r}: entry point {ep.value!r} in group {GROUP!r} "
                            f"could not be loaded: {type(exc).__name__}: {exc}") from exc
    factory = getattr(target, "NewFunction", target)
    if not callable(factory):
        raise FunctionError(f"function {name!r}: entry point {ep.value!r} is neither a module "
                            "with NewFunction(args) nor a callable")
    spec = FunctionSpec(
        ep.name, factory,
        tuple(getattr(target, "REQUIRED", ())), tuple(getattr(target, "OPTIONAL", ())),
        int(getattr(target, "INIT_ARGS", 0)))
    with _lock:
        _specs[key] = spec
    return spec


def build(call: Call) -> Function:
    """Look up, bind and construct one call, checks in MarketStore's order (name, binding,
    number of literals, constructor)."""
    spec = find_function(call.name)
    bound = bind(call, spec.required, spec.optional)
    if len(call.literals) < spec.init_args:
        quoted = any('"' in t for t in call.tokens)
        hint = " (literals take single quotes: '1Min', not \"1Min\")" if quoted else ""
        raise FunctionError(f"not enough init arguments for {call.name}, need "
                            f"{spec.init_args} have {len(call.literals)}{hint}")
    try:
        fn = spec.factory(FunctionArgs(call.name, call.literals, bound))
    except MktsError as exc:
        raise FunctionError(f"init aggfunc during query: {exc}") from exc
    except Exception as exc:
        raise FunctionError(f"init aggfunc during query: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(fn, "apply", None)):
        raise FunctionError(f"function {call.name!r}: NewFunction returned {fn!r}, which has "
                            "no apply(columns, ctx) method")
    return fn


def prepare(calls: Sequence[str]) -> list[Function]:
    """Parse and build every call before any data is read (a bad call fails fast)."""
    if isinstance(calls, str):
        raise FunctionError("functions must be a list of call strings, e.g. "
                            "[\"candlecandler('1H',Open,High,Low,Close,Sum::Volume)\"]")
    return [build(parse_call(c)) for c in calls]


def columns_of(result: Result) -> Columns:
    """A Result as {column: array} (views, no copy)."""
    return {c: result[c] for c in result.columns}


def to_result(key: str, columns: Mapping[str, np.ndarray], timezone: str) -> Result:
    """{column: array} (equal lengths, Epoch first) as a Result."""
    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0
    for name, col in columns.items():
        if np.ndim(col) != 1 or len(col) != n:
            raise FunctionError(f"a function returned column {name!r} with "
                                f"{np.shape(col)} values where the others have {n}")
    dtype = np.dtype([(name, np.asarray(col).dtype) for name, col in columns.items()])
    data = np.empty(n, dtype=dtype)
    for name, col in columns.items():
        data[name] = col
    return Result(key, data, names, timezone)


def apply_functions(functions: Sequence[Function], result: Result, ctx: FunctionContext
                    ) -> Result:
    """Run the chain left to right, each call on the previous one's output."""
    cols: Mapping[str, np.ndarray] = columns_of(result)
    for fn in functions:
        out: Any = fn.apply(cols, ctx)
        if not isinstance(out, Mapping):
            raise FunctionError(f"function {fn!r} returned {type(out).__name__}, not a "
                                "mapping of column names to arrays")
        if next(iter(out), None) != "Epoch" or np.asarray(out["Epoch"]).dtype.kind not in "iu":
            raise FunctionError(f"function {fn!r} returned columns {list(out)}; the first "
                                "must be Epoch, integer epoch seconds")
        cols = out
    return to_result(result.key, cols, result.timezone)


def resample_calls(names: Sequence[str], timeframe: str, *, calendar: str | None,
                   price: str | None, volume: str | None) -> list[str]:
    """The function chain behind `Database.resample` for a bucket with columns `names`:
    `session('<calendar>')` when given, then `resample('<tf>', ...)` over Open/High/Low/Close
    (bars) or `price` (ticks; default Price), summing `volume` (default Volume, for ticks
    also Size) as Volume."""
    for what, value in (("timeframe", timeframe), ("calendar", calendar)):
        if value is not None and (not isinstance(value, str) or "'" in value or not value):
            raise FunctionError(f"resample: {what} must be a string like "
                                f"{'4H' if what == 'timeframe' else 'XNYS'}, not {value!r}")
    have = set(names)

    def need(col: str, why: str) -> str:
        if col not in have:
            raise FunctionError(f"resample: column {col!r} ({why}) is not in the bucket; it "
                                f"has {', '.join(names)}")
        return col

    if price is None and all(c in have for c in ("Open", "High", "Low", "Close")):
        args = ["Open::Open", "High::High", "Low::Low", "Close::Close"]
    else:
        args = [f"Price::{need(price or 'Price', 'the price; pass price=')}"]
    if volume is not None:
        args.append(f"Volume::{need(volume, 'volume=')}")
    else:
        found = next((c for c in ("Volume", "Size") if c in have), None)
        if found is not None:
            args.append(f"Volume::{found}")
    calls = [f"session('{calendar}')"] if calendar is not None else []
    return [*calls, f"resample('{timeframe}',{','.join(args)})"]
