"""One import name: mkts installs `mkts` and nothing else, so a user's own `engine.py`,
`wal.py` or `plugins/` can never be imported in its place; `mkts.open` is the front door."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mkts

REPO = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH that could point into the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(cwd: Path, code: str) -> subprocess.CompletedProcess[str]:
    script = cwd / "user_script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=_clean_env(),
                          capture_output=True, text=True, timeout=120)


def test_users_own_engine_wal_and_plugins_modules_are_not_imported(tmp_path: Path) -> None:
    # A user's project with the most common module names there are; importing any of them
    # would stop the script with a message naming it.
    (tmp_path / "engine.py").write_text("raise SystemExit('the user engine.py was imported')\n")
    (tmp_path / "wal.py").write_text("raise SystemExit('the user wal.py was imported')\n")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "__init__.py").write_text(
        "raise SystemExit('the user plugins/ was imported')\n")
    (tmp_path / "mkts.yml").write_text(textwrap.dedent("""\
        root_directory: db-yml
        triggers:
          - module: ondiskagg.so
            on: "*/1Min/OHLCV"
            config: {destinations: [5Min]}
        """))
    proc = _run(tmp_path, """\
        import mkts
        with mkts.open("db") as db:
            db.write("AAPL/1Min/OHLCV", {"Epoch": [60, 120], "Close": [1.5, 2.5]})
            print(db.read("AAPL/1Min/OHLCV")["Close"].tolist())
        with mkts.open("mkts.yml") as db:
            bars = {"Epoch": [0, 60], "Open": [3.0, 4.0], "High": [3.0, 5.0],
                    "Low": [3.0, 4.0], "Close": [3.0, 4.0], "Volume": [10, 20]}
            db.write("AAPL/1Min/OHLCV", bars)
            db.flush()
            r = db.read("AAPL/5Min/OHLCV")
            print([r["Open"].tolist(), r["High"].tolist(), r["Volume"].tolist()])
        import sys
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("engine", "wal", "plugins")))
        """)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.splitlines() == ["[1.5, 2.5]", "[[3.0], [5.0], [30]]", "[]"]


def test_installed_environment_has_no_top_level_engine_wal_or_plugins(tmp_path: Path) -> None:
    proc = _run(tmp_path, """\
        import importlib.util
        for name in ("engine", "wal", "plugins"):
            print(name, importlib.util.find_spec(name) is not None)
        import mkts.engine, mkts.wal, mkts.plugins.ondiskagg
        print(mkts.engine.open is mkts.engine.database.open_database)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["engine", "False", "wal", "False", "plugins", "False", "True"]


def test_wheel_holds_only_the_mkts_package(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
        ".benchmarks", "demo-data", "data", "results"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    assert "deprecated" not in (proc.stdout + proc.stderr).lower()  # e.g. project.license
    (wheel,) = (tmp_path / "dist").glob("mkts-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"mkts", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    # the three layers are real files inside the package, not links, and the config is there
    for module in ("mkts/engine/database.py", "mkts/wal/log.py", "mkts/plugins/ondiskagg.py",
                   "mkts/mkts.yml", "mkts/cli.py", "mkts/plugins/functions/candles.py"):
        assert module in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "ondiskagg = mkts.plugins.ondiskagg" in entry_points
    assert "mkts = mkts.cli:main" in entry_points
    assert "[mkts.functions]" in entry_points
    assert "candlecandler = mkts.plugins.functions.candlecandler" in entry_points


def test_mkts_exports_the_public_api() -> None:
    for name in mkts.__all__:
        assert getattr(mkts, name) is not None, name
    assert mkts.Database is mkts.engine.Database and mkts.Result is mkts.engine.Result
    assert issubclass(mkts.SchemaError, mkts.MktsError)
    assert issubclass(mkts.PluginError, mkts.MktsError)
    assert {"Trigger", "BgWorker", "Records", "RootNotFoundError"} <= set(mkts.__all__)


def test_open_of_a_directory_creates_it_by_default(tmp_path: Path) -> None:
    root = tmp_path / "new"
    with mkts.open(root, timezone="America/New_York") as db:
        assert isinstance(db, mkts.Database) and db.timezone == "America/New_York"
        db.write("X/1D/OHLCV", {"Epoch": np.array([1_704_171_600]), "Close": [1.0]})
    assert (root / "mkts.root").is_file()


@pytest.mark.parametrize("kwargs", [{"create": False}, {"readonly": True}])
def test_missing_root_without_create_names_the_path_and_creates_nothing(
        tmp_path: Path, kwargs: dict[str, bool]) -> None:
    root = tmp_path / "mistyped"
    with pytest.raises(mkts.RootNotFoundError, match="mistyped.*does not exist") as info:
        mkts.open(root, **kwargs)
    assert isinstance(info.value, FileNotFoundError)
    assert not root.exists()


def test_create_false_opens_an_existing_root(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        db.write("X/1Min/OHLCV", {"Epoch": [60], "Close": [2.0]})
    with mkts.open(tmp_path / "db", create=False) as db:
        assert db.read("X/1Min/OHLCV")["Close"].tolist() == [2.0]


def test_open_of_a_config_accepts_engine_overrides_but_not_plugins(tmp_path: Path) -> None:
    yml = tmp_path / "mkts.yml"
    yml.write_text(f"root_directory: {tmp_path / 'db'}\n")
    with pytest.raises(mkts.RootNotFoundError):
        mkts.open(yml, create=False)
    with mkts.open(yml, sync="off") as db:
        assert db.sync_mode == "off"
    with pytest.raises(mkts.InvalidInputError, match="triggers"):
        mkts.open(yml, triggers=[])


@pytest.mark.parametrize("command", [["list"], ["info", "X/1Min/OHLCV"], ["query", "X/1Min/OHLCV"],
                                     ["check"], ["wal", "inspect"]])
def test_cli_read_commands_never_create_a_root(tmp_path: Path, command: list[str]) -> None:
    root = tmp_path / "mistyped"
    proc = subprocess.run([sys.executable, "-m", "mkts.cli", *command, "--root", str(root)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert str(root) in proc.stderr and "does not exist" in proc.stderr
    assert not root.exists()
