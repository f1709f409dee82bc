"""`mkts.open`: the front door. A directory opens the database there; a mkts.yml path (or a
`Config`, or a parsed mapping) opens the database it describes, with its plugins attached.

Owns wiring only: config → plugin objects → `mkts.engine.open(triggers=..., workers=...)`.
What the plugins promise is in mkts.plugins.base; what the settings mean is in mkts.yml.
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

CONFIG_SUFFIXES = (".yml", ".yaml")


def open(source: str | os.PathLike[str] | Config | Mapping[str, Any],
         **options: Any) -> engine.Database:
    """Open a database: ``mkts.open("data")`` or ``mkts.open("mkts.yml")``.

    - A directory (or a path that is neither a file nor named ``*.yml``/``*.yaml``) is a
      database root. `options` are the engine's keywords: ``timezone``, ``readonly``,
      ``sync``, ``sync_interval_ms``, ``checkpoint_interval_s``, ``max_wal_mb``,
      ``recovery``, ``allow_missing_columns``, ``triggers``, ``workers`` and ``create``
      (default True: a missing root is
      created; with ``create=False``, and always for ``readonly=True``, a missing root is
      `RootNotFoundError` naming the path).
    - A mkts.yml path, a `mkts.config.Config` or a mapping with its keys opens the database
      the config describes. Every trigger and worker is built first (a plugin that cannot be
      loaded raises `PluginError` naming it, before anything is opened); triggers are
      attached before the write-ahead log is replayed, so replayed transactions fire them
      (``records.replayed`` is True); workers get ``start(db)`` and then ``run()`` on their
      own threads. ``log_level`` applies to the ``mkts`` loggers. `options` may add
      ``create`` and override the config's engine settings (``sync``, ...).

    Close the returned handle (or use it as a context manager) to stop workers, drain
    triggers and checkpoint."""
    if not _is_config(source):
        return engine.open(os.fspath(source), **options)  # type: ignore[arg-type]
    cfg = _as_config(source)
    for name in ("triggers", "workers", "readonly"):
        if name in options:
            raise engine.InvalidInputError(
                f"mkts.open(config, {name}=...): a config's plugins come from its triggers: and "
                f"bgworkers: keys and need a writable database; open the directory "
                f"{cfg.root_directory} instead to pass {name}=")
    logging.getLogger("mkts").setLevel(cfg.log_level.upper())
    triggers, workers = load_plugins(cfg)
    db = engine.open(cfg.root_directory, triggers=triggers, workers=workers,
                     **{**cfg.engine_options(), **options})
    log.info("opened %s with %d trigger(s) and %d background worker(s)", cfg.root_directory,
             len(triggers), len(workers))
    return db


def load_plugins(cfg: Config) -> tuple[list[tuple[str, engine.Trigger]], list[engine.BgWorker]]:
    """([(on pattern, trigger)], [worker]) built from the config, in file order. A plugin's
    bad `config:` key is a ConfigError naming it in the file (`triggers[0].config.batch_ms`),
    like any other key of mkts.yml."""
    source, paths = cfg.source, cfg.plugin_paths
    triggers = [(t.on, load_trigger(t.module, t.config, source=source,
                                    where=f"triggers[{i}].config", paths=paths))
                for i, t in enumerate(cfg.triggers)]
    workers = [load_worker(w.module, w.config, source=source, where=f"bgworkers[{i}].config",
                           paths=paths)
               for i, w in enumerate(cfg.bgworkers)]
    return triggers, workers


def _is_config(source: Any) -> bool:
    if isinstance(source, (Config, Mapping)):
        return True
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"mkts.open() takes a database directory, a mkts.yml path, a "
                        f"mkts.config.Config or a mapping, not {type(source).__name__}")
    path = os.fspath(source)
    if os.path.isdir(path):
        return False
    return os.path.isfile(path) or path.lower().endswith(CONFIG_SUFFIXES)


def _as_config(source: Any) -> Config:
    if isinstance(source, Config):
        return source
    if isinstance(source, Mapping):
        return _config.from_dict(source)
    return _config.load(source)
