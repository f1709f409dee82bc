"""What open does with damaged logs (docs/wal.md §5): torn tails, corruption, point-in-time
recovery, leftovers of interrupted checkpoints and segment creations (docs/design.md §9 R7)."""

from __future__ import annotations

import logging
import os
import random
import struct

import pytest
from harness.faultfs import FaultFS

from mkts.wal import CorruptWALError, OsFileSystem, WriteAheadLog
from mkts.wal.crc import crc32c

DIR = "/db/wal"
DAMAGED = f"{DIR}/damaged"
# Sizes 0 B … 64 KiB; several records cross 4 KiB page boundaries. The last three are cut at
# every byte offset.
SIZES = [17, 1, 100, 4095, 65536, 4096, 0, 5000]


def seg(n: int, d: str = DIR) -> str:
    return f"{d}/{n:020d}.wal"


def _segments(fs) -> list[str]:
    return sorted(n for n in fs.listdir(DIR) if n.endswith(".wal"))


def _fs() -> FaultFS:
    fs = FaultFS()
    fs.makedirs("/db")
    return fs


def _payloads(sizes: list[int], seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(n) for n in sizes]


def _write_log(fs, payloads: list[bytes], d: str = DIR, **kw) -> None:
    with WriteAheadLog.open(d, fs, **kw) as log:
        for p in payloads:
            log.append([p])
        log.sync()


def _bounds(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record, parsed by hand from the layout in docs/wal.md §3."""
    out, off = [], 40
    while off < len(data):
        (length,) = struct.unpack_from("<I", data, off + 4)
        out.append((off, off + 20 + length))
        off += 20 + length
    return out


def _read(fs, **kw) -> tuple[list[bytes], int]:
    with WriteAheadLog.open(DIR, fs, **kw) as log:
        return [r.payload for r in log.records()], log.last_txn


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.fixture(scope="module")
def golden() -> tuple[list[bytes], bytes, list[tuple[int, int]]]:
    fs = _fs()
    payloads = _payloads(SIZES)
    _write_log(fs, payloads)
    data = fs.read_bytes(seg(1))
    bounds = _bounds(data)
    assert len(bounds) == len(SIZES) and bounds[-1][1] == len(data)
    return payloads, data, bounds


# --- torn tails ----------------------------------------------------------------------------------


def test_truncated_tail_is_ignored_at_every_byte_offset_of_the_last_three_records(golden):
    payloads, data, bounds = golden
    first_cut = bounds[-3][0]
    for cut in range(first_cut, len(data) + 1):
        whole = sum(1 for _, end in bounds if end <= cut)
        valid_end = bounds[whole - 1][1]
        fs = _fs()
        fs.makedirs(DIR)
        fs.write_bytes(seg(1), data[:cut])
        with WriteAheadLog.open(DIR, fs) as log:
            got = [r.payload for r in log.records()]
            assert got == payloads[:whole], cut
            assert log.last_txn == whole
            assert fs.read_bytes(seg(1)) == data[:valid_end], cut  # torn bytes are gone
            assert log.append([b"new"]) == whole + 1
        assert _read(fs) == (payloads[:whole] + [b"new"], whole + 1), cut


def test_truncated_tail_on_the_real_filesystem(golden, tmp_path):
    """The same on OsFileSystem, at every record boundary ±1 and a sample of offsets between."""
    payloads, data, bounds = golden
    cuts = {
        c
        for start, end in bounds[-3:]
        for c in (start - 1, start, start + 1, start + 20, end - 1, end)
    }
    cuts |= set(range(bounds[-3][0], len(data), 997))
    osfs = OsFileSystem()
    for i, cut in enumerate(sorted(c for c in cuts if c <= len(data))):
        d = str(tmp_path / f"w{i}")
        os.mkdir(d)
        with open(seg(1, d), "wb") as f:
            f.write(data[:cut])
        whole = sum(1 for _, end in bounds if end <= cut)
        with WriteAheadLog.open(d, osfs) as log:
            assert [r.payload for r in log.records()] == payloads[:whole]
            assert os.path.getsize(seg(1, d)) == bounds[whole - 1][1]
            log.append([b"new"])
        with WriteAheadLog.open(d, osfs) as log:
            assert [r.payload for r in log.records()] == payloads[:whole] + [b"new"]


def test_every_single_bit_flip_in_the_last_record_is_a_torn_tail():
    payloads = _payloads([30, 7, 44, 90])
    fs0 = _fs()
    _write_log(fs0, payloads)
    data = fs0.read_bytes(seg(1))
    start, end = _bounds(data)[-1]
    for bit in range(start * 8, end * 8):
        fs = _fs()
        fs.makedirs(DIR)
        fs.write_bytes(seg(1), _flip(data, bit))
        got, last = _read(fs)
        assert got == payloads[:-1] and last == 3, bit  # never returned as valid
        assert fs.read_bytes(seg(1)) == data[:start], bit


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00",
        bytes(19),
        bytes(20),
        bytes(21),
        bytes(4096),
        b"\xff" * 20,
        b"\xff" * 8192,
        b"garbage!",
        random.Random(3).randbytes(5000),
    ],
    ids=["zero1", "zero19", "zero20", "zero21", "zero4k", "ff20", "ff8k", "text", "random5000"],
)
def test_garbage_after_the_last_record_is_a_torn_tail(tail):
    payloads = _payloads([10, 0, 300])
    fs = _fs()
    _write_log(fs, payloads)
    data = fs.read_bytes(seg(1))
    fs.write_bytes(seg(1), data + tail)
    assert _read(fs) == (payloads, 3)
    assert fs.read_bytes(seg(1)) == data


def test_duplicated_last_frame_is_not_returned_twice():
    payloads = _payloads([10, 20])
    fs = _fs()
    _write_log(fs, payloads)
    data = fs.read_bytes(seg(1))
    start, end = _bounds(data)[-1]
    fs.write_bytes(seg(1), data + data[start:end])
    assert _read(fs) == (payloads, 2)


def test_valid_frame_from_another_segment_does_not_validate_here():
    payloads = _payloads([10, 20])
    fs = _fs()
    _write_log(fs, payloads)
    other = _fs()
    _write_log(other, payloads + [b"third"])  # same txns, another salt
    foreign = other.read_bytes(seg(1))
    start, end = _bounds(foreign)[-1]
    fs.write_bytes(seg(1), fs.read_bytes(seg(1)) + foreign[start:end])
    assert _read(fs) == (payloads, 2)


def test_huge_length_field_does_not_allocate():
    payloads = _payloads([10, 20, 30])
    fs0 = _fs()
    _write_log(fs0, payloads)
    data = fs0.read_bytes(seg(1))
    (s1, _), (s2, _), (s3, _) = _bounds(data)
    for where, length in [(s3, 0xFFFFFFFF), (s3, 1 << 30), (s3, (1 << 30) + 1), (s2, 1 << 30)]:
        fs = _fs()
        fs.makedirs(DIR)
        fs.write_bytes(seg(1), data[: where + 4] + struct.pack("<I", length) + data[where + 8 :])
        if where == s3:
            assert _read(fs) == (payloads[:2], 2)
        else:  # a damaged length in a middle record: the record after it still validates
            with pytest.raises(CorruptWALError) as info:
                _read(fs)
            assert info.value.offset == s2
        reads = [e.detail[1] for e in fs.trace if e.op == "pread"]
        assert max(reads) <= 1 << 20  # never a read (or a buffer) sized by the damaged length


# --- corruption ----------------------------------------------------------------------------------


def test_every_bit_flip_in_the_header_of_a_middle_record_is_corruption():
    payloads = _payloads([40, 50, 60, 70])
    fs0 = _fs()
    _write_log(fs0, payloads)
    data = fs0.read_bytes(seg(1))
    start, _ = _bounds(data)[1]
    for bit in range(start * 8, (start + 20) * 8):
        fs = _fs()
        fs.makedirs(DIR)
        fs.write_bytes(seg(1), _flip(data, bit))
        before = fs.snapshot()
        with pytest.raises(CorruptWALError) as info:
            WriteAheadLog.open(DIR, fs)
        assert (info.value.segment, info.value.offset) == (seg(1), start), bit
        assert seg(1) in str(info.value) and str(start) in str(info.value)
        assert fs.snapshot() == before, bit  # nothing changed on disk


def test_checksum_mismatch_followed_by_valid_record_is_corruption():
    payloads = _payloads([40, 50, 60])
    fs = _fs()
    _write_log(fs, payloads)
    data = fs.read_bytes(seg(1))
    start, end = _bounds(data)[0]
    fs.write_bytes(seg(1), _flip(data, (end - 1) * 8))  # last payload byte of record 1
    with pytest.raises(CorruptWALError, match="checksum mismatch") as info:
        _read(fs)
    assert info.value.offset == start


def test_zeroed_block_in_the_middle_of_a_segment_is_corruption():
    payloads = _payloads([300] * 40)
    fs = _fs()
    _write_log(fs, payloads)
    data = bytearray(fs.read_bytes(seg(1)))
    data[4096:8192] = bytes(4096)
    fs.write_bytes(seg(1), bytes(data))
    bad = next(s for s, e in _bounds(fs0_bytes(payloads)) if e > 4096)
    with pytest.raises(CorruptWALError) as info:
        _read(fs)
    assert info.value.offset == bad


def fs0_bytes(payloads: list[bytes]) -> bytes:
    fs = _fs()
    _write_log(fs, payloads)
    return fs.read_bytes(seg(1))


def test_valid_record_far_after_a_damaged_big_record_is_found():
    """The search for a later valid frame crosses its 1 MiB read windows."""
    payloads = _payloads([10, 3 << 20, 10])
    fs = _fs()
    _write_log(fs, payloads)
    data = fs.read_bytes(seg(1))
    (_, _), (s2, _), (s3, _) = _bounds(data)
    fs.write_bytes(seg(1), _flip(data, s2 * 8 + 5))  # crc of the big record
    with pytest.raises(CorruptWALError, match=f"valid record at offset {s3}") as info:
        _read(fs)
    assert info.value.offset == s2


def _three_segments(fs) -> list[bytes]:
    payloads = _payloads([100] * 9)
    _write_log(fs, payloads, segment_max_bytes=300)  # 3 records per segment
    assert _segments(fs) == [os.path.basename(seg(n)) for n in (1, 2, 3)]
    return payloads


def test_bad_record_before_a_later_segment_is_corruption():
    fs = _fs()
    _three_segments(fs)
    data = fs.read_bytes(seg(1))
    start, end = _bounds(data)[-1]
    fs.write_bytes(seg(1), _flip(data, end * 8 - 1))  # the last record of segment 1
    before = fs.snapshot()
    with pytest.raises(CorruptWALError, match="later segments follow") as info:
        _read(fs)
    assert (info.value.segment, info.value.offset) == (seg(1), start)
    assert fs.snapshot() == before


def test_txn_gap_between_segments_is_corruption():
    fs = _fs()
    _three_segments(fs)
    data = fs.read_bytes(seg(1))
    start, _ = _bounds(data)[-1]
    fs.write_bytes(seg(1), data[:start])  # lose txn 3 exactly on a record boundary
    before = fs.snapshot()
    with pytest.raises(CorruptWALError, match="txn gap") as info:
        _read(fs)
    assert (info.value.segment, info.value.offset) == (seg(2), 0)
    assert fs.snapshot() == before


def test_missing_middle_segment_is_corruption():
    fs = _fs()
    _three_segments(fs)
    fs.unlink(seg(2))
    with pytest.raises(CorruptWALError, match="segment 2 is missing") as info:
        _read(fs)
    assert (info.value.segment, info.value.offset) == (seg(3), 0)


def test_missing_first_segment_is_corruption():
    fs = _fs()
    _three_segments(fs)
    fs.unlink(seg(1))
    with pytest.raises(CorruptWALError, match="BASE") as info:
        _read(fs)
    assert (info.value.segment, info.value.offset) == (seg(2), 0)


def test_missing_last_segment_is_corruption_naming_it():
    fs = _fs()
    _three_segments(fs)
    fs.unlink(seg(3))  # its records pass every other check: 1 and 2 are a complete log
    before = fs.snapshot()
    for readonly in (True, False):
        with pytest.raises(CorruptWALError, match="00000000000000000003.wal is missing") as info:
            _read(fs, readonly=readonly)
        assert (info.value.segment, info.value.offset) == (seg(3), 0)
        assert fs.snapshot() == before


def test_missing_only_segment_after_a_checkpoint_is_corruption():
    fs = _fs()
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([b"a"])
        log.checkpoint(1)
        log.append([b"b"])  # acknowledged once synced, in segment 2 only
        log.sync()
    fs.unlink(seg(2))
    with pytest.raises(CorruptWALError, match="no segment is left") as info:
        _read(fs)
    assert info.value.segment == seg(2)


def test_point_in_time_without_the_last_segment_keeps_the_rest(caplog):
    fs = _fs()
    payloads = _three_segments(fs)
    fs.unlink(seg(3))
    with caplog.at_level(logging.WARNING, logger="mkts.wal"):
        assert _read(fs, recovery="point_in_time") == (payloads[:6], 6)
    assert "missing" in caplog.text
    with WriteAheadLog.open(DIR, fs) as log:  # the mark was written again: a plain open works
        assert [r.payload for r in log.records()] == payloads[:6]
        assert log.append([b"seven"]) == 7
    assert _read(fs) == (payloads[:6] + [b"seven"], 7)


def test_damaged_highest_mark_is_corruption():
    fs = _fs()
    payloads = _three_segments(fs)
    fs.write_bytes(f"{DIR}/HIGHEST", b"\x00" * 20)
    before = fs.snapshot()
    with pytest.raises(CorruptWALError, match="HIGHEST is damaged") as info:
        _read(fs)
    assert info.value.segment == f"{DIR}/HIGHEST"
    assert fs.snapshot() == before
    assert _read(fs, recovery="point_in_time") == (payloads, 9)  # written again from segments
    assert _read(fs) == (payloads, 9)


def test_log_without_a_highest_mark_gets_one():
    fs = _fs()
    payloads = _three_segments(fs)
    fs.unlink(f"{DIR}/HIGHEST")  # a log written before the mark existed
    assert _read(fs, readonly=True) == (payloads, 9)
    assert not fs.exists(f"{DIR}/HIGHEST")
    assert _read(fs) == (payloads, 9)
    fs.unlink(seg(3))
    with pytest.raises(CorruptWALError, match="missing"):
        _read(fs)


def test_highest_mark_left_half_written_is_removed():
    fs = _fs()
    payloads = _three_segments(fs)
    fs.write_bytes(f"{DIR}/HIGHEST.tmp", b"\x00\x01")
    assert _read(fs) == (payloads, 9)
    assert not fs.exists(f"{DIR}/HIGHEST.tmp")


def test_empty_last_segment_that_the_mark_names_is_corruption():
    """A last segment no longer than a header is a torn creation only if it is newer than
    the mark: the mark is written after the segment's header is durable."""
    fs = _fs()
    _three_segments(fs)
    fs.write_bytes(seg(3), bytes(40))
    with pytest.raises(CorruptWALError) as info:
        _read(fs)
    assert info.value.segment == seg(3)


def test_damaged_segment_header_is_corruption():
    for n in (1, 2, 3):
        fs = _fs()
        _three_segments(fs)
        fs.write_bytes(seg(n), _flip(fs.read_bytes(seg(n)), 8 * 20))  # sequence field
        with pytest.raises(CorruptWALError, match="segment header") as info:
            _read(fs)
        assert (info.value.segment, info.value.offset) == (seg(n), 0)


def test_segment_renamed_to_another_sequence_is_corruption():
    fs = _fs()
    _three_segments(fs)
    fs.write_bytes(seg(4), fs.read_bytes(seg(3)))
    fs.unlink(seg(3))
    with pytest.raises(CorruptWALError, match="sequence") as info:
        _read(fs)
    assert info.value.segment == seg(4)


# --- point-in-time recovery -----------------------------------------------------------------


def test_point_in_time_keeps_the_valid_prefix_and_the_damaged_files(caplog):
    fs = _fs()
    payloads = _three_segments(fs)
    originals = {n: fs.read_bytes(seg(n)) for n in (1, 2, 3)}
    start, _ = _bounds(originals[2])[1]  # txn 5
    fs.write_bytes(seg(2), _flip(originals[2], start * 8 + 70))
    damaged2 = fs.read_bytes(seg(2))
    with caplog.at_level(logging.WARNING, logger="mkts.wal"):
        with WriteAheadLog.open(DIR, fs, recovery="point_in_time") as log:
            assert [r.payload for r in log.records()] == payloads[:4]
            assert log.last_txn == 4
            assert log.append([b"after"]) == 5
    assert "point-in-time" in caplog.text and seg(2) in caplog.text
    assert fs.read_bytes(seg(2, DAMAGED)) == damaged2  # byte for byte
    assert fs.read_bytes(seg(3, DAMAGED)) == originals[3]
    assert not fs.exists(seg(3))
    assert fs.read_bytes(seg(1)) == originals[1]
    assert fs.read_bytes(seg(2))[:start] == damaged2[:start]
    assert _read(fs) == (payloads[:4] + [b"after"], 5)  # the default mode is happy again


def test_point_in_time_after_a_txn_gap_moves_the_later_segments():
    fs = _fs()
    payloads = _three_segments(fs)
    data = fs.read_bytes(seg(1))
    start, _ = _bounds(data)[-1]
    fs.write_bytes(seg(1), data[:start])
    s2, s3 = fs.read_bytes(seg(2)), fs.read_bytes(seg(3))
    assert _read(fs, recovery="point_in_time") == (payloads[:2], 2)
    assert fs.read_bytes(seg(2, DAMAGED)) == s2 and fs.read_bytes(seg(3, DAMAGED)) == s3
    assert _segments(fs) == [os.path.basename(seg(1))]


def test_point_in_time_with_the_first_header_damaged_starts_a_new_log():
    fs = _fs()
    _three_segments(fs)
    fs.write_bytes(seg(1), _flip(fs.read_bytes(seg(1)), 3))
    with WriteAheadLog.open(DIR, fs, recovery="point_in_time") as log:
        assert list(log.records()) == []
        assert log.last_txn == 6  # numbering never goes back below a segment it has seen
        assert log.append([b"x"]) == 7
    assert len([n for n in fs.listdir(DAMAGED)]) == 3
    assert _read(fs) == ([b"x"], 7)


def test_point_in_time_twice_keeps_both_copies():
    fs = _fs()
    payloads = _payloads([50] * 4)
    _write_log(fs, payloads)
    data = fs.read_bytes(seg(1))
    s2, _ = _bounds(data)[1]
    fs.write_bytes(seg(1), _flip(data, s2 * 8))
    assert _read(fs, recovery="point_in_time")[0] == payloads[:1]
    with WriteAheadLog.open(DIR, fs) as log:
        log.append(payloads[1:])
    data = fs.read_bytes(seg(1))
    fs.write_bytes(seg(1), _flip(data, s2 * 8 + 1))
    assert _read(fs, recovery="point_in_time")[0] == payloads[:1]
    assert sorted(fs.listdir(DAMAGED)) == [
        os.path.basename(seg(1)),
        os.path.basename(seg(1)) + ".1",
    ]


def test_point_in_time_readonly_stops_at_the_corruption_and_changes_nothing():
    fs = _fs()
    payloads = _three_segments(fs)
    data = fs.read_bytes(seg(2))
    start, _ = _bounds(data)[0]
    fs.write_bytes(seg(2), _flip(data, start * 8 + 100))
    before = fs.snapshot()
    assert _read(fs, recovery="point_in_time", readonly=True) == (payloads[:3], 3)
    assert fs.snapshot() == before


# --- interrupted creations and checkpoints ----------------------------------------------------


def test_old_segments_left_after_a_checkpoint_are_ignored_and_removed():
    fs = _fs()
    payloads = _three_segments(fs)
    old = {n: fs.read_bytes(seg(n)) for n in (1, 2, 3)}
    with WriteAheadLog.open(DIR, fs) as log:
        log.checkpoint(9)
        log.append([b"ten"])
    for n, data in old.items():  # as if the crash came before the deletions were durable
        fs.write_bytes(seg(n), data)
    fs.unlink(seg(1))  # ... and only some of them reverted
    before = fs.snapshot()
    assert _read(fs, readonly=True) == ([b"ten"], 10)
    assert fs.snapshot() == before
    assert _read(fs) == ([b"ten"], 10)
    assert _segments(fs) == [os.path.basename(seg(4))]
    assert len(payloads) == 9


def test_damaged_stale_segment_does_not_block_the_open():
    fs = _fs()
    _three_segments(fs)
    with WriteAheadLog.open(DIR, fs) as log:
        log.checkpoint(9)
    fs.write_bytes(seg(2), b"\xffjunk" * 100)  # stale: before the base segment 4
    assert _read(fs) == ([], 9)


@pytest.mark.parametrize(
    "content",
    [b"", b"MKTSWAL\x00\x01", bytes(40), b"\xff" * 40],
    ids=["empty", "partial", "zeros", "ff"],
)
def test_segment_torn_while_being_created_is_removed(content):
    fs = _fs()
    payloads = _three_segments(fs)
    fs.write_bytes(seg(4), content)
    before = fs.snapshot()
    assert _read(fs, readonly=True) == (payloads, 9)
    assert fs.snapshot() == before
    with WriteAheadLog.open(DIR, fs) as log:
        assert [r.payload for r in log.records()] == payloads
        assert log.append([b"ten"]) == 10
    assert not fs.exists(seg(4)) or fs.read_bytes(seg(4))[:8] == b"MKTSWAL\x00"
    assert _read(fs) == (payloads + [b"ten"], 10)


def test_only_segment_torn_while_being_created_gives_a_new_log():
    fs = _fs()
    fs.makedirs(DIR)
    fs.write_bytes(seg(1), b"MKTS")
    assert _read(fs) == ([], 0)
    with WriteAheadLog.open(DIR, fs) as log:
        assert log.append([b"a"]) == 1


def test_damaged_last_segment_header_with_records_after_it_is_corruption():
    fs = _fs()
    _three_segments(fs)
    data = fs.read_bytes(seg(3))
    fs.write_bytes(seg(3), bytes(40) + data[40:])
    with pytest.raises(CorruptWALError) as info:
        _read(fs)
    assert (info.value.segment, info.value.offset) == (seg(3), 0)


def test_readonly_open_leaves_a_torn_tail_in_place():
    payloads = _payloads([10, 20])
    fs = _fs()
    _write_log(fs, payloads)
    data = fs.read_bytes(seg(1))
    fs.write_bytes(seg(1), data[:-3])
    assert _read(fs, readonly=True) == (payloads[:1], 1)
    assert fs.read_bytes(seg(1)) == data[:-3]


def test_unrelated_files_in_the_directory_are_ignored():
    fs = _fs()
    payloads = _payloads([5, 6])
    _write_log(fs, payloads)
    fs.write_bytes(f"{DIR}/notes.txt", b"hello")
    fs.write_bytes(f"{DIR}/1.wal", b"not a segment name")
    fs.makedirs(DAMAGED)
    assert _read(fs) == (payloads, 2)
    assert fs.read_bytes(f"{DIR}/notes.txt") == b"hello"


def test_record_crc_covers_the_salt_and_header_fields():
    """A frame rebuilt with the right salt validates; the same frame with txn+1 does not."""
    fs = _fs()
    _write_log(fs, [b"abc"])
    data = fs.read_bytes(seg(1))
    salt = data[32:36]
    fields = struct.pack("<IQB3x", 3, 2, 1)
    frame = struct.pack("<I", crc32c(salt + fields + b"xyz")) + fields + b"xyz"
    fs.write_bytes(seg(1), data + frame)
    assert _read(fs)[0] == [b"abc", b"xyz"]
    fields = struct.pack("<IQB3x", 3, 4, 1)  # txn 4 after txn 2: a gap
    frame2 = struct.pack("<I", crc32c(salt + fields + b"zzz")) + fields + b"zzz"
    fs.write_bytes(seg(1), fs.read_bytes(seg(1)) + frame2)
    with pytest.raises(CorruptWALError, match="txn 4 where txn 3"):
        _read(fs)
