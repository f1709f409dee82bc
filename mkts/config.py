"""mkts.yml: the one typed, frozen configuration schema and its loader.

Owns the schema and reading the file (`yaml.safe_load` only); checking is the typed-settings
mechanism every plugin config uses too (plugins/settings.py). What the settings do belongs to
the engine (`wal`, `timezone`), the plugins (`triggers`, `bgworkers`) and the server. The
commented copy with every key and its default is `mkts.yml` at the repository root; a test
keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import os
import types
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from mkts.engine.options import DEFAULTS, RecoveryMode, SyncMode
from mkts.plugins.errors import ConfigError
from mkts.plugins.settings import build, key_pattern, nonempty, positive, rules
from mkts.plugins.settings import schema_paths as _schema_paths

__all__ = ["Config", "WalConfig", "StorageConfig", "TriggerConfig", "BgWorkerConfig", "ConfigError",
           "load", "from_dict", "schema_paths", "LOG_LEVELS", "DEFAULT_HOST", "DEFAULT_PORT",
           "DEFAULT_MAX_REQUEST_MB", "MetricsAccess"]

MetricsAccess = Literal["loopback", "network", "off"]
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_HOST = "127.0.0.1"  # this machine only
DEFAULT_PORT = 5993  # MarketStore's
DEFAULT_MAX_REQUEST_MB = 256


def _not_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be 0 (derived from the descriptor limit) or more"


def _days(v: Any) -> str | None:
    return None if v >= 0 else "must be a number of days, 0 (never) or more"


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else "must be a TCP port between 1 and 65535"


def _optional_port(v: int | None) -> str | None:
    return None if v is None else _port(v)


def _timezone(v: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone name; use e.g. UTC or America/New_York"
    return None


@dataclass(frozen=True)
class WalConfig:
    """The write-ahead log (docs/wal.md); defaults from engine.options (= engine.open's)."""

    sync: SyncMode = DEFAULTS.sync
    sync_interval_ms: int = field(default=DEFAULTS.sync_interval_ms, metadata=rules(check=positive))
    checkpoint_interval_s: float = field(default=DEFAULTS.checkpoint_interval_s,
                                         metadata=rules(check=positive))
    max_size_mb: int = field(default=DEFAULTS.max_wal_mb, metadata=rules(check=positive))
    recovery: RecoveryMode = DEFAULTS.recovery


@dataclass(frozen=True)
class StorageConfig:
    """The data files (docs/format.md "Open files")."""

    max_open_files: int = field(default=0, metadata=rules(check=_not_negative))  # 0: automatic
    # docs/format.md "Column changes": a write may leave out columns (they take their fill)
    allow_missing_columns: bool = DEFAULTS.allow_missing_columns
    seal_after_days: float = field(default=DEFAULTS.seal_after_days,
                                   metadata=rules(check=_days))  # 0: never
    bulk_load_rows: int = field(default=DEFAULTS.bulk_load_rows,
                                metadata=rules(check=_not_negative))  # 0: never
    # docs/format.md "The decoded block cache": MiB of decoded sealed chunks kept (0: none)
    block_cache_mb: int = field(default=DEFAULTS.block_cache_mb,
                                metadata=rules(check=_not_negative))


@dataclass(frozen=True)
class TriggerConfig:
    """One trigger: `module` (dotted path, entry point or ondiskagg.so), `on` (key pattern)."""

    module: str = field(metadata=rules(check=nonempty))
    on: str = field(metadata=rules(check=key_pattern))
    config: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True)
class BgWorkerConfig:
    """One background worker: `module`, a `name` for logs, its own `config`."""

    module: str = field(metadata=rules(check=nonempty))
    name: str = ""
    config: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))

    @property
    def display_name(self) -> str:
        return self.name or self.module


@dataclass(frozen=True)
class Config:
    """Everything mkts.yml can say. `root_directory` is absolute after loading."""

    root_directory: str = field(metadata=rules(check=nonempty))
    timezone: str = field(default="UTC", metadata=rules(check=_timezone))
    listen_host: str = DEFAULT_HOST
    listen_port: int = field(default=DEFAULT_PORT, metadata=rules(check=_port))
    grpc_listen_port: int | None = field(default=None, metadata=rules(check=_optional_port))
    metrics: MetricsAccess = "loopback"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    max_request_mb: int = field(default=DEFAULT_MAX_REQUEST_MB, metadata=rules(check=positive))
    wal: WalConfig = field(default_factory=WalConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    plugin_paths: tuple[str, ...] = field(default=(), metadata=rules(
        each=nonempty, help="directories that hold plugin modules"))
    triggers: tuple[TriggerConfig, ...] = ()
    bgworkers: tuple[BgWorkerConfig, ...] = ()
    # where the settings came from (the file, for error messages); not a key of mkts.yml
    source: str = field(default="config", compare=False, metadata={"internal": True})

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for `engine.open(root, **options)`."""
        w = self.wal
        return {"timezone": self.timezone, "sync": w.sync, "sync_interval_ms": w.sync_interval_ms,
                "checkpoint_interval_s": w.checkpoint_interval_s, "max_wal_mb": w.max_size_mb,
                "recovery": w.recovery,
                "max_open_files": self.storage.max_open_files or None,
                "allow_missing_columns": self.storage.allow_missing_columns,
                "seal_after_days": self.storage.seal_after_days,
                "bulk_load_rows": self.storage.bulk_load_rows,
                "block_cache_mb": self.storage.block_cache_mb}


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a mkts.yml. A relative `root_directory` or `plugin_paths` entry is
    resolved against the directory of the file. Raises ConfigError naming the file and the
    key."""
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
    """Validate an already parsed mapping (what mkts.yml holds). Relative paths are resolved
    against `base_dir` (default: the current directory)."""
    cfg = build(Config, data, source=source)
    base = base_dir or os.getcwd()
    plugin_paths = tuple(_absolute(p, base) for p in cfg.plugin_paths)
    for i, p in enumerate(plugin_paths):
        if not os.path.isdir(p):
            raise ConfigError(f"{cfg.plugin_paths[i]!r} is not a directory ({p}); relative "
                              f"paths are resolved against {base}", f"plugin_paths[{i}]",
                              source)
    return dataclasses.replace(cfg, root_directory=_absolute(cfg.root_directory, base),
                               plugin_paths=plugin_paths, source=source)


def _absolute(path: str, base: str) -> str:
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def schema_paths() -> set[str]:
    """Every key path the schema knows: `timezone`, `wal.sync`, `triggers[].on`, ..."""
    return _schema_paths(Config)
