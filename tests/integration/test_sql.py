"""`db.sql`: DuckDB over buckets. Results equal a read filtered in numpy, Epoch bounds in the
WHERE clause open only the year files (and read only the slots) they need, errors name the
statement, and `mkts sql` prints like `mkts query` (README.md "SQL")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mkts
from mkts.wal.fs import OsFile, OsFileSystem

pytest.importorskip("duckdb")

BAR = [("Epoch", "i8"), ("Close", "f4"), ("Volume", "i8")]
Y2023, Y2024, Y2025 = 1_672_531_200, 1_704_067_200, 1_735_689_600  # 1 January, UTC


def bars(start: int, n: int, first: float = 0.0) -> np.ndarray:
    a = np.zeros(n, dtype=BAR)
    a["Epoch"] = start + 60 * np.arange(n)
    a["Close"] = first + np.arange(n, dtype=np.float32)
    a["Volume"] = 100 + np.arange(n)
    return a


class CountingFS(OsFileSystem):
    """The real filesystem, recording which year files are opened and how many bytes are
    read from them with pread."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.bytes_read = 0

    def open(self, path: str, *, write: bool = False, create: bool = False) -> Any:
        f = super().open(path, write=write, create=create)
        if not path.endswith(".bin"):
            return f
        self.opened.append(Path(path).name)
        return _Counted(f, self)


class _Counted:
    def __init__(self, f: OsFile, fs: CountingFS) -> None:
        self._f, self._fs = f, fs

    def pread(self, size: int, offset: int) -> bytes:
        self._fs.bytes_read += size
        return self._f.pread(size, offset)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


@pytest.fixture
def three_years(tmp_path: Path) -> Path:
    root = tmp_path / "db"
    with mkts.open(root) as db:
        for year in (Y2023, Y2024, Y2025):
            db.write("AAPL/1Min/OHLCV", bars(year + 86_400 * 40, 50, first=year // 10**6))
        db.write("MSFT/1Min/OHLCV", bars(Y2024 + 86_400 * 40, 50, first=1000.0))
    return root


def test_a_where_range_opens_only_the_year_files_it_needs(three_years: Path) -> None:
    fs = CountingFS()
    lo, hi = Y2024 + 86_400 * 40 + 600, Y2024 + 86_400 * 40 + 1200
    with mkts.engine.open(three_years, readonly=True, fs=fs) as db:
        r = db.sql(f'SELECT Epoch, Close FROM "AAPL/1Min/OHLCV" '
                   f"WHERE Epoch >= {lo} AND Epoch <= {hi} AND Close > 0")
        assert fs.opened == ["2024.bin"]
        # the slots of 11 minutes and the header, not the year's ~17 MB of slots
        assert fs.bytes_read < 64 * 1024
        assert r["Epoch"].tolist() == list(range(lo, hi + 1, 60))
        full = db.read("AAPL/1Min/OHLCV")
        want = full["Close"][(full["Epoch"] >= lo) & (full["Epoch"] <= hi)]
        assert r["Close"].tolist() == want.tolist()


def test_without_a_usable_bound_every_year_is_read(three_years: Path) -> None:
    fs = CountingFS()
    with mkts.engine.open(three_years, readonly=True, fs=fs) as db:
        # OR gives no bound: read everything, DuckDB still filters exactly
        r = db.sql(f'SELECT Epoch FROM "AAPL/1Min/OHLCV" WHERE Epoch < {Y2024} OR Close < 0')
        assert sorted(fs.opened) == ["2023.bin", "2024.bin", "2025.bin"]
        assert len(r) == 50


def test_between_flipped_comparisons_and_empty_ranges_bound_the_read(three_years: Path) -> None:
    fs = CountingFS()
    with mkts.engine.open(three_years, readonly=True, fs=fs) as db:
        r = db.sql(f'SELECT count(*) AS n FROM "AAPL/1Min/OHLCV" '
                   f"WHERE {Y2025} <= Epoch AND Epoch BETWEEN {Y2025} AND {Y2025 + 10**7}")
        assert r["n"].tolist() == [50]
        assert fs.opened == ["2025.bin"]
        fs.opened.clear()
        r = db.sql(f'SELECT * FROM "AAPL/1Min/OHLCV" WHERE Epoch > {Y2025} AND Epoch < {Y2024}')
        assert len(r) == 0 and r.columns == ["Epoch", "Close", "Volume"]
        assert fs.opened == []


def test_joins_take_bounds_per_table_and_aggregate(three_years: Path) -> None:
    fs = CountingFS()
    with mkts.engine.open(three_years, readonly=True, fs=fs) as db:
        r = db.sql('SELECT a.Epoch, a.Close AS aapl, m.Close AS msft '
                   'FROM "AAPL/1Min/OHLCV" a JOIN "MSFT/1Min/OHLCV" m ON a.Epoch = m.Epoch '
                   f"WHERE a.Epoch >= {Y2024} AND a.Epoch < {Y2025} ORDER BY a.Epoch")
        assert len(r) == 50
        assert np.all(r["msft"] - r["aapl"] == np.float32(1000.0 - Y2024 // 10**6))
        assert sorted(fs.opened) == ["2024.bin", "2024.bin"]  # one per bucket
        g = db.sql('SELECT year(to_timestamp(Epoch)) AS y, sum(Volume) AS v '
                   'FROM "AAPL/1Min/OHLCV" GROUP BY y ORDER BY y')
        assert g["y"].tolist() == [2023, 2024, 2025]
        assert g["v"].tolist() == [sum(range(100, 150))] * 3  # an exact int64 sum
        assert g["v"].dtype == np.int64


def test_ticks_keep_nanoseconds_and_an_upper_bound_covers_its_second(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "t") as db:
        t = np.zeros(3, dtype=[("Epoch", "i8"), ("Price", "f8"), ("Nanoseconds", "i4")])
        t["Epoch"] = [Y2024, Y2024, Y2024 + 1]
        t["Nanoseconds"] = [5, 900_000_000, 0]
        t["Price"] = [1.0, 2.0, 3.0]
        db.write("BTC/1Sec/TICK", t, variable=True)
        r = db.sql(f'SELECT * FROM "BTC/1Sec/TICK" WHERE Epoch <= {Y2024}')
        assert r.columns == ["Epoch", "Price", "Nanoseconds"]
        assert r["Nanoseconds"].tolist() == [5, 900_000_000]
        assert r.timestamps.tolist() == db.read("BTC/1Sec/TICK", end=Y2024 + 0.95
                                                ).timestamps.tolist()


def test_the_result_converts_like_a_read(three_years: Path) -> None:
    with mkts.engine.open(three_years, readonly=True) as db:
        r = db.sql(f'SELECT * FROM "MSFT/1Min/OHLCV" WHERE Epoch >= {Y2024} LIMIT 3')
        assert r.key == "SQL"
        assert np.array_equal(r.array, db.read("MSFT/1Min/OHLCV", limit=3,
                                               limit_from_start=True).array)
        assert str(r.to_pandas().index[0]) == "2024-02-10 00:00:00+00:00"
        table = r.to_arrow()
        assert table.column_names == ["Epoch", "Close", "Volume"]
        assert r.to_arrow() is table  # DuckDB's own Arrow table, not a copy
        n = db.sql('SELECT count(*) AS n, avg(Close) AS mean FROM "MSFT/1Min/OHLCV"')
        assert (n["n"].tolist(), n["mean"].tolist()) == ([50], [1024.5])
        assert list(n.to_pandas().columns) == ["n", "mean"]  # no Epoch: a plain table
        assert repr(n) == "<Result SQL: 1 rows x 2 columns>"


@pytest.mark.parametrize(("statement", "expected"), [
    ('SELECT close FROM "MSFT/1Min/OHLCV" ORDER BY Epoch LIMIT 2', [(1000.0,), (1001.0,)]),
    ('SELECT t.Close FROM "MSFT/1Min/OHLCV" t(e, c, v) WHERE e = 1707523260', "Binder"),
    ('SELECT c FROM "MSFT/1Min/OHLCV" t(e, c, v) WHERE e = 1707523260', [(1001.0,)]),
    ('SELECT #3 FROM "MSFT/1Min/OHLCV" WHERE Epoch = 1707523260', [(101,)]),
    ('SELECT COLUMNS(\'V.*\') FROM "MSFT/1Min/OHLCV" WHERE Epoch = 1707523260', [(101,)]),
    ('SELECT t.Volume FROM "MSFT/1Min/OHLCV" t NATURAL JOIN "AAPL/1Min/OHLCV" LIMIT 1', []),
    ('SELECT t FROM "MSFT/1Min/OHLCV" t WHERE Epoch = 1707523260',
     [({"Epoch": 1707523260, "Close": 1001.0, "Volume": 101},)]),
])
def test_column_pruning_never_drops_a_column_in_use(three_years: Path, statement: str,
                                                    expected: Any) -> None:
    with mkts.engine.open(three_years, readonly=True) as db:
        if isinstance(expected, str):
            with pytest.raises(mkts.SqlError, match=expected):
                db.sql(statement)
            return
        r = db.sql(statement)
        assert r.to_arrow().to_pylist() == [dict(zip(r.columns, row, strict=True))
                                            for row in expected]


def test_bad_statements_are_named_errors(three_years: Path) -> None:
    with mkts.engine.open(three_years, readonly=True) as db:
        with pytest.raises(mkts.BucketNotFoundError, match="NOPE/1Min/OHLCV"):
            db.sql('SELECT * FROM "NOPE/1Min/OHLCV"')
        with pytest.raises(mkts.SqlError, match="syntax error"):
            db.sql('SELEC * FROM "AAPL/1Min/OHLCV"')
        with pytest.raises(mkts.SqlError, match="only SELECT"):
            db.sql('DELETE FROM "AAPL/1Min/OHLCV"')
        with pytest.raises(mkts.SqlError, match="one statement, not 2"):
            db.sql("SELECT 1; SELECT 2")
        with pytest.raises(mkts.SqlError, match="Nope"):
            db.sql('SELECT Nope FROM "AAPL/1Min/OHLCV"')
        with pytest.raises(mkts.SqlError, match="empty"):
            db.sql("  ")


def test_missing_duckdb_names_the_extra(three_years: Path, monkeypatch: Any,
                                        capsys: Any) -> None:
    from mkts.cli import main

    monkeypatch.setitem(sys.modules, "duckdb", None)
    with mkts.engine.open(three_years, readonly=True) as db:
        with pytest.raises(ImportError, match=r"mkts\[sql\]"):
            db.sql('SELECT * FROM "AAPL/1Min/OHLCV"')
    assert main(["sql", "--root", str(three_years), 'SELECT * FROM "AAPL/1Min/OHLCV"']) == 1
    assert capsys.readouterr().err == (
        "mkts sql: db.sql() needs duckdb and pyarrow: pip install 'mkts[sql]'\n")


def test_sql_over_rpc_without_duckdb_names_the_extra(three_years: Path, monkeypatch: Any
                                                     ) -> None:
    from mkts.rpc import DataService, RpcError

    monkeypatch.setitem(sys.modules, "duckdb", None)
    with mkts.engine.open(three_years, readonly=True) as db:
        service = DataService(db, "v")
        request = {"requests": [{"is_sqlstatement": True,
                                 "sql_statement": "SELECT * FROM `AAPL/1Min/OHLCV`"}]}
        with pytest.raises(RpcError, match=r"not available on this server: .*mkts\[sql\]"):
            service.call("DataService.Query", request)


def test_cli_sql_prints_like_query(three_years: Path, capsys: Any) -> None:
    from mkts.cli import main

    lo = Y2024 + 86_400 * 40
    stmt = f'SELECT Epoch, Close FROM "MSFT/1Min/OHLCV" WHERE Epoch <= {lo + 60}'
    assert main(["sql", "--root", str(three_years), stmt]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Epoch                  Close",
        "2024-02-10T00:00:00Z  1000.0",
        "2024-02-10T00:01:00Z  1001.0",
    ]
    assert main(["sql", "--root", str(three_years), "--csv", "--epoch", stmt]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Epoch,Close", f"{lo},1000.0", f"{lo + 60},1001.0"]
    assert main(["sql", "--root", str(three_years), 'SELECT * FROM "X/1Min/OHLCV"']) == 1
    assert "'X/1Min/OHLCV': no such bucket" in capsys.readouterr().err
