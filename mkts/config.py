"""mkts.yml: the one typed, frozen configuration schema and its loader.

Owns parsing and validating the file (`yaml.safe_load` only); what the settings do belongs to
the engine (`wal`, `timezone`), the plugins (`triggers`, `bgworkers`) and the server. The
commented copy with every key and its default is `mkts.yml` at the repository root; a test
keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from mkts.engine import KeyGlob, MktsError

__all__ = ["Config", "WalConfig", "StorageConfig", "TriggerConfig", "BgWorkerConfig", "ConfigError", "load",
           "from_dict", "schema_paths", "LOG_LEVELS"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(MktsError, ValueError):
    """mkts.yml is unreadable or invalid; the message names the key path and the fix."""


def _check(fn: Callable[[Any], str | None]) -> dict[str, Any]:
    """Field metadata: `fn(value)` returns what is wrong with a value, or None."""
    return {"check": fn}


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _not_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be 0 (derived from the descriptor limit) or more"


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else "must be a TCP port between 1 and 65535"


def _timezone(v: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone name; use e.g. UTC or America/New_York"
    return None


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _glob(v: str) -> str | None:
    try:
        KeyGlob(v)
    except ValueError:
        return ("is not a bucket key glob; write SYMBOL/TIMEFRAME/ATTRGROUP with * for any "
                "part, e.g. '*/1Min/OHLCV'")
    return None


@dataclass(frozen=True)
class WalConfig:
    """The write-ahead log (docs/wal.md)."""

    sync: Literal["always", "interval", "off"] = "always"
    sync_interval_ms: int = field(default=100, metadata=_check(_positive))
    checkpoint_interval_s: float = field(default=60.0,
                                         metadata=_check(_positive))
    max_size_mb: int = field(default=256, metadata=_check(_positive))
    recovery: Literal["tolerate_torn_tail", "point_in_time"] = "tolerate_torn_tail"


@dataclass(frozen=True)
class StorageConfig:
    """The data files (docs/format.md "Open files")."""

    max_open_files: int = field(default=0, metadata=_check(_not_negative))  # 0: automatic


@dataclass(frozen=True)
class TriggerConfig:
    """One trigger: `module` (dotted path, entry point or ondiskagg.so), `on` (key glob)."""

    module: str = field(metadata=_check(_nonempty))
    on: str = field(metadata=_check(_glob))
    config: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True)
class BgWorkerConfig:
    """One background worker: `module`, a `name` for logs, its own `config`."""

    module: str = field(metadata=_check(_nonempty))
    name: str = ""
    config: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))

    @property
    def display_name(self) -> str:
        return self.name or self.module


@dataclass(frozen=True)
class Config:
    """Everything mkts.yml can say. `root_directory` is absolute after loading."""

    root_directory: str = field(metadata=_check(_nonempty))
    timezone: str = field(default="UTC", metadata=_check(_timezone))
    listen_host: str = "127.0.0.1"
    listen_port: int = field(default=5993, metadata=_check(_port))
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    max_request_mb: int = field(default=256, metadata=_check(_positive))
    wal: WalConfig = field(default_factory=WalConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    triggers: tuple[TriggerConfig, ...] = ()
    bgworkers: tuple[BgWorkerConfig, ...] = ()

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for `engine.open(root, **options)`."""
        w = self.wal
        return {"timezone": self.timezone, "sync": w.sync, "sync_interval_ms": w.sync_interval_ms,
                "checkpoint_interval_s": w.checkpoint_interval_s, "max_wal_mb": w.max_size_mb,
                "recovery": w.recovery,
                "max_open_files": self.storage.max_open_files or None}


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a mkts.yml. A relative `root_directory` is resolved against the
    directory of the file. Raises ConfigError naming the file and the key."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; copy mkts.yml from the mkts "
                          "repository (or run `mkts init`) and edit it") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return from_dict(data, base_dir=os.path.dirname(os.path.abspath(path)), source=path)


def from_dict(data: Any, *, base_dir: str | None = None, source: str = "config") -> Config:
    """Validate an already parsed mapping (what mkts.yml holds)."""
    if data is None:
        data = {}
    cfg: Config = _build(Config, data, "", source)
    root = os.path.expanduser(cfg.root_directory)
    if not os.path.isabs(root):
        root = os.path.join(base_dir or os.getcwd(), root)
    return dataclasses.replace(cfg, root_directory=os.path.normpath(root))


def schema_paths() -> set[str]:
    """Every key path the schema knows: `timezone`, `wal.sync`, `triggers[].on`, ..."""
    out: set[str] = set()

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            path = prefix + f.name
            out.add(path)
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, path + ".")  # type: ignore[arg-type]
            elif typing.get_origin(tp) is tuple:
                walk(typing.get_args(tp)[0], path + "[].")

    walk(Config, "")
    return out


# -- validation ----------------------------------------------------------------------------


def _fail(source: str, path: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {path}: {message}")


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(data, Mapping):
        raise _fail(source, where, f"must be a mapping of keys, not {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if True in data and "on" in fields and "on" not in data:
        # YAML 1.1 reads a bare `on:` key as the boolean true; it means the trigger's glob.
        data = {("on" if k is True else k): v for k, v in data.items()}
    for key in data:
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {prefix}{near[0]}?" if near else \
                f"; known keys here: {', '.join(fields)}"
            raise _fail(source, f"{prefix}{key}", f"unknown key{hint}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _fail(source, path, "is required; add it to the file")
            continue
        value = _value(hints[name], data[name], path, source)
        check = f.metadata.get("check")
        if check is not None:
            problem = check(value)
            if problem:
                raise _fail(source, path, f"{value!r} {problem}")
        kwargs[name] = value
    return cls(**kwargs)


def _value(tp: Any, v: Any, path: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if v is None else v, path + ".", source)  # type: ignore[arg-type]
    if origin is Literal:
        options = typing.get_args(tp)
        if v not in options:
            raise _fail(source, path, f"{v!r} is not allowed; use one of {', '.join(options)}")
        return v
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if v is None:
            return ()
        if not isinstance(v, list):
            raise _fail(source, path, f"must be a list, not {type(v).__name__} {v!r}")
        return tuple(_value(item, x, f"{path}[{i}]", source) for i, x in enumerate(v))
    if origin is Mapping or tp is Mapping:
        if v is None:
            return types.MappingProxyType({})
        if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
            raise _fail(source, path, f"must be a mapping with text keys, not {v!r}")
        return types.MappingProxyType(dict(v))
    expected = {str: (str,), int: (int,), float: (int, float)}[tp]
    if isinstance(v, bool) or not isinstance(v, expected):
        name = {str: "text", int: "an integer", float: "a number"}[tp]
        raise _fail(source, path, f"must be {name}, not {type(v).__name__} {v!r}")
    return float(v) if tp is float else v  # type: ignore[arg-type]
