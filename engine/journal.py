"""Transactions as log payloads: encode slot writes for the WAL, decode them for replay.

A payload is a physical redo record: applying it twice leaves the same bytes.
Layout in docs/wal.md "Transaction payload".
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from engine.errors import CorruptWALError
from engine.keys import BucketKey, parse_key
from engine.plan import SlotWrite
from engine.schema import SLOT_FIELD, Schema

__all__ = ["encode", "decode", "OP_FIXED_SLOTS"]

OP_FIXED_SLOTS = 1
_TXN = struct.Struct("<I")
_OP = struct.Struct("<BHiII")  # op type, key length, year, record size, row count


def encode(writes: list[SlotWrite]) -> bytes:
    parts: list[bytes | memoryview] = [_TXN.pack(len(writes))]
    for w in writes:
        key = str(w.key).encode("utf-8")
        rec = np.ascontiguousarray(w.records)
        parts.append(_OP.pack(OP_FIXED_SLOTS, len(key), w.year, rec.dtype.itemsize, len(rec)))
        parts.append(key)
        parts.append(memoryview(rec).cast("B"))
    return b"".join(parts)


def decode(payload: bytes | memoryview, schema_of: Callable[[BucketKey], Schema],
           where: str = "") -> list[SlotWrite]:
    """Decode a payload; `schema_of(key)` gives each bucket's schema (raises if unknown)."""
    view = memoryview(payload)
    try:
        (count,) = _TXN.unpack_from(view, 0)
        pos = _TXN.size
        out = []
        for _ in range(count):
            op, klen, year, recsize, n = _OP.unpack_from(view, pos)
            pos += _OP.size
            if op != OP_FIXED_SLOTS:
                raise ValueError(f"unknown operation {op}")
            key = parse_key(bytes(view[pos : pos + klen]).decode("utf-8"))
            pos += klen
            schema = schema_of(key)
            if schema.record_dtype.itemsize != recsize:
                raise ValueError(f"record size {recsize} does not match bucket {key}")
            end = pos + n * recsize
            if end > len(view):
                raise ValueError("payload is shorter than its records")
            rec = np.frombuffer(view, dtype=schema.record_dtype, count=n, offset=pos)
            pos = end
            slots = rec[SLOT_FIELD] - 1
            if n and (slots[0] < 0 or (n > 1 and not bool((slots[1:] > slots[:-1]).all()))):
                raise ValueError("slots are not ascending")
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
