"""WAL ops 3 (clear slots) and 5 (drop year), docs/wal.md §10 "Range deletes: ops 3 and 5":
their payloads round-trip, damaged or unsupported ones are refused as corrupt, and clearing
a range of a year file is idempotent and leaves holes as holes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mkts import engine
from mkts.engine import journal
from mkts.engine.clears import FILE_OVERLAY, FILE_SEALED, ClearWrite, DropYear
from mkts.engine.plan import IngestWrite, SlotWrite
from mkts.engine.schema import FIXED, Schema

KEY = engine.parse_key("AAPL/1Min/OHLCV")
SCHEMA = Schema.from_spec(engine.parse_timeframe("1Min"), FIXED, {"Close": "f8"})
NS = 1_000_000_000


def _decode(payload: bytes) -> list:
    return journal.decode(payload, lambda key: SCHEMA, "test")


def test_clear_and_drop_round_trip() -> None:
    ops = [ClearWrite(KEY, 2024, 10, 20, 5 * NS, 6 * NS, SCHEMA.record_dtype.itemsize),
           DropYear(KEY, 2023, 1 * NS, 2 * NS),
           ClearWrite(KEY, 2024, 7, 6, 3 * NS, 3 * NS, SCHEMA.record_dtype.itemsize)]
    got = _decode(journal.encode(ops))
    assert [(type(w), w.year) for w in got] == [(ClearWrite, 2024), (DropYear, 2023),
                                                (ClearWrite, 2024)]
    assert (got[0].first, got[0].last, got[0].start_ns, got[0].end_ns) == (10, 20, 5 * NS, 6 * NS)
    assert (got[2].first, got[2].last) == (7, 6)  # no slot: the delete only cut intervals
    assert (got[1].files, got[1].start_ns, got[1].end_ns) == (1, NS, 2 * NS)


def test_sealed_year_ops_decode_beside_slot_writes_and_bulk_loads() -> None:
    """Op 3 mode 1 (tombstones) and op 5 with `.sealed` and `.overlay` decode as logged, in
    one payload with ops 1 and 7."""
    rec = np.zeros(1, SCHEMA.record_dtype)
    rec["_slot"] = 5
    ops = [SlotWrite(KEY, 2023, np.array([4]), rec),
           ClearWrite(KEY, 2023, 3, 9, 0, NS, SCHEMA.record_dtype.itemsize, mode=1),
           DropYear(KEY, 2022, 0, NS, files=FILE_SEALED | FILE_OVERLAY),
           IngestWrite(KEY, 2021, np.zeros(0, np.int64), rec[:0], 77, 4264, 99, 1)]
    got = _decode(journal.encode(ops))
    assert [type(w) for w in got] == [SlotWrite, ClearWrite, DropYear, IngestWrite]
    assert isinstance(got[1], ClearWrite) and (got[1].mode, got[1].first, got[1].last) == (1, 3, 9)
    assert isinstance(got[2], DropYear) and got[2].files == FILE_SEALED | FILE_OVERLAY
    assert isinstance(got[3], IngestWrite) and (got[3].ingest_id, got[3].size) == (77, 4264)


@pytest.mark.parametrize("bad, why", [
    (ClearWrite(KEY, 2024, 10, 5, 0, 1, 16), "not a range"),  # last < first - 1
    (ClearWrite(KEY, 2024, 1, 2, 9, 1, 16), "not a range"),  # start after end
    (ClearWrite(KEY, 2024, 1, 2, 0, 1, 24), "record size"),  # not the bucket's record
    (ClearWrite(KEY, 2024, 1, 2, 0, 1, 16, mode=2), "clear mode 2"),
    (DropYear(KEY, 2024, 0, 1, files=8), "files 0x8"),
    (DropYear(KEY, 2024, 0, 1, files=0), "files 0x0"),
])
def test_damaged_or_unsupported_ops_are_corrupt(bad: object, why: str) -> None:
    with pytest.raises(engine.CorruptWALError, match=why):
        _decode(journal.encode([bad]))  # type: ignore[list-item]


def test_a_clear_with_records_is_corrupt() -> None:
    good = journal.encode([ClearWrite(KEY, 2024, 1, 2, 0, 1, 16)])
    damaged = good[:15] + (1).to_bytes(4, "little") + good[19:]  # record count 1
    with pytest.raises(engine.CorruptWALError, match="carries 1 records"):
        _decode(damaged)


def test_clear_range_is_idempotent_and_keeps_holes(tmp_path: Path) -> None:
    root = tmp_path / "db"
    epochs = 1_704_067_200 + 60 * np.array([0, 1, 2, 500_000])
    with engine.open(root) as db:
        db.write(str(KEY), {"Epoch": epochs, "Close": [1.0, 2.0, 3.0, 4.0]})
    path = os.path.join(root, "AAPL", "1Min", "OHLCV", "2024.bin")
    from mkts.engine.yearfile import YearFile
    from mkts.wal.fs import OsFileSystem

    fs = OsFileSystem()
    allocated = fs.allocated_size(path)
    f = YearFile.open(fs, path, writable=True)
    try:
        assert f.clear_range(1, 400_000) == 2
        once = Path(path).read_bytes()
        assert f.clear_range(1, 400_000) == 0
        assert Path(path).read_bytes() == once
        assert f.occupied().tolist() == [0, 500_000]
    finally:
        f.close()
    assert fs.allocated_size(path) <= allocated  # the empty slots in between stay holes
