"""Tick slot records carry a checksum (data file format version 2, docs/format.md "Tick
buckets"): every byte of an occupied slot, flipped, is caught by reads and by `mkts check`
(12 of 30 flips used to pass both: `total_bytes` and the padding were never looked at).
Version-1 tick files stay readable and writable, and compaction upgrades them."""

from __future__ import annotations

import os
import struct

import crc32c
import numpy as np
import pytest

from mkts import engine
from mkts.check import check_root

KEY = "AAPL/1Min/TRADE"
T = 1_704_205_800  # 2024-01-02 14:30 UTC: slot 2 310 of 2024
SLOT = 2_310
HEADER = 4096
SLOTS_2024 = 527_040


def _ticks(root: str) -> str:
    with engine.open(root) as db:
        db.create(KEY, {"Price": "f8", "Size": "i8"}, variable=True)
        db.write(KEY, {"Epoch": [T, T + 30, T + 61], "Nanoseconds": [5, 6, 7],
                       "Price": [1.5, 2.5, 3.5], "Size": [1, 2, 3]})
    return os.path.join(root, "AAPL", "1Min", "TRADE", "2024.bin")


def _xor(path: str, offset: int, mask: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ mask]))


def _read(root: str) -> list[float]:
    with engine.open(root, readonly=True) as db:
        return db.read(KEY)["Price"].tolist()


def test_new_tick_files_are_version_2(root: str) -> None:
    path = _ticks(root)
    with open(path, "rb") as f:
        assert struct.unpack_from("<H", f.read(16), 8)[0] == 2
    assert _read(root) == [1.5, 2.5, 3.5]
    assert check_root(root).errors == []


@pytest.mark.parametrize("byte", range(48))
def test_every_flipped_byte_of_a_tick_slot_is_caught_by_reads_and_check(root: str,
                                                                        byte: int) -> None:
    path = _ticks(root)
    _xor(path, HEADER + SLOT * 48 + byte, 0x10)
    with pytest.raises(engine.CorruptFileError, match="2024.bin"):
        _read(root)
    errors = [str(f) for f in check_root(root).errors]
    assert errors and all("2024.bin" in e for e in errors), errors


def test_a_slot_word_damaged_to_zero_is_reported_by_check(root: str) -> None:
    """Reads see an empty interval there (the slot word is the only occupancy state); check
    sees the rest of the record and reports it."""
    path = _ticks(root)
    with open(path, "r+b") as f:
        f.seek(HEADER + SLOT * 48)
        f.write(bytes(8))
    errors = [str(f) for f in check_root(root).errors]
    assert any("slot number does not match" in e for e in errors), errors


def _downgrade_to_version_1(path: str) -> None:
    """What an earlier mkts wrote: version 1, zero padding where the checksum now is, and no
    file record (docs/format.md "File record")."""
    os.unlink(os.path.join(os.path.dirname(path), "bucket.files"))
    with open(path, "r+b") as f:
        head = bytearray(f.read(HEADER))
        struct.pack_into("<H", head, 8, 1)
        struct.pack_into("<I", head, HEADER - 4, crc32c.crc32c(bytes(head[: HEADER - 4])))
        f.seek(0)
        f.write(head)
        slots = np.memmap(path, dtype=np.uint32, mode="r+", offset=HEADER,
                          shape=(SLOTS_2024, 12))
        slots[:, 7] = 0
        slots.flush()
        del slots


def test_version_1_tick_files_stay_readable_writable_and_compaction_upgrades_them(
        root: str) -> None:
    path = _ticks(root)
    _downgrade_to_version_1(path)
    assert _read(root) == [1.5, 2.5, 3.5]
    assert check_root(root).errors == []
    with engine.open(root) as db:
        db.write(KEY, {"Epoch": [T + 1], "Nanoseconds": [0], "Price": [9.5], "Size": [9]})
        assert db.read(KEY)["Price"].tolist() == [1.5, 9.5, 2.5, 3.5]
    with open(path, "rb") as f:
        assert struct.unpack_from("<H", f.read(16), 8)[0] == 1  # not changed by writes
    with engine.open(root) as db:
        db.compact(KEY)
    with open(path, "rb") as f:
        assert struct.unpack_from("<H", f.read(16), 8)[0] == 2
    assert _read(root) == [1.5, 9.5, 2.5, 3.5]
    assert check_root(root).errors == []
    _xor(path, HEADER + SLOT * 48 + 32, 0x01)  # total_bytes: now covered
    with pytest.raises(engine.CorruptFileError, match="checksum"):
        _read(root)
