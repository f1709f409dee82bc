"""`mkts.export_parquet` and `mkts export`: the dataset read back with pyarrow and DuckDB
equals engine reads; re-running replaces exactly the partitions it writes, atomically.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mkts import engine

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ds = pytest.importorskip("pyarrow.dataset")
duckdb = pytest.importorskip("duckdb")

import mkts  # noqa: E402
from mkts.export import LOCK_FILE, PART_FILE, partition_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HOUR_START = 1_656_633_600  # 2022-07-01 00:00 UTC; two years of hourly bars: 2022..2024
HOURS = 2 * 365 * 24
SYMBOLS = ("AAPL", "MSFT", "ES=F")  # ES=F: a value Hive paths must encode
TICKS = "AAPL/1Min/TRADES"
NEW_YEAR_2023_NS = 1_672_531_200 * 1_000_000_000


def _bars(i: int) -> dict[str, np.ndarray]:
    n = np.arange(HOURS)
    return {"Epoch": HOUR_START + 3600 * n, "Close": (n * 2 + i).astype("f4"),
            "Volume": n * 10 + i, "Venue": np.array(["XNAS", "ARCX"] * (HOURS // 2), "U4")}


def _ticks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    t = NEW_YEAR_2023_NS + np.sort(rng.integers(-3_600 * 10**9, 3_600 * 10**9, 3_000))
    t[10:13] = t[10]
    return {"Epoch": t.astype("datetime64[ns]"), "Price": rng.normal(100, 1, len(t))}


def _build(root: str) -> None:
    with engine.open(root, sync="off") as db:
        for i, s in enumerate(SYMBOLS):
            db.write(f"{s}/1H/OHLCV", _bars(i))
        db.write(TICKS, _ticks(), variable=True)


@pytest.fixture(scope="module")
def universe(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = os.fspath(tmp_path_factory.mktemp("export") / "db")
    _build(root)
    return root


@pytest.fixture(scope="module")
def exported(universe: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any]:
    dest = os.fspath(tmp_path_factory.mktemp("export") / "dataset")
    return dest, mkts.export_parquet(universe, dest, progress=False)


def _engine_table(root: str, key: str, start: Any = None, end: Any = None) -> dict[str, list]:
    """The oracle: the engine's read as {column: values}, Epoch as exact ns."""
    with engine.open(root, readonly=True) as db:
        r = db.read(key, start, end)
    out = {"Epoch": r.timestamps.astype(np.int64).tolist()}
    out.update({c: np.asarray(r[c]).tolist() for c in r.columns[1:]})
    return out


def _file_table(path: str) -> dict[str, list]:
    t = pq.read_table(path)
    out = {"Epoch": t["Epoch"].cast(pa.int64()).to_pylist()}
    out.update({c: t[c].to_pylist() for c in t.column_names[1:]})
    return out


def _files(dest: str) -> dict[str, os.stat_result]:
    return {os.path.relpath(os.path.join(d, f), dest): os.stat(os.path.join(d, f))
            for d, _, names in os.walk(dest) for f in names}


def test_layout_types_and_values_equal_engine_reads(universe: str,
                                                    exported: tuple[str, Any]) -> None:
    dest, res = exported
    parts = sorted(p for p in _files(dest) if p != LOCK_FILE)
    want = sorted([os.path.join(partition_dir(f"{s}/1H/OHLCV", y), PART_FILE)
                   for s in SYMBOLS for y in (2022, 2023, 2024)]
                  + [os.path.join(partition_dir(TICKS, y), PART_FILE) for y in (2022, 2023)])
    assert parts == want
    assert "symbol=ES%3DF/timeframe=1H/attrgroup=OHLCV/year=2023/part-0.parquet" in parts
    assert (res.partitions, res.partial) == (11, 0)
    assert res.rows == 3 * HOURS + 3_000
    assert res.bytes == sum(os.path.getsize(os.path.join(dest, p)) for p in parts)
    f = pq.ParquetFile(os.path.join(dest, partition_dir(TICKS, 2023), PART_FILE))
    assert f.schema_arrow.field("Epoch").type == pa.timestamp("ns", tz="UTC")
    assert f.schema_arrow.names == ["Epoch", "Price", "Nanoseconds"]
    assert f.metadata.row_group(0).column(0).compression == "ZSTD"
    for key in [f"{s}/1H/OHLCV" for s in SYMBOLS] + [TICKS]:
        years = (2022, 2023) if key == TICKS else (2022, 2023, 2024)
        got: dict[str, list] = {}
        for y in years:
            for c, v in _file_table(os.path.join(dest, partition_dir(key, y), PART_FILE)).items():
                got.setdefault(c, []).extend(v)
        assert got == _engine_table(universe, key), key


def test_pyarrow_dataset_reads_hive_partitions(universe: str,
                                               exported: tuple[str, Any]) -> None:
    dest, _ = exported
    bars = ds.dataset(dest, format="parquet", partitioning="hive",
                      exclude_invalid_files=False).filter(ds.field("timeframe") == "1H")
    t = bars.to_table(filter=(ds.field("symbol") == "ES=F") & (ds.field("year") == 2023))
    t = t.sort_by("Epoch")
    want = _engine_table(universe, "ES=F/1H/OHLCV", "2023-01-01", "2023-12-31T23:59:59")
    assert t["Epoch"].cast(pa.int64()).to_pylist() == want["Epoch"]
    assert t["Venue"].to_pylist() == want["Venue"]
    assert set(t["attrgroup"].to_pylist()) == {"OHLCV"}


def test_duckdb_reads_the_export(universe: str, exported: tuple[str, Any]) -> None:
    dest, _ = exported
    con = duckdb.connect()
    rows = con.execute(
        "SELECT symbol, year, count(*), sum(Volume), min(Epoch), max(Epoch) FROM "
        f"read_parquet('{dest}/*/timeframe=1H/*/*/*.parquet', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY ALL").fetchall()
    want = []
    with engine.open(universe, readonly=True) as db:
        for s in sorted(SYMBOLS):
            for y in (2022, 2023, 2024):
                r = db.read(f"{s}/1H/OHLCV", f"{y}-01-01", f"{y}-12-31T23:59:59")
                want.append((s, y, len(r), int(r["Volume"].sum()),
                             int(r["Epoch"][0]), int(r["Epoch"][-1])))
    assert [(s, y, n, int(v), int(lo.timestamp()), int(hi.timestamp()))
            for s, y, n, v, lo, hi in rows] == want
    ticks = con.execute(
        "SELECT epoch_ns(Epoch), Price, Nanoseconds FROM "
        f"read_parquet('{dest}/symbol=AAPL/timeframe=1Min/*/*/*.parquet') "
        "ORDER BY Epoch, Nanoseconds").fetchall()
    want_t = _engine_table(universe, TICKS)
    # ORDER BY cannot see write order among equal times: compare as multisets
    assert sorted(ticks) == sorted(zip(want_t["Epoch"], want_t["Price"], want_t["Nanoseconds"],
                                       strict=True))


def test_range_export_holds_the_rows_in_range(universe: str, tmp_path: Path) -> None:
    dest = os.fspath(tmp_path / "cut")
    start, end = "2022-12-31T23:30:00.5", "2024-03-01"
    res = mkts.export_parquet(universe, dest, "AAPL/*/*", start, end, progress=False)
    # 1H: 2022 (cut), 2023, 2024 (cut); ticks: 2022 (cut), 2023
    assert (res.partitions, res.partial) == (5, 3)
    for key, years in (("AAPL/1H/OHLCV", (2022, 2023, 2024)), (TICKS, (2022, 2023))):
        got: dict[str, list] = {}
        for y in years:
            for c, v in _file_table(os.path.join(dest, partition_dir(key, y), PART_FILE)).items():
                got.setdefault(c, []).extend(v)
        assert got == _engine_table(universe, key, start, end), key


def test_rerun_replaces_only_the_partitions_it_writes(tmp_path: Path) -> None:
    root, dest = os.fspath(tmp_path / "db"), os.fspath(tmp_path / "dataset")
    _build(root)
    mkts.export_parquet(root, dest, progress=False)
    before = _files(dest)
    changed = os.path.join(partition_dir("AAPL/1H/OHLCV", 2024), PART_FILE)
    # a crashed export's leftover: hidden from readers, removed by the next export there
    leftover = os.path.join(dest, partition_dir("AAPL/1H/OHLCV", 2024), ".part-0.parquet.mkts-tmp")
    Path(leftover).write_bytes(b"half a file")
    assert len(ds.dataset(dest, partitioning="hive").files) == len(before) - 1
    with engine.open(root) as db:
        db.write("AAPL/1H/OHLCV", {"Epoch": np.array([1_704_067_200]), "Close": [-1.0],
                                   "Volume": [-1], "Venue": np.array(["NEW"], "U4")})
    res = mkts.export_parquet(root, dest, "AAPL/1H/OHLCV", start="2024-01-01", progress=False)
    assert (res.partitions, res.partial) == (1, 0)
    after = _files(dest)
    assert set(after) == set(before)  # the leftover is gone, nothing else appeared
    assert after[changed].st_ino != before[changed].st_ino
    assert _file_table(os.path.join(dest, changed))["Close"][0] == -1.0
    for path, st in before.items():
        if path not in (changed, LOCK_FILE):
            assert (after[path].st_ino, after[path].st_mtime_ns) == (st.st_ino, st.st_mtime_ns), \
                path


def test_second_concurrent_export_is_refused(universe: str, tmp_path: Path) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    fd = os.open(dest / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(engine.LockedError, match="another export"):
            mkts.export_parquet(universe, dest, "AAPL/1H/OHLCV", progress=False)
    finally:
        os.close(fd)
    assert not any(p.name.endswith(".parquet") for p in dest.rglob("*"))


def test_bad_destinations_and_patterns_are_named_errors(universe: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inside the database root"):
        mkts.export_parquet(universe, os.path.join(universe, "out"), progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        mkts.export_parquet(universe, tmp_path / "no" / "such" / "dir", progress=False)
    with pytest.raises(KeyError, match="NOPE"):
        mkts.export_parquet(universe, tmp_path / "out", "NOPE/*/*", progress=False)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "mkts.cli", "export", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_export(universe: str, tmp_path: Path) -> None:
    dest = os.fspath(tmp_path / "cli")
    p = _cli(universe, dest, "--pattern", "AAPL,MSFT/1H/OHLCV", "--start", "2023-01-01",
             "--end", "2023-12-31T23:59:59", "--progress")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"exported {2 * 8760} rows in 2 partition(s)"), p.stdout
    assert "export" in p.stderr  # the tqdm bar
    t = ds.dataset(dest, partitioning="hive").to_table()
    assert sorted(set(t["symbol"].to_pylist())) == ["AAPL", "MSFT"]
    assert set(t["year"].to_pylist()) == {2023} and t.num_rows == 2 * 8760
    p = _cli(universe, dest, "--pattern", "AAPL/1H/OHLCV", "--start", "2023-06-01", "--no-progress")
    assert p.returncode == 0 and "cuts the year of 1 partition" in p.stdout and not p.stderr
    p = _cli(universe + "-missing", dest)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("mkts export: database root ")
    p = _cli(universe, dest, "--start", "yesterday")
    assert p.returncode == 1 and p.stderr.startswith("mkts export: --start 'yesterday'")


def test_sealed_years_export_the_same_files(universe: str, exported: tuple[str, Any],
                                            tmp_path: Path) -> None:
    """docs/format.md "The three states of a year": an export of a root whose years are
    sealed writes the same rows as the export of the live years."""
    import shutil

    sealed_root = os.fspath(tmp_path / "sealed")
    shutil.copytree(universe, sealed_root)
    with engine.open(sealed_root) as db:
        assert len(db.seal(year=2022)) == 4 and db.seal(year=2023)  # ticks too
    dest = os.fspath(tmp_path / "dataset")
    mkts.export_parquet(sealed_root, dest, progress=False)
    before, _ = exported
    names = sorted(_files(before))
    assert sorted(_files(dest)) == names
    for rel in names:
        if rel.endswith(PART_FILE):
            assert _file_table(os.path.join(dest, rel)) == \
                _file_table(os.path.join(before, rel)), rel
