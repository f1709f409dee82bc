"""Fixtures for the pytest-benchmark scenarios: data built once per session from a fixed seed.

    pytest benchmarks --benchmark-only                          # full size (make bench)
    MKTS_BENCH_SIZE=smoke pytest benchmarks --benchmark-disable -q   # CI: each scenario once

The size comes from MKTS_BENCH_SIZE (full | quick | smoke; default full).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import data as D


@pytest.fixture(scope="session")
def size() -> D.Size:
    return D.size_from_env()


@pytest.fixture(scope="session")
def bar_data(size: D.Size) -> dict[str, np.ndarray]:
    return D.bar_set(size)


@pytest.fixture(scope="session")
def bars_root(tmp_path_factory: pytest.TempPathFactory, bar_data: dict[str, np.ndarray]) -> str:
    """A closed database holding the bulk data set (written once, sync=off)."""
    from mkts import engine

    root = os.fspath(tmp_path_factory.mktemp("bars") / "db")
    with engine.open(root, bulk_load_rows=0, sync="off") as db:
        for sym, rows in bar_data.items():
            db.write(D.BAR_KEY.format(sym), rows)
    return root


@pytest.fixture(scope="session")
def read_db(bars_root: str) -> Iterator[Any]:
    from mkts import engine

    db = engine.open(bars_root, readonly=True)
    yield db
    db.close()


@pytest.fixture
def fresh_root(tmp_path: Path) -> Iterator[Any]:
    """A factory of new, empty database roots under the test's tmp dir."""
    counter = iter(range(1_000_000))

    def make() -> str:
        return os.fspath(tmp_path / f"db{next(counter)}")

    yield make
