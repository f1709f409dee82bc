"""MarketStore's wire formats, as pymarketstore 0.22 speaks them: body codecs (msgpack or
JSON), bucket keys with categories, type strings, and the flat `NumpyMultiDataset`.

Pure functions, no I/O and no database: `mkts.rpc` applies them to requests. Every field is
described in docs/server.md ("Wire format").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np

from mkts.engine.schema import MAX_STRING_CHARS

__all__ = [
    "WireError",
    "CATEGORIES",
    "MSGPACK",
    "JSON",
    "decode_body",
    "encode_body",
    "split_tbk",
    "with_categories",
    "wire_type",
    "parse_wire_type",
    "encode_dataset",
    "decode_dataset",
    "MAX_COLUMNS",
    "MAX_BUCKETS",
    "BodyLimitError",
    "MAX_VALUES",
    "value_budget",
]

CATEGORIES = "Symbol/Timeframe/AttributeGroup"
MSGPACK = "msgpack"
JSON = "json"
MAX_COLUMNS = 100  # engine.schema.MAX_COLUMNS (96) plus Epoch, Nanoseconds and slack
MAX_BUCKETS = 100_000  # buckets in one dataset (startindex entries)
MAX_STRING_WIDTH = MAX_STRING_CHARS  # U<n>: n characters at most (the engine's limit)
# docs/server.md "Limits and defence": a body may hold at most one msgpack/JSON value (a map
# key, a map or list entry, a scalar, a container) per BYTES_PER_VALUE bytes, plus VALUES_FLOOR,
# and never more than MAX_VALUES. A decoded value costs at most ~80 bytes of memory (an empty
# map), so decoding a body allocates at most ~10x its size and never more than ~80 MB.
MAX_VALUES = 1_000_000
VALUES_FLOOR = 10_000
BYTES_PER_VALUE = 8
_NUMERIC = ("f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
_STRING = re.compile(r"U(\d{1,9})")  # fullmatch: `$` would accept "U16\n"


class WireError(ValueError):
    """A request does not follow the wire format; the message goes back to the client."""


class BodyLimitError(WireError):
    """A body holds more values than it may (it is refused before it is decoded)."""


# -- bodies --------------------------------------------------------------------------------
def value_budget(nbytes: int) -> int:
    """How many values a body of `nbytes` bytes may hold (see MAX_VALUES)."""
    return min(MAX_VALUES, VALUES_FLOOR + nbytes // BYTES_PER_VALUE)


def decode_body(body: bytes, kind: str, max_values: int | None = None) -> Any:
    """The request object of a msgpack or JSON body; WireError if it cannot be decoded.

    The values in the body are counted before anything is built: more than `max_values`
    (default `value_budget(len(body))`) raises BodyLimitError, so what decoding allocates
    stays a small multiple of the body's size."""
    limit = value_budget(len(body)) if max_values is None else max_values
    count = _msgpack_values(body, limit) if kind == MSGPACK else _json_values(body)
    if count > limit:
        raise BodyLimitError(
            f"{kind} body of {len(body)} bytes holds more than {limit} values (maps, lists, "
            f"keys and items count one each; at most one per {BYTES_PER_VALUE} bytes plus "
            f"{VALUES_FLOOR}, and never more than {MAX_VALUES}); split it into smaller requests"
        )
    try:
        if kind == MSGPACK:
            return msgpack.unpackb(body, raw=False, strict_map_key=True)
        return json.loads(body.decode("utf-8"))
    except RecursionError:
        raise WireError(f"{kind} body is nested too deeply") from None
    except Exception as exc:  # every decoder failure becomes a parse error, never a crash
        raise WireError(f"{kind} body cannot be decoded: {_short(exc)}") from None


# msgpack type bytes (msgpack spec, "Formats") -> bytes that follow and are skipped.
_SKIP = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
         0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
# -> (width of the big-endian length, what the length counts): "b" bytes (str, bin),
# "e" bytes after a type byte (ext), "a" array items, "m" map pairs.
_SIZED = {0xC4: (1, "b"), 0xC5: (2, "b"), 0xC6: (4, "b"), 0xC7: (1, "e"), 0xC8: (2, "e"),
          0xC9: (4, "e"), 0xD9: (1, "b"), 0xDA: (2, "b"), 0xDB: (4, "b"), 0xDC: (2, "a"),
          0xDD: (4, "a"), 0xDE: (2, "m"), 0xDF: (4, "m")}


def _msgpack_values(body: bytes, limit: int) -> int:
    """The number of values in a msgpack body, counted without building any (the count stops
    just past `limit`). Malformed input ends the count early; the decoder then reports it."""
    pos, pending, count, end = 0, 1, 0, len(body)
    while pending and pos < end and count <= limit:
        pending -= 1
        count += 1
        b = body[pos]
        pos += 1
        if b < 0x80 or b >= 0xE0:  # fixint
            continue
        if b < 0x90:  # fixmap
            pending += 2 * (b & 0x0F)
        elif b < 0xA0:  # fixarray
            pending += b & 0x0F
        elif b < 0xC0:  # fixstr
            pos += b & 0x1F
        elif b in _SKIP:
            pos += _SKIP[b]
        elif b in _SIZED:
            width, what = _SIZED[b]
            n = int.from_bytes(body[pos : pos + width], "big")
            pos += width
            if what == "b":
                pos += n
            elif what == "e":
                pos += 1 + n
            elif what == "a":
                pending += n
            else:
                pending += 2 * n
        else:  # 0xC1, never used: the decoder reports it
            break
    return count


def _json_values(body: bytes) -> int:
    """An upper bound of the number of values in a JSON body: every value but the first
    follows a `[`, `{`, `,` or `:` (those inside strings are counted too)."""
    return 1 + sum(body.count(c) for c in (b"[", b"{", b",", b":"))


def encode_body(obj: Any, kind: str) -> bytes:
    """msgpack with bin for bytes (as MarketStore's codec), or JSON with base64 for bytes
    (as Go's encoding/json writes []byte)."""
    if kind == MSGPACK:
        packed: bytes = msgpack.packb(obj, use_bin_type=True, default=_msgpack_default)
        return packed
    return json.dumps(obj, default=_json_default, separators=(",", ":")).encode("utf-8")


def _msgpack_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


# -- keys ----------------------------------------------------------------------------------
def split_tbk(text: Any, what: str = "key") -> str:
    """`SYM/TF/ATTR[:Symbol/Timeframe/AttributeGroup]` -> `SYM/TF/ATTR` (validated later by
    the engine). Other category layouts are refused: mkts keys always have these three."""
    if not isinstance(text, str):
        raise WireError(f"{what} must be a string like 'AAPL/1Min/OHLCV', not {_type(text)}")
    key, sep, cats = text.partition(":")
    if sep and cats != CATEGORIES:
        raise WireError(
            f"{what} {text!r}: categories {cats!r} are not supported; mkts keys are {CATEGORIES}"
        )
    return key


def with_categories(key: str) -> str:
    return f"{key}:{CATEGORIES}"


# -- types ---------------------------------------------------------------------------------
def wire_type(dtype: np.dtype) -> str:
    """numpy dtype -> MarketStore type string (`f4`, `i8`, `U16`), byte order stripped."""
    return dtype.str.lstrip("<|=")


def parse_wire_type(text: Any) -> np.dtype:
    """A type string from a client -> little-endian numpy dtype, or WireError."""
    if isinstance(text, str):
        t = text.lstrip("<|")
        if t in _NUMERIC:
            return np.dtype("<" + t)
        m = _STRING.fullmatch(t)
        if m and int(m.group(1)) > MAX_STRING_WIDTH:
            raise WireError(f"type string {t} is {int(m.group(1))} characters wide; string "
                            f"columns hold at most {MAX_STRING_WIDTH} (U{MAX_STRING_WIDTH})")
        if m and 0 < int(m.group(1)):
            return np.dtype("<" + t)
    shown = text if isinstance(text, str) else _type(text)
    raise WireError(
        f"unsupported type string {shown}; use one of {' '.join(_NUMERIC)} or U<n> for text"
    )


def _type(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


# -- NumpyMultiDataset ---------------------------------------------------------------------
def encode_dataset(results: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Concatenate the results of several buckets column-wise, in the given order.

    `results` holds (bucket key, engine Result). All buckets must have the same column names
    and types (MarketStore checks only names; mixed types would corrupt the buffers)."""
    if not results:
        raise WireError("no files returned from query parse")
    first = results[0][1].array.dtype
    names = list(first.names or ())
    types = [wire_type(first[n]) for n in names]
    for _key, r in results[1:]:
        dt = r.array.dtype
        if list(dt.names or ()) != names or [wire_type(dt[n]) for n in names] != types:
            keys = " ".join(k for k, _ in results)
            raise WireError(
                "symbols in a query must have the same data type or be filtered by common "
                f"columns. symbols=[{keys}]"
            )
    data: list[bytes] = []
    for n in names:
        parts = [np.ascontiguousarray(r.array[n]).tobytes() for _, r in results]
        data.append(parts[0] if len(parts) == 1 else b"".join(parts))
    startindex: dict[str, int] = {}
    lengths: dict[str, int] = {}
    pos = 0
    for key, r in results:
        tbk = with_categories(key)
        startindex[tbk] = pos
        lengths[tbk] = len(r)
        pos += len(r)
    return {"types": types, "names": names, "data": data, "length": pos,
            "startindex": startindex, "lengths": lengths}


def decode_dataset(ds: Any) -> list[tuple[str, dict[str, np.ndarray]]]:
    """A client's dataset -> [(bucket key without categories, {column: array})].

    Checks every size before any array is built: names, types and data line up, each
    column holds exactly `length` values, and every bucket's slice lies inside them."""
    if not isinstance(ds, Mapping):
        raise WireError(f"dataset must be a map, not {_type(ds)}")
    names, types, data = ds.get("names"), ds.get("types"), ds.get("data")
    for field, value in (("names", names), ("types", types), ("data", data)):
        if not isinstance(value, (list, tuple)):
            raise WireError(f"dataset.{field} must be a list, not {_type(value)}")
    assert isinstance(names, (list, tuple)) and isinstance(types, (list, tuple))
    assert isinstance(data, (list, tuple))
    if not (len(names) == len(types) == len(data)):
        raise WireError(
            f"dataset has {len(names)} names, {len(types)} types and {len(data)} data columns; "
            "they must match"
        )
    if len(names) > MAX_COLUMNS:
        raise WireError(f"dataset has {len(names)} columns; at most {MAX_COLUMNS} are accepted")
    length = ds.get("length")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise WireError(f"dataset.length must be a non-negative integer, not {length!r}")
    columns: dict[str, np.ndarray] = {}
    for name, t, raw in zip(names, types, data, strict=True):
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(name, str) or not name:
            raise WireError(f"dataset column names must be non-empty strings, not {name!r}")
        if name in columns:
            raise WireError(f"dataset column {name!r} appears twice")
        dtype = parse_wire_type(t)
        buf = _column_bytes(raw, name)
        if len(buf) != length * dtype.itemsize:
            raise WireError(
                f"dataset column {name!r} has {len(buf)} bytes; {length} rows of "
                f"{wire_type(dtype)} need {length * dtype.itemsize}"
            )
        columns[name] = np.frombuffer(buf, dtype=dtype, count=length)
    starts, lengths = ds.get("startindex"), ds.get("lengths")
    if not isinstance(starts, Mapping) or not isinstance(lengths, Mapping):
        raise WireError("dataset.startindex and dataset.lengths must be maps {key: int}")
    if len(starts) > MAX_BUCKETS:
        raise WireError(f"dataset names {len(starts)} buckets; at most {MAX_BUCKETS}")
    if not starts and length:
        raise WireError("dataset has rows but no startindex naming their bucket")
    out: list[tuple[str, dict[str, np.ndarray]]] = []
    seen: set[str] = set()
    for tbk, start in starts.items():
        key = split_tbk(tbk, "dataset key")
        n = lengths.get(tbk)
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (start, n)):
            raise WireError(f"dataset key {tbk!r}: startindex and lengths must be integers")
        assert isinstance(start, int) and isinstance(n, int)
        if start < 0 or n < 0 or start + n > length:
            raise WireError(
                f"dataset key {tbk!r}: rows {start}..{start + n} are outside the {length} rows sent"
            )
        if key in seen:
            raise WireError(f"dataset names bucket {key} twice")
        seen.add(key)
        out.append((key, {c: a[start : start + n] for c, a in columns.items()}))
    return out


def _column_bytes(raw: Any, name: str) -> bytes:
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if isinstance(raw, str):  # JSON bodies carry binary as base64, as Go's encoding/json does
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise WireError(f"dataset column {name!r}: data is not valid base64") from None
    raise WireError(f"dataset column {name!r}: data must be binary, not {_type(raw)}")
