"""`mkts import` of history takes the bulk path (docs/format.md "Bulk loads"): a CSV file of
a closed year the bucket does not hold becomes `<YYYY>.sealed` directly, its rows not
logged, and reads equal the file; with ondiskagg attached the bars equal a scratch
aggregation; a file of ticks is bulk-loaded the same way; `mkts import` on the command
line does it too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from mkts import engine
from mkts.csvimport import import_csv
from mkts.plugins import aggfuncs, ondiskagg

REPO = Path(__file__).resolve().parents[2]
Y2023 = 1_672_531_200
KEY = "IMP/1Min/OHLCV"


def _bars_csv(tmp_path: Path, n: int = 20_000) -> tuple[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    cols = {"Epoch": Y2023 + 60 * np.arange(n, dtype=np.int64)}
    mid = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2)
    cols |= {"Open": mid, "High": np.round(mid + 0.25, 2), "Low": np.round(mid - 0.25, 2),
             "Close": np.round(mid + 0.01, 2), "Volume": rng.integers(1, 1000, n)}
    lines = ["Epoch,Open,High,Low,Close,Volume"]
    lines += [",".join(repr(v) for v in row) for row in zip(*(c.tolist() for c in cols.values()),
                                                           strict=True)]
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path), cols


def _files(root: Path, key: str = KEY) -> list[str]:
    return sorted(n for n in os.listdir(root / key) if n != "bucket.files")


def _wal_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "wal").iterdir())


def test_an_import_of_a_closed_year_is_a_sealed_file_that_reads_like_the_csv(
        tmp_path: Path) -> None:
    path, cols = _bars_csv(tmp_path)
    root = tmp_path / "db"
    with engine.open(root) as db:
        before = _wal_bytes(root)
        res = import_csv(db, KEY, path)
        assert res.rows == 20_000
        assert _files(root) == ["2023.sealed", "bucket.hdr"]
        assert _wal_bytes(root) - before < 8192  # 20 000 bars, not their ~1 MB of records
        got = db.read(KEY)
        for c, v in cols.items():
            assert np.asarray(got[c]).tolist() == v.tolist(), c


def test_an_import_with_ondiskagg_attached_is_sealed_and_aggregated(tmp_path: Path) -> None:
    path, _ = _bars_csv(tmp_path)
    root = tmp_path / "db"
    agg = ondiskagg.NewTrigger({"destinations": ["5Min", "1D"]})
    with engine.open(root, triggers=[("*/1Min/OHLCV", agg)]) as db:
        import_csv(db, KEY, path)
        assert db.flush(timeout=60)
        assert _files(root) == ["2023.sealed", "bucket.hdr"]
        r = db.read(KEY)
        base = {c: np.asarray(r[c]) for c in r.columns}
        for d in ("5Min", "1D"):
            exp = aggfuncs.aggregate(base, db.calendar, d)
            got = db.read(f"IMP/{d}/OHLCV")
            for c, v in exp.items():
                np.testing.assert_array_equal(np.asarray(got[c]), v, err_msg=f"{d} {c}")


def test_an_import_of_ticks_is_a_sealed_tick_file(tmp_path: Path) -> None:
    n = 15_000
    t = Y2023 * 10**9 + np.arange(n, dtype=np.int64) * 333_333_333
    lines = ["Epoch,Nanoseconds,Price,Size"]
    lines += [f"{e},{ns},{p!r},{s}" for e, ns, p, s in zip(
        (t // 10**9).tolist(), (t % 10**9).tolist(),
        np.round(10 + np.arange(n) * 0.01, 2).tolist(), range(n), strict=True)]
    path = tmp_path / "ticks.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    root = tmp_path / "db"
    with engine.open(root) as db:
        import_csv(db, "IMP/1Sec/TRADE", str(path), variable=True)
        assert _files(root, "IMP/1Sec/TRADE") == ["2023.sealed", "bucket.hdr"]
        got = db.read("IMP/1Sec/TRADE")
        back = np.asarray(got["Epoch"]) * 10**9 + np.asarray(got["Nanoseconds"])
        assert back.tolist() == t.tolist()
        assert np.asarray(got["Size"]).tolist() == list(range(n))


def test_mkts_import_on_the_command_line_bulk_loads(tmp_path: Path) -> None:
    path, cols = _bars_csv(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "mkts.cli", "import", "--root",
                          str(tmp_path / "db"), KEY, path], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path), timeout=120)
    assert res.returncode == 0, res.stderr
    assert _files(tmp_path / "db") == ["2023.sealed", "bucket.hdr"]
    with engine.open(tmp_path / "db", readonly=True) as db:
        assert np.asarray(db.read(KEY)["Close"]).tolist() == cols["Close"].tolist()
