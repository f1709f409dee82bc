"""`mkts start` never imports a plugin module from the directory it is started in, however it
is started: the `mkts` console script (sys.path[0] is its bin directory) and
`python -m mkts.cli` (sys.path[0] is the absolute working directory) follow one rule, and
the error says how to make the module importable. A directory named on PYTHONPATH is used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TRIGGER = '''\
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("yes")


class _T:
    def fire(self, key_path, records):
        pass


def NewTrigger(config):
    return _T()
'''


def _console_script() -> str | None:
    script = Path(sys.executable).parent / "mkts"
    return str(script) if script.exists() else shutil.which("mkts")


def _setup(tmp_path: Path) -> Path:
    (tmp_path / "mypkg.py").write_text(TRIGGER)
    cfg = {"root_directory": str(tmp_path / "db"),
           "triggers": [{"module": "mypkg", "on": "*/1Min/OHLCV"}]}
    (tmp_path / "mkts.yml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _run(argv: list[str], cwd: Path, pythonpath: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *pythonpath])
    env.pop("MKTS_DEBUG", None)
    return subprocess.run([*argv, "start", "-c", "mkts.yml", "--port", "0"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("how", ["python -m mkts.cli", "mkts console script"])
def test_a_trigger_module_in_the_working_directory_is_not_imported(tmp_path: Path,
                                                                   how: str) -> None:
    if how == "python -m mkts.cli":
        argv = [sys.executable, "-m", "mkts.cli"]
    else:
        script = _console_script()
        if script is None:
            pytest.skip("the mkts console script is not installed")
        argv = [script]
    cwd = _setup(tmp_path)
    res = _run(argv, cwd, [])
    assert res.returncode == 1, res.stdout + res.stderr
    assert not (cwd / "IMPORTED").exists(), "mypkg.py was imported from the working directory"
    assert "Traceback" not in res.stderr
    err = res.stderr.strip()
    assert "trigger plugin 'mypkg'" in err
    assert "mypkg.py in the current directory is not imported" in err
    assert "PYTHONPATH" in err
    assert not (cwd / "db").exists()  # refused before the database was opened


def test_a_directory_named_on_pythonpath_is_used(tmp_path: Path) -> None:
    """The working directory itself, when the user names it on PYTHONPATH, is a real choice."""
    cwd = _setup(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mkts.cli", "start", "-c", "mkts.yml", "--port", "0"], cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(cwd)])},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, proc.stderr.read() if proc.stderr else ""
        assert (cwd / "IMPORTED").read_text() == "yes"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
