"""A configured trigger whose module fails to import was treated as "not ondiskagg" without a
word (mkts.wiring._is_ondiskagg swallowed every exception), so `mkts check` silently skipped
its aggregates. It is now reported: the loader's PluginError names the plugin, and
`mkts check` says so in one line (and how to check without aggregates)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mkts import cli, config, engine, wiring
from mkts.plugins.errors import PluginError

BROKEN = "broken_agg_trigger_xyz"


@pytest.fixture
def broken_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / f"{BROKEN}.py").write_text(textwrap.dedent("""\
        raise RuntimeError("this plugin is broken")
        """))
    monkeypatch.syspath_prepend(str(pkg))
    return BROKEN


def _config(root: Path, *modules: str) -> dict[str, Any]:
    return {"root_directory": os.fspath(root),
            "triggers": [{"module": m, "on": "*/1Min/OHLCV",
                          "config": {"destinations": ["5Min"]}} for m in modules]}


def test_aggregation_specs_reports_a_trigger_module_that_fails_to_import(
        tmp_path: Path, broken_module: str) -> None:
    cfg = config.from_dict(_config(tmp_path / "db", "ondiskagg.so", broken_module))
    with pytest.raises(PluginError, match=rf"{broken_module}.*this plugin is broken"):
        wiring.aggregation_specs(cfg)


def test_a_trigger_that_loads_and_is_not_ondiskagg_is_left_out(tmp_path: Path) -> None:
    cfg = config.from_dict(_config(tmp_path / "db", "ondiskagg.so", "mkts.plugins.stream"))
    assert [s.destinations for s in wiring.aggregation_specs(cfg)] == [("5Min",)]


def test_mkts_check_names_the_broken_plugin(tmp_path: Path, broken_module: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "db"
    engine.open(root).close()
    yml = tmp_path / "mkts.yml"
    yml.write_text(f"root_directory: {root}\n"
                   f"triggers:\n  - module: {broken_module}\n    on: '*/1Min/OHLCV'\n")
    assert cli.main(["check", "-c", os.fspath(yml)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mkts check: ")
    assert broken_module in err[0] and "--no-aggregates" in err[0]
    assert cli.main(["check", "-c", os.fspath(yml), "--no-aggregates"]) == 0
