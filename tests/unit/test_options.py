"""Settings defined once (engine/options.py): `engine.open`'s keyword defaults, the mkts.yml
schema (mkts/config.py) and the commented mkts.yml say the same thing."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

from mkts import config, engine, wiring
from mkts.engine.database import open_database
from mkts.engine.options import DEFAULTS, RECOVERY_MODES, SYNC_MODES, EngineOptions

REPO = Path(__file__).resolve().parents[2]
ARGUMENTS = {"readonly", "fs", "triggers", "workers", "create"}  # not settings


def test_open_database_keyword_defaults_are_the_engine_options() -> None:
    params = inspect.signature(open_database).parameters
    settings = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY} - ARGUMENTS
    assert settings == {f.name for f in dataclasses.fields(EngineOptions)}
    for name in settings:
        assert params[name].default == getattr(DEFAULTS, name), name


def test_schema_and_mkts_yml_defaults_are_the_engine_defaults() -> None:
    from_file = config.load(REPO / "mkts.yml").engine_options()
    from_schema = config.Config(root_directory="/x").engine_options()
    assert set(from_file) == set(from_schema) == {f.name for f in dataclasses.fields(EngineOptions)}
    for name in from_schema:
        if name == "timezone":  # mkts.yml names one (UTC); the engine keeps the root's own
            continue
        assert from_file[name] == from_schema[name] == getattr(DEFAULTS, name), name


def test_schema_choices_are_the_engine_modes() -> None:
    hints = typing.get_type_hints(config.WalConfig)
    assert typing.get_args(hints["sync"]) == SYNC_MODES == ("always", "interval", "off")
    assert typing.get_args(hints["recovery"]) == RECOVERY_MODES


def test_engine_refuses_a_mode_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(engine.InvalidInputError, match="always, interval, off"):
        engine.open(tmp_path / "db", sync="never")
    with pytest.raises(engine.InvalidInputError, match=", ".join(RECOVERY_MODES)):
        engine.open(tmp_path / "db", recovery="hope")


def test_server_defaults_are_defined_once() -> None:
    cfg = config.load(REPO / "mkts.yml")
    assert (wiring.DEFAULT_PORT, wiring.DEFAULT_HOST, wiring.DEFAULT_MAX_REQUEST_MB) == \
        (config.DEFAULT_PORT, config.DEFAULT_HOST, config.DEFAULT_MAX_REQUEST_MB)
    assert (cfg.listen_port, cfg.listen_host, cfg.max_request_mb) == \
        (config.DEFAULT_PORT, config.DEFAULT_HOST, config.DEFAULT_MAX_REQUEST_MB) == \
        (5993, "127.0.0.1", 256)
