"""SQL over buckets (`db.sql`): DuckDB runs one SELECT; every bucket key it names as a table
is read from its year files and handed over as Arrow. Epoch bounds found in DuckDB's own
parse of the WHERE clause limit what is read, and only the columns it mentions are read;
DuckDB still applies the exact filter.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mkts.engine.errors import BucketNotFoundError, InvalidKeyError, SqlError
from mkts.engine.keys import parse_key
from mkts.engine.result import Result
from mkts.engine.timeutil import MAX_DATETIME64_S, NS

if TYPE_CHECKING:
    from mkts.engine.database import Database

__all__ = ["run_sql", "connect", "parse_sql", "constant", "epoch_bounds", "used_columns", "SQL_KEY",
           "Bounds"]

SQL_KEY = "SQL"  # the key of a db.sql() Result
NEEDS = "db.sql() needs duckdb and pyarrow: pip install 'mkts[sql]'"

# (lowest, highest) Epoch second a statement can select from one table; None: unbounded.
Bounds = tuple[int | None, int | None]
_ALL: Bounds = (None, None)
_LOWER = {"COMPARE_GREATERTHAN", "COMPARE_GREATERTHANOREQUALTO"}
_UPPER = {"COMPARE_LESSTHAN", "COMPARE_LESSTHANOREQUALTO"}
_FLIP = {"COMPARE_GREATERTHAN": "COMPARE_LESSTHAN",
         "COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
         "COMPARE_LESSTHAN": "COMPARE_GREATERTHAN",
         "COMPARE_LESSTHANOREQUALTO": "COMPARE_GREATERTHANOREQUALTO",
         "COMPARE_EQUAL": "COMPARE_EQUAL"}


def _duckdb() -> Any:
    try:
        import duckdb
        import pyarrow  # noqa: F401  (the tables are handed over as Arrow)
    except ImportError as exc:
        raise ImportError(NEEDS) from exc
    return duckdb


_BASES: dict[tuple[int, bool], Any] = {}  # (pid, external access) -> in-memory DuckDB
_BASES_LOCK = threading.Lock()


def connect(*, external_access: bool = True) -> Any:
    """A connection of its own for one statement: a cursor of this process's in-memory
    DuckDB (opening a database costs ~20 ms, a cursor microseconds). What a statement
    registers is seen by its cursor only and goes with it."""
    duckdb = _duckdb()
    with _BASES_LOCK:
        base = _BASES.get((os.getpid(), external_access))
        if base is None:  # (after a fork the child opens its own)
            base = duckdb.connect(config={"enable_external_access": external_access})
            _BASES[(os.getpid(), external_access)] = base
        return base.cursor()


def parse_sql(con: Any, statement: str) -> dict[str, Any]:
    """DuckDB's parse tree of exactly one SELECT statement (json_serialize_sql), or SqlError
    with DuckDB's own message."""
    if not isinstance(statement, str) or not statement.strip():
        raise SqlError("the SQL statement is empty; give one SELECT, like "
                       "SELECT * FROM \"AAPL/1Min/OHLCV\" LIMIT 10")
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [statement]).fetchall()[0][0])
    if tree.get("error"):
        message = tree.get("error_message", "cannot be parsed")
        if "Only SELECT" in message:
            message = "only SELECT statements run here (no INSERT, CREATE, COPY, ...)"
        raise SqlError(f"SQL {_short(statement)!r}: {message}")
    statements = tree.get("statements") or []
    if len(statements) != 1:
        raise SqlError(f"SQL {_short(statement)!r}: give one statement, not {len(statements)}")
    node: dict[str, Any] = statements[0]["node"]
    return node


def _short(text: str, most: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 3] + "..."


def _walk(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _cte_names(node: Any) -> set[str]:
    names: set[str] = set()
    for d in _walk(node):
        cte = d.get("cte_map")
        if isinstance(cte, dict):
            names.update(str(e.get("key", "")).lower() for e in cte.get("map", []))
    return names


def constant(expr: Any) -> int | float | str | None:
    """The value of a literal in DuckDB's parse tree (number or text), else None."""
    if not isinstance(expr, dict) or expr.get("class") != "CONSTANT":
        return None
    lit = expr.get("literal")
    if isinstance(lit, dict):  # DuckDB 2: {"kind": "INTEGER", "text": "10"}
        kind, text = str(lit.get("kind", "")), lit.get("text")
        if not isinstance(text, str):
            return None
        if kind in ("INTEGER", "BIGINT", "HUGEINT"):
            return int(text)
        if kind in ("NUMERIC", "DECIMAL", "DOUBLE", "FLOAT"):
            return float(text)
        return text if kind in ("STRING", "VARCHAR") else None
    value = expr.get("value")  # DuckDB 1: {"type": {"id": ...}, "is_null": ..., "value": ...}
    if isinstance(value, dict) and not value.get("is_null"):
        v = value.get("value")
        if isinstance(v, (int, float, str)) and not isinstance(v, bool):
            return v
    return None


def _from_tables(table: Any) -> list[dict[str, Any]]:
    """The base tables of a FROM clause made of tables and joins (not subqueries)."""
    if not isinstance(table, dict):
        return []
    if table.get("type") == "BASE_TABLE":
        return [table]
    if table.get("type") == "JOIN":
        return _from_tables(table.get("left")) + _from_tables(table.get("right"))
    return []


def _conjuncts(expr: Any) -> Iterator[dict[str, Any]]:
    if isinstance(expr, dict) and expr.get("type") == "CONJUNCTION_AND":
        for child in expr.get("children", []):
            yield from _conjuncts(child)
    elif isinstance(expr, dict):
        yield expr


def _epoch_ref(expr: Any, tables: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The table an `Epoch` / `t.Epoch` column reference belongs to, if that is certain."""
    if not isinstance(expr, dict) or expr.get("class") != "COLUMN_REF":
        return None
    names = expr.get("column_names") or []
    if not names or str(names[-1]).lower() != "epoch" or len(names) > 2:
        return None
    if len(names) == 1:
        return tables[0] if len(tables) == 1 else None
    qual = str(names[0]).lower()
    hits = [t for t in tables if str(t.get("alias") or t.get("table_name", "")).lower() == qual]
    return hits[0] if len(hits) == 1 else None


def _tighten(b: Bounds, lo: float | None, hi: float | None) -> Bounds:
    """Intersect with [lo, hi], rounded inwards to the whole seconds Epoch can hold."""
    out_lo, out_hi = b
    if lo is not None:
        s = math.ceil(lo)
        out_lo = s if out_lo is None else max(out_lo, s)
    if hi is not None:
        s = math.floor(hi)
        out_hi = s if out_hi is None else min(out_hi, s)
    return out_lo, out_hi


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v if math.isfinite(v) else None


def epoch_bounds(node: dict[str, Any]) -> dict[int, Bounds]:
    """{id(base-table node): Epoch bounds} for the tables of a SELECT's own FROM clause, from
    the `Epoch <op> number` and `Epoch BETWEEN a AND b` terms ANDed in its WHERE clause.
    Anything else (OR, functions, subqueries) adds no bound: the read is then wider, never
    narrower, than what the statement selects."""
    if node.get("type") != "SELECT_NODE":
        return {}
    tables = _from_tables(node.get("from_table"))
    out: dict[int, Bounds] = {id(t): _ALL for t in tables}
    for term in _conjuncts(node.get("where_clause")):
        kind = term.get("type", "")
        if kind == "COMPARE_BETWEEN":
            t = _epoch_ref(term.get("input"), tables)
            lo, hi = _number(constant(term.get("lower"))), _number(constant(term.get("upper")))
            if t is not None:
                out[id(t)] = _tighten(out[id(t)], lo, hi)
            continue
        if kind not in _FLIP:
            continue
        left, right = term.get("left"), term.get("right")
        if _epoch_ref(left, tables) is None:
            left, right, kind = right, left, _FLIP[kind]
        t = _epoch_ref(left, tables)
        v = _number(constant(right))
        if t is None or v is None:
            continue
        # Epoch is whole seconds: Epoch > 5.5 is Epoch >= 6, Epoch < 6 is Epoch <= 5
        if kind == "COMPARE_GREATERTHAN":
            out[id(t)] = _tighten(out[id(t)], math.floor(v) + 1, None)
        elif kind == "COMPARE_LESSTHAN":
            out[id(t)] = _tighten(out[id(t)], None, math.ceil(v) - 1)
        else:
            lo_ok = kind in _LOWER or kind == "COMPARE_EQUAL"
            hi_ok = kind in _UPPER or kind == "COMPARE_EQUAL"
            out[id(t)] = _tighten(out[id(t)], v if lo_ok else None, v if hi_ok else None)
    return out


def _union(a: Bounds | None, b: Bounds) -> Bounds:
    if a is None:
        return b
    lo = None if a[0] is None or b[0] is None else min(a[0], b[0])
    hi = None if a[1] is None or b[1] is None else max(a[1], b[1])
    return lo, hi


def used_columns(node: dict[str, Any]) -> set[str] | None:
    """The lower-cased names of every column the statement mentions, or None when it may use
    any column: `*` or COLUMNS(...), `#1`, a table renaming its columns (`t(a, b)`), a
    NATURAL join, PIVOT, or a table used as a row value (`SELECT t FROM ... t`). Names are
    matched loosely (every part of `a.b`, lambda parameters too): a superset is safe."""
    tables = {str(d.get("alias") or d.get("table_name", "")).lower()
              for d in _walk(node) if d.get("type") == "BASE_TABLE"}
    names: set[str] = set()
    for d in _walk(node):
        kind = str(d.get("type", ""))
        if kind in ("STAR", "POSITIONAL_REFERENCE") or "PIVOT" in kind:
            return None
        if kind == "BASE_TABLE" and d.get("column_name_alias"):
            return None
        if kind == "JOIN":
            if d.get("ref_type") not in (None, "REGULAR"):
                return None
            names.update(str(c).lower() for c in d.get("using_columns") or [])
        if d.get("class") == "COLUMN_REF":
            parts = [str(c).lower() for c in d.get("column_names") or []]
            if not parts or (len(parts) == 1 and parts[0] in tables):
                return None
            names.update(parts)
    return names


def bucket_reads(db: Database, node: dict[str, Any]) -> dict[str, Bounds]:
    """{bucket key: Epoch bounds to read} for every table of the statement that is a bucket
    (a key, quoted: "AAPL/1Min/OHLCV"); a bucket named twice reads the union of both."""
    bounded = epoch_bounds(node)
    ctes = _cte_names(node)
    reads: dict[str, Bounds] = {}
    for d in _walk(node):
        if d.get("type") != "BASE_TABLE" or d.get("schema_name") or d.get("catalog_name"):
            continue
        name = str(d.get("table_name", ""))
        if name.lower() in ctes:
            continue
        try:
            key = parse_key(name)
        except InvalidKeyError:
            continue  # not a key: DuckDB's own table, a file, or DuckDB's error
        if key not in db.catalog.buckets:
            raise BucketNotFoundError(f"SQL table {name!r}: no such bucket (see db.list_keys())")
        reads[name] = _union(reads.get(name), bounded.get(id(d), _ALL))
    return reads


def _read(db: Database, key: str, bounds: Bounds, used: set[str] | None) -> Result:
    """The bucket's rows with lo <= Epoch <= hi (a tick's whole second at hi; lo > hi reads
    no year file at all), and of its columns those in `used` (None: all)."""
    columns = None
    if used is not None:
        names = db.catalog.get(parse_key(key)).schema.names
        columns = [c for c in names if c.lower() in used]
    lo, hi = bounds
    lo = None if lo is None else min(max(lo, -MAX_DATETIME64_S), MAX_DATETIME64_S)
    hi = None if hi is None else min(max(hi, -MAX_DATETIME64_S - 1), MAX_DATETIME64_S - 1)
    start = None if lo is None else np.datetime64(lo * NS, "ns")
    end = None if hi is None else np.datetime64(hi * NS + NS - 1, "ns")
    return db.read(key, start, end, columns=columns)


def run_sql(db: Database, statement: str, *, external_access: bool = True,
            key: str = SQL_KEY) -> Result:
    """Run one SELECT over the database's buckets (each a table named by its key) and return
    its rows as a Result (see Result.from_arrow)."""
    con = connect(external_access=external_access)
    try:
        node = parse_sql(con, statement)
        used = used_columns(node)
        for name, bounds in bucket_reads(db, node).items():
            con.register(name, _read(db, name, bounds, used).to_arrow())
        duckdb = _duckdb()
        try:
            table = con.sql(statement).to_arrow_table()
        except duckdb.Error as exc:
            raise SqlError(f"SQL {_short(statement)!r}: {exc}") from None
    finally:
        con.close()
    return Result.from_arrow(key, table, db.timezone)
