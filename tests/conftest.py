"""Shared fixtures: a fresh database root per test, an open database, bar builders; the
tier markers, assigned from each test's folder (harness/tiers.py); the per-test timeout
(harness/timeout.py); the rename guard (harness/namespace.py); the `--run-slow` switch for
tests marked `slow`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import namespace
from harness.tiers import TIERS, tier_of

BAR_DTYPE = np.dtype(
    [("Epoch", "<i8"), ("Open", "<f4"), ("High", "<f4"), ("Low", "<f4"), ("Close", "<f4"),
     ("Volume", "<i8")]
)
BAR_COLUMNS = ["Open", "High", "Low", "Close", "Volume"]
JAN_2_2024 = 1_704_153_600  # 2024-01-02 00:00:00 UTC

pytest_plugins = ["harness.timeout"]  # --test-timeout and @pytest.mark.timeout


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (long crash, fuzz and soak runs)")


_GUARD = pytest.StashKey[namespace.OldNameFinder]()


def pytest_configure(config: pytest.Config) -> None:
    for tier, description in TIERS.items():
        config.addinivalue_line("markers", f"{tier}: {description} (set from the folder)")
    config.stash[_GUARD] = namespace.install()  # `import engine` fails: it is mkts.engine


def pytest_unconfigure(config: pytest.Config) -> None:
    if _GUARD in config.stash:
        namespace.uninstall(config.stash[_GUARD])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--run-slow")
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        item.add_marker(tier_of(item.path))
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip)


@pytest.fixture
def root(tmp_path: Path) -> str:
    """Path of a database root that does not exist yet (its parent does)."""
    return os.fspath(tmp_path / "db")


@pytest.fixture
def db(root: str) -> Iterator[Any]:
    """An open database on a fresh root, closed after the test."""
    from mkts import engine

    handle = engine.open(root)
    try:
        yield handle
    finally:
        handle.close()


def make_bars(n: int, start: int = JAN_2_2024, step: int = 60, *, first: float = 0.0
              ) -> np.ndarray:
    """`n` OHLCV bars `step` seconds apart from `start`; row i carries value first + i in
    every price column and volume i (so any row can be checked by its position)."""
    out = np.zeros(n, dtype=BAR_DTYPE)
    out["Epoch"] = start + step * np.arange(n, dtype=np.int64)
    v = first + np.arange(n, dtype=np.float64)
    for c in ("Open", "High", "Low", "Close"):
        out[c] = v
    out["Volume"] = np.arange(n, dtype=np.int64)
    return out


@pytest.fixture
def bars() -> Callable[..., np.ndarray]:
    """`bars(n, start=..., step=60, first=0.0)`: a structured array of OHLCV bars."""
    return make_bars


def _snapshot(path: str) -> dict[str, bytes | None]:
    """Every file's bytes (and every directory, as None) under `path`, by relative path."""
    out: dict[str, bytes | None] = {}
    for dirpath, _dirnames, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        out[rel + "/"] = None
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                out[os.path.join(rel, name)] = f.read()
    return out


@pytest.fixture
def snapshot() -> Callable[[str], dict[str, bytes | None]]:
    """`snapshot(path)`: {relative path: bytes} of every file (directories map to None)."""
    return _snapshot
