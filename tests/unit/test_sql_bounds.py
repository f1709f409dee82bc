"""engine/sql.py `epoch_bounds` and `used_columns`: which Epoch range of each table of a
SELECT's own FROM clause, and which columns, must be read, from DuckDB's parse of the
statement. Neither may leave out a row or a column the statement can use; what they cannot
judge reads everything."""

from __future__ import annotations

import pytest

pytest.importorskip("duckdb")

from mkts.engine.sql import connect, epoch_bounds, parse_sql, used_columns  # noqa: E402


def bounds(statement: str) -> list[tuple[int | None, int | None]]:
    con = connect()
    try:
        node = parse_sql(con, statement)
    finally:
        con.close()
    found = epoch_bounds(node)
    tables = []
    stack = [node.get("from_table")]
    while stack:  # the FROM clause's base tables, left to right
        t = stack.pop(0)
        if isinstance(t, dict) and t.get("type") == "JOIN":
            stack[:0] = [t["left"], t["right"]]
        elif isinstance(t, dict) and t.get("type") == "BASE_TABLE":
            tables.append(found[id(t)])
    return tables


@pytest.mark.parametrize(("where", "expected"), [
    ("Epoch >= 100 AND Epoch <= 200", (100, 200)),
    ("Epoch > 100 AND Epoch < 200", (101, 199)),  # Epoch holds whole seconds
    ("Epoch > 100.5 AND Epoch <= 199.9", (101, 199)),
    ("100 <= Epoch AND 200 > Epoch", (100, 199)),  # constant on the left
    ("Epoch = 150", (150, 150)),
    ("Epoch BETWEEN 100 AND 200", (100, 200)),
    ("epoch >= 100 AND Close > 3", (100, None)),  # names are case-insensitive
    ("Epoch >= 100 AND Epoch >= 120 AND Epoch <= 300 AND Epoch <= 250", (120, 250)),
    ("(Epoch >= 100 AND Close > 1) AND Epoch <= 200", (100, 200)),
    ("Epoch >= 300 AND Epoch <= 200", (300, 200)),  # empty: nothing to read
])
def test_anded_epoch_terms_bound_the_read(where: str, expected: tuple[int, int]) -> None:
    assert bounds(f'SELECT * FROM "A/1Min/B" WHERE {where}') == [expected]


@pytest.mark.parametrize("where", [
    "Epoch >= 100 OR Close > 3",  # OR: either side may select any row
    "NOT (Epoch < 100)",
    "Epoch + 1 >= 100",  # an expression of Epoch
    "Epoch >= Close",  # not a literal
    "Epoch >= (SELECT 100)",
    "Close >= 100",
    "Epoch IN (100, 200)",
])
def test_terms_it_cannot_use_give_no_bound(where: str) -> None:
    assert bounds(f'SELECT * FROM "A/1Min/B" WHERE {where}') == [(None, None)]


def test_joins_bound_each_table_by_its_qualified_terms() -> None:
    found = bounds('SELECT * FROM "A/1Min/B" a JOIN "C/1Min/B" ON a.Epoch = "C/1Min/B".Epoch '
                   'WHERE a.Epoch >= 100 AND "C/1Min/B".Epoch <= 500 AND Epoch < 7')
    # the unqualified Epoch is ambiguous in a join: it bounds neither table
    assert found == [(100, None), (None, 500)]


def test_a_statement_without_where_or_not_a_plain_select_has_no_bounds() -> None:
    assert bounds('SELECT * FROM "A/1Min/B"') == [(None, None)]
    con = connect()
    try:
        node = parse_sql(con, 'SELECT * FROM "A/1Min/B" WHERE Epoch > 1 UNION SELECT 1')
    finally:
        con.close()
    assert epoch_bounds(node) == {}


def used(statement: str) -> set[str] | None:
    con = connect()
    try:
        return used_columns(parse_sql(con, statement))
    finally:
        con.close()


def test_the_columns_a_statement_mentions_are_read() -> None:
    assert used('SELECT Close FROM "A/1Min/B" WHERE epoch > 5 ORDER BY Volume') == {
        "close", "epoch", "volume"}
    assert used('SELECT count(*) FROM "A/1Min/B"') == set()
    assert used('SELECT a.Close FROM "A/1Min/B" a JOIN "C/1Min/B" c USING (Epoch)') == {
        "a", "close", "epoch"}


@pytest.mark.parametrize("statement", [
    'SELECT * FROM "A/1Min/B"',
    'SELECT a.* FROM "A/1Min/B" a',
    "SELECT COLUMNS('C.*') FROM \"A/1Min/B\"",
    'SELECT #2 FROM "A/1Min/B"',
    'SELECT x FROM "A/1Min/B" t(x, y)',
    'SELECT Close FROM "A/1Min/B" NATURAL JOIN "C/1Min/B"',
    'SELECT t FROM "A/1Min/B" t',
])
def test_what_may_use_any_column_reads_them_all(statement: str) -> None:
    assert used(statement) is None
