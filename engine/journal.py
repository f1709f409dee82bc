"""Transactions as log payloads: encode slot writes for the WAL, decode them for replay.

A payload is a physical redo record: applying it twice leaves the same bytes.
Layout in docs/wal.md §10.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from mkts.engine.errors import CorruptWALError
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.plan import IngestWrite, RowWrite, SlotWrite
from mkts.engine.schema import SLOT_FIELD, TICK_SLOT_DTYPE, Schema
from mkts.engine.ticks import TickWrite

__all__ = ["encode", "encode_parts", "decode", "fixed_prefix", "OP_FIXED_SLOTS"]

OP_FIXED_SLOTS = 1
OP_TICKS = 2
OP_INGEST = 7  # docs/wal.md §10: a bulk-loaded sealed file becomes the year's
_INGEST = struct.Struct("<IQQI")  # generation, ingest id, file size, footer CRC-32C
_TXN = struct.Struct("<I")
_OP = struct.Struct("<BHiII")  # op type, key length, year, record size, row count
_REGION = struct.Struct("<qQ")  # tick region offset, length


def fixed_prefix(key: BucketKey, year: int, record_size: int, rows: int) -> bytes:
    """The bytes before the records in the payload of a transaction that is one fixed
    slot write: what `encode([SlotWrite(key, year, ...)])` starts with (the fast path,
    engine/fastpath.py, appends the records to it)."""
    kb = str(key).encode("utf-8")
    return _TXN.pack(1) + _OP.pack(OP_FIXED_SLOTS, len(kb), year, record_size, rows) + kb


def encode(writes: list[SlotWrite | RowWrite | TickWrite]) -> bytes:
    return b"".join(encode_parts(writes))


def encode_parts(writes: list[SlotWrite | RowWrite | TickWrite]
                 ) -> tuple[bytes | memoryview, ...]:
    """The payload of `writes` as buffers to be logged back to back (records not copied)."""
    parts: list[bytes | memoryview] = [_TXN.pack(len(writes))]
    for w in writes:
        key = str(w.key).encode("utf-8")
        if type(w) is IngestWrite:
            parts.append(_OP.pack(OP_INGEST, len(key), w.year, 0, 0))
            parts.append(key)
            parts.append(_INGEST.pack(w.generation, w.ingest_id, w.size, w.footer_crc))
            continue
        if type(w) is RowWrite:  # one record, already its stored bytes
            parts.append(_OP.pack(OP_FIXED_SLOTS, len(key), w.year, w.dtype.itemsize, 1))
            parts.append(key)
            parts.append(w.record)
            continue
        rec = np.ascontiguousarray(w.records)
        op = OP_TICKS if isinstance(w, TickWrite) else OP_FIXED_SLOTS
        parts.append(_OP.pack(op, len(key), w.year, rec.dtype.itemsize, len(rec)))
        parts.append(key)
        if isinstance(w, TickWrite):
            parts.append(_REGION.pack(w.offset, len(w.region)))
            parts.append(w.region)
        parts.append(rec.data.cast("B"))
    return tuple(parts)


def decode(payload: bytes | memoryview, schema_of: Callable[[BucketKey], Schema],
           where: str = "") -> list[SlotWrite | TickWrite]:
    """Decode a payload; `schema_of(key)` gives each bucket's schema (raises if unknown)."""
    view = memoryview(payload)
    try:
        (count,) = _TXN.unpack_from(view, 0)
        pos = _TXN.size
        out: list[SlotWrite | TickWrite] = []
        for _ in range(count):
            op, klen, year, recsize, n = _OP.unpack_from(view, pos)
            pos += _OP.size
            if op not in (OP_FIXED_SLOTS, OP_TICKS, OP_INGEST):
                raise ValueError(f"unknown operation {op}")
            key = parse_key(bytes(view[pos : pos + klen]).decode("utf-8"))
            pos += klen
            schema = schema_of(key)
            if op == OP_INGEST:
                if schema.kind == "variable" or recsize or n:
                    raise ValueError(f"bulk load record for {key} is malformed")
                gen, iid, size, crc = _INGEST.unpack_from(view, pos)
                pos += _INGEST.size
                out.append(IngestWrite(key, year, np.zeros(0, np.int64),
                                       np.zeros(0, schema.record_dtype), iid, size, crc, gen))
                continue
            if (op == OP_TICKS) != (schema.kind == "variable"):
                raise ValueError(f"operation {op} does not match the kind of bucket {key}")
            region = b""
            offset = 0
            if op == OP_TICKS:
                offset, rlen = _REGION.unpack_from(view, pos)
                pos += _REGION.size
                if pos + rlen > len(view):
                    raise ValueError("payload is shorter than its tick region")
                region = bytes(view[pos : pos + rlen])
                pos += rlen
            dtype = TICK_SLOT_DTYPE if op == OP_TICKS else schema.record_dtype
            if dtype.itemsize != recsize:
                raise ValueError(f"record size {recsize} does not match bucket {key}")
            end = pos + n * recsize
            if end > len(view):
                raise ValueError("payload is shorter than its records")
            rec = np.frombuffer(view, dtype=dtype, count=n, offset=pos)
            pos = end
            slots = rec[SLOT_FIELD] - 1
            if n and (slots[0] < 0 or (n > 1 and not bool((slots[1:] > slots[:-1]).all()))):
                raise ValueError("slots are not ascending")
            if op == OP_TICKS:
                out.append(TickWrite(key, year, offset, region, slots, rec))
            else:
                out.append(SlotWrite(key, year, slots, rec))
        if pos != len(view):
            raise ValueError("trailing bytes after the last operation")
        return out
    except KeyError as exc:
        raise CorruptWALError(
            f"log record {where} refers to a bucket that does not exist: {exc}"
        ) from exc
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise CorruptWALError(f"log record {where} cannot be decoded: {exc}") from exc
