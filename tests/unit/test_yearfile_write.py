"""Slot writes into a year file (engine/yearfile.py write_slots, write_row) against an
oracle that writes every record on its own: the same file bytes, gaps and holes included."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from mkts.engine.header import Header, encode_header, header_size_for
from mkts.engine.schema import FIXED, SLOT_FIELD, Schema
from mkts.engine.timeframes import parse_timeframe
from mkts.engine.timeutil import get_calendar
from mkts.engine.yearfile import YearFile
from mkts.wal.fs import OsFileSystem

CAL = get_calendar("UTC")


def _new(tmp_path: Any, name: str, columns: dict[str, str]) -> YearFile:
    schema = Schema.from_spec(parse_timeframe("1Min"), FIXED, columns)
    header = Header(schema, 2024, CAL.nslots(2024, schema.timeframe), CAL.year_start(2024),
                    "UTC", header_size_for(len(schema.columns)))
    data = encode_header(schema, 2024, header.nslots, header.year_start, "UTC")
    return YearFile.create(OsFileSystem(), os.fspath(tmp_path / name), data, header)


def _records(f: YearFile, slots: np.ndarray, seed: int) -> np.ndarray:
    rec = np.zeros(len(slots), dtype=f.header.schema.record_dtype)
    rec[SLOT_FIELD] = slots + 1
    rng = np.random.default_rng(seed)
    for name in f.header.schema.names:
        rec[name] = rng.integers(1, 1000, len(slots))
    return rec


def _content(f: YearFile) -> bytes:
    with open(f.path, "rb") as fh:
        return fh.read()


@pytest.mark.parametrize("columns", [{"A": "f8", "B": "i4"}, {"A": "u1"},
                                     {"A": "f4", "B": "f4", "C": "f4", "D": "f4", "V": "i8"}])
@pytest.mark.parametrize("index", ["kept", "unknown"])
@pytest.mark.parametrize("seed", range(6))
def test_sparse_writes_match_one_write_per_record(tmp_path: Any, columns: dict[str, str],
                                                  index: str, seed: int) -> None:
    fast = _new(tmp_path, "fast.bin", columns)
    oracle = _new(tmp_path, "oracle.bin", columns)
    rng = np.random.default_rng(seed)
    nslots = fast.header.nslots
    for step in range(5):
        kind = rng.integers(0, 4)
        lo = int(rng.integers(0, nslots - 5000))
        if kind == 0:  # dense run with small holes
            slots = np.arange(lo, lo + int(rng.integers(1, 3000)))
            slots = slots[rng.random(len(slots)) > 0.05]
        elif kind == 1:  # scattered, gaps of every size
            slots = np.unique(rng.integers(lo, lo + 5000, int(rng.integers(1, 400))))
        elif kind == 2:  # far apart, one per day
            slots = np.unique(rng.integers(0, 365, 50)) * 1440 + int(rng.integers(0, 1440))
        else:  # single slots and pairs
            slots = np.unique(rng.integers(lo, lo + 300, int(rng.integers(1, 3))))
        if len(slots) == 0:
            continue
        slots = slots.astype(np.int64)
        rec = _records(fast, slots, seed * 10 + step)
        if index == "unknown":
            fast._occ = None  # as after open: the index is built from the file on demand
        if len(slots) == 1 and step % 2:
            fast.write_row(int(slots[0]), rec.tobytes())
        else:
            fast.write_slots(slots, rec.data.cast("B"))
        for s, r in zip(slots.tolist(), rec, strict=True):
            oracle.write_slots(np.array([s]), r.tobytes())
    assert _content(fast) == _content(oracle)
    assert fast.occupied().tolist() == oracle.occupied().tolist()
    fast.close()
    oracle.close()


def test_write_row_keeps_the_occupancy_index(tmp_path: Any) -> None:
    f = _new(tmp_path, "f.bin", {"A": "f8"})
    f.occupied()
    for s in [10, 20, 15, 20, 5, 30, 10]:
        rec = _records(f, np.array([s]), s)
        f.write_row(s, rec.tobytes())
    assert f.occupied().tolist() == [5, 10, 15, 20, 30]
    with pytest.raises(Exception, match="outside"):
        f.write_row(f.header.nslots, bytes(f.header.record_size))
    f.close()
