"""The WAL byte layout (docs/wal.md §2–§4): CRC-32C, golden bytes, header and frame codec."""

from __future__ import annotations

import mmap
import os
import struct

import pytest
from harness.docpages import code_blocks, hex_bytes, read_page, section
from harness.faultfs import FaultFS

from mkts.wal import MAX_PAYLOAD, RT_DATA, UnsupportedFormatError, WriteAheadLog
from mkts.wal.crc import crc32c
from mkts.wal.errors import CorruptWALError
from mkts.wal.format import (
    HEADER_SIZE,
    HeaderProblem,
    decode_segment_header,
    encode_frames,
    encode_segment_header,
    parse_segment_name,
    segment_name,
)

DIR = "/db/wal"
SEG1 = f"{DIR}/00000000000000000001.wal"


def _doc_example() -> bytes:
    """The segment of docs/wal.md §4, read from the page's hex dump."""
    (dump,) = code_blocks(section(read_page("docs/wal.md"), "4"))
    return hex_bytes(dump)


def _fs() -> FaultFS:
    fs = FaultFS()
    fs.makedirs("/db")
    return fs


def _by_hand_segment(salt: int, first_txn: int, records: list[tuple[int, int, bytes]]) -> bytes:
    """The bytes of a segment built from the tables in docs/wal.md, not from wal/format.py."""
    body = (
        b"MKTSWAL\x00"
        + (1).to_bytes(2, "little")
        + (40).to_bytes(2, "little")
        + (1).to_bytes(4, "little")
        + (1).to_bytes(8, "little")
        + first_txn.to_bytes(8, "little")
        + salt.to_bytes(4, "little")
    )
    out = body + crc32c(body).to_bytes(4, "little")
    for txn, rtype, payload in records:
        fields = (
            len(payload).to_bytes(4, "little")
            + txn.to_bytes(8, "little")
            + bytes([rtype])
            + b"\x00\x00\x00"
        )
        crc = crc32c(salt.to_bytes(4, "little") + fields + payload)
        out += crc.to_bytes(4, "little") + fields + payload
    return out


def test_crc32c_known_answers():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xFF
    assert crc32c(bytes(range(32))) == 0x46DD794E  # RFC 3720 B.4: incrementing
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283  # continuation


def test_golden_bytes_of_the_documented_two_record_segment(monkeypatch):
    expected = _doc_example()
    assert len(expected) == 85
    assert _by_hand_segment(0x11223344, 1, [(1, 1, b"hello"), (2, 1, b"")]) == expected
    monkeypatch.setattr("mkts.wal.log.new_salt", lambda: 0x11223344)
    fs = _fs()
    log = WriteAheadLog.open(DIR, fs)
    assert log.append([b"hello"]) == 1
    assert log.append([b""]) == 2
    log.close()
    assert fs.read_bytes(SEG1) == expected


def test_the_documented_segment_reads_back_as_its_two_records():
    fs = _fs()
    fs.makedirs(DIR)
    fs.write_bytes(SEG1, _doc_example())
    with WriteAheadLog.open(DIR, fs, readonly=True) as log:
        got = [(r.txn, r.rtype, r.payload, r.offset) for r in log.records()]
        assert log.last_txn == 2
    assert got == [(1, RT_DATA, b"hello", 40), (2, RT_DATA, b"", 65)]
    h = decode_segment_header(_doc_example()[:HEADER_SIZE])
    assert (h.sequence, h.first_txn, h.salt, h.is_base) == (1, 1, 0x11223344, True)


def test_golden_bytes_with_random_salt_match_the_layout():
    fs = _fs()
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([b"a" * 300, b"", b"xyz"], rtype=7)
    data = fs.read_bytes(SEG1)
    salt = struct.unpack_from("<I", data, 32)[0]
    assert data == _by_hand_segment(salt, 1, [(1, 7, b"a" * 300), (2, 7, b""), (3, 7, b"xyz")])


def test_segment_names_sort_in_log_order():
    assert segment_name(1) == "00000000000000000001.wal"
    assert segment_name(12345678901234567890) == "12345678901234567890.wal"
    names = [segment_name(n) for n in (10, 9, 100, 1)]
    assert sorted(names) == [segment_name(n) for n in (1, 9, 10, 100)]
    assert parse_segment_name("00000000000000000042.wal") == 42
    for other in ("42.wal", "00000000000000000042.wal.tmp", "damaged", "0000000000000000004x.wal"):
        assert parse_segment_name(other) is None


def test_segment_header_round_trips():
    raw = encode_segment_header(7, 1234, flags=0, salt=0xDEADBEEF)
    assert len(raw) == HEADER_SIZE
    h = decode_segment_header(raw)
    assert (h.version, h.flags, h.sequence, h.first_txn, h.salt) == (1, 0, 7, 1234, 0xDEADBEEF)
    assert not h.is_base
    assert decode_segment_header(encode_segment_header(1, 1, flags=1, salt=0)).is_base


def test_every_single_bit_flip_in_a_segment_header_is_refused():
    raw = encode_segment_header(3, 99, flags=1, salt=0x0BADCAFE)
    for bit in range(HEADER_SIZE * 8):
        bad = bytearray(raw)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(HeaderProblem) as info:
            decode_segment_header(bytes(bad))
        assert info.value.unsupported_version is None  # damaged, not "newer"


def _future_header(version: int, size: int = 64) -> bytes:
    body = b"MKTSWAL\x00" + struct.pack("<HH", version, size) + bytes(size - 16)
    return body + struct.pack("<I", crc32c(body))


def test_unknown_version_with_valid_crc_is_unsupported_not_corrupt():
    with pytest.raises(HeaderProblem) as info:
        decode_segment_header(_future_header(2))
    assert info.value.unsupported_version == 2


def test_header_codec_never_leaks_low_level_errors():
    raw = encode_segment_header(1, 1, flags=1, salt=5)
    cases = [
        b"",
        b"MKTS",
        raw[:12],
        raw[:39],
        b"\xff" * 40,
        _future_header(9)[:20],
        b"MKTSWAL\x00" + struct.pack("<HH", 2, 65535),
    ]
    for data in cases:
        with pytest.raises(HeaderProblem):
            decode_segment_header(data)


def test_frames_round_trip_through_the_log():
    payloads = [b"", b"x", bytes(range(256)) * 17, os.urandom(70_000)]
    fs = _fs()
    with WriteAheadLog.open(DIR, fs) as log:
        assert log.append(payloads) == 4
        assert log.append([memoryview(b"view")], rtype=200) == 5
    with WriteAheadLog.open(DIR, fs) as log:
        recs = list(log.records())
    assert [r.payload for r in recs] == [*payloads, b"view"]
    assert [r.txn for r in recs] == [1, 2, 3, 4, 5]
    assert [r.rtype for r in recs] == [RT_DATA] * 4 + [200]
    assert all(r.segment == SEG1 for r in recs)
    offsets = [HEADER_SIZE]
    for p in payloads:
        offsets.append(offsets[-1] + 20 + len(p))
    assert [r.offset for r in recs] == offsets


def test_numpy_arrays_are_framed_by_their_bytes():
    np = pytest.importorskip("numpy")
    arr = np.arange(1000, dtype=np.int64)
    fs = _fs()
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([memoryview(arr), memoryview(arr[::2])])  # contiguous and strided
    with WriteAheadLog.open(DIR, fs) as log:
        a, b = (r.payload for r in log.records())
    assert a == arr.tobytes() and b == arr[::2].tobytes()


def test_payload_over_the_cap_is_refused_before_anything_is_written():
    big = mmap.mmap(-1, MAX_PAYLOAD + 1)  # anonymous and lazy: no gigabyte is touched
    try:
        with pytest.raises(ValueError, match="MAX_PAYLOAD"):
            encode_frames([memoryview(big)], 1, RT_DATA, 0)
        fs = _fs()
        with WriteAheadLog.open(DIR, fs) as log:
            before = fs.read_bytes(SEG1)
            with pytest.raises(ValueError, match="MAX_PAYLOAD"):
                log.append([b"ok", memoryview(big)])
            assert fs.read_bytes(SEG1) == before
            assert log.last_txn == 0
            assert log.append([b"next"]) == 1  # a refused payload is not a failure of the log
    finally:
        big.close()


def test_bad_rtype_and_non_bytes_payloads_are_refused():
    fs = _fs()
    with WriteAheadLog.open(DIR, fs) as log:
        for rtype in (0, 256, -1):
            with pytest.raises(ValueError, match="rtype"):
                log.append([b"x"], rtype=rtype)
        with pytest.raises(TypeError):
            log.append(["text"])  # type: ignore[list-item]
        assert log.append([]) == 0
        assert log.last_txn == 0


def test_segment_of_a_newer_format_version_is_refused_before_anything_changes():
    fs = _fs()
    with WriteAheadLog.open(DIR, fs) as log:
        log.append([b"a", b"b"])
    data = fs.read_bytes(SEG1)
    fs.write_bytes(f"{DIR}/00000000000000000002.wal", _future_header(2) + b"future records")
    fs.write_bytes(SEG1, data + b"\x00garbage tail")  # would be truncated by a normal open
    before = fs.snapshot()
    with pytest.raises(UnsupportedFormatError, match="version 2"):
        WriteAheadLog.open(DIR, fs)
    with pytest.raises(UnsupportedFormatError):
        WriteAheadLog.open(DIR, fs, recovery="point_in_time")
    assert fs.snapshot() == before
    assert not isinstance(UnsupportedFormatError("x"), CorruptWALError)
