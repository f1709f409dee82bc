"""Sealed year files (`<YYYY>.sealed`): the layout of header, column chunks per row group and
footer, a pure encoder, and a reader that decompresses only the chunks a key range needs.
Byte layout in docs/format.md "Sealed file (`MKTSSEAL`, version 1)"; codecs in sealcodec.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mkts.engine.columns import ColumnTable
from mkts.engine.errors import CorruptFileError, SchemaError, UnsupportedFormatError
from mkts.engine.schema import FIXED, MAX_COLUMNS, NAME_BYTES, VARIABLE, Schema, normalise_dtype
from mkts.engine.sealcodec import decode_into, decode_values, encode_chunk, payload_of, scratch
from mkts.engine.timeframes import parse_timeframe
from mkts.wal.crc import crc32c

if TYPE_CHECKING:  # the cache module reads this one's readers
    from mkts.engine.blockcache import BlockCache

__all__ = ["SealMeta", "SealedReader", "SealedSpan", "encode_sealed", "group_rows", "SEAL_MAGIC",
           "SEAL_VERSION", "FIXED_GROUP_ROWS", "TICK_GROUP_BYTES"]

SEAL_MAGIC = b"MKTSSEAL"
SEAL_VERSION = 1
PAGE = 4096
FIXED_GROUP_ROWS = 1 << 14  # rows per row group of a fixed bucket (2 months of 1Min bars)
TICK_GROUP_BYTES = 1 << 20  # raw bytes of tick columns per row group (about)
# magic, version, kind, header size, year, columns, timeframe seconds, schema version,
# generation, slot count, year start, time zone, timeframe name, rows, footer offset,
# footer length, footer CRC-32C, reserved
_HEAD = struct.Struct("<8sHHIiIqIIqq64s16sqqqII")
# The column table of docs/format.md "Header, format 3": name, dtype, column id, flags, fill.
_COLUMN = struct.Struct(f"<{NAME_BYTES}s8sHHI")
_KINDS = {FIXED: 0, VARIABLE: 1}
_FOOT = struct.Struct("<II")  # row groups, chunks per row group (the key and every column)
GROUP_DTYPE = np.dtype([("first", "<i8"), ("last", "<i8"), ("rows", "<u4"), ("reserved", "<u4")])
CHUNK_DTYPE = np.dtype([("offset", "<i8"), ("length", "<u4"), ("codec", "<u2"),
                        ("reserved", "<u2"), ("crc", "<u4"), ("reserved2", "<u4")])
KEY_NAME = "(key)"  # how errors name the key chunk (slot numbers, or tick nanoseconds)


@dataclass(frozen=True)
class SealMeta:
    """What a sealed file's header says besides its chunks."""

    schema: Schema
    year: int
    nslots: int
    year_start: int
    timezone: str
    generation: int = 1
    schema_version: int = 1
    ids: tuple[int, ...] = ()  # column ids (docs/format.md "Header, format 3"); () = 1..n

    def __post_init__(self) -> None:
        if self.ids == tuple(range(1, len(self.schema.columns) + 1)):
            object.__setattr__(self, "ids", ())  # one spelling of the first column ids

    @property
    def columns(self) -> ColumnTable:
        """The file's column table (fills are the bucket's business: never read here)."""
        t = ColumnTable.initial(self.schema)
        if not self.ids:
            return t
        return ColumnTable(self.schema_version, self.ids, t.fills, max(self.ids))


def header_size_for(ncols: int) -> int:
    return -(-(_HEAD.size + ncols * _COLUMN.size + 4) // PAGE) * PAGE


def group_rows(schema: Schema) -> int:
    """Rows per row group: 65 536 for fixed buckets, about 1 MiB of raw columns for ticks."""
    if schema.kind == FIXED:
        return FIXED_GROUP_ROWS
    return max(1024, TICK_GROUP_BYTES // (8 + schema.row_dtype.itemsize))


def _encode_header(meta: SealMeta, rows: int, foot_at: int, foot_len: int, foot_crc: int
                   ) -> bytes:
    schema = meta.schema
    size = header_size_for(len(schema.columns))
    buf = bytearray(size)
    tz = meta.timezone.encode("utf-8")
    if len(tz) > 64:
        raise SchemaError(f"timezone name {meta.timezone!r} is longer than 64 bytes")
    _HEAD.pack_into(buf, 0, SEAL_MAGIC, SEAL_VERSION, _KINDS[schema.kind], size, meta.year,
                    len(schema.columns), schema.timeframe.seconds, meta.schema_version,
                    meta.generation, meta.nslots, meta.year_start, tz,
                    schema.timeframe.name.encode("ascii"), rows, foot_at, foot_len, foot_crc, 0)
    pos = _HEAD.size
    ids = meta.ids or tuple(range(1, len(schema.columns) + 1))
    for cid, (name, dt) in zip(ids, schema.columns, strict=True):
        _COLUMN.pack_into(buf, pos, name.encode("utf-8"), dt.str.encode("ascii"), cid, 0, 0)
        pos += _COLUMN.size
    struct.pack_into("<I", buf, size - 4, crc32c(memoryview(buf)[: size - 4]))
    return bytes(buf)


def encode_sealed(meta: SealMeta, keys: np.ndarray, columns: dict[str, np.ndarray]
                  ) -> list[bytes]:
    """The sealed file of rows in read order as buffers to write back to back: header,
    chunks, footer. `keys` (int64, ascending): fixed slot numbers, or tick times in ns."""
    schema = meta.schema
    n = len(keys)
    if n and bool((keys[1:] < keys[:-1]).any()):
        raise ValueError("sealed rows must be in key order")
    step = group_rows(schema)
    hsize = header_size_for(len(schema.columns))
    pos = hsize
    parts: list[bytes] = []
    groups = np.zeros((n + step - 1) // step, dtype=GROUP_DTYPE)
    chunks = np.zeros(len(groups) * (1 + len(schema.columns)), dtype=CHUNK_DTYPE)
    keys = np.asarray(keys, dtype=np.int64)
    k = 0
    for g, a in enumerate(range(0, n, step)):
        b = min(n, a + step)
        groups[g] = (keys[a], keys[b - 1], b - a, 0)
        for col, dt in [(keys[a:b], np.dtype("<i8"))] + [(columns[c][a:b], d)
                                                         for c, d in schema.columns]:
            codec, data = encode_chunk(col, dt)
            chunks[k] = (pos, len(data), codec, 0, crc32c(data), 0)
            parts.append(data)
            pos += len(data)
            k += 1
    foot = _FOOT.pack(len(groups), 1 + len(schema.columns)) + groups.tobytes() + \
        chunks.tobytes()
    foot += struct.pack("<I", crc32c(foot))
    return [_encode_header(meta, n, pos, len(foot), crc32c(foot)), *parts, foot]


Pread = Callable[[int, int], bytes]  # (offset, size) -> bytes


class SealedReader:
    """A sealed file opened through `pread`: header and footer are read and verified once;
    `read(lo, hi)` returns the rows with lo <= key <= hi."""

    def __init__(self, pread: Pread, file_size: int, path: str, *,
                 later: Pread | None = None) -> None:
        """`pread` reads header and footer now; `later` (default: `pread`) every chunk."""
        self.path = path
        self._pread = later or pread
        head = pread(0, PAGE)
        if len(head) < _HEAD.size:
            raise CorruptFileError(f"{path}: file is too short to hold a sealed header")
        (magic, version, kind, hsize, year, ncols, tf_seconds, schema_version, generation,
         nslots, year_start, tz, tf_name, rows, foot_at, foot_len, foot_crc,
         _r) = _HEAD.unpack_from(head, 0)
        if magic != SEAL_MAGIC:
            raise CorruptFileError(f"{path}: not a sealed mkts file (bad magic {magic!r})")
        if version != SEAL_VERSION:
            raise UnsupportedFormatError(
                f"{path}: sealed file version {version}; this mkts reads version {SEAL_VERSION}")
        if hsize % PAGE or not PAGE <= hsize <= 4 * PAGE or ncols > MAX_COLUMNS or \
                kind not in (0, 1):
            raise CorruptFileError(f"{path}: sealed header size / columns / kind are invalid")
        if hsize > len(head):
            head = pread(0, hsize)
        if len(head) < hsize or crc32c(memoryview(head)[: hsize - 4]) != \
                struct.unpack_from("<I", head, hsize - 4)[0]:
            raise CorruptFileError(f"{path}: sealed header checksum does not match; the file "
                                   "is damaged")
        try:
            cols = []
            ids = []
            pos = _HEAD.size
            for _ in range(ncols):
                name_b, dt_b, cid, _flags, _fill = _COLUMN.unpack_from(head, pos)
                pos += _COLUMN.size
                ids.append(cid)
                name = name_b.rstrip(b"\0").decode("utf-8")
                cols.append((name, normalise_dtype(dt_b.rstrip(b"\0").decode("ascii"), name)))
            tf = parse_timeframe(tf_name.rstrip(b"\0").decode("ascii"))
            schema = Schema(tf, (FIXED, VARIABLE)[kind], tuple(cols))
            timezone = tz.rstrip(b"\0").decode("utf-8")
        except (UnicodeDecodeError, SchemaError, ValueError) as exc:
            raise CorruptFileError(f"{path}: sealed header fields are invalid ({exc})") from exc
        if tf.seconds != tf_seconds or foot_at < hsize or foot_at + foot_len != file_size:
            raise CorruptFileError(f"{path}: sealed header disagrees with the file "
                                   f"({file_size} bytes); the file is damaged or cut short")
        if schema_version < 1 or 0 in ids or len(set(ids)) != len(ids):
            raise CorruptFileError(f"{path}: sealed header column ids {ids} / schema version "
                                   f"{schema_version} are inconsistent")
        self.meta = SealMeta(schema, year, nslots, year_start, timezone, generation,
                             schema_version, tuple(ids))
        self.footer_crc = foot_crc
        self.rows = rows
        self.file_size = file_size
        foot = pread(foot_at, foot_len)
        if len(foot) != foot_len or crc32c(foot) != foot_crc or foot_len < _FOOT.size + 4 or \
                crc32c(memoryview(foot)[:-4]) != struct.unpack_from("<I", foot, foot_len - 4)[0]:
            raise CorruptFileError(f"{path}: sealed footer checksum does not match; the file "
                                   "is damaged")
        ngroups, per = _FOOT.unpack_from(foot, 0)
        gsize, csize = ngroups * GROUP_DTYPE.itemsize, ngroups * per * CHUNK_DTYPE.itemsize
        if per != 1 + ncols or _FOOT.size + gsize + csize + 4 != foot_len:
            raise CorruptFileError(f"{path}: sealed footer size does not match its header")
        self.groups = np.frombuffer(foot, GROUP_DTYPE, ngroups, _FOOT.size)
        self.chunks = np.frombuffer(foot, CHUNK_DTYPE, ngroups * per,
                                    _FOOT.size + gsize).reshape(ngroups, per)
        ends = self.chunks["offset"] + self.chunks["length"]
        if int(self.groups["rows"].sum()) != rows or (ngroups and (
                int(self.chunks["offset"].min()) < hsize or int(ends.max()) > foot_at)):
            raise CorruptFileError(f"{path}: sealed footer points outside the file")
        self._first = self.groups["first"]
        self._last = self.groups["last"]
        # The footer as Python lists: a read touches a few scalars per chunk.
        self._off: list[list[int]] = self.chunks["offset"].tolist()
        self._len: list[list[int]] = self.chunks["length"].tolist()
        self._codec: list[list[int]] = self.chunks["codec"].tolist()
        self._crc: list[list[int]] = self.chunks["crc"].tolist()
        self._rows: list[int] = self.groups["rows"].tolist()
        self._names = [KEY_NAME, *schema.names]
        self._dtypes = [np.dtype("<i8"), *(d for _, d in schema.columns)]

    def groups_for(self, lo: int, hi: int) -> range:
        """The row groups that may hold keys in [lo, hi]."""
        g0 = int(np.searchsorted(self._last, lo, "left"))
        g1 = int(np.searchsorted(self._first, hi, "right"))
        return range(g0, max(g0, g1))

    def _where(self, g: int, c: int) -> str:
        return f"{self.path}: column {self._names[c]}, row group {g}"

    def _payload(self, g: int, c: int, buf: bytes | memoryview, base: int
                 ) -> bytes | memoryview:
        """One chunk's payload, checked (`buf` holds the file from offset `base`)."""
        off, length = self._off[g][c] - base, self._len[g][c]
        data = memoryview(buf)[off : off + length]
        if len(data) != length or crc32c(data) != self._crc[g][c]:
            raise CorruptFileError(f"{self._where(g, c)}: chunk checksum does not match; "
                                   "the file is damaged")
        return payload_of(self._codec[g][c], data, self._dtypes[c], self._rows[g],
                          self._where(g, c))

    def _chunk(self, g: int, c: int, buf: bytes, base: int) -> np.ndarray:
        """One chunk, checked and decoded."""
        raw = self._payload(g, c, buf, base)
        return decode_values(self._codec[g][c], raw, self._dtypes[c], self._rows[g],
                             self._where(g, c))

    def span(self, lo: int, hi: int, names: Sequence[str] | None = None,
             cache: BlockCache | None = None) -> SealedSpan:
        """The rows with lo <= key <= hi, located but not yet decoded: one `pread` of the
        chunks of the row groups the range touches and the columns of `names` (default
        all); the keys are decoded now, each column when `SealedSpan.fill` asks for it.
        With a `cache` (engine/blockcache.py), chunks it holds are copied, not read, and
        the others are decoded whole and added to it."""
        want = [0] + [1 + self._names[1:].index(n) for n in (names if names is not None
                                                                else self._names[1:])]
        gr = self.groups_for(lo, hi)
        columns = {self._names[c]: c for c in want[1:]}
        if not len(gr):
            return SealedSpan(self, gr, columns, b"", 0, np.zeros(0, np.int64), 0)
        fid = cache.file_id(self) if cache is not None else 0
        got = cache.lookup(fid, gr, want) if cache is not None else {}
        need = [(g, c) for g in gr for c in want if (g, c) not in got]
        base = end = 0
        if need:
            base = min(self._off[g][c] for g, c in need)
            end = max(self._off[g][c] + self._len[g][c] for g, c in need)
        buf = self._pread(base, end - base) if need else b""
        total = sum(self._rows[g] for g in gr)
        keys = np.empty(total, dtype=np.int64)
        pos = 0
        for g in gr:
            n = self._rows[g]
            k = got.get((g, 0))
            if k is None and cache is not None:
                k = cache.add(fid, g, 0, self._chunk(g, 0, buf, base))
            if k is not None:
                keys[pos : pos + n] = k
            else:
                decode_into(self._codec[g][0], self._payload(g, 0, buf, base),
                            self._dtypes[0], n, keys[pos : pos + n])
            pos += n
        first = self._rows[gr.start]
        a = int(np.searchsorted(keys[:first], lo, "left"))
        b = total - self._rows[gr.stop - 1] + int(np.searchsorted(
            keys[total - self._rows[gr.stop - 1] :], hi, "right"))
        sp = SealedSpan(self, gr, columns, buf, base, keys[a:b], a)
        if cache is not None:
            sp.cache, sp.fid, sp.got = cache, fid, got
        return sp

    def read(self, lo: int, hi: int, names: Sequence[str] | None = None,
             cache: BlockCache | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(keys, {column: values}) of the rows with lo <= key <= hi, in file order; only the
        row groups and columns (`names`, default all) the range needs are read and decoded
        (or copied from `cache`, as `span`)."""
        sp = self.span(lo, hi, names, cache)
        out = {}
        for name, c in sp.columns.items():
            out[name] = np.empty(sp.rows, dtype=self._dtypes[c])
            sp.fill(name, out[name])
        return sp.keys, out

    def verify(self) -> list[str]:
        """Every chunk's checksum and decoding: a message per damaged chunk (file, column,
        row group), for `mkts check`."""
        bad: list[str] = []
        for g in range(len(self.groups)):
            for c in range(self.chunks.shape[1]):
                try:
                    buf = self._pread(self._off[g][c], self._len[g][c])
                    self._chunk(g, c, buf, self._off[g][c])
                except CorruptFileError as exc:
                    bad.append(str(exc))
        return bad



class SealedSpan:
    """Rows of a sealed file located by `SealedReader.span`: their keys, and each column
    decoded on demand straight into the caller's array (one pass per chunk, no joins)."""

    __slots__ = ("reader", "groups", "columns", "_buf", "_base", "keys", "_start", "cache",
                 "fid", "got")

    def __init__(self, reader: SealedReader, groups: range, columns: dict[str, int],
                 buf: bytes, base: int, keys: np.ndarray, start: int) -> None:
        self.reader, self.groups, self.columns = reader, groups, columns
        self._buf, self._base, self.keys, self._start = buf, base, keys, start
        # the block cache of the read (None: decode every chunk) and its chunks found
        self.cache: BlockCache | None = None
        self.fid = 0
        self.got: dict[tuple[int, int], np.ndarray] = {}

    @property
    def rows(self) -> int:
        return len(self.keys)

    def narrow(self, part: slice) -> None:
        """Keep only rows `part` (a slice of `range(rows)` with step 1) of the span."""
        a, b, _ = part.indices(self.rows)
        self.keys = self.keys[a:b]
        self._start += a

    def fill(self, name: str, out: np.ndarray) -> None:
        """Decode column `name` of the span's rows into `out` (`rows` values of its dtype,
        any stride); only the row groups holding those rows are decoded."""
        self.fill_many([(name, out)])

    def fill_many(self, jobs: Sequence[tuple[str, np.ndarray]]) -> None:
        """`fill` of several columns, each chunk decoded straight into its slice of `out`.
        **Decision:** one thread: decoding half the chunks on a second one was slower on
        the shared 2-vCPU machine (1.6 against 2.0-2.2 ms for a symbol-year of bars)."""
        r = self.reader
        lo, hi = self._start, self._start + self.rows  # rows of the groups, from the first
        for name, out in jobs:
            c = self.columns[name]
            dt = r._dtypes[c]
            pos = 0
            for g in self.groups:
                n = r._rows[g]
                a, b = max(lo - pos, 0), min(hi - pos, n)
                if a < b and (got := self._cached(g, c)) is not None:
                    out[pos + a - lo : pos + b - lo] = got[a:b]  # the copy of a cached chunk
                elif a < b:
                    raw = r._payload(g, c, self._buf, self._base)
                    dst = out[pos + a - lo : pos + b - lo]
                    if a == 0 and b == n:
                        decode_into(r._codec[g][c], raw, dt, n, dst)
                    else:  # a group the range cuts: decoded whole, then the rows taken
                        tmp = scratch(n, dt, 1)
                        decode_into(r._codec[g][c], raw, dt, n, tmp)
                        dst[...] = tmp[a:b]
                pos += n

    def _cached(self, g: int, c: int) -> np.ndarray | None:
        """Chunk (g, c) from the read's block cache, decoded into it first if it was not
        there; None without a cache."""
        cache = self.cache
        if cache is None:
            return None
        got = self.got.get((g, c))
        if got is None:
            got = cache.add(self.fid, g, c, self.reader._chunk(g, c, self._buf, self._base))
        return got
