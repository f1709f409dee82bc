"""Sealed files round-trip exactly: random schemas, values and key ranges read back from a
sealed file identical to the rows sealed (docs/format.md "Sealed file (`MKTSSEAL`, version 1)")."""

from __future__ import annotations

import numpy as np
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from mkts.engine.schema import FIXED, VARIABLE, Schema
from mkts.engine.sealcodec import PLAIN, decode_chunk, decode_into, encode_chunk, payload_of
from mkts.engine.sealfile import SealedReader, SealMeta, encode_sealed
from mkts.engine.timeframes import parse_timeframe

TYPES = ["f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "U3"]


def _values(rng: np.random.Generator, dt: np.dtype, n: int, style: int) -> np.ndarray:
    if dt.kind == "U":
        return np.array(["", "a", "bcd", "é"], dtype=dt)[rng.integers(0, 4, n)]
    if dt.kind == "f":
        if style == 3:  # integers beyond 2**24 (even: exact in f4): scaled, decoded in f8
            return (rng.integers(2**23, 2**24, n) * 2 * rng.choice([-1, 1], n)).astype(dt)
        if style == 0:  # cents: stored as scaled integers
            return (np.round(rng.normal(100, 5, n), 2)).astype(dt)
        if style == 1:  # specials never scale: -0.0 alone among cents, or with NaN and inf
            v = (np.round(rng.normal(100, 5, n), 2) if n % 2 else rng.normal(0, 1e6, n)
                 ).astype(dt)
            v[rng.integers(0, n, 3)] = np.array([-0.0, -0.0, -0.0] if n % 2 else
                                                [np.nan, -0.0, np.inf], dtype=dt)
            return v
        return rng.standard_normal(n).astype(dt)
    info = np.iinfo(dt)
    if style == 0:  # a random walk: deltas
        return np.clip(np.cumsum(rng.integers(-3, 4, n)) + 50, info.min, info.max).astype(dt)
    lo, hi = (info.min, info.max) if style in (1, 3) else (0, min(int(info.max), 1000))
    return rng.integers(lo, hi, n, dtype=dt, endpoint=True)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"<u{a.dtype.itemsize}") if a.dtype.kind == "f" else a


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000),
       types=st.lists(st.sampled_from(TYPES), min_size=1, max_size=4),
       style=st.integers(0, 2), ticks=st.booleans(), lo=st.floats(0, 1), width=st.floats(0, 1))
def test_sealed_file_reads_back_every_range_exactly(seed: int, n: int, types: list[str],
                                                     style: int, ticks: bool, lo: float,
                                                     width: float) -> None:
    rng = np.random.default_rng(seed)
    schema = Schema.from_spec(parse_timeframe("1Sec" if ticks else "1Min"),
                              VARIABLE if ticks else FIXED,
                              {f"c{i}": t for i, t in enumerate(types)})
    if ticks:  # nanosecond times with ties
        keys = np.sort(rng.integers(0, 10**12, n)).astype(np.int64)
        keys[1::7] = keys[::7][: len(keys[1::7])]
        keys.sort()
    else:
        keys = np.sort(rng.choice(600_000, n, replace=False)).astype(np.int64)
    cols = {name: _values(rng, dt, n, style) for name, dt in schema.columns}
    meta = SealMeta(schema, 2024, 600_000, 1_704_067_200, "UTC")
    blob = b"".join(encode_sealed(meta, keys, cols))
    r = SealedReader(lambda off, size: blob[off : off + size], len(blob), "x.sealed")
    assert r.meta == meta and r.rows == n
    a = int(keys[0] + lo * (keys[-1] - keys[0]))
    b = int(a + width * (keys[-1] - a))
    got_keys, got = r.read(a, b)
    sel = (keys >= a) & (keys <= b)
    assert np.array_equal(got_keys, keys[sel])
    for name, _ in schema.columns:
        assert got[name].dtype == cols[name].dtype
        assert np.array_equal(_bits(got[name]), _bits(cols[name][sel]))
    # A limit narrows the span; each column is decoded into a field of a structured result.
    span = r.span(a, b)
    cut = slice(int(lo * span.rows), int(lo * span.rows) + int(width * span.rows) + 1)
    span.narrow(cut)
    out = np.zeros(span.rows, dtype=[("pad", "u1")] + list(schema.columns))
    span.fill_many([(name, out[name]) for name, _ in schema.columns])
    assert np.array_equal(span.keys, keys[sel][cut])
    for name, _ in schema.columns:
        assert np.array_equal(_bits(np.ascontiguousarray(out[name])),
                              _bits(cols[name][sel][cut]))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t=st.sampled_from(TYPES[:10]), style=st.integers(0, 2),
       n=st.integers(1, 300))
def test_chunk_codec_round_trips_bit_for_bit(seed: int, t: str, style: int, n: int) -> None:
    dt = np.dtype(t).newbyteorder("<")
    col = _values(np.random.default_rng(seed), dt, n, style)
    codec, data = encode_chunk(col, dt)
    back = decode_chunk(codec, data, dt, n, "x")
    assert back.dtype == dt and np.array_equal(_bits(back), _bits(col))


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t=st.sampled_from(TYPES), style=st.integers(0, 3),
       n=st.integers(1, 5000))
def test_plain_and_zstd_chunks_decode_alike(seed: int, t: str, style: int, n: int) -> None:
    """Codec bit 10 only says how the payload is stored: a chunk decodes to the same values
    plain or as a zstd frame (files written before plain chunks hold only the latter), into
    a contiguous array or a field of a structured one."""
    dt = np.dtype(t).newbyteorder("<")
    col = _values(np.random.default_rng(seed), dt, n, style)
    codec, data = encode_chunk(col, dt)
    payload = payload_of(codec, data, dt, n, "x")
    forms = [(codec | PLAIN, payload),
             (codec & ~PLAIN, zstandard.ZstdCompressor(level=1).compress(bytes(payload)))]
    for c, stored in forms:
        back = decode_chunk(c, stored, dt, n, "x")
        assert back.dtype == dt and np.array_equal(_bits(back), _bits(col))
        rows = np.zeros(n, dtype=[("a", "u1"), ("v", dt), ("b", "i8")])
        decode_into(c, payload_of(c, stored, dt, n, "x"), dt, n, rows["v"])
        assert np.array_equal(_bits(np.ascontiguousarray(rows["v"])), _bits(col))
        assert not rows["a"].any() and not rows["b"].any()


@given(codec=st.integers(0, 0xFFFF), t=st.sampled_from(TYPES[:10]), data=st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_any_codec_and_bytes_decode_or_raise_corrupt_file_error(codec: int, t: str,
                                                                 data: bytes) -> None:
    """A damaged footer or chunk never escapes as a numpy or zstd exception."""
    from mkts.engine.errors import CorruptFileError

    dt = np.dtype(t).newbyteorder("<")
    try:
        decode_chunk(codec, data, dt, 3, "x")
    except CorruptFileError:
        pass


@settings(max_examples=50, deadline=None)
@given(lo=st.integers(-(2**24), 2**24 - 4096), digits=st.integers(0, 4))
def test_f4_quotient_of_24_bit_integers_equals_the_f8_one_rounded(lo: int, digits: int) -> None:
    """The f4 fast path of `decode_into`: for integers k with |k| <= 2**24, k / 10**d divided
    in f4 has the same bits as k / 10**d in f8 rounded to f4 (what `unscale` computes), on
    runs of 4 096 consecutive k (every k was checked once when the path was written)."""
    k = np.arange(lo, lo + 4096, dtype=np.int64)
    want = (k.astype(np.float64) / 10.0**digits).astype(np.float32)
    got = k.astype(np.float32) / np.float32(10.0**digits)
    assert np.array_equal(want.view(np.uint32), got.view(np.uint32))
