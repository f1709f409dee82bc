"""Tick blocks and chains (engine/tickblock.py, engine/ticks.py, engine/tickread.py):
encoding, merge order, damage detection, planning.

Expected values come from docs/format.md "Tick buckets" and from sorted models built here;
the planner runs against an in-memory stand-in for a year file.
"""

from __future__ import annotations

import struct
import types
from typing import Any

import crc32c
import numpy as np
import pytest
import zstandard

from mkts.engine.errors import CorruptFileError, UnsupportedFormatError
from mkts.engine.keys import parse_key
from mkts.engine.schema import Schema
from mkts.engine.tickblock import (
    BLOCK_HEADER,
    ENTRY_DTYPE,
    Block,
    apportion,
    decode_blocks,
    encode_blocks,
)
from mkts.engine.ticks import (
    IntervalRows,
    TickPlanner,
    TickWrite,
    _merge,
    build_blocks,
    plan_ticks,
    read_interval,
    tick_event_rows,
)
from mkts.engine.timeframes import parse_timeframe
from mkts.engine.timeutil import get_calendar

NS = 1_000_000_000
SCHEMA = Schema(parse_timeframe("1Min"), "variable",
                (("Price", np.dtype("<f8")), ("Size", np.dtype("<i4"))))
KEY = parse_key("AAPL/1Min/TRADE")
# docs/format.md "Tick slots": 48 bytes per slot.
SLOT_DTYPE = np.dtype([("_slot", "<i8"), ("head", "<i8"), ("head_bytes", "<u4"),
                       ("head_rows", "<u4"), ("nblobs", "<u4"), ("_check", "<u4"),
                       ("total_bytes", "<i8"), ("nrows", "<i8")])
DATA_START = 8192  # any offset past a pretend slot array


def interval(ns: list[int] | np.ndarray, seq: list[int] | np.ndarray) -> IntervalRows:
    """Rows whose Size column carries a sequence number (to check order) and Price = seq/2."""
    rows = np.zeros(len(ns), dtype=SCHEMA.row_dtype)
    rows["Size"] = seq
    rows["Price"] = np.asarray(seq, dtype=np.float64) / 2
    return IntervalRows(np.asarray(ns, dtype=np.int64), rows)


class FakeYearFile:
    """Just enough of YearFile for the planner and the reader: slots, size, read, path."""

    path = "/fake/AAPL/1Min/TRADE/2024.bin"
    data_start = DATA_START

    def __init__(self, nslots: int = 8) -> None:
        self.slots = np.zeros(nslots, dtype=SLOT_DTYPE)
        self.data = bytearray(DATA_START)
        self.header = types.SimpleNamespace(nslots=nslots)

    def size(self) -> int:
        return len(self.data)

    def verify_slots(self, slots: np.ndarray, recs: np.ndarray) -> None:
        pass  # slot checksums are YearFile's (tests/integration/test_tick_slot_checksum.py)

    def read(self, offset: int, size: int) -> bytes:
        if offset + size > len(self.data):
            raise CorruptFileError(f"{self.path}: {size} bytes at offset {offset} are past the end")
        return bytes(self.data[offset : offset + size])

    def apply(self, w: TickWrite) -> None:
        end = w.offset + len(w.region)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        self.data[w.offset : end] = w.region
        for s, rec in zip(w.slots.tolist(), w.records, strict=True):
            self.slots[s] = rec


def plan_one(planner: TickPlanner, f: FakeYearFile | None, slot: int, ns: list[int],
             seq: list[int]) -> TickWrite:
    """Plan rows of one interval (sorted by time, stably, as plan_ticks hands them over)."""
    order = np.argsort(np.asarray(ns, dtype=np.int64), kind="stable")
    data = interval(np.asarray(ns)[order], np.asarray(seq)[order])
    return planner.plan(KEY, SCHEMA, 2024, f, DATA_START, np.full(len(ns), slot, np.int64),
                        data.ns, data.rows)


def model_order(ns: list[int], seq: list[int]) -> tuple[list[int], list[int]]:
    """Rows sorted by time, ties in write order (Python's sort is stable)."""
    pairs = sorted(zip(ns, seq, strict=True), key=lambda p: p[0])
    return [p[0] for p in pairs], [p[1] for p in pairs]


def entries(rows: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """Directory entries (slot, rows, prev offset, prev bytes, prev rows)."""
    out = np.zeros(len(rows), dtype=ENTRY_DTYPE)
    for i, r in enumerate(rows):
        out[i] = r
    return out


def encode(schema: Schema, ents: np.ndarray, data: IntervalRows) -> bytes:
    (block,) = encode_blocks(schema, [(ents, data.ns, [data.rows[n] for n in schema.names])])
    return block


def decode(block: bytes, schema: Schema = SCHEMA, offset: int = 4096) -> Block:
    (out,) = decode_blocks([(offset, block)], schema, "f.bin", ["the block of slot 42"])
    return out


# -- the block format -------------------------------------------------------------------------

def test_block_round_trip_keeps_rows_and_previous_pointers() -> None:
    rng = np.random.default_rng(7)
    counts = [200, 1, 299]
    ns = np.concatenate([np.sort(rng.integers(0, 60 * NS, c)) for c in counts])
    data = interval(ns, rng.integers(-(2**31), 2**31 - 1, 500))
    ents = entries([(3, 200, 0, 0, 0), (1234, 1, 987_654, 321, 17), (1240, 299, 5000, 60, 2)])
    b = decode(encode(SCHEMA, ents, data))
    assert b.slots.tolist() == [3, 1234, 1240]
    assert b.counts.tolist() == counts
    assert b.starts.tolist() == [0, 200, 201]
    assert b.prev.tolist() == [0, 987_654, 5000]
    assert b.prev_bytes.tolist() == [0, 321, 60]
    assert b.prev_rows.tolist() == [0, 17, 2]
    assert np.array_equal(b.ns.astype(np.int64), data.ns)
    for k, (a, n) in enumerate(zip([0, 200, 201], counts, strict=True)):
        piece = b.piece(k, SCHEMA)
        assert piece.ns.dtype == np.int64
        assert piece.rows.dtype == SCHEMA.row_dtype
        assert np.array_equal(piece.ns, data.ns[a : a + n])
        assert np.array_equal(piece.rows, data.rows[a : a + n])


def test_block_round_trip_of_text_columns_and_extreme_values() -> None:
    schema = Schema(parse_timeframe("1D"), "variable",
                    (("Venue", np.dtype("<U6")), ("Qty", np.dtype("<u8")), ("Px", np.dtype("<f4"))))
    rows = np.zeros(3, dtype=schema.row_dtype)
    rows["Venue"] = ["", "NYSE", "ARCAXY"]
    rows["Qty"] = [0, 1, 2**64 - 1]
    rows["Px"] = [np.float32(-0.0), np.float32(np.inf), np.float32(1e-45)]
    ns = np.array([0, 86_399 * NS + 999_999_999, 90_000 * NS], dtype=np.int64)  # a 25 h day
    block = encode(schema, entries([(0, 3, 0, 0, 0)]), IntervalRows(ns, rows))
    assert struct.unpack_from("<H", block, 4)[0] == 0  # offsets past 2**32: stored as i8
    b = decode(block, schema)
    assert b.prev.tolist() == [0]
    assert np.array_equal(b.ns.astype(np.int64), ns)
    assert b.piece(0, schema).rows.tobytes() == rows.tobytes()


def test_block_layout_matches_docs_format() -> None:
    """docs/format.md: 28-byte header <4sHHIIIII, CRC-32C over header bytes 0..23 + frame,
    then a zstd frame of [directory][column codes, padded to 8][ns offsets, u4 when all fit]
    [column 1]...[column k]: integers in the narrowest width that holds them, decimal floats
    as scaled integers."""
    ns = [5, 5, 3 * NS + 999_999_999]  # all below 2**32: stored as u4
    data = interval(ns, [10, 11, 12])  # Size (i4) values fit one byte
    block = encode(SCHEMA, entries([(77, 2, 40_000, 123, 2), (78, 1, 0, 0, 0)]), data)
    assert BLOCK_HEADER.size == 28
    assert block[0:4] == b"MKTK"
    assert struct.unpack_from("<HH", block, 4) == (1, 0)  # flags: u4 offsets; reserved
    assert struct.unpack_from("<I", block, 8)[0] == 2  # entries
    assert struct.unpack_from("<I", block, 12)[0] == 3  # rows
    raw_size = 2 * 24 + 8 + 3 * (4 + 1 + 1)
    assert struct.unpack_from("<I", block, 16)[0] == raw_size
    frame = block[28:]
    assert struct.unpack_from("<I", block, 20)[0] == len(frame)
    assert struct.unpack_from("<I", block, 24)[0] == crc32c.crc32c(block[:24] + frame)
    raw = zstandard.ZstdDecompressor().decompress(frame)  # content size is in the frame
    assert len(raw) == raw_size
    d = np.frombuffer(raw, "<u4, <u4, <i8, <u4, <u4", 2)
    assert [tuple(int(v) for v in e) for e in d] == [(77, 2, 40_000, 123, 2), (78, 1, 0, 0, 0)]
    # Price 5.0, 5.5, 6.0 as tenths in one signed byte (0x21: 1 digit, 1 byte); Size in i1.
    assert raw[48:56] == bytes([0x21, 0x01, 0, 0, 0, 0, 0, 0])
    assert np.frombuffer(raw, "<u4", 3, offset=56).tolist() == ns
    assert np.frombuffer(raw, "<i1", 3, offset=68).tolist() == [50, 55, 60]
    assert np.frombuffer(raw, "<i1", 3, offset=71).tolist() == [10, 11, 12]


@pytest.mark.parametrize(("dtype", "values", "code"), [
    ("<i8", [-128, 127], 0x01), ("<i8", [-129, 0], 0x02), ("<i8", [0, 32_768], 0x04),
    ("<i8", [-(2**31), 2**31 - 1], 0x04), ("<i8", [0, 2**31], 0),
    ("<i8", [-(2**63), 2**63 - 1], 0), ("<u8", [0, 255], 0x01), ("<u8", [0, 256], 0x02),
    ("<u8", [0, 2**32 - 1], 0x04), ("<u8", [0, 2**64 - 1], 0), ("<i2", [-5, 5], 0x01),
    ("<i2", [300, 5], 0), ("<u4", [7, 7], 0x01), ("<i1", [-128, 127], 0),
    ("<f8", [187.25, 187.5, 0.07], 0x32),  # hundredths in i2: 18725, 18750, 7
    ("<f8", [100.0, -3.0], 0x11),  # whole numbers in i1
    ("<f8", [1.0001, 2.0], 0x52),  # 4 digits: 10001, 20000 in i2
    ("<f8", [3.2768, 2.0], 0x54),  # 4 digits: 32768 is past i2: i4
    ("<f8", [0.1 + 0.2, 1.0], 0),  # 0.30000000000000004 has no short decimal
    ("<f8", [1e-5, 1.0], 0),  # 5 digits: more than MAX_DIGITS
    ("<f8", [-0.0, 1.0], 0),  # -0.0 would come back as 0.0
    ("<f8", [np.nan, 1.0], 0), ("<f8", [np.inf, 1.0], 0),
    ("<f8", [2.0**60, 1.0], 0),  # past 2**53: not exact as an integer
    ("<f8", [21_474_836.47, 0.01], 0x34),  # 2**31 - 1 hundredths: i4
    ("<f8", [21_474_836.48, 0.01], 0),  # 2**31 hundredths: i8, no narrower than f8
    ("<f4", [0.5, 1.5], 0x21), ("<f4", [0.1, 1.0], 0x21),  # float32(0.1) == f4(1 / 10)
    ("<f4", [70_000.5, 0.5], 0),  # tenths need i4: no narrower than the f4 itself
])
def test_numeric_columns_are_stored_narrow_and_read_back_bit_for_bit(dtype: str,
                                                                      values: list[Any],
                                                                      code: int) -> None:
    """docs/format.md "Tick blocks": 0 = stored as the column's type; else the low nibble is
    the stored width and the high nibble, for floats, 1 + the decimal digits of the scale."""
    schema = Schema(parse_timeframe("1Min"), "variable", (("X", np.dtype(dtype)),))
    rows = np.zeros(len(values), dtype=schema.row_dtype)
    rows["X"] = values
    block = encode(schema, entries([(3, len(values), 0, 0, 0)]),
                   IntervalRows(np.arange(len(values), dtype=np.int64), rows))
    raw = zstandard.ZstdDecompressor().decompress(block[28:])
    assert raw[24] == code
    piece = decode(block, schema).piece(0, schema)
    assert piece.rows.dtype == schema.row_dtype
    assert piece.rows["X"].tobytes() == rows["X"].tobytes()  # bit for bit (-0.0, NaN)


def test_decimal_floats_of_a_busy_day_round_trip_bit_for_bit() -> None:
    """Prices rounded to cents the way feeds produce them (np.round), large and small."""
    rng = np.random.default_rng(11)
    schema = Schema(parse_timeframe("1Sec"), "variable", (("Price", np.dtype("<f8")),))
    for scale in (0.01, 1.0, 250.0, 10_000.0):
        px = np.round(rng.uniform(0.01, 5_000, 20_000) * scale, 2)
        rows = np.zeros(len(px), dtype=schema.row_dtype)
        rows["Price"] = px
        block = encode(schema, entries([(1, len(px), 0, 0, 0)]),
                       IntervalRows(np.arange(len(px), dtype=np.int64), rows))
        assert decode(block, schema).piece(0, schema).rows.tobytes() == rows.tobytes()


@pytest.mark.parametrize(("nbytes", "counts"), [(100, [1]), (101, [1, 1]), (1000, [3, 1, 7, 2]),
                                                (7, [5, 5, 5]), (2**31 - 1, [2**32 - 1, 1])])
def test_shares_split_a_block_by_rows_and_sum_to_its_size(nbytes: int, counts: list[int]) -> None:
    shares = apportion(nbytes, np.asarray(counts, dtype=np.int64))
    assert int(shares.sum()) == nbytes
    cum = np.cumsum([0, *counts])
    assert shares.tolist() == [nbytes * int(cum[i + 1]) // int(cum[-1])
                               - nbytes * int(cum[i]) // int(cum[-1]) for i in range(len(counts))]


def test_blocks_are_cut_between_intervals_near_the_target_size() -> None:
    """A large write becomes several blocks of about BLOCK_TARGET raw bytes; an interval is
    never split, and each block decodes to exactly its intervals' rows."""
    from mkts.engine.tickblock import BLOCK_TARGET

    n_slots = 400
    counts = np.full(n_slots, 2000, dtype=np.int64)
    counts[7] = 100_000  # one interval larger than a block
    slots = np.arange(n_slots, dtype=np.int64) * 3
    total = int(counts.sum())
    ns = np.concatenate([np.arange(c, dtype=np.int64) for c in counts])
    rows = np.zeros(total, dtype=SCHEMA.row_dtype)
    rows["Size"] = np.arange(total)
    zero = np.zeros(n_slots, dtype=np.int64)
    blocks, which, shares = build_blocks(SCHEMA, slots, counts, zero, zero, zero, ns, rows, "f")
    assert len(blocks) > 2 and which.tolist() == sorted(which.tolist())
    assert which[-1] == len(blocks) - 1
    row = 0
    for i, blob in enumerate(blocks):
        b = decode(blob)
        mine = np.flatnonzero(which == i)
        assert b.slots.tolist() == slots[mine].tolist()
        assert b.counts.tolist() == counts[mine].tolist()
        assert int(shares[mine].sum()) == len(blob)
        assert np.array_equal(b.columns["Size"], rows["Size"][row : row + int(counts[mine].sum())])
        row += int(counts[mine].sum())
        if len(mine) > 1:  # a block only passes the target by its last interval
            assert int(counts[mine[:-1]].sum()) * 20 < BLOCK_TARGET


# -- merge order ------------------------------------------------------------------------------

def test_merge_puts_older_rows_first_on_equal_times() -> None:
    out = _merge(interval([1, 5, 5, 9], [0, 1, 2, 3]), interval([5, 5, 9], [4, 5, 6]))
    assert out.ns.tolist() == [1, 5, 5, 5, 5, 9, 9]
    assert out.rows["Size"].tolist() == [0, 1, 2, 4, 5, 3, 6]


def test_merge_interleaves_by_time() -> None:
    old_ns, new_ns = [0, 10, 20, 30], [5, 10, 25, 40]
    out = _merge(interval(old_ns, [0, 1, 2, 3]), interval(new_ns, [4, 5, 6, 7]))
    want_ns, want_seq = model_order(old_ns + new_ns, [0, 1, 2, 3, 4, 5, 6, 7])
    assert out.ns.tolist() == want_ns
    assert out.rows["Size"].tolist() == want_seq


@pytest.mark.parametrize(("old", "new"), [([], [3, 4]), ([3, 4], []), ([1, 2], [2, 3]),
                                          ([5, 6], [1, 2])])
def test_merge_edge_cases(old: list[int], new: list[int]) -> None:
    seq_old = list(range(len(old)))
    seq_new = list(range(100, 100 + len(new)))
    out = _merge(interval(old, seq_old), interval(new, seq_new))
    want_ns, want_seq = model_order(old + new, seq_old + seq_new)
    assert out.ns.tolist() == want_ns
    assert out.rows["Size"].tolist() == want_seq


# -- damage detection -------------------------------------------------------------------------

@pytest.fixture
def blob() -> bytes:
    return encode(SCHEMA, entries([(40, 1, 0, 0, 0), (42, 4, 16_384, 99, 3)]),
                  interval([7, 1, 2, 3, 4], [5, 9, 8, 7, 6]))


@pytest.mark.parametrize(("field", "offset"), [
    ("magic", 0), ("magic", 3), ("flags", 4), ("reserved", 7), ("entries", 8), ("rows", 12),
    ("raw size", 16), ("raw size", 19), ("frame bytes", 20), ("frame bytes", 23),
    ("checksum", 24), ("checksum", 27), ("frame start", 28), ("frame end", -1),
])
def test_a_flipped_byte_anywhere_is_detected(blob: bytes, field: str, offset: int) -> None:
    damaged = bytearray(blob)
    damaged[offset] ^= 0x01
    with pytest.raises(CorruptFileError, match="f.bin"):
        decode(bytes(damaged))


def _reseal(buf: bytearray) -> bytes:
    """Recompute the checksum, so only the field checks can catch the damage."""
    struct.pack_into("<I", buf, 24, crc32c.crc32c(bytes(buf[:24]) + bytes(buf[28:])))
    return bytes(buf)


def _reframe(blob: bytes, raw: bytes, **fields: int) -> bytes:
    """The block with another frame (of `raw`) and header fields, its checksum recomputed."""
    frame = zstandard.ZstdCompressor().compress(raw)
    head = list(BLOCK_HEADER.unpack_from(blob, 0))
    names = ["magic", "flags", "reserved", "entries", "rows", "raw_size", "frame_bytes", "crc"]
    head[6] = len(frame)
    for k, v in fields.items():
        head[names.index(k)] = v
    return _reseal(bytearray(BLOCK_HEADER.pack(*head) + frame))


@pytest.mark.parametrize(("field", "fmt", "at", "value"), [
    ("magic", "<4s", 0, b"MKTX"),
    ("flags", "<H", 4, 2),
    ("reserved", "<H", 6, 1),
    ("entries", "<I", 8, 0),
    ("entries", "<I", 8, 3),
    ("rows", "<I", 12, 6),
    ("rows", "<I", 12, 0),
    ("raw size", "<I", 16, 2 * 24 + 8 + 5 * (4 + 8 + 1) + 1),
    ("raw size", "<I", 16, 2 * 24 + 8 + 5 * (4 + 8 + 4) + 1),
    ("frame bytes", "<I", 20, 1),
])
def test_damage_with_a_valid_checksum_is_still_detected(blob: bytes, field: str, fmt: str,
                                                        at: int, value: object) -> None:
    buf = bytearray(blob)
    struct.pack_into(fmt, buf, at, value)
    with pytest.raises(CorruptFileError, match="slot 42"):
        decode(_reseal(buf))


@pytest.mark.parametrize("damage", ["slots not ascending", "slot past the year",
                                    "rows do not add up", "an empty entry",
                                    "a float narrowed", "a width of 3", "a scale of 6",
                                    "an integer scaled"])
def test_a_damaged_directory_is_detected(blob: bytes, damage: str) -> None:
    """A consistent frame whose directory is wrong (checksum recomputed over it)."""
    raw = bytearray(zstandard.ZstdDecompressor().decompress(blob[28:]))
    d = np.frombuffer(raw, dtype=ENTRY_DTYPE, count=2).copy()
    if damage == "slots not ascending":
        d["slot"] = [42, 40]
    elif damage == "slot past the year":
        d["slot"][1] = 10**6
    elif damage == "rows do not add up":
        d["rows"][1] = 3
    elif damage == "an empty entry":
        d["rows"] = [0, 5]
    raw[: d.nbytes] = d.tobytes()
    codes = {"a float narrowed": [0x04, 0], "a width of 3": [0, 0x03],
             "a scale of 6": [0x72, 0], "an integer scaled": [0, 0x21]}
    if damage in codes:
        raw[d.nbytes : d.nbytes + 2] = bytes(codes[damage])
    with pytest.raises(CorruptFileError, match="slot 42.*damaged (directory|column width)"):
        (b,) = decode_blocks([(4096, _reframe(blob, bytes(raw)))], SCHEMA, "f.bin",
                             ["the block of slot 42"], nslots=1000)


def test_payload_that_is_not_zstd_is_detected(blob: bytes) -> None:
    buf = bytearray(blob[:28]) + bytearray(b"\x00" * 40)
    struct.pack_into("<I", buf, 20, 40)
    with pytest.raises(CorruptFileError, match="decompress"):
        decode(_reseal(buf))


def test_payload_of_the_wrong_length_is_detected(blob: bytes) -> None:
    with pytest.raises(CorruptFileError, match="slot 42"):
        decode(_reframe(blob, b"\x00" * 60))  # the header says 2 x 24 + 8 + 5 x 13 bytes


def test_a_block_without_the_slot_is_rejected(blob: bytes) -> None:
    with pytest.raises(CorruptFileError, match="slot 41"):
        decode(blob).find(np.array([41]), "f.bin")


def test_a_block_of_the_previous_format_is_an_unsupported_format(blob: bytes) -> None:
    old = b"MKTB" + blob[4:]
    with pytest.raises(UnsupportedFormatError, match="pre-release"):
        decode(old)


@pytest.mark.parametrize("cut", [0, 10, 27, 28, 50])
def test_cut_short_block_is_detected(blob: bytes, cut: int) -> None:
    with pytest.raises(CorruptFileError):
        decode(blob[:cut])


def test_several_blocks_decode_together_and_name_the_damaged_one(blob: bytes) -> None:
    other = encode(SCHEMA, entries([(50, 2, 0, 0, 0)]), interval([1, 2], [1, 2]))
    bad = bytearray(other)
    bad[40] ^= 0xFF
    ok = decode_blocks([(100, blob), (200, other)], SCHEMA, "f.bin", ["block a", "block b"])
    assert [b.offset for b in ok] == [100, 200]
    assert ok[1].columns["Size"].tolist() == [1, 2]
    with pytest.raises(CorruptFileError, match="f.bin: block b"):
        decode_blocks([(100, blob), (200, bytes(bad))], SCHEMA, "f.bin", ["block a", "block b"])


# -- planning: chains, merges, pending writes ------------------------------------------------

def _chain(f: FakeYearFile, slot: int) -> list[tuple[int, int, int, int]]:
    """(offset, bytes, rows, share) of each block of a slot's chain, newest first, walked
    through the block directories."""
    rec = f.slots[slot]
    out, head, nbytes = [], int(rec["head"]), int(rec["head_bytes"])
    while nbytes:
        b = decode(bytes(f.data[head : head + nbytes]), offset=head)
        k = int(b.find(np.array([slot]), "f")[0])
        out.append((head, nbytes, int(b.counts[k]), b.share(k)))
        head, nbytes = int(b.prev[k]), int(b.prev_bytes[k])
    return out


def _chain_offsets(f: FakeYearFile, slot: int) -> list[int]:
    return [c[0] for c in _chain(f, slot)]


def test_single_row_appends_keep_the_chain_logarithmic() -> None:
    f, planner = FakeYearFile(), TickPlanner()
    rng = np.random.default_rng(3)
    ns_all: list[int] = []
    rows_encoded = 0
    for i in range(1000):
        t = int(rng.integers(0, 60 * NS)) if i % 7 == 0 else i * 1000  # some out of order
        w = plan_one(planner, f, 3, [t], [i])
        rows_encoded += int(w.records["head_rows"].sum())
        f.apply(w)
        planner.applied(w)
        ns_all.append(t)
        n = i + 1
        rec = f.slots[3]
        assert int(rec["nblobs"]) <= n.bit_length()  # <= 10 for n <= 1000
        assert int(rec["nblobs"]) == len(_chain_offsets(f, 3))
        assert int(rec["nrows"]) == n
    assert int(f.slots[3]["nblobs"]) <= 11
    # Amortised O(log n) per append: each row is re-encoded at most log2(n) + 1 times.
    assert rows_encoded <= 1000 * (1000).bit_length()
    got = read_interval(f, SCHEMA, 3, f.slots[3])
    want_ns, want_seq = model_order(ns_all, list(range(1000)))
    assert got.ns.tolist() == want_ns
    assert got.rows["Size"].tolist() == want_seq


def _block_size(f: FakeYearFile, off: int) -> int:
    """A block's size measured independently: the 28-byte header plus its zstd frame."""
    dobj = zstandard.ZstdDecompressor().decompressobj()
    tail = bytes(f.data[off + 28 :])
    dobj.decompress(tail)
    return 28 + len(tail) - len(dobj.unused_data)


def test_slot_totals_agree_with_the_chain() -> None:
    f, planner = FakeYearFile(), TickPlanner()
    for i in range(37):
        w = plan_one(planner, f, 1, [i % 5, i % 3], [2 * i, 2 * i + 1])
        f.apply(w)
        planner.applied(w)
    rec = f.slots[1]
    chain = _chain(f, 1)
    assert int(rec["nblobs"]) == len(chain)
    assert all(nbytes == _block_size(f, off) for off, nbytes, _, _ in chain)
    assert int(rec["total_bytes"]) == sum(c[3] for c in chain)  # one interval: whole blocks
    assert int(rec["total_bytes"]) == sum(c[1] for c in chain)
    assert int(rec["head_bytes"]) == chain[0][1]
    assert sum(c[2] for c in chain) == int(rec["nrows"]) == 74
    assert int(rec["head_rows"]) == chain[0][2]


def test_a_write_of_many_intervals_shares_one_block_and_merges_per_interval() -> None:
    """One plan over several intervals writes one block; totals count each interval's share;
    a later write that merges one interval leaves the others' chains on the shared block."""
    f, planner = FakeYearFile(), TickPlanner()
    slots = np.array([1, 1, 2, 4, 4, 4], dtype=np.int64)
    data = interval([5, 9, 3, 1, 1, 2], [0, 1, 2, 3, 4, 5])
    w = planner.plan(KEY, SCHEMA, 2024, f, DATA_START, slots, data.ns, data.rows)
    f.apply(w)
    planner.applied(w)
    assert w.slots.tolist() == [1, 2, 4]
    assert len(set(w.records["head"].tolist())) == 1
    assert w.records["head_rows"].tolist() == [2, 1, 3]
    assert int(w.records["total_bytes"].sum()) == len(w.region)
    w2 = plan_one(planner, f, 2, [3, 0], [6, 7])  # 2 rows >= 1: merges slot 2's piece
    f.apply(w2)
    planner.applied(w2)
    assert int(f.slots[2]["nblobs"]) == 1 and int(f.slots[2]["nrows"]) == 3
    assert int(f.slots[2]["total_bytes"]) == len(w2.region)
    got = read_interval(f, SCHEMA, 2, f.slots[2])
    assert got.ns.tolist() == [0, 3, 3] and got.rows["Size"].tolist() == [7, 2, 6]
    for slot, want in ((1, [0, 1]), (4, [3, 4, 5])):
        assert read_interval(f, SCHEMA, slot, f.slots[slot]).rows["Size"].tolist() == want
        assert int(f.slots[slot]["head"]) == w.offset


def test_planner_sees_writes_planned_but_not_yet_applied() -> None:
    """Group commit plans several transactions before any is applied."""
    f, planner = FakeYearFile(), TickPlanner()
    pending = []
    ns_all: list[int] = []
    for i in range(40):
        t = (40 - i) * 10 if i % 3 else 100
        pending.append(plan_one(planner, f, 2, [t], [i]))
        ns_all.append(t)
    offsets = [w.offset for w in pending]
    assert offsets == sorted(offsets) and len(set(offsets)) == 40  # no blob overwrites another
    for w in pending:
        f.apply(w)
        planner.applied(w)
    got = read_interval(f, SCHEMA, 2, f.slots[2])
    want_ns, want_seq = model_order(ns_all, list(range(40)))
    assert got.ns.tolist() == want_ns
    assert got.rows["Size"].tolist() == want_seq


def test_a_new_file_starts_its_data_region_after_the_slots() -> None:
    planner = TickPlanner()
    w = plan_one(planner, None, 0, [1, 2], [0, 1])
    assert w.offset == DATA_START
    assert int(w.records["head"][0]) == DATA_START
    assert int(w.records["_slot"][0]) == 1  # slot + 1
    assert int(w.records["nblobs"][0]) == 1
    assert int(w.records["head_bytes"][0]) == len(w.region)


def test_plan_ticks_splits_by_year_and_interval_with_offsets_from_the_label() -> None:
    cal = get_calendar("UTC")
    y2024 = 1_704_067_200
    secs = np.array([y2024 + 61, y2024 - 1, y2024 + 60, y2024 - 1, y2024], dtype=np.int64)
    nanos = np.array([5, 999_999_999, 0, 999_999_999, 1], dtype=np.int32)
    cols = {"Price": np.arange(5, dtype=np.float64), "Size": np.arange(5, dtype=np.int32)}
    writes = plan_ticks(TickPlanner(), KEY, SCHEMA, cal, secs, nanos, cols,
                        lambda y: None, lambda y: DATA_START)
    assert [w.year for w in writes] == [2023, 2024]
    w23, w24 = writes
    assert w23.slots.tolist() == [525_599]  # the last minute of 2023
    assert w24.slots.tolist() == [0, 1]
    f = FakeYearFile(nslots=525_600)
    f.apply(w23)
    last = read_interval(f, SCHEMA, 525_599, f.slots[525_599])
    assert last.ns.tolist() == [59 * NS + 999_999_999] * 2
    assert last.rows["Size"].tolist() == [1, 3]  # input order kept for the tie
    g = FakeYearFile(nslots=2)
    g.apply(w24)
    assert read_interval(g, SCHEMA, 0, g.slots[0]).ns.tolist() == [1]
    one = read_interval(g, SCHEMA, 1, g.slots[1])
    assert one.ns.tolist() == [0, 1 * NS + 5]
    assert one.rows["Size"].tolist() == [2, 0]


def test_event_rows_of_a_planned_and_of_a_replayed_write() -> None:
    f, planner = FakeYearFile(), TickPlanner()
    first = plan_one(planner, f, 4, [10, 30], [0, 1])
    f.apply(first)
    planner.applied(first)
    second = plan_one(planner, f, 4, [20], [2])  # 1 row < 2 rows: a new blob, no merge
    slots, ns, rows = tick_event_rows(second, SCHEMA)
    assert slots.tolist() == [4] and ns.tolist() == [20] and rows["Size"].tolist() == [2]
    replayed = TickWrite(KEY, 2024, second.offset, second.region, second.slots, second.records)
    slots, ns, rows = tick_event_rows(replayed, SCHEMA)
    # A replayed write reports its newest blob: a superset of what it added.
    assert 20 in ns.tolist()
    assert set(rows["Size"].tolist()) >= {2}
    assert (slots == 4).all()


def test_chain_longer_than_its_count_is_detected() -> None:
    f, planner = FakeYearFile(), TickPlanner()
    for i, n in enumerate([4, 2, 1]):  # no merges: a chain of three blobs
        w = plan_one(planner, f, 5, list(range(n)), list(range(10 * i, 10 * i + n)))
        f.apply(w)
        planner.applied(w)
    assert int(f.slots[5]["nblobs"]) == 3
    rec = f.slots[5].copy()
    rec["nblobs"] = 2
    with pytest.raises(CorruptFileError, match="longer than its count"):
        read_interval(f, SCHEMA, 5, rec)
    rec = f.slots[5].copy()
    rec["nblobs"] = 4
    with pytest.raises(CorruptFileError):
        read_interval(f, SCHEMA, 5, rec)
    rec = f.slots[5].copy()
    rec["nrows"] = 6
    with pytest.raises(CorruptFileError, match="6 rows"):
        read_interval(f, SCHEMA, 5, rec)


def test_failed_plan_leaves_no_pending_state() -> None:
    """A plan that fails half-way (a damaged blob in a later interval) must not leave the
    earlier intervals' new heads behind: the rows were never logged."""
    f, planner = FakeYearFile(), TickPlanner()
    for slot in (1, 2):
        w = plan_one(planner, f, slot, [100], [slot])
        f.apply(w)
        planner.applied(w)
    head = int(f.slots[2]["head"])
    f.data[head + 40] ^= 0xFF  # damage slot 2's blob
    slots = np.array([1, 2], dtype=np.int64)
    data = interval([200, 200], [90, 91])
    with pytest.raises(CorruptFileError):
        planner.plan(KEY, SCHEMA, 2024, f, DATA_START, slots, data.ns, data.rows)
    w = plan_one(planner, f, 1, [300], [3])
    assert w.offset == f.size()
    f.apply(w)
    planner.applied(w)
    got = read_interval(f, SCHEMA, 1, f.slots[1])
    assert got.ns.tolist() == [100, 300]
    assert got.rows["Size"].tolist() == [1, 3]


def test_discarded_plan_restores_the_pending_state_before_it() -> None:
    """A transaction that fails to build after its ticks were planned is discarded: the next
    plan builds on the write pending before it, at the same offset."""
    f, planner = FakeYearFile(), TickPlanner()
    w1 = plan_one(planner, f, 6, [50, 60], [1, 2])
    w2 = plan_one(planner, f, 6, [55, 70, 80], [3, 4, 5])  # merges w1's pending blob
    assert int(w2.records["nblobs"][0]) == 1
    planner.discard(w2)
    w3 = plan_one(planner, f, 6, [55], [6])
    assert w3.offset == w2.offset
    assert int(w3.records["nblobs"][0]) == 2  # on top of w1's blob, not w2's
    for w in (w1, w3):
        f.apply(w)
        planner.applied(w)
    got = read_interval(f, SCHEMA, 6, f.slots[6])
    assert got.ns.tolist() == [50, 55, 60]
    assert got.rows["Size"].tolist() == [1, 6, 2]


def test_plan_ticks_discards_earlier_years_when_a_later_year_fails() -> None:
    cal = get_calendar("UTC")
    y2024 = 1_704_067_200
    planner = TickPlanner()
    f23, f24 = FakeYearFile(nslots=525_600), FakeYearFile(nslots=2)
    for f in (f23, f24):
        f.apply(plan_ticks(planner, KEY, SCHEMA, cal,
                           np.array([y2024 - 1 if f is f23 else y2024], np.int64),
                           np.zeros(1, np.int32), {"Price": np.zeros(1), "Size": np.zeros(1, np.int32)},
                           lambda y, f=f: f, lambda y: DATA_START)[0])
    planner.forget(KEY)
    f24.data[int(f24.slots[0]["head"]) + 40] ^= 0xFF
    files = {2023: f23, 2024: f24}
    with pytest.raises(CorruptFileError):
        plan_ticks(planner, KEY, SCHEMA, cal, np.array([y2024 - 1, y2024], np.int64),
                   np.array([5, 5], np.int32), {"Price": np.ones(2), "Size": np.ones(2, np.int32)},
                   files.get, lambda y: DATA_START)
    (w,) = plan_ticks(planner, KEY, SCHEMA, cal, np.array([y2024 - 1], np.int64),
                      np.array([7], np.int32), {"Price": np.full(1, 2.0), "Size": np.full(1, 2, np.int32)},
                      files.get, lambda y: DATA_START)
    assert w.offset == f23.size()
    f23.apply(w)
    got = read_interval(f23, SCHEMA, 525_599, f23.slots[525_599])
    assert got.ns.tolist() == [59 * NS, 59 * NS + 7]
    assert got.rows["Size"].tolist() == [0, 2]


def test_planner_takes_the_end_from_the_file_when_nothing_is_pending() -> None:
    """A bucket destroyed and created again gets a fresh file: its blobs start at the data
    region, not at the old file's end."""
    f, planner = FakeYearFile(), TickPlanner()
    for i in range(5):
        w = plan_one(planner, f, 1, [i], [i])
        f.apply(w)
        planner.applied(w)
    assert f.size() > DATA_START
    fresh = FakeYearFile()
    w = plan_one(planner, fresh, 1, [9], [9])
    assert w.offset == DATA_START
    assert int(w.records["nblobs"][0]) == 1 and int(w.records["nrows"][0]) == 1
