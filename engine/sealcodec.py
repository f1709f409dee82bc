"""Column chunk codecs of sealed year files: exact encodings of one column of one row group
(integers narrowed by frame of reference or deltas, floats as decimal-scaled integers when
bit-exact, then zstd where it pays) and their decoding straight into a result's field.
Layout in docs/format.md "Sealed file (`MKTSSEAL`, version 1)"; no I/O.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import numpy as np
import zstandard

from mkts.engine.errors import CorruptFileError

__all__ = ["encode_chunk", "decode_chunk", "decode_values", "decode_into", "payload_of", "scratch",
           "stored_size", "scale_floats", "unscale", "MAX_DIGITS", "T_PLANES", "PLAIN",
           "T_RAW", "T_FOR", "T_DELTA"]

MAX_DIGITS = 4  # decimal digits a float column may be scaled by (prices in 1/10 000)
LEVEL = 1  # zstd level of every chunk
# Transform (codec bits 8-9): stored as the column's own type; v - base as unsigned w-byte
# integers (base = the chunk's minimum); v[i] - v[i-1] as signed w-byte integers (base = v[0]);
# byte planes (a float column that does not scale: byte 0 of every value, then byte 1, ...).
T_RAW, T_FOR, T_DELTA, T_PLANES = 0, 1, 2, 3
PLAIN = 1 << 10  # codec bit 10: the payload is stored as is, not as a zstd frame
# zstd is kept only where it saves at least SAVED bytes per value: narrowed prices and volumes
# shrink by less and would cost a decompression on every read; slot numbers and tick times
# shrink by more.
SAVED = 0.5
SAMPLE = 4096  # payload bytes compressed first to decide whether to compress a chunk at all
_BASE = struct.Struct("<q")
_local = threading.local()  # zstd contexts are not thread-safe: one pair per thread
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_SIGNED = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def _compressor() -> zstandard.ZstdCompressor:
    c: zstandard.ZstdCompressor | None = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def unscale(k: np.ndarray, digits: int, dt: np.dtype) -> np.ndarray:
    """Floats from decimal-scaled integers: k / 10**digits computed in f8, rounded once to
    `dt`. A writer stores a column scaled only if this gives back every value bit for bit."""
    out = k.astype(np.float64)
    out /= 10.0**digits
    return out if dt == out.dtype else out.astype(dt)


def scale_floats(col: np.ndarray, dt: np.dtype) -> tuple[np.ndarray, int] | None:
    """A float column as (int64 k, digits) with unscale(k, digits) == col bit for bit (-0.0,
    NaN and inf never qualify), the fewest digits first; None when no digits up to
    MAX_DIGITS give every value back."""
    col = np.ascontiguousarray(col, dtype=dt)
    if not len(col):
        return None
    bits = col.view(f"<u{dt.itemsize}")
    # Every digit count on a sample of 64 values at once, then the whole column only for the
    # counts the sample allows, fewest first.
    sample = col[:64, None]
    for digits in np.flatnonzero(_fits(sample, _SCALES, dt, bits[:64, None]).all(axis=0)):
        scale = float(_SCALES[digits])
        k = _scaled(col, scale)
        if _fits(k, scale, dt, bits, scaled=True).all():
            return k.astype(np.int64), int(digits)
    return None


_SCALES = 10.0 ** np.arange(MAX_DIGITS + 1)


def _scaled(col: np.ndarray, scale: Any) -> np.ndarray:
    """rint(col * scale) in f8, -0.0 made 0.0 (as it is as an integer: -0.0 never scales)."""
    k: np.ndarray = np.multiply(col, scale, dtype=np.float64)
    np.rint(k, out=k)
    k += 0.0
    return k


def _fits(col: np.ndarray, scale: Any, dt: np.dtype, bits: np.ndarray, scaled: bool = False
          ) -> np.ndarray:
    """Per value: whether k = `_scaled(col, scale)` (`col` itself if `scaled`) holds an exact
    integer below 2**53 that `unscale` turns back into the same bits (NaN and inf fail)."""
    k = col if scaled else _scaled(col, scale)
    ok: np.ndarray = np.abs(k) < 2.0**53
    back = k / scale  # k holds exact integers: this is unscale(k, digits)
    if dt != back.dtype:
        back = back.astype(dt)
    ok &= back.view(bits.dtype) == bits
    return ok


def _width(span: int, signed: bool) -> int:
    """Bytes of the narrowest (un)signed integer holding 0..span (signed: -span..span)."""
    for w in (1, 2, 4):
        if (span < (1 << (8 * w - 1))) if signed else (span < (1 << (8 * w))):
            return w
    return 8


def _as_int64(col: np.ndarray, dt: np.dtype) -> np.ndarray:
    """An integer column as int64 (u8 by its bits: the transforms wrap around consistently)."""
    if dt.kind == "u" and dt.itemsize == 8:
        return np.ascontiguousarray(col, dtype=dt).view(np.int64)
    return np.asarray(col, dtype=np.int64)


def _transform(v: np.ndarray) -> tuple[int, int, int, np.ndarray]:
    """(transform, width, base, stored) for int64 values: frame of reference or deltas,
    whichever is narrower (ties: frame of reference, which decodes faster)."""
    lo, hi = int(v.min()), int(v.max())
    w_for = _width(hi - lo, False)
    if len(v) > 1:
        d = np.diff(v)  # wraps around like the decoder's cumsum
        dl, dh = int(d.min()), int(d.max())
        w_delta = _width(max(-dl - 1, dh, 0), True) if dl < 0 else _width(dh, True)
        if w_delta < w_for:
            stored = np.empty(len(v), dtype=_SIGNED[w_delta])
            stored[0] = 0
            stored[1:] = d
            return T_DELTA, w_delta, int(v[0]), stored
    if w_for == 8:
        return T_FOR, 8, lo, (v - np.int64(lo)).view(np.uint64)
    return T_FOR, w_for, lo, (v - np.int64(lo)).astype(_UNSIGNED[w_for])


def _packed(payload: bytes | memoryview, n: int) -> tuple[bool, bytes]:
    """(compressed, stored bytes) of the payload of `n` values: a zstd frame of it when that
    saves at least SAVED bytes per value, else the payload itself (it then decodes with no
    copy). A sample decides first: a chunk zstd barely shrinks is not compressed whole."""
    size = len(payload)
    if size > 2 * SAMPLE:
        part = len(_compressor().compress(payload[:SAMPLE]))
        if part > SAMPLE - SAVED * n * SAMPLE / size:
            return False, bytes(payload)
    data = _compressor().compress(payload)
    if len(data) > size - SAVED * n:
        return False, bytes(payload)
    return True, data


def encode_chunk(col: np.ndarray, dt: np.dtype) -> tuple[int, bytes]:
    """(codec, stored bytes) of one column chunk of `dt` values (at least one).

    codec: bits 0-3 width w of the stored integers (0 with T_RAW, T_PLANES), bits 4-7 s (0:
    none; 1..5: a float column stored as integers k with value k / 10^(s-1)), bits 8-9 the
    transform, bit 10 (PLAIN) set when the stored bytes are the payload itself rather than
    a zstd frame of it. Payload: [base i8][n stored values] (T_RAW: the values as `dt`;
    T_PLANES: their byte planes)."""
    s = 0
    if dt.kind in "iu":
        v = _as_int64(col, dt)
    elif dt.kind == "f" and (sc := scale_floats(col, dt)) is not None:
        v, digits = sc
        s = digits + 1
    elif dt.kind == "f":  # byte planes: exponents and high mantissa bytes compress apart
        u = np.ascontiguousarray(col, dtype=dt).view(_UNSIGNED[dt.itemsize])
        planes = np.empty((dt.itemsize, len(u)), dtype=np.uint8)
        for i in range(dt.itemsize):  # whole-array shifts: far faster than a byte transpose
            planes[i] = u >> (8 * i) if i else u
        z, data = _packed(planes.data.cast("B"), len(u))
        return T_PLANES << 8 | (0 if z else PLAIN), data
    else:
        raw = np.ascontiguousarray(col, dtype=dt)
        z, data = _packed(raw.data.cast("B"), len(raw))
        return T_RAW | (0 if z else PLAIN), data
    t, w, base, stored = _transform(v)
    payload = np.empty(_BASE.size + len(stored) * w, dtype=np.uint8)
    payload[: _BASE.size] = np.frombuffer(_BASE.pack(base), dtype=np.uint8)
    payload[_BASE.size :] = np.ascontiguousarray(stored).view(np.uint8)
    z, data = _packed(payload.data, len(stored))
    return w | (s << 4) | (t << 8) | (0 if z else PLAIN), data


def stored_size(codec: int, dt: np.dtype, n: int, where: str) -> int:
    """Bytes of the decompressed chunk of `n` values of `dt` stored with `codec`;
    CorruptFileError (`where` names file, column and row group) for a codec no writer uses."""
    w, s, t = codec & 0x0F, (codec >> 4) & 0x0F, (codec >> 8) & 0x3
    whole = t in (T_RAW, T_PLANES)  # the values as they are (or their byte planes)
    if codec >> 11 or (not whole and w not in _SIGNED) or s > MAX_DIGITS + 1 or \
            (whole and (w or s)) or (s and dt.kind != "f") or \
            (not whole and not s and dt.kind not in "iu") or (t == T_PLANES and dt.kind != "f"):
        raise CorruptFileError(f"{where}: unknown chunk codec {codec:#x}; the file is damaged")
    return n * dt.itemsize if whole else _BASE.size + n * w


def payload_of(codec: int, data: bytes | memoryview, dt: np.dtype, n: int, where: str
               ) -> bytes | memoryview:
    """A chunk's payload (`stored_size` bytes): as stored when PLAIN, else decompressed into
    this thread's scratch buffer 2 (valid until the thread's next `payload_of`)."""
    want = stored_size(codec, dt, n, where)
    if codec & PLAIN:
        if len(data) != want:
            raise CorruptFileError(f"{where}: chunk holds {len(data)} bytes, not {want}")
        return data
    out = scratch(want, np.uint8, 2).data
    got = 0
    try:
        with _decompressor().stream_reader(data) as reader:
            while got < want and (k := reader.readinto(out[got:])):
                got += k
            extra = reader.read(1)  # a frame holding more than the chunk's values is damage
    except zstandard.ZstdError as exc:
        raise CorruptFileError(f"{where}: chunk does not decompress ({exc})") from exc
    if got != want or extra:
        raise CorruptFileError(f"{where}: chunk holds {got + len(extra)}"
                               f"{'+' if extra else ''} bytes, not {want}")
    return out


_F4 = np.dtype("<f4")
_F4_SCALES = [np.float32(10.0**d) for d in range(MAX_DIGITS + 1)]  # exact in f4


def _f32_exact(t: int, w: int, base: int, n: int) -> bool:
    """Whether every value of a chunk is an integer of magnitude below 2**24, from its codec
    alone: frame of reference by at most 2 bytes, or deltas whose running sums stay in i4."""
    reach = (1 << (8 * w)) if t == T_FOR else n << (8 * w - 1)
    return (w <= 2 if t == T_FOR else reach < (1 << 31)) and abs(base) + reach <= (1 << 24)


def scratch(n: int, dt: np.dtype | type, slot: int = 0) -> np.ndarray:
    """`n` values of `dt` in this thread's scratch buffer `slot` (0: the codecs',
    1: their callers', 2: decompressed payloads), reused from chunk to chunk: a fresh 128 KiB temporary per chunk is
    a fresh mapping of memory for glibc's malloc, whose page faults cost more than the
    decoding on a VM."""
    dt = np.dtype(dt)
    words = -(-n * dt.itemsize // 8)
    bufs: list[np.ndarray] | None = getattr(_local, "scratch", None)
    if bufs is None:
        bufs = _local.scratch = [np.empty(0, np.int64) for _ in range(3)]
    if len(bufs[slot]) < words:
        bufs[slot] = np.empty(max(words, 1 << 14), np.int64)
    return bufs[slot][:words].view(np.uint8)[: n * dt.itemsize].view(dt)


def decode_into(codec: int, raw: bytes | memoryview, dt: np.dtype, n: int,
                out: np.ndarray) -> None:
    """Write the `n` values of a payload (checked by `payload_of`) into `out` (`n` values
    of `dt`, any stride: a field of a structured result), in as few passes as numpy allows
    and with no temporary but this thread's scratch buffer."""
    w, s, t = codec & 0x0F, (codec >> 4) & 0x0F, (codec >> 8) & 0x3
    if t == T_RAW:
        out[...] = np.frombuffer(raw, dtype=dt, count=n)
        return
    if t == T_PLANES:
        planes = np.frombuffer(raw, dtype=np.uint8).reshape(dt.itemsize, n)
        u = scratch(n, _UNSIGNED[dt.itemsize])
        u[...] = planes[-1]
        for i in range(dt.itemsize - 2, -1, -1):
            u <<= 8
            u |= planes[i]
        out[...] = u.view(dt)
        return
    (base,) = _BASE.unpack_from(raw, 0)
    stored = np.frombuffer(raw, dtype=(_SIGNED if t == T_DELTA else _UNSIGNED)[w], count=n,
                           offset=_BASE.size)
    if s and dt == _F4 and _f32_exact(t, w, base, n):
        # Every value is an integer below 2**24, exact in f4: dividing in f4 rounds as once
        # in f8 and then to f4 does (double rounding through 53 bits is innocuous for a
        # quotient of 24-bit values), with half the bytes moved.
        both = scratch(2 * n, np.int32)
        f = both[:n].view(np.float32)
        if t == T_FOR:
            np.add(stored, np.float32(base), out=f, dtype=np.float32)
        else:
            v32 = both[n:]
            np.cumsum(stored, dtype=np.int32, out=v32)
            np.add(v32, np.float32(base), out=f, dtype=np.float32)
        np.divide(f, _F4_SCALES[s - 1], out=out)
        return
    if s and t == T_FOR and w < 8:  # stored + base is exact in f8 (|value| < 2**53)
        f = np.add(stored, float(base), out=scratch(n, np.float64), dtype=np.float64)
        np.divide(f, 10.0 ** (s - 1), out=out, casting="same_kind")
        return
    v = scratch(n, np.int64)
    if t == T_DELTA:
        np.cumsum(stored, dtype=np.int64, out=v)
        v += np.int64(base)
    else:  # modulo 2**64, as the writer's v - base
        np.add(stored.view(np.int64) if w == 8 else stored, np.int64(base), out=v,
               dtype=np.int64)
    if s:
        np.divide(v, 10.0 ** (s - 1), out=out, dtype=np.float64, casting="same_kind")
    elif dt.kind == "u" and dt.itemsize == 8:
        np.copyto(out.view(np.int64), v)
    else:
        np.copyto(out, v, casting="unsafe")


def decode_values(codec: int, raw: bytes | memoryview, dt: np.dtype, n: int, where: str
                  ) -> np.ndarray:
    """The `n` values of `dt` from a payload (`stored_size` bytes)."""
    want = stored_size(codec, dt, n, where)
    if len(raw) != want:
        raise CorruptFileError(f"{where}: chunk holds {len(raw)} bytes, not {want}")
    out = np.empty(n, dtype=dt)
    decode_into(codec, raw, dt, n, out)
    return out


def decode_chunk(codec: int, data: bytes | memoryview, dt: np.dtype, n: int, where: str
                 ) -> np.ndarray:
    """The `n` values of a stored chunk as `dt`."""
    return decode_values(codec, payload_of(codec, data, dt, n, where), dt, n, where)
