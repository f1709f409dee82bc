"""Damaged year files raise a named error; they are never read as empty or as other data."""

from __future__ import annotations

import os
import struct
from typing import Any

import crc32c
import numpy as np
import pytest

from mkts import engine

KEY = "AAPL/1Min/OHLCV"
T10 = 1_704_189_600  # 2024-01-02 10:00:00 UTC
JAN1_2024 = 1_704_067_200
RECORD = 16  # 8 (slot number) + f8
HEADER = 4096


@pytest.fixture
def year_file(root: str) -> str:
    """A closed database whose KEY holds 10:00, 10:01, 10:02 (Close 1, 2, 3) in 2024.bin."""
    with engine.open(root) as db:
        db.write(KEY, {"Epoch": [T10, T10 + 60, T10 + 120], "Close": [1.0, 2.0, 3.0]})
        db.write(KEY, {"Epoch": [T10 - 86_400 * 5], "Close": [0.5]})  # in 2023
    return os.path.join(root, "AAPL", "1Min", "OHLCV", "2024.bin")


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _read_all(root: str, **kw: Any) -> engine.Result:
    with engine.open(root, **kw) as db:
        return db.read(KEY)


def test_undamaged_file_reads_back(year_file: str, root: str) -> None:
    assert _read_all(root)["Close"].tolist() == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("offset", [0, 7, 10, 12, 16, 20, 24, 32, 40, 48, 60, 100, 121, 140, 2000, 4095])
@pytest.mark.parametrize("readonly", [False, True])
def test_damaged_header_is_corrupt_file_error_never_empty(year_file: str, root: str,
                                                          offset: int, readonly: bool) -> None:
    with open(year_file, "rb") as f:
        f.seek(offset)
        byte = f.read(1)[0]
    _patch(year_file, offset, bytes([byte ^ 0x20]))
    with engine.open(root, readonly=readonly) as db:
        with pytest.raises(engine.CorruptFileError, match="2024.bin"):
            db.read(KEY)
        with pytest.raises(engine.CorruptFileError):
            db.query("AAPL/1Min/OHLCV", "2024-01-02", "2024-01-03")
        # Years whose file is intact stay readable.
        assert db.read(KEY, None, "2023-12-31")["Close"].tolist() == [0.5]


def test_zeroed_header_is_corrupt(year_file: str, root: str) -> None:
    _patch(year_file, 0, bytes(HEADER))
    with pytest.raises(engine.CorruptFileError):
        _read_all(root)


def test_unknown_format_version_is_unsupported(year_file: str, root: str) -> None:
    with open(year_file, "rb") as f:
        head = bytearray(f.read(HEADER))
    struct.pack_into("<H", head, 8, 99)
    struct.pack_into("<I", head, HEADER - 4, crc32c.crc32c(bytes(head[: HEADER - 4])))
    _patch(year_file, 0, bytes(head))
    with pytest.raises(engine.UnsupportedFormatError, match="99"):
        _read_all(root)


def test_truncated_year_file_is_corrupt(year_file: str, root: str) -> None:
    os.truncate(year_file, HEADER + 1000 * RECORD)
    with pytest.raises(engine.CorruptFileError, match="truncated"):
        _read_all(root)


def test_year_file_with_another_years_header_is_corrupt(year_file: str, root: str) -> None:
    other = year_file.replace("2024.bin", "2023.bin")
    with open(other, "rb") as f:
        head = f.read(HEADER)
    _patch(year_file, 0, head)  # a valid header, but it says 2023 and 525 600 slots
    with pytest.raises(engine.CorruptFileError):
        _read_all(root)


def test_damaged_bucket_header_is_corrupt_at_open(year_file: str, root: str) -> None:
    template = os.path.join(os.path.dirname(year_file), "bucket.hdr")
    _patch(template, 64, b"\xff")
    with pytest.raises(engine.CorruptFileError, match="bucket.hdr"):
        engine.open(root)


def _slot_offset(epoch: int) -> int:
    return HEADER + (epoch - JAN1_2024) // 60 * RECORD


def test_record_whose_slot_number_does_not_match_its_position_is_corrupt(year_file: str,
                                                                        root: str) -> None:
    offset = _slot_offset(T10 + 60)
    with open(year_file, "rb") as f:
        f.seek(offset)
        assert int.from_bytes(f.read(8), "little") == (T10 + 60 - JAN1_2024) // 60 + 1
    _patch(year_file, offset, struct.pack("<q", (T10 + 60 - JAN1_2024) // 60 + 6))
    with pytest.raises(engine.CorruptFileError, match="slot"):
        _read_all(root)
    with engine.open(root) as db:
        # A range that does not include the damaged record still reads.
        assert db.read(KEY, T10 + 120, T10 + 120)["Close"].tolist() == [3.0]
        with pytest.raises(engine.CorruptFileError):
            db.read(KEY, T10 + 60, T10 + 60)


def test_record_copied_into_another_slot_is_corrupt(year_file: str, root: str) -> None:
    with open(year_file, "rb") as f:
        f.seek(_slot_offset(T10))
        record = f.read(RECORD)
    _patch(year_file, _slot_offset(T10 + 600), record)  # an empty slot now holds 10:00's row
    with pytest.raises(engine.CorruptFileError):
        _read_all(root)


def test_damaged_data_does_not_affect_other_buckets(year_file: str, root: str) -> None:
    with engine.open(root) as db:
        db.write("MSFT/1Min/OHLCV", {"Epoch": [T10], "Close": np.array([7.0])})
    _patch(year_file, 0, b"XXXX")
    with engine.open(root) as db:
        assert db.read("MSFT/1Min/OHLCV")["Close"].tolist() == [7.0]
        with pytest.raises(engine.CorruptFileError):
            db.query("*/1Min/OHLCV")
