"""Regression: a tick slot whose blob pointer was damaged to a negative offset made reads
(and writes merging into that interval) fail with a bare `OSError: [Errno 22] Invalid
argument` from pread, instead of `CorruptFileError` naming the year file."""

from __future__ import annotations

import numpy as np
import pytest

from mkts import engine
from mkts.engine.errors import CorruptFileError
from mkts.engine.keys import parse_key

NS = 1_000_000_000
KEY = "AAPL/1Min/TRADE"
T10 = 1_704_189_600  # 2024-01-02 10:00 UTC, seconds
SLOT_DTYPE = np.dtype([("_slot", "<i8"), ("head", "<i8"), ("head_bytes", "<u4"),
                       ("head_rows", "<u4"), ("nblobs", "<u4"), ("_check", "<u4"),
                       ("total_bytes", "<i8"), ("nrows", "<i8")])


@pytest.mark.parametrize("head", [-100, -1, 0, 4096])
def test_a_slot_pointing_before_the_data_region_is_a_named_error(root: str, head: int) -> None:
    with engine.open(root) as db:
        db.write(KEY, {"Epoch": [T10], "Nanoseconds": [1], "Seq": [1]}, variable=True)
        f = db.catalog.year_file(db.catalog.get(parse_key(KEY)), 2024)
        assert f is not None
        path = f.path
        slot = (T10 - 1_704_067_200) // 60
        at = f.header.header_size + slot * SLOT_DTYPE.itemsize
    with open(path, "r+b") as fh:
        fh.seek(at)
        rec = np.frombuffer(fh.read(SLOT_DTYPE.itemsize), dtype=SLOT_DTYPE).copy()
        rec["head"] = head
        fh.seek(at)
        fh.write(rec.tobytes())
    with engine.open(root) as db:
        with pytest.raises(CorruptFileError, match="slot") as exc:
            db.read(KEY)
        assert path in str(exc.value)
        with pytest.raises(CorruptFileError) as exc:
            db.write(KEY, {"Epoch": [T10], "Nanoseconds": [2], "Seq": [2]})  # merges: reads it
        assert path in str(exc.value)
