"""The worked examples of docs/format.md and docs/wal.md are what the code writes.

Each test reads the example's bytes from the page itself (the hex dumps in its fenced code
blocks), writes the documented input through the code, compares byte for byte, and decodes
the example back into the documented values. Editing an example without the code, or the
code without the example, fails here. (The log segment of docs/wal.md §4 is pinned the same
way in tests/unit/test_wal_format.py.)
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from harness.docpages import code_blocks, hex_bytes, read_page, section

from mkts import engine
from mkts.engine import journal
from mkts.engine.header import decode_header, encode_header
from mkts.engine.ingest import prepare
from mkts.engine.plan import SlotWrite, plan_fixed
from mkts.engine.schema import FIXED, TICK_SLOT_DTYPE, VARIABLE, Schema
from mkts.engine.tickblock import BLOCK_HEADER, decode_blocks
from mkts.engine.timeutil import get_calendar
from mkts.wal import WriteAheadLog
from mkts.wal.fs import OsFileSystem

FORMAT, WAL = "docs/format.md", "docs/wal.md"

# The documented inputs, as the pages state them in words.
BAR_KEY = "AAPL/1Min/OHLCV"
BAR_COLUMNS = {"Open": "f4", "High": "f4", "Low": "f4", "Close": "f4", "Volume": "i8"}
BAR_EPOCH = 1_704_205_800  # 2024-01-02 14:30 UTC
BAR_VALUES = {"Open": 185.25, "High": 185.75, "Low": 184.5, "Close": 185.5, "Volume": 120_000}
YEAR_START_2024 = 1_704_067_200
TICK_KEY = "AAPL/1Min/TRADE"
TRADES = {  # 14:30:00.25, 14:30:59.999999999 and 14:31:00 on 2024-01-02 UTC
    "Epoch": np.array([BAR_EPOCH, BAR_EPOCH + 59, BAR_EPOCH + 60], dtype="i8"),
    "Nanoseconds": np.array([250_000_000, 999_999_999, 0], dtype="i4"),
    "Price": np.array([187.50, 187.25, 187.50], dtype="f8"),
    "Size": np.array([100, 5, 200], dtype="i8"),
}


def _blocks(page: str, title: str) -> list[str]:
    return code_blocks(section(read_page(page), title))


def _bar_schema() -> Schema:
    return Schema.from_spec(engine.parse_timeframe("1Min"), FIXED, BAR_COLUMNS)


def _bar_array() -> np.ndarray:
    dtype = [("Epoch", "<i8")] + [(n, f"<{t}") for n, t in BAR_COLUMNS.items()]
    return np.array([(BAR_EPOCH, *BAR_VALUES.values())], dtype=dtype)


def _bar_dict() -> dict[str, object]:
    """The same bar as Python numbers (float64 and int64 columns): the general write path,
    which casts them to the bucket's types."""
    return {"Epoch": [BAR_EPOCH], **{k: [v] for k, v in BAR_VALUES.items()}}


def _logged_payloads(root: Path) -> list[bytes]:
    """The payloads in the log of an open database (read beside it, read-only)."""
    with WriteAheadLog.open(os.path.join(root, "wal"), OsFileSystem(), readonly=True) as log:
        return [rec.payload for rec in log.records()]


# --- docs/format.md "Worked example: a 1Min bar" ------------------------------------------
def test_header_example_is_what_encode_header_and_a_write_produce(tmp_path: Path) -> None:
    doc = hex_bytes(_blocks(FORMAT, "Worked example: a 1Min bar")[0], size=4096)
    assert encode_header(_bar_schema(), 2024, 527_040, YEAR_START_2024, "UTC") == doc
    with engine.open(tmp_path / "db") as db:
        db.write(BAR_KEY, _bar_array())
    path = tmp_path / "db" / BAR_KEY / "2024.bin"
    assert path.read_bytes()[:4096] == doc


def test_header_example_decodes_to_the_documented_fields() -> None:
    doc = hex_bytes(_blocks(FORMAT, "Worked example: a 1Min bar")[0], size=4096)
    h = decode_header(doc, "docs example")
    assert (h.year, h.nslots, h.year_start, h.timezone, h.header_size) == (
        2024, 527_040, YEAR_START_2024, "UTC", 4096)
    assert h.schema.kind == FIXED and h.schema.timeframe.name == "1Min"
    assert h.schema.describe() == {"Epoch": "i8", **BAR_COLUMNS}
    assert h.record_size == 32 and h.file_size == 16_869_376


def test_slot_example_is_the_record_a_write_stores_at_the_documented_offset(
        tmp_path: Path) -> None:
    text = section(read_page(FORMAT), "Worked example: a 1Min bar")
    doc = hex_bytes(code_blocks(text)[1])
    m = re.search(r"stored at offset 4096 \+ 2 310 × 32 = ([\d ]+):", text)
    assert m is not None, "the example no longer states the slot's offset"
    offset = int(m.group(1).replace(" ", ""))
    assert offset == 4096 + 2_310 * 32
    with engine.open(tmp_path / "db") as db:
        db.create(BAR_KEY, BAR_COLUMNS)
        db.write(BAR_KEY, _bar_dict())  # float64 values, cast to the bucket's f4
    raw = (tmp_path / "db" / BAR_KEY / "2024.bin").read_bytes()
    assert len(raw) == 16_869_376
    assert raw[offset : offset + 32] == doc
    rec = np.frombuffer(doc, dtype=_bar_schema().record_dtype)[0]
    assert rec["_slot"] == 2_311
    assert {k: rec[k].item() for k in BAR_VALUES} == BAR_VALUES


# --- docs/format.md "Worked example: three trades" ----------------------------------------
def _tick_file(tmp_path: Path) -> bytes:
    with engine.open(tmp_path / "db") as db:
        db.write(TICK_KEY, TRADES, variable=True)
    return (tmp_path / "db" / TICK_KEY / "2024.bin").read_bytes()


def test_tick_block_example_is_the_block_a_write_appends(tmp_path: Path) -> None:
    head_doc, frame_doc, _ = _blocks(FORMAT, "Worked example: three trades")
    head, frame = hex_bytes(head_doc), hex_bytes(frame_doc)
    assert len(head) == BLOCK_HEADER.size == 28 and len(frame) == 92
    raw = _tick_file(tmp_path)
    start = 4096 + 527_040 * 48
    assert start == 25_302_016
    block = raw[start:]
    assert len(block) == 87  # the one block of the write, and nothing after it
    assert block[:28] == head  # frame length and CRC-32C included
    assert zstandard.ZstdDecompressor().decompress(block[28:]) == frame


def test_tick_slot_example_is_what_the_write_points_the_slots_to(tmp_path: Path) -> None:
    lines = _blocks(FORMAT, "Worked example: three trades")[2].splitlines()
    raw = _tick_file(tmp_path)
    seen = 0
    for line in lines:
        m = re.match(r"slot (\d+): (.*)$", line)
        assert m is not None, line
        slot = int(m.group(1))
        fields = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", m.group(2))}
        rec = np.frombuffer(raw, dtype=TICK_SLOT_DTYPE, count=1, offset=4096 + slot * 48)[0]
        assert rec["_slot"] == slot + 1
        assert {k: int(rec[k]) for k in fields} == fields
        seen += 1
    assert seen == 2


def test_tick_block_example_decodes_to_the_trades(tmp_path: Path) -> None:
    raw = _tick_file(tmp_path)
    start = 25_302_016
    schema = Schema.from_spec(engine.parse_timeframe("1Min"), VARIABLE,
                              {"Price": "f8", "Size": "i8"})
    (block,) = decode_blocks([(start, raw[start:])], schema, "docs example", ["the block"])
    assert block.slots.tolist() == [2310, 2311] and block.counts.tolist() == [2, 1]
    assert block.prev.tolist() == [0, 0]
    assert block.ns.tolist() == [250_000_000, 59_999_999_999, 0]
    assert block.columns["Price"].tolist() == [187.5, 187.25, 187.5]
    assert block.columns["Size"].tolist() == [100, 5, 200]
    # the stored codes of the documented frame: Price as i2 hundredths, Size as i2
    frame = hex_bytes(_blocks(FORMAT, "Worked example: three trades")[1])
    assert frame[48:50] == bytes([0x32, 0x02])
    assert struct.unpack_from("<3h", frame, 80) == (18750, 18725, 18750)


# --- docs/wal.md §10: the transaction payload ------------------------------------------------
def _payload_doc() -> bytes:
    text = section(read_page(WAL), "10")
    blocks = code_blocks(text)
    assert len(blocks) == 5, ("docs/wal.md §10 should hold the layout, the worked example, "
                              "and the layout and the two examples of range deletes")
    m = re.search(r"this payload of (\d+) bytes", text)
    doc = hex_bytes(blocks[1])
    assert m is not None and int(m.group(1)) == len(doc)
    return doc


def test_payload_example_is_what_journal_encodes() -> None:
    cal = get_calendar("UTC")
    schema = _bar_schema()
    key = engine.parse_key(BAR_KEY)
    batch = prepare({k: np.asarray(v) for k, v in _bar_dict().items()}, schema, cal, BAR_KEY)
    assert journal.encode(list(plan_fixed(key, schema, batch, cal))) == _payload_doc()


@pytest.mark.parametrize("data", [_bar_array, _bar_dict], ids=["fast_path", "general_path"])
def test_payload_example_is_what_a_write_logs(tmp_path: Path, data: Callable[[], Any]) -> None:
    db = engine.open(tmp_path / "db")
    try:
        db.create(BAR_KEY, BAR_COLUMNS)  # the dict's float64 values are cast to f4
        assert db.write(BAR_KEY, data()) == 1
        assert _logged_payloads(tmp_path / "db") == [_payload_doc()]
    finally:
        db.close()


def test_payload_example_decodes_to_the_documented_write() -> None:
    schema = _bar_schema()
    (w,) = journal.decode(_payload_doc(), lambda key: schema, "docs example")
    assert isinstance(w, SlotWrite)
    assert (str(w.key), w.year, w.slots.tolist()) == (BAR_KEY, 2024, [2310])
    rec = w.records[0]
    assert rec["_slot"] == 2311
    assert {k: rec[k].item() for k in BAR_VALUES} == BAR_VALUES


# --- docs/wal.md §10 "Range deletes: ops 3 and 5" ---------------------------------------------
def _delete_docs() -> tuple[bytes, bytes]:
    text = section(read_page(WAL), "Range deletes: ops 3 and 5")
    blocks = code_blocks(text)
    clear, drop = hex_bytes(blocks[1]), hex_bytes(blocks[2])
    sizes = re.search(r"payload, (\d+) bytes.*payload, (\d+) bytes", text, re.S)
    assert sizes is not None and (len(clear), len(drop)) == tuple(map(int, sizes.groups()))
    return clear, drop


def test_delete_examples_are_what_deletes_log(tmp_path: Path) -> None:
    db = engine.open(tmp_path / "db")
    try:
        db.create(BAR_KEY, BAR_COLUMNS)
        db.write(BAR_KEY, {"Epoch": [BAR_EPOCH, BAR_EPOCH + 300],
                           **{k: [v, v] for k, v in BAR_VALUES.items()}})
        assert db.delete(BAR_KEY, "2024-01-02T14:30:00Z", "2024-01-02T14:31:59Z") == 1
        assert db.delete(BAR_KEY) == 1
        assert _logged_payloads(tmp_path / "db")[1:] == list(_delete_docs())
    finally:
        db.close()


def test_delete_examples_decode_to_a_clear_and_a_drop() -> None:
    from mkts.engine.clears import ClearWrite, DropYear

    schema = _bar_schema()
    clear, drop = _delete_docs()
    (c,) = journal.decode(clear, lambda key: schema, "docs example")
    assert isinstance(c, ClearWrite)
    ns = 1_000_000_000
    assert (str(c.key), c.year, c.first, c.last, c.mode, c.start_ns, c.end_ns) == (
        BAR_KEY, 2024, 2310, 2311, 0, BAR_EPOCH * ns, (BAR_EPOCH + 119) * ns)
    (d,) = journal.decode(drop, lambda key: schema, "docs example")
    assert isinstance(d, DropYear)
    assert (d.year, d.files, d.start_ns, d.end_ns) == (
        2024, 1, YEAR_START_2024 * ns, 1_735_689_600 * ns - 1)
    (t,) = journal.decode(clear[:-17] + b"\x01" + clear[-16:], lambda key: schema, "mode 1")
    assert isinstance(t, ClearWrite) and t.mode == 1  # tombstones (sealed years)
    with pytest.raises(engine.CorruptWALError, match="mode 2"):
        journal.decode(clear[:-17] + b"\x02" + clear[-16:], lambda key: schema, "mode 2")


# --- the dump reader the tests above rely on -------------------------------------------------
def test_hex_dumps_are_read_as_the_pages_write_them() -> None:
    assert hex_bytes("01 02   annotation 03\n0a 0b") == bytes([1, 2, 10, 11])
    assert hex_bytes("0002: ff ee   x\n   more annotation", size=6) == bytes([0, 0, 255, 238, 0, 0])
    assert hex_bytes("00000001  aa   x") == bytes([0, 0xAA])
    for bad in ("01 02 0", "zz 01", "0000: 01\n02"):
        with pytest.raises(ValueError):
            hex_bytes(bad)
    with pytest.raises(ValueError):
        hex_bytes("0004: 01", size=4)


# --- docs/format.md "Worked example: a column added" -------------------------------------
def test_format_3_header_example_is_the_bucket_header_add_column_writes(tmp_path: Path) -> None:
    doc = hex_bytes(_blocks(FORMAT, "Worked example: a column added")[0], size=4096)
    with engine.open(tmp_path / "db") as db:
        db.write(BAR_KEY, _bar_array())
        db.add_column(BAR_KEY, "VWAP", "f8", fill=0)
    assert (tmp_path / "db" / BAR_KEY / "bucket.hdr").read_bytes() == doc
    # the year file keeps its format-1 header: the worked example of a 1Min bar
    year = (tmp_path / "db" / BAR_KEY / "2024.bin").read_bytes()[:4096]
    assert year == hex_bytes(_blocks(FORMAT, "Worked example: a 1Min bar")[0], size=4096)


def test_format_3_header_example_decodes_to_the_documented_fields() -> None:
    doc = hex_bytes(_blocks(FORMAT, "Worked example: a column added")[0], size=4096)
    h = decode_header(doc, "docs example")
    assert (h.version, h.year, h.header_size, h.record_size) == (3, 0, 4096, 40)
    assert h.schema.describe() == {"Epoch": "i8", **BAR_COLUMNS, "VWAP": "f8"}
    assert h.table is not None
    assert (h.table.version, h.table.ids, h.table.last_id) == (2, (1, 2, 3, 4, 5, 6), 6)
    assert h.table.fills == (0, 0, 0, 0, 0, 0.0)


def test_sealed_file_example_is_what_the_writer_writes() -> None:
    """docs/format.md "Sealed file (`MKTSSEAL`, version 1)": three bars of `Close` f8 and
    `Volume` i8 seal into the header, codecs and decompressed chunks the page shows."""
    from mkts.engine.sealfile import SealedReader, SealMeta, encode_sealed

    example = _blocks(FORMAT, "Sealed file (MKTSSEAL, version 1)")[-1]
    schema = Schema.from_spec(engine.parse_timeframe("1Min"), FIXED,
                              {"Close": "f8", "Volume": "i8"})
    meta = SealMeta(schema, 2024, 527_040, YEAR_START_2024, "UTC")
    parts = encode_sealed(meta, np.array([2310, 2311, 2313], dtype=np.int64),
                          {"Close": np.array([187.50, 187.25, 187.52]),
                           "Volume": np.array([100, 5, 200], dtype=np.int64)})
    head = example.splitlines()[0].split()[1:]
    assert parts[0][: len(head) - 1] == bytes.fromhex("".join(head[:-1]))  # up to the "…"
    blob = b"".join(parts)
    r = SealedReader(lambda off, n: blob[off : off + n], len(blob), "example")
    foot = re.search(r"footer at (\d+) \(0x([0-9a-f]+)\), (\d+) bytes", example)
    assert foot is not None
    assert len(blob) - len(parts[-1]) == int(foot.group(1)) == int(foot.group(2), 16)
    assert len(parts[-1]) == int(foot.group(3))
    rows = re.findall(r"^(key|Close|Volume)\s+0x([0-9a-f]{4})\s+((?:[0-9a-f]{2} )+)", example,
                      re.MULTILINE)
    assert [n for n, _, _ in rows] == ["key", "Close", "Volume"]
    for c, (_, codec, data) in enumerate(rows):
        assert int(r.chunks[0, c]["codec"]) == int(codec, 16)
        stored = parts[1 + c]  # plain (codec bit 10) or a zstd frame of the payload
        payload = stored if int(codec, 16) & 0x400 else zstandard.ZstdDecompressor().decompress(
            stored)
        assert payload == bytes.fromhex(data)
    assert [int(x) for x in r.groups[0]][:3] == [2310, 2313, 3]
