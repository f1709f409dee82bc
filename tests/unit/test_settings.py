"""The typed-settings mechanism (plugins/settings.py) that mkts.yml and every plugin config
share: types, checks, required keys, and errors that name the key path."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from mkts.plugins.errors import ConfigError, PluginConfigError, PluginError
from mkts.plugins.settings import at_least, build, key_pattern, rules, schema_paths


@dataclass(frozen=True)
class Inner:
    level: Literal["low", "high"] = "low"


@dataclass(frozen=True)
class Sample:
    name: str = field(metadata=rules(help="what to call it"))
    count: int = field(default=1, metadata=rules(check=at_least(1)))
    ratio: float = 0.5
    on: str = field(default="*/*/*", metadata=rules(check=key_pattern))
    flag: bool = False
    tags: tuple[str, ...] = field(default=(), metadata=rules(
        each=lambda t: None if t.isupper() else "must be upper case"))
    size: tuple[str, ...] | int = 3
    note: str | None = None
    inner: Inner = field(default_factory=Inner)
    extra: Mapping[str, Any] = field(default_factory=dict)
    made_by: str = field(default="code", metadata={"internal": True})


def fails(data: Any, **kw: Any) -> str:
    with pytest.raises(ConfigError) as exc:
        build(Sample, data, source="sample", **kw)
    return str(exc.value)


def test_values_are_converted_and_defaults_fill_in() -> None:
    s = build(Sample, {"name": "x", "ratio": 2, "tags": ["A", "B"], "size": ["s"],
                       "inner": {"level": "high"}, "extra": {"k": 1}}, source="sample")
    assert (s.name, s.count, s.ratio, s.tags, s.size, s.note) == ("x", 1, 2.0, ("A", "B"),
                                                                   ("s",), None)
    assert isinstance(s.ratio, float) and s.inner.level == "high" and dict(s.extra) == {"k": 1}
    assert build(Sample, {"name": "x", "size": 7, "note": None}, source="s").size == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "y"  # type: ignore[misc]


@pytest.mark.parametrize(("data", "message"), [
    ({}, "sample: name: is required (what to call it)"),
    ({"name": 3}, "sample: name: must be text, not int 3 (what to call it)"),
    ({"name": "x", "count": 0}, "sample: count: 0 must be at least 1"),
    ({"name": "x", "count": True}, "sample: count: must be an integer, not bool True"),
    ({"name": "x", "ratio": "half"}, "sample: ratio: must be a number, not str 'half'"),
    ({"name": "x", "flag": 1}, "sample: flag: must be true or false, not int 1"),
    ({"name": "x", "on": "*/1Min"}, "sample: on: '*/1Min' is not a key pattern"),
    ({"name": "x", "tags": ["A", "b"]}, "sample: tags[1]: 'b' must be upper case"),
    ({"name": "x", "tags": "A"}, "sample: tags: must be a list, not str 'A'"),
    ({"name": "x", "size": "big"},
     "sample: size: must be a list (text each) or an integer, not str 'big'"),
    ({"name": "x", "note": 5}, "sample: note: must be text, not int 5"),
    ({"name": "x", "inner": {"level": "mid"}},
     "sample: inner.level: 'mid' is not allowed; use one of low, high"),
    ({"name": "x", "inner": {"levl": "low"}},
     "sample: inner.levl: unknown key; did you mean inner.level?"),
    ({"name": "x", "made_by": "yaml"}, "sample: made_by: unknown key"),
    (["name"], "sample: the top level: must be a mapping of keys, not list ['name']"),
])
def test_errors_name_the_key_path_the_value_and_what_is_allowed(data: Any, message: str) -> None:
    assert fails(data).startswith(message)


def test_errors_can_be_re_rooted_where_the_data_sits() -> None:
    with pytest.raises(ConfigError) as exc:
        build(Sample, {"name": "x", "tags": ["a"]}, source="plugin config")
    moved = exc.value.within("/srv/mkts.yml", "triggers[2].config")
    assert str(moved) == "/srv/mkts.yml: triggers[2].config.tags[0]: 'a' must be upper case"
    assert (moved.source, moved.path) == ("/srv/mkts.yml", "triggers[2].config.tags[0]")
    assert str(ConfigError("bad", "", "x").within("f", "a[0]")) == "f: a[0]: bad"


def test_plugin_config_errors_are_both_kinds() -> None:
    with pytest.raises(PluginConfigError) as exc:
        build(Sample, {}, source="p", error=PluginConfigError)
    assert isinstance(exc.value, PluginError) and isinstance(exc.value, ConfigError)
    assert isinstance(exc.value.within("f", "x"), PluginConfigError)


def test_schema_paths_list_keys_not_internal_fields() -> None:
    paths = schema_paths(Sample)
    assert {"name", "tags", "inner", "inner.level", "extra"} <= paths
    assert "made_by" not in paths
