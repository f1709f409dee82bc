"""Plugins in the user's own project: docs/plugins.md "Writing your own", copied literally
into a project directory and run as the docs say, works (`plugin_paths:` in mkts.yml); and
without it the error names `plugin_paths` and PYTHONPATH. The current directory is never
searched on its own."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkts import config
from mkts.plugins.errors import PluginError
from mkts.plugins.loader import load_trigger

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs/plugins.md"


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Writing your own")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _files() -> dict[str, str]:
    """Each code block introduced by a line "`path`:" is that file of the project."""
    found = re.findall(r"^`([^`\s]+)`:\n\n```[a-z]*\n(.*?)^```", _section(), re.M | re.S)
    return dict(found)


def _session() -> list[tuple[str, list[str]]]:
    """The console block: each `$ command` with the lines it prints."""
    block = re.search(r"^```console\n(.*?)^```", _section(), re.M | re.S)
    assert block, "the section should show the command and its output"
    out: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            out[-1][1].append(line)
    return out


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "myproject"
    for name, text in _files().items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return project


def _run(project: Path, command: str, pythonpath: str = "") -> subprocess.CompletedProcess[str]:
    """`mkts ...` as an installed console script runs it: the current directory is not on
    sys.path (python -P), mkts itself is importable."""
    argv = shlex.split(command)
    assert argv[0] == "mkts"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), pythonpath) if p)
    env.pop("MKTS_DEBUG", None)
    return subprocess.run([sys.executable, "-P", "-m", "mkts.cli", *argv[1:]], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_docs_example_works_as_written(tmp_path: Path) -> None:
    assert set(_files()) == {"mypkg/lastprice.py", "mkts.yml", "bars.csv"}
    project = _project(tmp_path)
    session = _session()
    assert session, "the docs should show at least one command"
    for command, expected in session:
        res = _run(project, command)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == expected
    assert (project / "data" / "AAPL" / "1Min" / "OHLCV").is_dir()  # root next to mkts.yml


def test_without_plugin_paths_the_error_names_the_fixes(tmp_path: Path) -> None:
    project = _project(tmp_path)
    yml = project / "mkts.yml"
    yml.write_text("".join(line for line in yml.read_text().splitlines(keepends=True)
                           if not line.startswith("plugin_paths:")))
    command = _session()[0][0]
    res = _run(project, command)
    assert res.returncode == 1 and res.stdout == ""
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "trigger plugin 'mypkg.lastprice'" in line and "No module named 'mypkg'" in line
    assert "plugin_paths:" in line and "PYTHONPATH" in line
    # PYTHONPATH is the other documented fix
    assert _run(project, command, pythonpath=str(project)).returncode == 0


def test_plugin_paths_resolve_against_the_mkts_yml_directory(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    project = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = config.load(project / "mkts.yml")
    assert cfg.plugin_paths == (str(project),)
    (project / "mkts.yml").write_text("root_directory: data\nplugin_paths: [plugins]\n")
    with pytest.raises(config.ConfigError, match=re.escape(
            "plugin_paths[0]: 'plugins' is not a directory")):
        config.load(project / "mkts.yml")


@pytest.fixture
def no_mypkg() -> Iterator[None]:
    """The example's modules are imported in this process: forget them afterwards."""
    yield
    for name in ("mypkg.lastprice", "mypkg"):
        sys.modules.pop(name, None)


def test_the_loader_searches_plugin_paths_not_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_mypkg: None) -> None:
    project = _project(tmp_path)
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", ["", *[p for p in sys.path if p not in ("", str(project))]])
    with pytest.raises(PluginError, match=r"plugin_paths:.*\(searched: none configured\)"):
        load_trigger("mypkg.lastprice", {})
    trigger = load_trigger("mypkg.lastprice", {"column": "Open"}, paths=[str(project)])
    assert trigger.column == "Open"
    with pytest.raises(config.ConfigError, match=re.escape(
            "mkts.yml: triggers[0].config.colum: unknown key; did you mean column?")):
        load_trigger("mypkg.lastprice", {"colum": "Open"}, source="mkts.yml",
                     where="triggers[0].config", paths=[str(project)])
