"""A year file (or a bucket's `bucket.hdr`) replaced by a directory raised a raw
`IsADirectoryError`; it is damage like any other, so reads raise a `CorruptFileError` naming
the path. A write to it is refused with the same text (a bar write is found only when the
logged write is applied: it fails the handle, and is applied once the directory is gone)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine.errors import CorruptFileError

T0 = 1_704_153_600  # 2024-01-02 00:00 UTC


def _bars(n: int = 2) -> np.ndarray:
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Close", "<f8")])
    out["Epoch"] = T0 + 60 * np.arange(n)
    out["Close"] = 1.0 + np.arange(n)
    return out


def _ticks(n: int = 2) -> np.ndarray:
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Price", "<f8"), ("Nanoseconds", "<i4")])
    out["Epoch"] = T0 + 60 * np.arange(n)
    out["Price"] = 1.0 + np.arange(n)
    return out


@pytest.mark.parametrize("key,rows,variable", [("BAR/1Min/OHLCV", _bars(), False),
                                                ("TCK/1Sec/TICK", _ticks(), True)])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_year_file_that_is_a_directory_is_corrupt(
        root: str, key: str, rows: np.ndarray, variable: bool, readonly: bool,
        snapshot: Callable[[str], dict[str, Any]]) -> None:
    with engine.open(root) as db:
        db.write(key, rows, variable=variable)
    path = os.path.join(root, *key.split("/"), "2024.bin")
    os.remove(path)
    os.mkdir(path)
    before = snapshot(root)
    with engine.open(root, readonly=readonly) as db:
        with pytest.raises(CorruptFileError, match=r"2024\.bin.*is a directory"):
            db.query(key)
        if not readonly:
            with pytest.raises(engine.MktsError, match=r"2024\.bin is a directory, not an mkts"):
                db.write(key, rows[:1])
    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith(("wal", "LOCK"))} == \
        {k: v for k, v in before.items() if not k.startswith(("wal", "LOCK"))}
    # a tick write reads the file while it is planned: refused before it is logged; a bar
    # write was logged, and replaying it finds the directory again
    logged = not readonly and not variable
    if logged:
        with pytest.raises(CorruptFileError, match=r"2024\.bin is a directory"):
            engine.open(root)
    os.rmdir(path)
    with engine.open(root) as db:
        assert len(db.query(key)[key]) == (1 if logged else 0)


def test_a_bucket_header_that_is_a_directory_is_corrupt(root: str) -> None:
    with engine.open(root) as db:
        db.write("BAR/1Min/OHLCV", _bars())
    path = os.path.join(root, "BAR", "1Min", "OHLCV", "bucket.hdr")
    os.remove(path)
    os.mkdir(path)
    for readonly in (False, True):
        with pytest.raises(CorruptFileError, match=r"bucket\.hdr.*is a directory"):
            engine.open(root, readonly=readonly)
