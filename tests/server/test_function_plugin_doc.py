"""docs/plugins.md "Writing a function", copied literally into a project: the user's `vwap`
function, installed (its entry point in a dist-info beside it, what `pip install -e .`
writes), works embedded (`python query.py`) and through pymarketstore against `mkts start`
(`python client.py`, over JSON-RPC and over gRPC), printing what the page shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from server.serverproc import REPO, start_server

pytest.importorskip("pymarketstore")

DOC = REPO / "docs/plugins.md"


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### Writing a function")
    end = text.index("\n## ", start) if "\n## " in text[start:] else len(text)
    return text[start:end]


def _files() -> dict[str, str]:
    found = re.findall(r"^`([^`\s]+)`(?: \([^)]*\))?:\n\n```[a-z]*\n(.*?)^```", _section(),
                       re.M | re.S)
    return dict(found)


def _printed() -> dict[str, list[str]]:
    block = re.search(r"^```console\n(.*?)^```", _section(), re.M | re.S)
    assert block, "the section should show the commands and their output"
    out: dict[str, list[str]] = {}
    current = ""
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            current = line[2:]
            out[current] = []
        else:
            out[current].append(line.rstrip())
    return out


def _install(project: Path) -> None:
    """What `pip install -e .` leaves for importlib.metadata: the entry points."""
    toml = (project / "pyproject.toml").read_text()
    eps = toml[toml.index('[project.entry-points."mkts.functions"]'):].splitlines()[1:]
    dist = project / "mypkg-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1.0\n")
    ini = [line.replace('"', "") for line in eps if line.strip()]  # TOML strings -> INI
    (dist / "entry_points.txt").write_text("[mkts.functions]\n" + "\n".join(ini) + "\n")


def _run(project: Path, script: str, env: dict[str, str]) -> list[str]:
    proc = subprocess.run([sys.executable, script], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [line.rstrip() for line in proc.stdout.splitlines()]


def test_the_documented_vwap_function_works_embedded_and_over_the_wire(
        tmp_path: Path, monkeypatch: Any) -> None:
    project = tmp_path / "myproject"
    for name, text in _files().items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert {"mypkg/vwap.py", "pyproject.toml", "query.py", "client.py"} <= set(_files())
    printed = _printed()
    assert "pip install -e ." in printed
    # Before the install the name is unknown, with the text the page quotes.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(project)])}
    failed = subprocess.run([sys.executable, "query.py"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120)
    assert 'no function in the UDA Registry named "vwap"' in failed.stderr
    _install(project)
    assert _run(project, "query.py", env) == printed["python query.py"]

    monkeypatch.setenv("PYTHONPATH", str(project))  # the server's environment too
    (tmp_path / "srv").mkdir()
    srv = start_server(tmp_path / "srv", grpc=True, root_directory=str(project / "data"),
                       triggers=[])
    try:
        client = project / "client.py"
        documented = client.read_text()
        client.write_text(documented.replace("localhost:5993", f"{srv.host}:{srv.port}"))
        assert _run(project, "client.py", env) == printed["python client.py"]
        # The same client over gRPC (`Client("host:port", grpc=True)`) prints the same.
        over_grpc = documented.replace('"http://localhost:5993/rpc"',
                                       f'"{srv.grpc_target}", grpc=True')
        assert over_grpc != documented
        client.write_text(over_grpc)
        assert _run(project, "client.py", env) == printed["python client.py"]
    finally:
        assert srv.stop() == 0, srv.stderr()
