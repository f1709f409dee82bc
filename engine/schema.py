"""A bucket's schema: its timeframe, record kind and columns, the numpy record layouts built
from them, and the casting rules for incoming columns. Pure; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.engine.errors import SchemaError
from mkts.engine.timeframes import Timeframe

__all__ = ["Schema", "normalise_dtype", "cast_column", "FIXED", "VARIABLE", "MAX_COLUMNS",
           "MAX_STRING_CHARS", "MAX_RECORD_BYTES", "TICK_REPLACING", "TICK_BLOCK_COUNT"]

FIXED = "fixed"
VARIABLE = "variable"
MAX_COLUMNS = 96
# docs/format.md "Header" (Limits): characters in a string column, and bytes in a record (Epoch and
# every column, padded to 8): a year of 1Min slots is then at most ~2 GB (apparent; sparse).
MAX_STRING_CHARS = 256
MAX_RECORD_BYTES = 4096
NAME_BYTES = 32
_NUMERIC = {"f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"}
_SPECIAL = {"Epoch", "Nanoseconds"}
_SUPPORTED = "use one of f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 or a fixed-width string like U16"
SLOT_FIELD = "_slot"  # on disk: 1-based slot number, 0 = empty slot (docs/format.md "Slots")
# docs/format.md "Tick slots": the pointer to an interval's newest blob and chain totals.
TICK_SLOT_DTYPE = np.dtype([(SLOT_FIELD, "<i8"), ("head", "<i8"), ("head_bytes", "<u4"),
                            ("head_rows", "<u4"), ("nblobs", "<u4"), ("_check", "<u4"),
                            ("total_bytes", "<i8"), ("nrows", "<i8")])
# An overlay's tick slot flags are the high 16 bits of `nblobs`, the chain's block count its
# low 16 (docs/format.md "Deletes and updates"): REPLACING = the overlay's rows replace the
# sealed interval's instead of adding to them.
TICK_REPLACING = 1 << 16
TICK_BLOCK_COUNT = 0xFFFF


def normalise_dtype(spec: Any, column: str) -> np.dtype:
    """A column dtype as stored: little-endian numeric, or fixed-width unicode `<U<n>`.

    Anything else (including what numpy cannot parse at all) raises SchemaError."""
    if spec is None:  # np.dtype(None) would be float64: a missing type is not a choice
        raise SchemaError(f"column {column!r}: no type given; {_SUPPORTED}")
    try:
        dt = np.dtype(spec)
    except Exception as exc:  # numpy raises TypeError, ValueError, SyntaxError... for junk
        raise SchemaError(f"column {column!r}: {spec!r} is not a numpy dtype; {_SUPPORTED}"
                          ) from exc
    if dt.kind == "U":
        if dt.itemsize == 0:
            raise SchemaError(f"column {column!r}: give string columns a width, e.g. 'U16'")
        width = dt.itemsize // 4
        if width > MAX_STRING_CHARS:
            raise SchemaError(
                f"column {column!r}: U{width} is {width} characters wide; string columns hold "
                f"at most {MAX_STRING_CHARS} (U{MAX_STRING_CHARS}): shorten the column, or keep "
                "long text outside mkts and store a key to it"
            )
        return np.dtype(f"<U{width}")
    code = f"{dt.kind}{dt.itemsize}"
    if code not in _NUMERIC:
        raise SchemaError(
            f"column {column!r}: type {dt.str!r} is not supported; {_SUPPORTED}"
        )
    out: np.dtype = np.dtype(dt.newbyteorder("<"))
    return out


def _check_name(name: str, kind: str) -> None:
    if not isinstance(name, str) or not name:
        raise SchemaError(f"column name {name!r} must be a non-empty string")
    # A fixed bucket may have an ordinary column named Nanoseconds (MarketStore allows it).
    if name in (_SPECIAL if kind == VARIABLE else {"Epoch"}) or name == SLOT_FIELD:
        raise SchemaError(f"column name {name!r} is reserved")
    raw = name.encode("utf-8")
    if len(raw) > NAME_BYTES or "\0" in name:
        raise SchemaError(f"column name {name!r} is longer than {NAME_BYTES} bytes or has a NUL")


@dataclass(frozen=True)
class Schema:
    """Timeframe, kind ("fixed" | "variable") and the columns after Epoch, in bucket order."""

    timeframe: Timeframe
    kind: str
    columns: tuple[tuple[str, np.dtype], ...]
    record_dtype: np.dtype = field(init=False, repr=False, compare=False)
    result_dtype: np.dtype = field(init=False, repr=False, compare=False)
    row_dtype: np.dtype = field(init=False, repr=False, compare=False)
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _result_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in (FIXED, VARIABLE):
            raise SchemaError(f"record kind {self.kind!r} must be 'fixed' or 'variable'")
        if not self.columns and self.kind == VARIABLE:  # a fixed bucket may be Epoch alone
            raise SchemaError("a tick bucket needs at least one column besides Epoch and "
                              "Nanoseconds")
        if len(self.columns) > MAX_COLUMNS:
            raise SchemaError(f"a bucket has at most {MAX_COLUMNS} columns, not {len(self.columns)}")
        seen: set[str] = set()
        for name, _ in self.columns:
            _check_name(name, self.kind)
            if name in seen:
                raise SchemaError(f"column {name!r} appears twice")
            seen.add(name)
        names = [SLOT_FIELD] + [n for n, _ in self.columns]
        formats = [np.dtype("<i8")] + [d for _, d in self.columns]
        offsets, pos = [], 0
        for f in formats:
            offsets.append(pos)
            pos += f.itemsize
        itemsize = (pos + 7) // 8 * 8
        if itemsize > MAX_RECORD_BYTES:
            widest = sorted(self.columns, key=lambda c: -c[1].itemsize)[:3]
            shown = ", ".join(f"{n!r} {d.str.lstrip('<|')} ({d.itemsize} bytes)"
                              for n, d in widest)
            raise SchemaError(
                f"a record of these columns is {itemsize} bytes; at most {MAX_RECORD_BYTES} "
                f"(Epoch and every column, padded to 8). Widest: {shown}; use fewer or "
                "narrower columns, or split them over two attribute groups"
            )
        if self.kind == FIXED:
            rec = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                            "itemsize": itemsize})
            res = np.dtype({"names": ["Epoch"] + names[1:], "formats": formats,
                            "offsets": offsets, "itemsize": itemsize})
            row = res
        else:
            rec = TICK_SLOT_DTYPE
            res = np.dtype([("Epoch", "<i8")] + [(n, d) for n, d in self.columns]
                           + [("Nanoseconds", "<i4")])
            row = np.dtype([(n, d) for n, d in self.columns])
        object.__setattr__(self, "record_dtype", rec)
        object.__setattr__(self, "result_dtype", res)
        object.__setattr__(self, "row_dtype", row)
        object.__setattr__(self, "_names", tuple(n for n, _ in self.columns))
        object.__setattr__(self, "_result_names", tuple(res.names or ()))

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def result_names(self) -> list[str]:
        """Epoch, the columns, and Nanoseconds for tick buckets: a read's full column list."""
        return list(self._result_names)

    def dtype_of(self, name: str) -> np.dtype:
        for n, d in self.columns:
            if n == name:
                return d
        raise SchemaError(f"column {name!r} is not in this bucket")

    def describe(self) -> dict[str, str]:
        """{name: dtype string}, Epoch first (and Nanoseconds last for variable buckets)."""
        out = {"Epoch": "i8"}
        for n, d in self.columns:
            out[n] = d.str.lstrip("<|")
        if self.kind == VARIABLE:
            out["Nanoseconds"] = "i4"
        return out

    @classmethod
    def from_spec(cls, timeframe: Timeframe, kind: str, columns: Any) -> Schema:
        """Build from {name: dtype} or a numpy dtype (an Epoch field is skipped, and so is
        Nanoseconds for a tick bucket; in a fixed bucket it is an ordinary column)."""
        if isinstance(columns, np.dtype):
            if columns.names is None:
                raise SchemaError("columns given as a numpy dtype must be a structured dtype")
            items = [(n, columns.fields[n][0]) for n in columns.names]  # type: ignore[index]
        elif isinstance(columns, dict):
            items = list(columns.items())
        else:
            try:
                items = list(columns)
            except TypeError as exc:
                raise SchemaError(
                    "columns must be a dict {name: dtype} or a structured numpy dtype"
                ) from exc
        cols = tuple(
            (str(n), normalise_dtype(d, str(n))) for n, d in items
            if n != "Epoch" and not (n == "Nanoseconds" and kind == VARIABLE)
        )
        return cls(timeframe, kind, cols)


def cast_column(values: np.ndarray, target: np.dtype, name: str) -> np.ndarray:
    """Cast one incoming column to the bucket's type, or raise SchemaError naming it.

    int -> float always; float -> narrower float yes; int -> narrower int only when every
    value fits; float -> int, numbers <-> strings, and bool are errors.
    """
    src = values.dtype
    if src == target:
        return values
    if src.kind == "b":
        raise SchemaError(f"column {name!r}: bool values are not supported; cast to u1 or i1")
    if target.kind == "U":
        if src.kind != "U":
            raise SchemaError(f"column {name!r}: the bucket stores strings ({target.str}); got {src}")
        width = target.itemsize // 4
        if src.itemsize // 4 > width and len(values):
            longest = int(np.char.str_len(values).max())
            if longest > width:
                raise SchemaError(
                    f"column {name!r}: a value has {longest} characters; the bucket stores {width}"
                )
        return values.astype(target)
    if src.kind in "US" or src.kind == "O":
        raise SchemaError(f"column {name!r}: the bucket stores numbers ({target.str}); got {src}")
    if target.kind == "f":
        if src.kind not in "iuf":
            raise SchemaError(f"column {name!r}: cannot store {src} as {target}")
        return values.astype(target)
    # integer target
    if src.kind == "f":
        raise SchemaError(
            f"column {name!r}: the bucket stores integers ({target.str}); floats are not cast "
            "to integers implicitly: round them yourself"
        )
    if src.kind not in "iu":
        raise SchemaError(f"column {name!r}: cannot store {src} as {target}")
    if np.can_cast(src, target, casting="safe"):
        return values.astype(target)
    info = np.iinfo(target)
    if len(values):
        lo, hi = int(values.min()), int(values.max())
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise SchemaError(
                f"column {name!r}: value {bad} does not fit the bucket's type {target.str.lstrip('<|')} "
                f"({info.min}..{info.max})"
            )
    return values.astype(target)
