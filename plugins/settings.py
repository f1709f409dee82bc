"""Typed settings: frozen dataclasses built from plain mappings, checked the same way for
mkts.yml (mkts/config.py) and for every plugin's `config:` (the bundled plugins' and yours).

A schema is a frozen dataclass whose field types say what a value must be (`str`, `int`,
`float`, `bool`, `Literal[...]`, `tuple[X, ...]` for a list, `Mapping[str, Any]`, a nested
schema, `X | None`, `X | Y`) and whose defaults say what a missing key means (no default:
required). `rules(...)` in a field's metadata adds value checks and a description for error
messages; a field with `{"internal": True}` metadata is not a key (set by code, not data). `build` refuses unknown keys, wrong types and bad values with a `ConfigError`
whose message names the key path, the value and what is allowed:

    @dataclass(frozen=True)
    class MyConfig:
        column: str = "Close"
        every_s: float = field(default=1.0, metadata=rules(check=at_least(0)))

    def NewTrigger(config):
        cfg = build(MyConfig, config, source="mytrigger config")
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from mkts.engine import parse_pattern
from mkts.plugins.errors import ConfigError

__all__ = ["rules", "build", "schema_paths", "positive", "at_least", "between", "nonempty",
           "key_pattern", "ConfigError"]

_T = TypeVar("_T")
Check = Callable[[Any], "str | None"]


def rules(*, check: Check | None = None, each: Check | None = None,
          help: str | None = None) -> dict[str, Any]:
    """Field metadata: `check(value)` and, for a list, `each(item)` return what is wrong with
    a value (or None); `help` says what the key holds (shown with type errors)."""
    out: dict[str, Any] = {}
    if check is not None:
        out["check"] = check
    if each is not None:
        out["each"] = each
    if help is not None:
        out["help"] = help
    return out


# -- common checks -------------------------------------------------------------------------
def positive(v: Any) -> str | None:
    return None if v > 0 else "must be greater than 0"


def at_least(low: float) -> Check:
    def check(v: Any) -> str | None:
        return None if v >= low else f"must be at least {low:g}"
    return check


def between(low: float, high: float, unit: str = "") -> Check:
    def check(v: Any) -> str | None:
        return None if low <= v <= high else f"must be from {low:g} to {high:g}{unit}"
    return check


def nonempty(v: Any) -> str | None:
    if isinstance(v, str):
        return None if v.strip() else "must not be empty"
    return None if len(v) else "must not be empty"


def key_pattern(v: str) -> str | None:
    try:
        parse_pattern(v)
    except ValueError as exc:
        return (f"is not a key pattern ({exc}); write SYMBOL/TIMEFRAME/ATTRGROUP with * for "
                "any part, e.g. '*/1Min/OHLCV'")
    return None


# -- building ------------------------------------------------------------------------------
def build(cls: type[_T], data: Any, *, source: str, path: str = "",
          error: type[ConfigError] = ConfigError) -> _T:
    """The `cls` instance `data` (a mapping; None = all defaults) describes. `source` names
    where the data came from (a file, "ondiskagg config"); `path` is the key path of `data`
    inside it. Raises `error` (a ConfigError) naming the key path."""
    return typing.cast(_T, _Builder(source, error).build(cls, {} if data is None else data,
                                                          path + "." if path else ""))


def schema_paths(cls: type) -> set[str]:
    """Every key path a schema knows: `timezone`, `wal.sync`, `triggers[].on`, ..."""
    out: set[str] = set()

    def walk(c: type, prefix: str) -> None:
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            if f.metadata.get("internal"):
                continue
            p = prefix + f.name
            out.add(p)
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, p + ".")  # type: ignore[arg-type]
            elif typing.get_origin(tp) is tuple and dataclasses.is_dataclass(
                    typing.get_args(tp)[0]):
                walk(typing.get_args(tp)[0], p + "[].")

    walk(cls, "")
    return out


class _Builder:
    def __init__(self, source: str, error: type[ConfigError]) -> None:
        self.source = source
        self.error = error

    def fail(self, path: str, problem: str) -> ConfigError:
        return self.error(problem, path, self.source)

    def build(self, cls: type, data: Any, prefix: str) -> Any:
        if not isinstance(data, Mapping):
            path = prefix.rstrip(".")
            problem = f"must be a mapping of keys, not {_tname(data)} {data!r}"
            raise self.fail(path, problem if path else f"the top level: {problem}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        if True in data and "on" in fields and "on" not in data:
            # YAML 1.1 reads a bare `on:` key as the boolean true; it means the `on` key.
            data = {("on" if k is True else k): v for k, v in data.items()}
        for key in data:
            if key not in fields:
                near = difflib.get_close_matches(str(key), list(fields), n=1)
                hint = f"; did you mean {prefix}{near[0]}?" if near else \
                    f"; known keys here: {', '.join(fields)}"
                raise self.fail(f"{prefix}{key}", f"unknown key{hint}")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            p = prefix + name
            help_ = f.metadata.get("help")
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise self.fail(p, f"is required ({help_})" if help_ else
                                    "is required; add it")
                continue
            value = self.value(hints[name], data[name], p, help_)
            each = f.metadata.get("each")
            if each is not None and isinstance(value, tuple):
                for i, item in enumerate(value):
                    problem = each(item)
                    if problem:
                        raise self.fail(f"{p}[{i}]", f"{item!r} {problem}")
            check = f.metadata.get("check")
            if check is not None:
                problem = check(value)
                if problem:
                    raise self.fail(p, f"{_shown(data[name])} {problem}"
                                    + (f" ({help_})" if help_ else ""))
            kwargs[name] = value
        return cls(**kwargs)

    def value(self, tp: Any, v: Any, path: str, help_: str | None = None) -> Any:
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self.build(tp, {} if v is None else v, path + ".")  # type: ignore[arg-type]
        if origin in (types.UnionType, typing.Union):
            options = typing.get_args(tp)
            if v is None and type(None) in options:
                return None
            for alt in options:
                if alt is not type(None) and _fits(alt, v):
                    return self.value(alt, v, path, help_)
            raise self.fail(path, f"must be {_describe(tp)}, not {_tname(v)} {v!r}"
                            + (f" ({help_})" if help_ else ""))
        if origin is Literal:
            choices = typing.get_args(tp)
            if v not in choices:
                raise self.fail(path, f"{v!r} is not allowed; use one of "
                                      f"{', '.join(str(c) for c in choices)}")
            return v
        if origin is tuple:
            item = typing.get_args(tp)[0]
            if v is None:
                return ()
            if not isinstance(v, (list, tuple)):
                raise self.fail(path, f"must be a list, not {_tname(v)} {v!r}"
                                + (f" ({help_})" if help_ else ""))
            return tuple(self.value(item, x, f"{path}[{i}]") for i, x in enumerate(v))
        if origin is Mapping or tp is Mapping:
            if v is None:
                return types.MappingProxyType({})
            if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
                raise self.fail(path, f"must be a mapping with text keys, not {v!r}")
            return types.MappingProxyType(dict(v))
        if not _fits(tp, v):
            raise self.fail(path, f"must be {_describe(tp)}, not {_tname(v)} {v!r}"
                            + (f" ({help_})" if help_ else ""))
        return float(v) if tp is float else v


def _fits(tp: Any, v: Any) -> bool:
    """Whether `v` has the shape of `tp` (for choosing among the types of a union)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) or origin is Mapping or tp is Mapping:
        return isinstance(v, Mapping)
    if origin is tuple:
        return isinstance(v, (list, tuple))
    if origin is Literal:
        return v in typing.get_args(tp)
    if tp is bool:
        return isinstance(v, bool)
    if isinstance(v, bool):
        return False
    if tp is float:
        return isinstance(v, (int, float))
    return isinstance(tp, type) and isinstance(v, tp)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"a list ({_describe(typing.get_args(tp)[0])} each)"
    if origin is Literal:
        return "one of " + ", ".join(str(c) for c in typing.get_args(tp))
    if dataclasses.is_dataclass(tp) or origin is Mapping or tp is Mapping:
        return "a mapping of keys"
    return {str: "text", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _tname(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _shown(v: Any) -> str:
    return repr(list(v)) if isinstance(v, tuple) else repr(v)
