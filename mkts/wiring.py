"""The seams between the server/CLI and the rest of the application: loading mkts.yml,
opening a configured database, finding the stream hub and the aggregation triggers.

Each is one small function so that the CLI and server never depend on another module's
internals directly; a renamed function elsewhere is a one-line change here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mkts import engine
from mkts.config import DEFAULT_HOST, DEFAULT_MAX_REQUEST_MB, DEFAULT_PORT

if TYPE_CHECKING:
    from mkts.config import Config

__all__ = [
    "ConfigProblem",
    "load_config",
    "open_configured",
    "open_root",
    "stream_subscriber",
    "AggregationSpec",
    "aggregation_specs",
    "rebuild_aggregates",
    "DEFAULT_PORT",
    "DEFAULT_HOST",
    "DEFAULT_MAX_REQUEST_MB",
]


class ConfigProblem(Exception):
    """mkts.yml cannot be read or is invalid (wraps mkts.config.ConfigError)."""


def load_config(path: str) -> Config:
    """The typed config of `path` (`mkts.config.load`)."""
    from mkts import config as _config

    if not os.path.exists(path):
        raise ConfigProblem(f"{path}: no such file; create one with `mkts init` or pass -c PATH")
    try:
        return _config.load(path)
    except _config.ConfigError as exc:
        raise ConfigProblem(str(exc)) from None


def open_configured(config: Config, **options: Any) -> engine.Database:
    """Open the database of a config with its plugins loaded and workers started
    (`mkts.app.open`): lock, replay, triggers, workers. `options` go to the engine (`fs`)."""
    from mkts import app

    return app.open(config, **options)


def open_root(root: str, *, readonly: bool = False) -> engine.Database:
    """Open a root directly, without mkts.yml (no plugins)."""
    return engine.open(root, readonly=readonly)


def stream_subscriber(db: engine.Database) -> Callable[[Callable[[str, Any], None]], Any]:
    """How `/ws` gets rows: the stream trigger's hub when one is configured, else the
    database's own subscription. Both call back with (key, columns) on a thread of theirs."""
    from mkts.plugins.stream import hub_of

    hub = hub_of(db)
    if hub is not None:
        return lambda callback: hub.subscribe("*/*/*", callback)
    return lambda callback: db.subscribe("*/*/*", callback)


# -- on-disk aggregation -------------------------------------------------------------------
@dataclass(frozen=True)
class AggregationSpec:
    """One configured ondiskagg trigger: base-bucket key pattern, destinations, optional filter."""

    on: str
    destinations: tuple[str, ...]
    filter: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def aggregation_specs(config: Any) -> list[AggregationSpec]:
    """The ondiskagg triggers of a config (module `ondiskagg.so`, `mkts.plugins.ondiskagg`, or
    anything the plugin loader resolves to the bundled ondiskagg), their `config:` checked
    by ondiskagg's own schema (a bad key is a ConfigError naming `triggers[i].config...`).

    A trigger whose module cannot be resolved (not found, an import that fails, no
    NewTrigger) raises the loader's `PluginError` naming it: whether it is ondiskagg
    cannot be told, and skipping it would leave its aggregates unchecked without a word."""
    if config is None:
        return []
    from mkts.plugins import ondiskagg

    out = []
    for i, t in enumerate(config.triggers):
        if not _is_ondiskagg(t.module, config.plugin_paths):
            continue
        try:
            agg = ondiskagg.parse_config(t.config)
        except ondiskagg.PluginConfigError as exc:
            raise exc.within(config.source, f"triggers[{i}].config") from exc
        out.append(AggregationSpec(t.on, agg.destinations, agg.filter or None))
    return out


def _is_ondiskagg(module: str, paths: tuple[str, ...] = ()) -> bool:
    if module in ("ondiskagg.so", "ondiskagg", "mkts.plugins.ondiskagg"):
        return True
    from mkts.plugins import loader, ondiskagg

    return loader.resolve(module, "mkts.triggers", "NewTrigger", paths) is ondiskagg.NewTrigger


def rebuild_aggregates(db: engine.Database, spec: AggregationSpec, *, progress: bool) -> int:
    """Recompute every destination of one spec from scratch (`mkts.plugins.ondiskagg.rebuild`)."""
    from mkts.plugins import ondiskagg

    return int(ondiskagg.rebuild(db, spec.on, spec.destinations, filter=spec.filter,
                                 progress=progress))
