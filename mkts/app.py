"""`mkts.open`: a running database from mkts.yml (or a Config), with its plugins attached.

Owns wiring only: config → plugin objects → `engine.open(triggers=..., workers=...)`. What
the plugins promise is in plugins.base; what the settings mean is in mkts.yml.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from mkts import config as _config
from mkts import engine
from mkts.config import Config
from mkts.plugins.loader import load_trigger, load_worker

__all__ = ["open", "load_plugins"]

log = logging.getLogger("mkts.app")


def open(source: str | os.PathLike[str] | Config | Mapping[str, Any]) -> engine.Database:
    """Open the database described by a mkts.yml path, a `Config`, or a parsed mapping.

    Every trigger and worker is built first (a plugin that cannot be loaded raises
    `plugins.errors.PluginError` naming it, before anything is opened); triggers are attached
    before the write-ahead log is replayed, so replayed transactions fire them
    (`records.replayed` is True); workers get `start(db)` and then `run()` on their own
    threads. `log_level` applies to the `mkts` loggers. Close the returned handle (or use it
    as a context manager) to stop workers, drain triggers and checkpoint."""
    cfg = _as_config(source)
    logging.getLogger("mkts").setLevel(cfg.log_level.upper())
    triggers, workers = load_plugins(cfg)
    db = engine.open(cfg.root_directory, triggers=triggers, workers=workers,
                     **cfg.engine_options())
    log.info("opened %s with %d trigger(s) and %d background worker(s)", cfg.root_directory,
             len(triggers), len(workers))
    return db


def load_plugins(cfg: Config) -> tuple[list[tuple[str, engine.Trigger]], list[engine.BgWorker]]:
    """([(on glob, trigger)], [worker]) built from the config, in file order."""
    triggers = [(t.on, load_trigger(t.module, t.config)) for t in cfg.triggers]
    workers = [load_worker(w.module, w.config) for w in cfg.bgworkers]
    return triggers, workers


def _as_config(source: Any) -> Config:
    if isinstance(source, Config):
        return source
    if isinstance(source, Mapping):
        return _config.from_dict(source)
    if isinstance(source, (str, os.PathLike)):
        return _config.load(source)
    raise TypeError(f"mkts.open() takes a mkts.yml path, a mkts.config.Config or a mapping, "
                    f"not {type(source).__name__}")
