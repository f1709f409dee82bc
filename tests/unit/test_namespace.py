"""The rename guard (harness/namespace.py) is active in the test run: engine/, wal/ and
plugins/ import only under mkts, whatever is on sys.path; the mkts names still work."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from mkts.plugins.errors import PluginError
from mkts.plugins.loader import load_trigger

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["engine", "wal.log", "plugins.feed", "plugins.ondiskagg"])
def test_old_top_level_names_do_not_import_even_from_the_repository_root(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    top = name.partition(".")[0]  # a submodule's import fails at its package
    with pytest.raises(ModuleNotFoundError, match=rf"No module named '{top}': .* mkts\.{top}\b"
                       ) as exc:
        importlib.import_module(name)
    assert exc.value.name == top


def test_an_old_plugin_module_string_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    with pytest.raises(PluginError, match="'plugins.stream' was not found"):
        load_trigger("plugins.stream", {})


def test_the_mkts_names_import() -> None:
    for name in ("mkts.engine", "mkts.wal.log", "mkts.plugins.feed"):
        assert importlib.import_module(name).__name__ == name
    assert not [m for m in sys.modules if m.partition(".")[0] in ("engine", "wal", "plugins")]
