"""MarketStore's SQL subset on the wire (a Query request with `is_sqlstatement`): check the
statement against what mkts serves, give its Epoch terms MarketStore's meaning, and run it
through `db.sql`'s path (engine.sql). What is not served gets an error naming the construct.
"""

from __future__ import annotations

import re
from typing import Any

from mkts import engine
from mkts.engine.sql import connect, constant, parse_sql, run_sql
from mkts.engine.timeutil import NS
from mkts.wire import WireError, encode_dataset

__all__ = ["run_wire_sql", "translate", "SECONDS_UP_TO"]

# An integer Epoch literal up to this is seconds, above it nanoseconds (MarketStore's rule).
SECONDS_UP_TO = 32_503_680_000
SUBSET = ("mkts serves SELECT <columns or *> FROM `SYM/TF/ATTR` [WHERE comparisons of a "
          "column with a literal, BETWEEN, AND, OR, NOT] [LIMIT n]")
_OPS = {"COMPARE_EQUAL": "=", "COMPARE_NOTEQUAL": "<>", "COMPARE_LESSTHAN": "<",
        "COMPARE_LESSTHANOREQUALTO": "<=", "COMPARE_GREATERTHAN": ">",
        "COMPARE_GREATERTHANOREQUALTO": ">="}
_FLIPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NAMES = {"COMPARE_IN": "IN", "COMPARE_NOT_IN": "NOT IN", "OPERATOR_IS_NULL": "IS NULL",
          "OPERATOR_IS_NOT_NULL": "IS NOT NULL", "COMPARE_DISTINCT_FROM": "IS DISTINCT FROM",
          "COMPARE_NOT_DISTINCT_FROM": "IS NOT DISTINCT FROM", "SUBQUERY": "a subquery",
          "CASE_EXPR": "CASE", "OPERATOR_CAST": "CAST", "SET_OPERATION_NODE":
          "UNION, INTERSECT or EXCEPT", "ORDER_MODIFIER": "ORDER BY",
          "DISTINCT_MODIFIER": "DISTINCT", "LIMIT_PERCENT_MODIFIER": "LIMIT ... PERCENT",
          "JOIN": "a JOIN or a second table", "SUBQUERY_TABLE": "a subquery in FROM",
          "TABLE_FUNCTION": "a table function in FROM", "EMPTY": "a SELECT without FROM"}
_LIKE = {"~~": "LIKE", "!~~": "NOT LIKE", "~~*": "ILIKE", "!~~*": "NOT ILIKE"}
_DASHED = re.compile(r"(\d{4}-\d{2}-\d{2})-(\d{2}:\d{2}.*)")  # 2000-01-05-12:30 (MarketStore)


def run_wire_sql(db: engine.Database, text: Any) -> dict[str, Any]:
    """The NumpyMultiDataset for one SQL request: one entry, keyed as MarketStore keys it
    (the statement's text up to its first ':')."""
    if not isinstance(text, str) or not text.strip():
        raise WireError("sql_statement is empty; " + SUBSET)
    try:
        statement = translate(db, text)
        key = text.split(":", 1)[0]
        result = run_sql(db, statement, external_access=False, key=key)
    except ImportError as exc:  # duckdb missing where the server runs
        raise WireError(f"SQL is not available on this server: {exc}") from None
    return encode_dataset([(key, result)])


def _unsupported(what: str) -> engine.SqlError:
    return engine.SqlError(f"SQL: {what} is not supported by mkts over the wire; {SUBSET} "
                           "(full SQL: db.sql or `mkts sql` where the data is)")


def _name(node: Any) -> str:
    kind = str(node.get("type", "")) if isinstance(node, dict) else type(node).__name__
    if kind == "FUNCTION":
        fn = str(node.get("function_name", ""))
        if fn in _LIKE:
            return _LIKE[fn]
        if fn and not fn.replace("_", "").isalnum():
            return f"the operator {fn}"
        return f"the function call {'count(*)' if fn == 'count_star' else fn + '()'}"
    return _NAMES.get(kind, kind.replace("_", " ").lower() or "this construct")


def translate(db: engine.Database, text: str) -> str:
    """The DuckDB statement that answers MarketStore's `text`, or SqlError naming what is not
    served. Epoch literals: text is a time (MarketStore's `2000-01-05-12:30` form too; without
    an offset in the database's zone), an integer up to SECONDS_UP_TO seconds, above it
    nanoseconds; they compare with the row's exact time (a tick's Nanoseconds included)."""
    con = connect(external_access=False)
    try:
        node = parse_sql(con, text)
    finally:
        con.close()
    if node.get("type") != "SELECT_NODE":
        raise _unsupported(_name(node))
    if (node.get("cte_map") or {}).get("map"):
        raise _unsupported("WITH")
    for part, what in (("group_expressions", "GROUP BY"), ("group_sets", "GROUP BY"),
                       ("having", "HAVING"), ("qualify", "QUALIFY"), ("sample", "SAMPLE")):
        if node.get(part):
            raise _unsupported(what)
    if node.get("aggregate_handling", "STANDARD_HANDLING") != "STANDARD_HANDLING":
        raise _unsupported("GROUP BY ALL")
    limit = _limit(node.get("modifiers") or [])
    key = _table(node.get("from_table"))
    bucket = db.catalog.buckets.get(engine.parse_key(key))
    if bucket is None:
        raise WireError("no files returned from query parse")
    ticks = bucket.schema.kind == "variable"
    sql = f"SELECT {_select(node.get('select_list') or [])} FROM {_ident(key)}"
    where = node.get("where_clause")
    if where is not None:
        sql += f" WHERE {_where(where, ticks, db.timezone)}"
    if limit is not None:
        sql += f" LIMIT {limit}"
    return sql


def _limit(modifiers: list[Any]) -> int | None:
    limit = None
    for m in modifiers:
        if m.get("type") != "LIMIT_MODIFIER":
            raise _unsupported(_name(m))
        if m.get("offset") is not None:
            raise _unsupported("OFFSET")
        n = constant(m.get("limit"))
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise _unsupported("a LIMIT that is not a non-negative integer")
        limit = n
    return limit


def _table(table: Any) -> str:
    if not isinstance(table, dict) or table.get("type") != "BASE_TABLE":
        raise _unsupported(_name(table if isinstance(table, dict) else {}))
    if table.get("alias"):
        raise _unsupported("a table alias")
    if table.get("schema_name") or table.get("catalog_name"):
        raise _unsupported("a dotted table name")
    name = str(table.get("table_name", ""))
    engine.parse_key(name)  # InvalidKeyError names the part
    return name


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column(expr: Any) -> str | None:
    if isinstance(expr, dict) and expr.get("class") == "COLUMN_REF":
        names = expr.get("column_names") or []
        if len(names) == 1:
            return str(names[0])
    return None


def _select(items: list[Any]) -> str:
    if any(isinstance(i, dict) and i.get("class") == "STAR" for i in items):
        star = items[0]
        if len(items) > 1:
            raise _unsupported("'*' together with other select items")
        if star.get("relation_name") or star.get("exclude_list") or star.get("replace_list") \
                or star.get("columns") or star.get("expr") is not None:
            raise _unsupported("a qualified or modified '*'")
        return "*"
    out = []
    for item in items:
        col = _column(item)
        if col is None:
            what = _name(item)
            if isinstance(item, dict) and item.get("type") == "FUNCTION":
                what += " in the select list (functions go in a query's functions list)"
            else:
                what += " in the select list"
            raise _unsupported(what)
        alias = item.get("alias")
        out.append(_ident(col) + (f" AS {_ident(str(alias))}" if alias else ""))
    return ", ".join(out)


def _literal(value: int | float | str) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _epoch_ns(value: int | float | str, tz: str) -> int:
    if isinstance(value, str):
        text = _DASHED.sub(r"\1 \2", value.strip())
        try:
            return engine.to_epoch_ns(text, "Epoch", tz)
        except ValueError:
            raise engine.SqlError(f"SQL: unable to convert string to date: {value!r}; give "
                                  "2024-01-02 09:30[:00] or epoch seconds") from None
    if isinstance(value, float):
        return round(value * NS)
    return value * NS if value <= SECONDS_UP_TO else value


def _epoch_term(op: str, value: int | float | str, ticks: bool, tz: str) -> str:
    x = _epoch_ns(value, tz)
    lo, hi = x // NS, -(-x // NS)  # the seconds at or below / at or above x
    if not ticks:  # Epoch*NS op x, in whole seconds
        exact = x % NS == 0
        return {">=": f'"Epoch" >= {hi}', ">": f'"Epoch" > {lo}', "<=": f'"Epoch" <= {lo}',
                "<": f'"Epoch" < {hi}', "=": f'"Epoch" = {lo}' if exact else "FALSE",
                "<>": f'"Epoch" <> {lo}' if exact else "TRUE"}[op]
    exact_time = f'("Epoch" * 1000000000 + "Nanoseconds") {op} {x}'
    if op == "<>":
        return exact_time
    second = {">=": ">=", ">": ">=", "<=": "<=", "<": "<=", "=": "="}[op]
    return f'("Epoch" {second} {lo} AND {exact_time})'


def _where(expr: Any, ticks: bool, tz: str) -> str:
    kind = expr.get("type", "") if isinstance(expr, dict) else ""
    if kind in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
        joiner = " AND " if kind == "CONJUNCTION_AND" else " OR "
        return "(" + joiner.join(_where(c, ticks, tz) for c in expr["children"]) + ")"
    if kind == "OPERATOR_NOT":
        return "(NOT " + _where(expr["children"][0], ticks, tz) + ")"
    if kind == "COMPARE_BETWEEN":
        col, lo, hi = _column(expr.get("input")), constant(expr.get("lower")), \
            constant(expr.get("upper"))
        if col is None or lo is None or hi is None:
            raise _unsupported("BETWEEN other than <column> BETWEEN <literal> AND <literal>")
        return (f"({_compare(col, '>=', lo, ticks, tz)} AND "
                f"{_compare(col, '<=', hi, ticks, tz)})")
    if kind in _OPS:
        op = _OPS[kind]
        col, value = _column(expr.get("left")), constant(expr.get("right"))
        if col is None:
            col, value, op = _column(expr.get("right")), constant(expr.get("left")), _FLIPPED[op]
        if col is None or value is None:
            raise _unsupported("a comparison other than <column> <op> <literal>")
        return _compare(col, op, value, ticks, tz)
    raise _unsupported(f"{_name(expr)} in WHERE")


def _compare(col: str, op: str, value: int | float | str, ticks: bool, tz: str) -> str:
    if col.lower() == "epoch":
        return _epoch_term(op, value, ticks, tz)
    return f"{_ident(col)} {op} {_literal(value)}"
