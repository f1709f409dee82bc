"""`mkts check` reads the root's own files through the engine (engine/rootmeta.py): the
format version is checked, and whether a writer holds the root is probed via the fs layer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mkts import engine
from mkts.check import check_root
from mkts.engine.rootmeta import read_root_meta, writer_of
from mkts.wal.fs import OsFileSystem

BARS = {"Epoch": np.array([1_704_187_800]), "Close": np.array([1.5])}


@pytest.fixture
def root(tmp_path: Path) -> str:
    path = str(tmp_path / "db")
    with engine.open(path, timezone="America/New_York") as db:
        db.write("AAPL/1Min/OHLCV", BARS)
    return path


def test_check_reads_the_time_zone_that_open_recorded(root: str) -> None:
    meta = read_root_meta(OsFileSystem(), root)
    assert meta is not None and (meta.format, meta.timezone) == (1, "America/New_York")
    report = check_root(root)
    assert report.errors == [] and report.buckets == 1


def test_check_refuses_a_root_of_another_format(root: str) -> None:
    Path(root, "mkts.root").write_text(json.dumps({"format": 3, "timezone": "UTC"}))
    errors = [str(f) for f in check_root(root).errors]
    assert len(errors) == 1
    assert "mkts.root: cannot be read" in errors[0]
    assert "database format 3; this mkts reads formats 1 and 2" in errors[0]
    with pytest.raises(engine.UnsupportedFormatError):
        engine.open(root, readonly=True)


def test_check_reports_a_damaged_root_file(root: str) -> None:
    Path(root, "mkts.root").write_text("{not json")
    errors = [str(f) for f in check_root(root).errors]
    assert len(errors) == 1 and "is damaged" in errors[0]


def test_check_names_the_writer_holding_the_root(root: str) -> None:
    fs = OsFileSystem()
    assert writer_of(fs, root) is None and check_root(root).in_use_by is None
    with engine.open(root):
        assert writer_of(fs, root) == str(os.getpid())
        assert check_root(root).in_use_by == str(os.getpid())
    assert check_root(root).in_use_by is None
