"""mkts.yml and its schema (mkts/config.py): defaults, errors naming the key, and the test that
keeps the commented copy at the repository root in step with the schema."""

from __future__ import annotations

import dataclasses
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from mkts import config
from mkts.config import Config, ConfigError
from mkts.engine import MktsError

REPO = Path(__file__).resolve().parents[2]
MKTS_YML = REPO / "mkts.yml"


def _key_paths(data: Any, prefix: str = "") -> set[str]:
    """Key paths of a parsed mkts.yml in schema notation (plugin `config:` maps are opaque)."""
    out: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            name = "on" if k is True else str(k)
            path = prefix + name
            out.add(path)
            if name != "config":
                out |= _key_paths(v, path + ".")
    elif isinstance(data, list):
        for item in data:
            out |= _key_paths(item, prefix.rstrip(".") + "[].")
    return out


def _commented_example(text: str) -> dict[str, Any]:
    """The commented-out `bgworkers:` example at the end of mkts.yml, uncommented."""
    m = re.search(r"^# bgworkers:\n(?:#   .*\n?)+", text, re.M)
    assert m, "mkts.yml should show a commented bgworkers example"
    block = "\n".join(line[2:] for line in m.group(0).splitlines())
    loaded = yaml.safe_load(block)
    assert isinstance(loaded, dict)
    return loaded


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mkts.yml"
    p.write_text(textwrap.dedent(text))
    return p


# -- the commented copy --------------------------------------------------------------------


def test_mkts_yml_keys_are_all_in_the_schema() -> None:
    text = MKTS_YML.read_text()
    found = _key_paths(yaml.safe_load(text)) | _key_paths(_commented_example(text))
    unknown = found - config.schema_paths()
    assert not unknown, f"mkts.yml has keys the schema does not know: {sorted(unknown)}"


def test_every_schema_key_appears_in_mkts_yml() -> None:
    text = MKTS_YML.read_text()
    found = _key_paths(yaml.safe_load(text)) | _key_paths(_commented_example(text))
    missing = config.schema_paths() - found
    assert not missing, f"mkts.yml does not show these schema keys: {sorted(missing)}"


def test_mkts_yml_values_are_the_schema_defaults() -> None:
    cfg = config.load(MKTS_YML)
    defaults = Config(root_directory=cfg.root_directory)
    for f in dataclasses.fields(Config):
        if f.name not in ("root_directory", "triggers", "bgworkers", "source"):
            assert getattr(cfg, f.name) == getattr(defaults, f.name), f.name


def test_every_setting_in_mkts_yml_has_a_comment() -> None:
    lines = MKTS_YML.read_text().splitlines()
    for i, line in enumerate(lines):
        # top-level keys and the keys of the nested sections (wal.*, storage.*)
        if re.match(r"^([a-z_]+|  [a-z_]+):", line):
            assert lines[i - 1].lstrip().startswith("#"), \
                f"mkts.yml line {i + 1} ({line.strip()}) has no comment above it"


def test_default_mkts_yml_aggregates_and_streams() -> None:
    cfg = config.load(MKTS_YML)
    agg, stream = cfg.triggers
    assert (agg.module, agg.on) == ("ondiskagg.so", "*/1Min/OHLCV")
    assert list(agg.config["destinations"]) == ["5Min", "15Min", "1H", "1D"]
    assert (stream.module, stream.on) == ("stream.so", "*/*/*")
    assert cfg.root_directory == os.fspath(REPO / "data")
    example = config.from_dict({"root_directory": "x", **_commented_example(MKTS_YML.read_text())})
    assert example.bgworkers[0].module == "mkts.plugins.feed"


# -- defaults and resolution ---------------------------------------------------------------


def test_defaults_when_only_root_is_given(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "root_directory: /srv/mkts\n"))
    assert cfg.root_directory == "/srv/mkts"
    assert (cfg.timezone, cfg.listen_host, cfg.listen_port) == ("UTC", "127.0.0.1", 5993)
    assert (cfg.log_level, cfg.max_request_mb) == ("info", 256)
    assert cfg.wal == config.WalConfig("always", 100, 60.0, 256, "tolerate_torn_tail")
    assert cfg.triggers == () and cfg.bgworkers == ()


def test_relative_root_resolves_against_the_config_file_directory(tmp_path: Path,
                                                                  monkeypatch: Any) -> None:
    p = _write(tmp_path, "root_directory: ./data/db\n")
    monkeypatch.chdir("/")
    assert config.load(p).root_directory == os.fspath(tmp_path / "data" / "db")


def test_engine_options_carry_the_wal_settings(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, """\
        root_directory: d
        timezone: America/New_York
        wal: {sync: interval, sync_interval_ms: 5, checkpoint_interval_s: 2.5, max_size_mb: 8,
              recovery: point_in_time}
        """))
    assert cfg.engine_options() == {
        "timezone": "America/New_York", "sync": "interval", "sync_interval_ms": 5,
        "checkpoint_interval_s": 2.5, "max_wal_mb": 8, "recovery": "point_in_time",
        "max_open_files": None, "allow_missing_columns": False, "seal_after_days": 7.0,
        "bulk_load_rows": 10_000, "block_cache_mb": 64}


def test_bare_yaml_on_key_is_the_trigger_glob(tmp_path: Path) -> None:
    # YAML 1.1 reads `on:` as the boolean true; the schema takes it as the trigger's glob.
    cfg = config.load(_write(tmp_path, """\
        root_directory: d
        triggers:
          - module: mkts.plugins.stream
            on: "*/*/*"
        """))
    assert cfg.triggers[0].on == "*/*/*"
    assert dict(cfg.triggers[0].config) == {}


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, """\
        root_directory: d
        triggers: [{module: m, on: "*/1Min/OHLCV", config: {destinations: [5Min]}}]
        """))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.timezone = "Europe/Paris"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.triggers[0].config["destinations"] = []  # type: ignore[index]
    assert isinstance(cfg.triggers, tuple)


def test_worker_name_defaults_to_the_module(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "root_directory: d\nbgworkers: [{module: mkts.plugins.feed}]\n"))
    assert cfg.bgworkers[0].display_name == "mkts.plugins.feed"


# -- errors name the key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "hint"),
    [
        ("root_directory: d\nlisten_prot: 1\n", "listen_prot", "did you mean listen_port"),
        ("root_directory: d\nwal: {synk: off}\n", "wal.synk", "did you mean wal.sync"),
        ("root_directory: d\ntriggers: [{module: m, on: '*/*/*', conf: {}}]\n",
         "triggers[0].conf", "did you mean triggers[0].config"),
        ("root_directory: d\nbgworkers: [{module: m, zzz: 1}]\n", "bgworkers[0].zzz",
         "known keys here: module, name, config"),
        ("root_directory: d\nreplication: {enabled: true}\n", "replication", "unknown key"),
    ],
)
def test_unknown_key_is_an_error_naming_it(tmp_path: Path, text: str, path: str,
                                           hint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{path}: unknown key")) as exc:
        config.load(_write(tmp_path, text))
    assert hint in str(exc.value)
    assert str(tmp_path / "mkts.yml") in str(exc.value)


@pytest.mark.parametrize(
    ("text", "path", "fix"),
    [
        ("root_directory: d\nlisten_port: '5993'\n", "listen_port", "must be an integer"),
        ("root_directory: d\nlisten_port: true\n", "listen_port", "must be an integer"),
        ("root_directory: d\nmax_request_mb: 1.5\n", "max_request_mb", "must be an integer"),
        ("root_directory: d\nwal: {checkpoint_interval_s: soon}\n", "wal.checkpoint_interval_s",
         "must be a number"),
        ("root_directory: d\nwal: []\n", "wal", "must be a mapping"),
        ("root_directory: d\ntriggers: {module: m}\n", "triggers", "must be a list"),
        ("root_directory: d\ntriggers: [{module: m, on: '*/*/*', config: [1]}]\n",
         "triggers[0].config", "must be a mapping"),
        ("root_directory: 5\n", "root_directory", "must be text"),
        ("- just a list\n", "the top level", "must be a mapping"),
    ],
)
def test_wrong_type_is_an_error_naming_the_key(tmp_path: Path, text: str, path: str,
                                               fix: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{path}: ")) as exc:
        config.load(_write(tmp_path, text))
    assert fix in str(exc.value)


@pytest.mark.parametrize(
    ("text", "path", "fix"),
    [
        ("root_directory: d\nwal: {sync: sometimes}\n", "wal.sync", "always, interval, off"),
        ("root_directory: d\nwal: {recovery: yolo}\n", "wal.recovery",
         "tolerate_torn_tail, point_in_time"),
        ("root_directory: d\nwal: {sync_interval_ms: 0}\n", "wal.sync_interval_ms",
         "greater than 0"),
        ("root_directory: d\nwal: {max_size_mb: -1}\n", "wal.max_size_mb", "greater than 0"),
        ("root_directory: d\nlog_level: verbose\n", "log_level", "debug, info, warning"),
        ("root_directory: d\ntimezone: Mars/Olympus\n", "timezone", "IANA time zone"),
        ("root_directory: d\nlisten_port: 70000\n", "listen_port", "between 1 and 65535"),
        ("root_directory: ''\n", "root_directory", "must not be empty"),
        ("root_directory: d\ntriggers: [{module: m, on: '*/1Min'}]\n", "triggers[0].on",
         "SYMBOL/TIMEFRAME/ATTRGROUP"),
        ("root_directory: d\ntriggers: [{module: ' ', on: '*/*/*'}]\n", "triggers[0].module",
         "must not be empty"),
        ("root_directory: d\ngrpc_listen_port: 70000\n", "grpc_listen_port",
         "between 1 and 65535"),
        ("root_directory: d\nmetrics: public\n", "metrics", "loopback"),
    ],
)
def test_bad_value_is_an_error_naming_the_key_and_the_fix(tmp_path: Path, text: str, path: str,
                                                          fix: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{path}: ")) as exc:
        config.load(_write(tmp_path, text))
    assert fix in str(exc.value)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("timezone: UTC\n", "root_directory"),
        ("root_directory: d\ntriggers: [{on: '*/*/*'}]\n", "triggers[0].module"),
        ("root_directory: d\ntriggers: [{module: m}]\n", "triggers[0].on"),
        ("root_directory: d\nbgworkers: [{name: x}]\n", "bgworkers[0].module"),
    ],
)
def test_missing_required_key_is_named(tmp_path: Path, text: str, path: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{path}: is required")):
        config.load(_write(tmp_path, text))


def test_grpc_is_off_and_metrics_are_local_unless_configured(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "root_directory: d\n"))
    assert cfg.grpc_listen_port is None and cfg.metrics == "loopback"
    cfg = config.load(_write(tmp_path, "root_directory: d\ngrpc_listen_port: 5995\n"
                                       "metrics: network\n"))
    assert cfg.grpc_listen_port == 5995 and cfg.metrics == "network"


def test_config_error_is_a_value_error_and_a_mkts_error() -> None:
    assert issubclass(ConfigError, MktsError) and issubclass(ConfigError, ValueError)


def test_missing_file_and_invalid_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(_write(tmp_path, "root_directory: [unclosed\n"))


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    text = "root_directory: !!python/object/apply:os.system ['echo hacked']\n"
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(_write(tmp_path, text))


def test_empty_sections_take_their_defaults(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "root_directory: d\nwal:\ntriggers:\nbgworkers:\n"))
    assert cfg.wal == config.WalConfig() and cfg.triggers == () and cfg.bgworkers == ()


def test_storage_max_open_files_reaches_the_engine(tmp_path: Path) -> None:
    cfg = config.load(_write(tmp_path, "root_directory: d\nstorage: {max_open_files: 300}\n"))
    assert cfg.storage == config.StorageConfig(300)
    assert cfg.engine_options()["max_open_files"] == 300
    auto = config.load(_write(tmp_path, "root_directory: d\nstorage:\n"))
    assert auto.engine_options()["max_open_files"] is None  # derived from RLIMIT_NOFILE


def test_negative_max_open_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="storage.max_open_files"):
        config.load(_write(tmp_path, "root_directory: d\nstorage: {max_open_files: -1}\n"))
