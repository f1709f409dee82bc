"""Tick blocks, the on-disk unit of tick data: the rows of one or more intervals of a year file
in one zstandard frame, with a directory linking each interval to its previous block (its
chain). Pure encode/decode/verify, no file I/O. Layout: docs/format.md "Tick buckets".
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zstandard

from mkts.engine.errors import CorruptFileError, UnsupportedFormatError
from mkts.engine.schema import Schema
from mkts.engine.sealcodec import MAX_DIGITS, scale_floats
from mkts.engine.sealcodec import unscale as _unscale
from mkts.wal.crc import crc32c

__all__ = ["Block", "BLOCK_HEADER", "BLOCK_MAGIC", "ENTRY_DTYPE", "BLOCK_TARGET", "MAX_BLOCK",
           "IntervalRows", "encode_blocks", "decode_blocks", "apportion", "decompress_frames"]

BLOCK_MAGIC = b"MKTK"
_OLD_MAGIC = b"MKTB"  # the pre-release format of one blob per interval
# magic, flags, reserved, entries, rows, raw size, frame bytes, CRC-32C
BLOCK_HEADER = struct.Struct("<4sHHIIIII")
_CRC_AT = BLOCK_HEADER.size - 4
FLAG_NS32 = 1  # nanosecond offsets stored as u4 (every offset of the block is < 2**32)
# One directory entry per interval, slots ascending: the interval's rows in this block and
# the previous block of its chain (offset 0 = none).
ENTRY_DTYPE = np.dtype([("slot", "<u4"), ("rows", "<u4"), ("prev", "<i8"),
                        ("prev_bytes", "<u4"), ("prev_rows", "<u4")])
MAX_BLOCK = 1 << 31
BLOCK_TARGET = 1 << 19  # raw bytes per block a writer aims at (intervals are never split)
LEVEL = 1
THREADS = min(2, os.cpu_count() or 1)  # decoding threads for large reads
PARALLEL_BYTES = 1 << 20  # raw bytes from which a read decodes on two threads
_cctx = zstandard.ZstdCompressor(level=LEVEL)  # the commit leader's (writes are serialised)


@dataclass
class IntervalRows:
    """The rows of one interval: nanoseconds since the interval's label, and the columns."""

    ns: np.ndarray  # int64, sorted ascending (stable: ties in write order)
    rows: np.ndarray  # the schema's row_dtype

    def __len__(self) -> int:
        return len(self.ns)


@dataclass
class Block:
    """A decoded block: its directory as arrays and its columns as views of the raw bytes."""

    offset: int
    nbytes: int
    slots: np.ndarray  # int64, strictly ascending
    counts: np.ndarray  # int64, rows per entry (>= 1)
    starts: np.ndarray  # int64, first row of each entry
    prev: np.ndarray  # int64
    prev_bytes: np.ndarray  # int64
    prev_rows: np.ndarray  # int64
    ns: np.ndarray  # offsets since each row's label (u4 or i8 as stored)
    columns: dict[str, np.ndarray]

    def find(self, slots: np.ndarray, where: str) -> np.ndarray:
        """The entry index of each slot; a slot the block does not hold is damage."""
        k = np.searchsorted(self.slots, slots)
        k = np.minimum(k, len(self.slots) - 1)
        bad = self.slots[k] != slots
        if bool(bad.any()):
            slot = int(slots[np.flatnonzero(bad)[0]])
            raise CorruptFileError(
                f"{where}: the chain of slot {slot} points at the tick block at offset "
                f"{self.offset}, which holds no rows of that slot")
        return k

    def share(self, k: int) -> int:
        """Entry k's share of the block's bytes (see `apportion`)."""
        total = int(self.starts[-1] + self.counts[-1])
        a = int(self.starts[k])
        return (self.nbytes * (a + int(self.counts[k]))) // total - (self.nbytes * a) // total

    def piece(self, k: int, schema: Schema) -> IntervalRows:
        a, b = int(self.starts[k]), int(self.starts[k]) + int(self.counts[k])
        rows = np.empty(b - a, dtype=schema.row_dtype)
        for name, col in self.columns.items():
            rows[name] = col[a:b]
        return IntervalRows(self.ns[a:b].astype(np.int64), rows)


def apportion(nbytes: int, counts: np.ndarray) -> np.ndarray:
    """A block's bytes split over its entries in proportion to their rows, summing exactly
    to `nbytes`: what each interval's chain counts as live bytes (docs/format.md)."""
    if len(counts) == 1:
        return np.array([nbytes], dtype=np.int64)
    edges = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=edges[1:])
    if len(counts):
        edges = (nbytes * edges) // int(edges[-1])
    return edges[1:] - edges[:-1]


def _table_bytes(schema: Schema) -> int:
    """Bytes of the column width table: one byte per column, padded to 8."""
    return -(-len(schema.columns) // 8) * 8


def _narrowest(dt: np.dtype) -> int:
    """The smallest width a column of `dt` may be stored in (numbers narrow to 1 byte)."""
    return 1 if dt.kind in "iuf" else dt.itemsize


def _narrow_int(col: np.ndarray, dt: np.dtype) -> np.ndarray:
    """An integer column in the narrowest integer type of its kind that holds its values."""
    if dt.itemsize == 1 or not len(col):
        return np.ascontiguousarray(col, dtype=dt)
    lo, hi = int(col.min()), int(col.max())
    for w in (1, 2, 4):
        if w >= dt.itemsize:
            break
        info = np.iinfo(np.dtype(f"<{dt.kind}{w}"))
        if info.min <= lo and hi <= info.max:
            return np.ascontiguousarray(col, dtype=f"<{dt.kind}{w}")
    return np.ascontiguousarray(col, dtype=dt)


def _scaled(col: np.ndarray, dt: np.dtype) -> tuple[np.ndarray, int] | None:
    """A float column as (narrow integers k, digits) with k / 10**digits == col exactly (bit
    for bit: -0.0, NaN and inf never qualify), when that is narrower than the floats."""
    sc = scale_floats(col, dt)
    if sc is None:
        return None
    stored = _narrow_int(sc[0], np.dtype("<i8"))
    return (stored, sc[1]) if stored.dtype.itemsize < dt.itemsize else None


def _raw(schema: Schema, entries: np.ndarray, ns: np.ndarray,
         columns: Sequence[np.ndarray]) -> tuple[bytes, int]:
    flags = 0
    if not len(ns) or (int(ns.min()) >= 0 and int(ns.max()) < 1 << 32):
        flags |= FLAG_NS32
        nsb = ns.astype("<u4").tobytes()
    else:
        nsb = ns.astype("<i8", copy=False).tobytes()
    table = bytearray(_table_bytes(schema))
    stored = []
    for i, ((_, dt), col) in enumerate(zip(schema.columns, columns, strict=True)):
        code = 0
        if dt.kind in "iu":
            out = _narrow_int(col, dt)
        elif dt.kind == "f" and (sc := _scaled(col, dt)) is not None:
            out, code = sc[0], (sc[1] + 1) << 4
        else:
            out = np.ascontiguousarray(col, dtype=dt)
        table[i] = 0 if out.dtype == dt else code | out.dtype.itemsize
        stored.append(out)
    return b"".join([entries.tobytes(), bytes(table), nsb, *(c.tobytes() for c in stored)]), flags


def encode_blocks(schema: Schema, items: Sequence[tuple[np.ndarray, np.ndarray,
                                                        Sequence[np.ndarray]]]) -> list[bytes]:
    """Encode blocks from (directory entries, ns offsets, column arrays) each; rows grouped by
    entry in directory order. The frames are compressed together (several threads)."""
    raws = [_raw(schema, e, ns, cols) for e, ns, cols in items]
    if len(raws) > 1:
        out = _cctx.multi_compress_to_buffer([r for r, _ in raws])
        frames: list[bytes] = [out[i].tobytes() for i in range(len(raws))]
    else:
        frames = [_cctx.compress(r) for r, _ in raws]
    blocks = []
    for (raw, flags), (e, ns, _), frame in zip(raws, items, frames, strict=True):
        head = BLOCK_HEADER.pack(BLOCK_MAGIC, flags, 0, len(e), len(ns), len(raw), len(frame), 0)
        crc = _crc(memoryview(head)[:_CRC_AT], frame)
        blocks.append(head[:_CRC_AT] + struct.pack("<I", crc) + frame)
    return blocks


def _crc(head: bytes | memoryview, frame: bytes | memoryview) -> int:
    return crc32c(frame, crc32c(head))


def _check_header(buf: bytes | memoryview, schema: Schema, where: str, what: str
                  ) -> tuple[int, int, int, int]:
    """(flags, entries, rows, raw size) of a block whose header, size and CRC check out."""
    if len(buf) < BLOCK_HEADER.size:
        raise CorruptFileError(f"{where}: {what} is cut short")
    magic, flags, reserved, entries, rows, raw_size, frame_bytes, crc = \
        BLOCK_HEADER.unpack_from(buf, 0)
    if magic == _OLD_MAGIC:
        raise UnsupportedFormatError(
            f"{where}: {what} is in the pre-release tick format of one blob per interval; "
            "this version reads tick blocks only: re-import the data")
    if magic != BLOCK_MAGIC or flags & ~FLAG_NS32 or reserved or not entries or not rows:
        raise CorruptFileError(f"{where}: {what} is damaged (bad magic or header fields)")
    if BLOCK_HEADER.size + frame_bytes != len(buf):
        raise CorruptFileError(f"{where}: {what} is {len(buf)} bytes, its header says "
                               f"{BLOCK_HEADER.size + frame_bytes}")
    view = memoryview(buf)
    if _crc(view[:_CRC_AT], view[BLOCK_HEADER.size :]) != crc:
        raise CorruptFileError(f"{where}: {what} fails its checksum")
    nsw = 4 if flags & FLAG_NS32 else 8
    fixed = entries * ENTRY_DTYPE.itemsize + _table_bytes(schema) + rows * nsw
    least = sum(_narrowest(dt) for _, dt in schema.columns)
    if not fixed + rows * least <= raw_size <= fixed + rows * schema.row_dtype.itemsize:
        raise CorruptFileError(f"{where}: {what} has an inconsistent size")
    return flags, entries, rows, raw_size


def _decompress_some(frames: Sequence[bytes | bytearray | memoryview], sizes: Sequence[int],
                     out: list[Any]) -> None:
    dctx = zstandard.ZstdDecompressor()  # one per thread: a context is not thread-safe
    out.extend(dctx.decompress(fr, max_output_size=n) for fr, n in zip(frames, sizes,
                                                                         strict=True))


def decompress_frames(frames: Sequence[bytes | bytearray | memoryview], sizes: Sequence[int]
                      ) -> list[Any]:
    """Decompress frames; a large set is split in two halves (by raw bytes) decoded on two
    threads (zstandard releases the GIL). Raises ZstdError if any frame is damaged."""
    total = sum(sizes)
    if len(frames) < 2 or total < PARALLEL_BYTES or THREADS < 2:
        out: list[Any] = []
        _decompress_some(frames, sizes, out)
        return out
    half = int(np.searchsorted(np.cumsum(sizes), total // 2)) + 1
    half = min(max(half, 1), len(frames) - 1)
    first: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _decompress_some(frames[:half], sizes[:half], first)
        except BaseException as exc:  # re-raised on the caller's thread
            errors.append(exc)

    t = threading.Thread(target=run, name="mkts-tick-decode", daemon=True)
    t.start()
    second: list[Any] = []
    try:
        _decompress_some(frames[half:], sizes[half:], second)
    finally:
        t.join()
    if errors:
        raise errors[0]
    return first + second


def decode_blocks(bufs: Sequence[tuple[int, bytes | memoryview]], schema: Schema, where: str,
                  what: Sequence[str], nslots: int | None = None) -> list[Block]:
    """Decode and verify blocks given as (file offset, bytes); `what[i]` names block i in
    errors (e.g. "the tick block of slot 42")."""
    heads = [_check_header(b, schema, where, what[i]) for i, (_, b) in enumerate(bufs)]
    sizes = [h[3] for h in heads]
    frames: list[bytes | bytearray | memoryview] = [memoryview(b)[BLOCK_HEADER.size :]
                                                    for _, b in bufs]
    raws: list[Any] = []
    try:
        raws = decompress_frames(frames, sizes)
    except zstandard.ZstdError:
        raws = []
        dctx = zstandard.ZstdDecompressor()
        for i, fr in enumerate(frames):  # find the damaged one
            try:
                raws.append(dctx.decompress(fr, max_output_size=sizes[i]))
            except zstandard.ZstdError as exc:
                raise CorruptFileError(f"{where}: {what[i]} does not decompress") from exc
    out = []
    for i, ((off, buf), (flags, entries, rows, raw_size), raw) in enumerate(
            zip(bufs, heads, raws, strict=True)):
        if len(raw) != raw_size:
            raise CorruptFileError(f"{where}: {what[i]} decompressed to a wrong size")
        out.append(_block(off, len(buf), raw, flags, entries, rows, schema, where, what[i],
                          nslots))
    return out


def _block(offset: int, nbytes: int, raw: Any, flags: int, entries: int, rows: int,
           schema: Schema, where: str, what: str, nslots: int | None) -> Block:
    d = np.frombuffer(raw, dtype=ENTRY_DTYPE, count=entries)
    slots = d["slot"].astype(np.int64)
    counts = d["rows"].astype(np.int64)
    if (len(slots) > 1 and not bool((slots[1:] > slots[:-1]).all())) or \
            (nslots is not None and int(slots[-1]) >= nslots) or \
            not bool((counts > 0).all()) or int(counts.sum()) != rows:
        raise CorruptFileError(f"{where}: {what} has a damaged directory")
    starts = np.zeros(entries, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    pos = entries * ENTRY_DTYPE.itemsize
    widths = bytes(memoryview(raw)[pos : pos + len(schema.columns)])
    pos += _table_bytes(schema)
    stored: list[np.dtype] = []
    digits: list[int] = []
    for (_, dt), code in zip(schema.columns, widths, strict=True):
        w, scale = code & 0x0F, code >> 4
        if code == 0:
            stored.append(dt)
        elif scale == 0 and dt.kind in "iu" and w in (1, 2, 4) and w < dt.itemsize:
            stored.append(np.dtype(f"<{dt.kind}{w}"))
        elif 1 <= scale <= MAX_DIGITS + 1 and dt.kind == "f" and w in (1, 2, 4) and \
                w < dt.itemsize:
            stored.append(np.dtype(f"<i{w}"))
        else:
            raise CorruptFileError(f"{where}: {what} has a damaged column width table")
        digits.append(scale - 1)
    nsdt = np.dtype("<u4") if flags & FLAG_NS32 else np.dtype("<i8")
    if pos + rows * (nsdt.itemsize + sum(d.itemsize for d in stored)) != len(raw):
        raise CorruptFileError(f"{where}: {what} has an inconsistent size")
    ns = np.frombuffer(raw, dtype=nsdt, count=rows, offset=pos)
    pos += nsdt.itemsize * rows
    cols = {}
    for (name, dt), sdt, dig in zip(schema.columns, stored, digits, strict=True):
        col = np.frombuffer(raw, dtype=sdt, count=rows, offset=pos)
        cols[name] = col if dig < 0 else _unscale(col, dig, dt)
        pos += sdt.itemsize * rows
    return Block(offset, nbytes, slots, counts, starts, d["prev"].astype(np.int64),
                 d["prev_bytes"].astype(np.int64), d["prev_rows"].astype(np.int64), ns, cols)
