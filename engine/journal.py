"""Transactions as log payloads: encode slot writes for the WAL, decode them for replay.

A payload is a physical redo record: applying it twice leaves the same bytes.
Layout in docs/wal.md §10.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import numpy as np

from mkts.engine.bulkload import TickIngestWrite
from mkts.engine.clears import CLEAR_TOMBSTONE, CLEAR_ZERO, FILE_ALL, ClearWrite, DropYear
from mkts.engine.columns import SchemaWrite
from mkts.engine.errors import CorruptFileError, CorruptWALError
from mkts.engine.header import decode_header
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.plan import IngestWrite, RowWrite, SlotWrite
from mkts.engine.schema import SLOT_FIELD, TICK_SLOT_DTYPE, Schema
from mkts.engine.sealswap import SealYear
from mkts.engine.ticks import TickWrite

__all__ = ["encode", "encode_parts", "decode", "year_marks", "fixed_prefix", "OP_FIXED_SLOTS", "OP_CLEAR",
           "OP_SCHEMA", "OP_DROP_YEAR", "OP_SEAL"]

OP_FIXED_SLOTS = 1
OP_TICKS = 2
OP_CLEAR = 3  # docs/wal.md §10 "Range deletes"
OP_SCHEMA = 4  # docs/wal.md §10: a column change, the bucket's new bucket.hdr
OP_DROP_YEAR = 5
_CLEAR = struct.Struct("<qqBqq")  # first slot, last slot, mode, removed start ns, end ns
_DROP = struct.Struct("<Bqq")  # which files (FILE_* bits), removed start ns, end ns
OP_SEAL = 6  # docs/wal.md §10: a sealed file replaced the year's live file or overlay
_SEAL = struct.Struct("<IQI")  # generation, file size, footer CRC-32C
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


Op = SlotWrite | RowWrite | TickWrite | SchemaWrite | ClearWrite | DropYear | SealYear
Decoded = SlotWrite | TickWrite | SchemaWrite | ClearWrite | DropYear | SealYear


def encode(writes: Sequence[Op]) -> bytes:
    return b"".join(encode_parts(writes))


def encode_parts(writes: Sequence[Op]) -> tuple[bytes | memoryview, ...]:
    """The payload of `writes` as buffers to be logged back to back (records not copied)."""
    parts: list[bytes | memoryview] = [_TXN.pack(len(writes))]
    for w in writes:
        key = str(w.key).encode("utf-8")
        if type(w) is SchemaWrite:  # op 4: year 0, "record size" = header bytes, 1 record
            parts.append(_OP.pack(OP_SCHEMA, len(key), 0, len(w.header), 1))
            parts.append(key)
            parts.append(w.header)
            continue
        assert not isinstance(w, SchemaWrite)
        if type(w) is IngestWrite or type(w) is TickIngestWrite:
            parts.append(_OP.pack(OP_INGEST, len(key), w.year, 0, 0))
            parts.append(key)
            parts.append(_INGEST.pack(w.generation, w.ingest_id, w.size, w.footer_crc))
            continue
        if type(w) is RowWrite:  # one record, already its stored bytes
            parts.append(_OP.pack(OP_FIXED_SLOTS, len(key), w.year, w.dtype.itemsize, 1))
            parts.append(key)
            parts.append(w.record)
            continue
        if isinstance(w, ClearWrite):
            parts.append(_OP.pack(OP_CLEAR, len(key), w.year, w.record_size, 0))
            parts.append(key)
            parts.append(_CLEAR.pack(w.first, w.last, w.mode, w.start_ns, w.end_ns))
            continue
        if isinstance(w, DropYear):
            parts.append(_OP.pack(OP_DROP_YEAR, len(key), w.year, 0, 0))
            parts.append(key)
            parts.append(_DROP.pack(w.files, w.start_ns, w.end_ns))
            continue
        if isinstance(w, SealYear):
            parts.append(_OP.pack(OP_SEAL, len(key), w.year, 0, 0))
            parts.append(key)
            parts.append(_SEAL.pack(w.generation, w.size, w.footer_crc))
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
           where: str = "") -> list[Decoded]:
    """Decode a payload; `schema_of(key)` gives each bucket's schema (raises if unknown).
    A transaction with a column change (op 4) holds only column changes (docs/wal.md §10),
    so every operation decodes with the schema its bucket has before the payload."""
    view = memoryview(payload)
    try:
        (count,) = _TXN.unpack_from(view, 0)
        pos = _TXN.size
        out: list[Decoded] = []
        for _ in range(count):
            op, klen, year, recsize, n = _OP.unpack_from(view, pos)
            pos += _OP.size
            if op not in (OP_FIXED_SLOTS, OP_TICKS, OP_CLEAR, OP_SCHEMA,
                          OP_DROP_YEAR, OP_SEAL, OP_INGEST):
                raise ValueError(f"unknown operation {op}")
            key = parse_key(bytes(view[pos : pos + klen]).decode("utf-8"))
            pos += klen
            schema = schema_of(key)
            if op == OP_SCHEMA:
                sw = _schema_write(key, bytes(view[pos : pos + recsize]), schema, recsize, n)
                pos += recsize
                out.append(sw)
                continue
            if op in (OP_CLEAR, OP_DROP_YEAR):
                w, pos = _decode_clear(view, pos, op, key, year, recsize, n, schema)
                out.append(w)
                continue
            if op == OP_SEAL:
                gen, size, crc = _SEAL.unpack_from(view, pos)
                pos += _SEAL.size
                if recsize or n or gen < 1:
                    raise ValueError(f"seal record for {key}/{year} is malformed")
                out.append(SealYear(key, year, gen, size, crc))
                continue
            if op == OP_INGEST:
                if recsize or n:
                    raise ValueError(f"bulk load record for {key} is malformed")
                gen, iid, size, crc = _INGEST.unpack_from(view, pos)
                pos += _INGEST.size
                if schema.kind == "variable":  # the rows are in the file, none here
                    out.append(TickIngestWrite(key, year, 0, b"", np.zeros(0, np.int64),
                                               np.zeros(0, TICK_SLOT_DTYPE), ingest_id=iid,
                                               size=size, footer_crc=crc, generation=gen))
                else:
                    out.append(IngestWrite(key, year, np.zeros(0, np.int64),
                                           np.zeros(0, schema.record_dtype), iid, size, crc,
                                           gen))
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
    except CorruptFileError as exc:
        raise CorruptWALError(f"log record {where}: its bucket header is damaged: {exc}") from exc
    except KeyError as exc:
        raise CorruptWALError(
            f"log record {where} refers to a bucket that does not exist: {exc}"
        ) from exc
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise CorruptWALError(f"log record {where} cannot be decoded: {exc}") from exc


def year_marks(payload: bytes | memoryview
               ) -> list[tuple[int, str, int, tuple[int, int, int] | None]]:
    """The records of a payload that set a year's files whatever came before them, as (op,
    bucket key, year, file identity): op 5 (the year emptied; identity None), op 6 and op 7
    (the sealed file a seal or a bulk load installed: (generation, size, footer CRC-32C)).
    Found by walking the operation heads without decoding any records (replay looks for them
    before applying anything); [] for a payload it cannot walk (decoding it reports why)."""
    view = memoryview(payload)
    out: list[tuple[int, str, int, tuple[int, int, int] | None]] = []
    try:
        (count,) = _TXN.unpack_from(view, 0)
        pos = _TXN.size
        for _ in range(count):
            op, klen, year, recsize, n = _OP.unpack_from(view, pos)
            pos += _OP.size + klen
            if op in (OP_DROP_YEAR, OP_SEAL, OP_INGEST):
                key = bytes(view[pos - klen : pos]).decode("utf-8")
                ident: tuple[int, int, int] | None = None
                if op == OP_SEAL:
                    ident = _SEAL.unpack_from(view, pos)
                elif op == OP_INGEST:
                    gen, _, size, crc = _INGEST.unpack_from(view, pos)
                    ident = (gen, size, crc)
                out.append((op, key, year, ident))
            if op == OP_TICKS:
                pos += _REGION.size + _REGION.unpack_from(view, pos)[1]
            pos += {OP_CLEAR: _CLEAR.size, OP_DROP_YEAR: _DROP.size, OP_SEAL: _SEAL.size,
                    OP_INGEST: _INGEST.size}.get(op, recsize * n)
    except (struct.error, UnicodeDecodeError):
        return []
    return out


def _schema_write(key: BucketKey, header: bytes, schema: Schema, size: int, n: int
                  ) -> SchemaWrite:
    """An op-4 body: the new bucket.hdr of `key`, checked (checksum included) before use."""
    if n != 1 or len(header) != size:
        raise ValueError("a schema operation is cut short")
    h = decode_header(header, f"the bucket header of {key} in the log")
    if h.year != 0 or h.table is None or h.schema.kind != schema.kind \
            or h.schema.timeframe != schema.timeframe:
        raise ValueError(f"the schema operation does not fit bucket {key}")
    return SchemaWrite(key, h.schema, h.table, header)


def _decode_clear(view: memoryview, pos: int, op: int, key: BucketKey, year: int,
                  recsize: int, n: int, schema: Schema) -> tuple[ClearWrite | DropYear, int]:
    """An op 3 (clear slots) or op 5 (drop year) body at `pos`; raises ValueError."""
    if n != 0:
        raise ValueError(f"operation {op} carries {n} records; it carries none")
    if op == OP_DROP_YEAR:
        files, start_ns, end_ns = _DROP.unpack_from(view, pos)
        if not files or files & ~FILE_ALL:
            raise ValueError(f"drop year of files {files:#x}: the files are bits 1 (.bin), "
                             "2 (.sealed) and 4 (.overlay)")
        if start_ns > end_ns:
            raise ValueError(f"drop year with times {start_ns}..{end_ns} is not a range")
        return DropYear(key, year, start_ns, end_ns, files), pos + _DROP.size
    first, last, mode, start_ns, end_ns = _CLEAR.unpack_from(view, pos)
    want = TICK_SLOT_DTYPE.itemsize if schema.kind == "variable" else schema.record_dtype.itemsize
    if recsize != want:
        raise ValueError(f"record size {recsize} does not match bucket {key}")
    if mode not in (CLEAR_ZERO, CLEAR_TOMBSTONE):
        raise ValueError(f"clear mode {mode}: 0 (zero live slots) and 1 (tombstones in the "
                         "overlay of a sealed year) exist")
    if first < 0 or last < first - 1 or start_ns > end_ns:
        raise ValueError(f"clear of slots {first}..{last} (times {start_ns}..{end_ns}) "
                         "is not a range")
    return ClearWrite(key, year, first, last, start_ns, end_ns, recsize, mode), pos + _CLEAR.size
