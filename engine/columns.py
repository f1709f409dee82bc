"""Column identity across schema changes: each column's id and fill value, the bucket's schema
version (docs/format.md "Header, format 3"), the new schema an add, drop or rename gives, and
`translate`, which reads rows of a file written with an older schema as the bucket's current
schema. Pure; no I/O. Logging and applying a change is engine/alter.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mkts.engine.errors import SchemaError, UnknownColumnError
from mkts.engine.schema import Schema, normalise_dtype

__all__ = ["ColumnTable", "SchemaWrite", "translate", "view_dtype", "check_fill", "add_column", "drop_column",
           "rename_column", "fill_values"]

Fill = int | float | str


@dataclass(frozen=True)
class ColumnTable:
    """Per column of a schema (in its order): the column's id and fill value; plus the
    schema version and the highest id ever assigned in the bucket (ids are never reused).
    Format-1 and format-2 files have schema version 1, ids 1..n and fill 0 (strings: "")."""

    version: int
    ids: tuple[int, ...]
    fills: tuple[Fill, ...]
    last_id: int

    @classmethod
    def initial(cls, schema: Schema) -> ColumnTable:
        n = len(schema.columns)
        fills = tuple("" if dt.kind == "U" else 0 for _, dt in schema.columns)
        return cls(1, tuple(range(1, n + 1)), fills, n)

    def id_of(self, schema: Schema, name: str) -> int:
        return self.ids[schema.names.index(name)]


def check_fill(value: Any, dtype: np.dtype, column: str) -> Fill:
    """The fill value of a column of type `dtype`, as a Python scalar that the type holds
    exactly; SchemaError naming the column otherwise (a float for an integer column, a value
    out of range, a non-empty string: string columns are filled with "" only)."""
    if dtype.kind == "U":
        if value in (0, ""):
            return ""
        raise SchemaError(f"column {column!r}: a string column is filled with '' only, "
                          f"not {value!r}; give fill='' (or leave the default)")
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise SchemaError(f"column {column!r}: fill {value!r} is not a number; the column "
                          f"stores {dtype.str.lstrip('<|')}")
    if dtype.kind in "iu":
        if isinstance(value, (float, np.floating)):
            if not float(value).is_integer():
                raise SchemaError(f"column {column!r}: fill {value!r} is not an integer; the "
                                  f"column stores {dtype.str.lstrip('<|')}")
            value = int(value)
        info = np.iinfo(dtype)
        if not info.min <= int(value) <= info.max:
            raise SchemaError(f"column {column!r}: fill {value} does not fit "
                              f"{dtype.str.lstrip('<|')} ({info.min}..{info.max})")
        return int(value)
    out = float(value)
    if dtype.itemsize == 4 and np.isfinite(out) and abs(out) > float(np.finfo(np.float32).max):
        raise SchemaError(f"column {column!r}: fill {value!r} does not fit f4")
    return out


def fill_values(schema: Schema, table: ColumnTable) -> dict[str, Fill]:
    """{column name: fill value} of the bucket's current columns."""
    return dict(zip(schema.names, table.fills, strict=True))


def _check_new_name(schema: Schema, name: Any, key: str) -> None:
    if name in ("Epoch", "Nanoseconds"):
        raise SchemaError(f"{key}: {name!r} is a reserved column name; choose another name")
    if isinstance(name, str) and name in schema.names:
        raise SchemaError(f"{key}: column {name!r} exists already; choose another name "
                          "(or drop it first)")


def _known(schema: Schema, name: Any, key: str, verb: str) -> None:
    if name in ("Epoch", "Nanoseconds"):
        raise SchemaError(f"{key}: {name!r} cannot be {verb}: every bucket keeps its times")
    if not isinstance(name, str) or name not in schema.names:
        raise UnknownColumnError(f"{key}: there is no column {name!r} to be {verb}; the "
                                 f"bucket has {', '.join(schema.names)}")


def add_column(schema: Schema, table: ColumnTable, name: Any, dtype: Any, fill: Any,
               key: str) -> tuple[Schema, ColumnTable]:
    """The schema and column table after adding `name` (last, a new id, `fill` for the rows
    written before it). SchemaError for a bad or taken name, a bad type or fill, too wide."""
    _check_new_name(schema, name, key)
    dt = normalise_dtype(dtype, str(name))
    value = check_fill(fill, dt, str(name))
    new = Schema(schema.timeframe, schema.kind, (*schema.columns, (name, dt)))
    last = table.last_id + 1
    return new, ColumnTable(table.version + 1, (*table.ids, last), (*table.fills, value), last)


def drop_column(schema: Schema, table: ColumnTable, name: Any, key: str
                ) -> tuple[Schema, ColumnTable]:
    """The schema and column table without `name` (its id is not used again)."""
    _known(schema, name, key, "dropped")
    if len(schema.columns) == 1:
        raise SchemaError(f"{key}: {name!r} is the bucket's only column besides Epoch; a "
                          "bucket keeps at least one (add another first, or destroy it)")
    i = schema.names.index(name)
    keep = [j for j in range(len(schema.columns)) if j != i]
    new = Schema(schema.timeframe, schema.kind, tuple(schema.columns[j] for j in keep))
    return new, ColumnTable(table.version + 1, tuple(table.ids[j] for j in keep),
                            tuple(table.fills[j] for j in keep), table.last_id)


def rename_column(schema: Schema, table: ColumnTable, old: Any, new_name: Any, key: str
                  ) -> tuple[Schema, ColumnTable]:
    """The schema and column table with `old` called `new_name` (same id: no data moves)."""
    _known(schema, old, key, "renamed")
    _check_new_name(schema, new_name, key)
    cols = tuple((new_name if n == old else n, d) for n, d in schema.columns)
    new = Schema(schema.timeframe, schema.kind, cols)
    return new, ColumnTable(table.version + 1, table.ids, table.fills, table.last_id)


def translate(rows: np.ndarray, src: tuple[Schema, ColumnTable],
              dst: tuple[Schema, ColumnTable], dtype: np.dtype) -> np.ndarray:
    """Rows read from a file written with schema `src` as rows of `dtype` (a record, result
    or row dtype built from schema `dst`, the bucket's current one), matching columns by id:
    a column the file has is copied (whatever it is called now), a column it lacks takes its
    fill value, a column the bucket dropped is left out. Fields that are not columns (Epoch,
    Nanoseconds, `_slot`) are copied by name. For sealed files as for live ones: callers skip
    this when the file's schema version is the bucket's (the rows are then already `dtype`),
    and `view_dtype` avoids the copy when a read needs only columns the file has."""
    (s_schema, s_table), (d_schema, d_table) = src, dst
    by_id = dict(zip(s_table.ids, s_schema.names, strict=True))
    rows = np.ascontiguousarray(rows)
    out = np.empty(len(rows), dtype=dtype)
    have: Mapping[str, Any] = rows.dtype.fields or {}
    want: Mapping[str, Any] = dtype.fields or {}
    # One copy of the bytes both layouts share (an added column moves nothing before it),
    # then only the fields that moved, and the fills.
    common = min(rows.dtype.itemsize, dtype.itemsize)
    if len(rows) and common:
        _prefix(out, common)[...] = _prefix(rows, common)
    sources = {n: n for n in want if n not in d_schema.names}
    fills = {}
    for name, cid, fill in zip(d_schema.names, d_table.ids, d_table.fills, strict=True):
        if name in want:
            old = by_id.get(cid)
            if old is None:
                fills[name] = fill
            else:
                sources[name] = old
    for name, old in sources.items():
        if old not in have:
            out[name] = 0
        elif have[old][1] != want[name][1] or have[old][0] != want[name][0]:
            out[name] = rows[old]  # it moved (or is new to this layout): copy it
    for name, fill in fills.items():
        out[name] = fill
    return out


def translate_columns(cols: Mapping[str, np.ndarray], n: int, src: tuple[Schema, ColumnTable],
                      dst: tuple[Schema, ColumnTable], names: Sequence[str]
                      ) -> dict[str, np.ndarray]:
    """`translate` for rows held as columns ({name in the file's schema: values}, `n` rows,
    as sealed files decode them): the bucket's columns `names` by id, a column the file
    lacks as its fill."""
    (s_schema, s_table), (d_schema, d_table) = src, dst
    by_id = dict(zip(s_table.ids, s_schema.names, strict=True))
    out: dict[str, np.ndarray] = {}
    for name, dt in d_schema.columns:
        if name not in names:
            continue
        cid = d_table.id_of(d_schema, name)
        old = by_id.get(cid)
        if old is None:
            fill = d_table.fills[d_schema.names.index(name)]
            out[name] = np.full(n, fill, dtype=dt)
        else:
            out[name] = cols[old]
    return out


def source_names(src: tuple[Schema, ColumnTable], dst: tuple[Schema, ColumnTable],
                 names: Sequence[str]) -> list[str]:
    """The file's names of the bucket's columns `names` that the file has (what a columnar
    read of an older file decodes before `translate_columns`)."""
    (s_schema, s_table), (d_schema, d_table) = src, dst
    by_id = dict(zip(s_table.ids, s_schema.names, strict=True))
    return [by_id[c] for c in (d_table.id_of(d_schema, n) for n in names) if c in by_id]


def _prefix(rows: np.ndarray, size: int) -> np.ndarray:
    """The first `size` bytes of each row as one opaque item (a copy is one memcpy a row:
    faster than numpy's copy of the same bytes as a 2-D array of words)."""
    head = np.dtype({"names": ["b"], "formats": [f"V{size}"], "offsets": [0],
                     "itemsize": rows.dtype.itemsize})
    return rows.view(head)["b"]


def view_dtype(src: tuple[Schema, ColumnTable], dst: tuple[Schema, ColumnTable],
               names: Sequence[str], layout: np.dtype) -> np.dtype | None:
    """A dtype that views rows of the file's `layout` (its record or result dtype) as the
    fields `names` of the bucket's current schema (Epoch, Nanoseconds and columns by their
    current names), without a copy; None when a named column is not in the file (it must be
    filled: `translate`). A read of columns a change did not touch costs what it did."""
    (s_schema, s_table), (d_schema, d_table) = src, dst
    by_id = dict(zip(s_table.ids, s_schema.names, strict=True))
    current = dict(zip(d_schema.names, d_table.ids, strict=True))
    fields: Mapping[str, Any] = layout.fields or {}
    formats, offsets = [], []
    for name in names:
        old = by_id.get(current[name]) if name in current else name
        if old is None or old not in fields:
            return None
        formats.append(fields[old][0])
        offsets.append(fields[old][1])
    return np.dtype({"names": list(names), "formats": formats, "offsets": offsets,
                     "itemsize": layout.itemsize})


class SchemaWrite:
    """A column change as one transaction logs it (docs/wal.md §10, op 4): the bucket's new
    `bucket.hdr` bytes, with the schema and column table they decode to. Applying it replaces
    `bucket.hdr` (engine/alter.py); applying it again writes the same bytes."""

    __slots__ = ("key", "schema", "table", "header")
    year = 0  # a bucket.hdr, not a year file

    def __init__(self, key: Any, schema: Schema, table: ColumnTable, header: bytes) -> None:
        self.key = key
        self.schema = schema
        self.table = table
        self.header = header

    @property
    def nbytes(self) -> int:
        return len(self.header)

    def __repr__(self) -> str:
        return f"SchemaWrite({self.key}, schema version {self.table.version})"
