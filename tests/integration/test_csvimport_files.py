"""CSV import of files as vendors and `mkts query --csv` write them (issue 14, items 6-9):
header names in any case, Date and Time columns, --rename; type inference that does not
trap later files; delimiters and duplicate intervals; one file holding many buckets
(--symbol-column, --key-column) and the round trip of the multi-bucket CSV."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mkts import csvimport, csvreader, engine
from mkts.csvimport import CsvProblem, import_csv, read_csv
from mkts.plugins import ondiskagg

REPO = Path(__file__).resolve().parents[2]
T0 = 1_704_187_800  # 2024-01-02 09:30:00 UTC
LOWER = ("timestamp,open,high,low,close,volume\n"
         "2024-01-02 09:30:00,10,11,9,10,100\n"
         "2024-01-02 09:31:00,10,12,10,11,200\n")


def write(tmp_path: Path, text: str, name: str = "in.csv") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def cli(tmp_path: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("MKTS_DEBUG", None)
    res = subprocess.run([sys.executable, "-m", "mkts.cli", *args], capture_output=True,
                         text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    assert (res.returncode == 0) == ok, res.stderr
    return res


# -- 6: header names ------------------------------------------------------------------------
def test_lowercase_headers_make_an_ohlcv_bucket_that_ondiskagg_aggregates(tmp_path: Path
                                                                          ) -> None:
    trig = ondiskagg.NewTrigger({"destinations": ["5Min"], "batch_ms": 0})
    with engine.open(tmp_path / "db", triggers=[("*/1Min/OHLCV", trig)]) as db:
        res = import_csv(db, "LOW/1Min/OHLCV", write(tmp_path, LOWER))
        db.wait_for_triggers()
        assert list(db.info("LOW/1Min/OHLCV")["columns"]) == ["Epoch", "Open", "High", "Low",
                                                              "Close", "Volume"]
        assert res.columns["Open"] == "f8"
        bar = db.read("LOW/5Min/OHLCV")
        assert bar["High"].tolist() == [12.0] and bar["Volume"].tolist() == [300]
        # and into the existing bucket, lowercase again: no advice to --skip open
        text = "Time,OPEN,High,low,Close,volume\n2024-01-02 09:32:00,11,11,8,9,300\n"
        import_csv(db, "LOW/1Min/OHLCV", write(tmp_path, text))
        assert db.read("LOW/1Min/OHLCV")["Low"].tolist() == [9.0, 10.0, 8.0]


def test_date_and_time_columns_are_combined_in_the_database_zone(tmp_path: Path) -> None:
    text = ("Date,Time,Open,High,Low,Close,Volume\n"
            "2024-01-02,04:30:00,1,1,1,1,1\n"
            "2024-07-02,05:30,2,2,2,2,2\n")
    with engine.open(tmp_path / "ny", timezone="America/New_York") as db:
        import_csv(db, "DT/1Min/OHLCV", write(tmp_path, text))
        r = db.read("DT/1Min/OHLCV")
        assert r["Epoch"].tolist() == [T0, T0 + 182 * 86400]
    data = read_csv(write(tmp_path, "DATE,TIME,V\n20240102,093000,1\n"))
    assert data.time_column == "DATE+TIME" and data.epoch_ns.tolist() == [T0 * 10**9]
    data = read_csv(write(tmp_path, "Epoch,Date,Time,V\n1704187800,x,y,1\n"))
    assert data.time_column == "Epoch" and list(data.columns) == ["Date", "Time", "V"]


def test_rename_maps_other_names(tmp_path: Path, db: Any) -> None:
    text = "ts,o,h,l,last,vol\n1704187800,1,2,0.5,1.5,10\n"
    import_csv(db, "RN/1Min/OHLCV", write(tmp_path, text),
               rename={"o": "Open", "h": "High", "l": "Low", "last": "Close", "vol": "Volume"})
    assert list(db.info("RN/1Min/OHLCV")["columns"]) == ["Epoch", "Open", "High", "Low",
                                                         "Close", "Volume"]
    with pytest.raises(CsvProblem, match="--rename nope=X: 'nope' is not a column"):
        read_csv(write(tmp_path, text), rename={"nope": "X"})
    with pytest.raises(CsvProblem, match="both mean 'Open'"):
        read_csv(write(tmp_path, "time,open,Open\n1704187800,1,2\n"))


# -- 7: types ---------------------------------------------------------------------------------
def test_whole_number_prices_make_float_columns(tmp_path: Path, db: Any) -> None:
    import_csv(db, "P/1Min/OHLCV", write(tmp_path, LOWER))
    cols = db.info("P/1Min/OHLCV")["columns"]
    assert [cols[c] for c in ("Open", "High", "Low", "Close", "Volume")] == \
        ["f8", "f8", "f8", "f8", "i8"]
    import_csv(db, "P/1Min/OHLCV", write(tmp_path, "time,Open,High,Low,Close,Volume\n"
                                                   "2024-01-02 09:32:00,1.25,1.5,1,1.25,1\n"))
    assert db.read("P/1Min/OHLCV")["Open"].tolist() == [10.0, 10.0, 1.25]
    import_csv(db, "P4/1Min/OHLCV", write(tmp_path, LOWER), types={"Open": np.dtype("f4"),
                                                                    "Volume": np.dtype("f8")})
    cols = db.info("P4/1Min/OHLCV")["columns"]
    assert read_csv(write(tmp_path, LOWER), hints={"open": "f4", "VOLUME": "f4"}).columns[
        "Volume"].dtype == np.float32  # --dtype names match as the header's do
    assert cols["Open"] == "f4" and cols["High"] == "f8" and cols["Volume"] == "f8"


def test_whole_valued_floats_go_into_integer_columns(tmp_path: Path, db: Any) -> None:
    import_csv(db, "V/1Min/OHLCV", write(tmp_path, LOWER))
    import_csv(db, "V/1Min/OHLCV", write(tmp_path, "time,Open,High,Low,Close,Volume\n"
                                                   "2024-01-02 09:32:00,1,1,1,1,100.0\n"
                                                   "2024-01-02 09:33:00,1,1,1,1,2e2\n"))
    assert db.read("V/1Min/OHLCV")["Volume"].tolist() == [100, 200, 100, 200]
    with pytest.raises(CsvProblem) as info:
        import_csv(db, "V/1Min/OHLCV", write(tmp_path, "time,Open,High,Low,Close,Volume\n"
                                                       "2024-01-02 09:34:00,1,1,1,1,100.5\n"))
    assert info.value.problems == ["line 2: column 'Volume': '100.5' is not an integer (the "
                                   "column stores integers and the value has a fraction)"]


def test_text_columns_are_as_wide_as_the_whole_file(tmp_path: Path, db: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvreader, "_CHUNK_ROWS", 2)
    text = "time,Close,Venue\n" + "".join(
        f"{T0 + 60 * i},1.5,{'X' if i < 4 else 'LONGER'}\n" for i in range(6))
    res = import_csv(db, "TX/1Min/Q", write(tmp_path, text))
    assert res.columns == {"Close": "f8", "Venue": "U6"}
    assert db.read("TX/1Min/Q")["Venue"].tolist() == ["X"] * 4 + ["LONGER"] * 2
    import_csv(db, "TX/1Min/Q", write(tmp_path, text))  # the same input again
    with pytest.raises(CsvProblem) as info:
        import_csv(db, "TX/1Min/Q", write(tmp_path, f"time,Close,Venue\n{T0},1,LONGEST\n"))
    assert info.value.problems == ["line 2: column 'Venue': 'LONGEST' has 7 characters; the "
                                   "bucket stores at most 6 (U6)"]
    with pytest.raises(CsvProblem, match="column 'Venue' holds text of up to 300 characters; "
                                         "string columns hold at most 256"):
        read_csv(write(tmp_path, f"time,Venue\n{T0},{'y' * 300}\n"))


# -- 8: delimiters, duplicates, line order ------------------------------------------------------
@pytest.mark.parametrize("delim", [";", "\t", "|", ","])
def test_delimiters_are_detected(tmp_path: Path, delim: str) -> None:
    text = LOWER.replace(",", delim).replace("09:30:00", "09:30:00")
    data = read_csv(write(tmp_path, text))
    assert list(data.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert data.columns["Volume"].tolist() == [100, 200]


def test_an_explicit_delimiter(tmp_path: Path) -> None:
    text = "time;Note\n2024-01-02;a,b\n"
    assert read_csv(write(tmp_path, text))  # detected: ';' counts more than ',' in the header
    data = read_csv(write(tmp_path, "time,x;y\n2024-01-02,1\n"), delimiter=",")
    assert list(data.columns) == ["x;y"]
    data = read_csv(write(tmp_path, "time\tV\n2024-01-02\t1\n"), delimiter="tab")
    assert data.columns["V"].tolist() == [1]


def test_duplicate_intervals_are_counted_and_the_last_wins(tmp_path: Path, db: Any) -> None:
    text = "time,Close\n2024-01-02 09:30:00,1\n2024-01-02 09:30:30,2\n2024-01-02 09:31:00,3\n"
    res = import_csv(db, "D/1Min/X", write(tmp_path, text))
    assert res.rows == 3 and res.duplicates == 1 and res.buckets[0].intervals == 2
    assert db.read("D/1Min/X")["Close"].tolist() == [2.0, 3.0]
    path = write(tmp_path, "time,Close\n2024-01-02 09:30:00,1\n2024-01-02 09:30:00,2\n")
    out = cli(tmp_path, "import", "--root", "db2", "K/1Min/X", path).stdout
    assert out.strip() == ("read 2 rows into K/1Min/X in one transaction, 1 interval written, "
                           "1 duplicate interval: last wins (new bucket: Close f8)")
    out = cli(tmp_path, "import", "--root", "db2", "K/1Min/X",
              write(tmp_path, text, "three.csv")).stdout
    assert out.startswith("read 3 rows into K/1Min/X in one transaction, 2 intervals written, "
                          "1 duplicate interval: last wins")
    out = cli(tmp_path, "import", "--root", "db2", "K2/1Min/X", path,
              "--types", "Close=f4").stdout  # --types: the old name of --dtype still parses
    assert "read 2 rows" in out


# -- 9: many buckets in one file ------------------------------------------------------------------
def test_a_symbol_column_fills_one_bucket_per_symbol(tmp_path: Path, db: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    text = ("Symbol,timestamp,open,high,low,close,volume\n"
            "AAPL,2024-01-02 09:30:00,10,11,9,10,100\n"
            "MSFT,2024-01-02 09:30:00,20,21,19,20.5,7\n"
            "AAPL,2024-01-02 09:31:00,10,12,10,11,200\n")
    calls: list[list[str]] = []
    real = db.write_many
    monkeypatch.setattr(db, "write_many", lambda items, **kw: (calls.append(list(items)),
                                                                  real(items, **kw))[1])
    res = import_csv(db, "*/1Min/OHLCV", write(tmp_path, text), symbol_column="Symbol")
    assert calls == [["AAPL/1Min/OHLCV", "MSFT/1Min/OHLCV"]]  # one transaction
    assert res.rows == 3 and res.transactions == 1
    assert db.read("AAPL/1Min/OHLCV")["Close"].tolist() == [10.0, 11.0]
    assert db.read("MSFT/1Min/OHLCV")["Close"].tolist() == [20.5]
    assert list(db.info("MSFT/1Min/OHLCV")["columns"]) == ["Epoch", "Open", "High", "Low",
                                                           "Close", "Volume"]
    monkeypatch.setattr(csvimport, "TXN_BYTES", 100)  # 56-byte rows: one per transaction
    res = import_csv(db, "*/1Min/OHLCV", write(tmp_path, text), symbol_column="Symbol")
    assert res.transactions == 3 and len(db.read("AAPL/1Min/OHLCV")) == 2
    text2 = text + "MSFT,2024-01-02 09:31:00,1,1,1,1,1.5\nIBM,2024-01-02 09:30:00,1,1,1,1,2\n"
    res = import_csv(db, "*/5Min/OHLCV", write(tmp_path, text2), symbol_column="Symbol")
    assert {b.key: b.columns["Volume"] for b in res.buckets} == {  # one type for all new ones
        "AAPL/5Min/OHLCV": "f8", "MSFT/5Min/OHLCV": "f8", "IBM/5Min/OHLCV": "f8"}
    bad = text + ",2024-01-02 09:32:00,1,1,1,1,1\nA/B,2024-01-02 09:32:00,1,1,1,1,1\n"
    with pytest.raises(CsvProblem) as info:
        import_csv(db, "*/1Min/OHLCV", write(tmp_path, bad), symbol_column="Symbol")
    assert [p[:30] for p in info.value.problems] == ["line 5: column 'Symbol': an em",
                                                     "line 6: column 'Symbol': 'A/B'"]
    with pytest.raises(CsvProblem, match="the key is '\\*/TIMEFRAME/TYPE'"):
        import_csv(db, "AAPL/1Min/OHLCV", write(tmp_path, text), symbol_column="Symbol")


def _query_csv(db: Any, pattern: str, path: Path) -> None:
    """The multi-bucket CSV of `mkts query PATTERN --csv`: Key, Epoch, then the union of the
    buckets' other columns in first-seen order (Nanoseconds included), empty where a bucket
    lacks a column; times in UTC."""
    results = db.query(pattern)
    names: list[str] = []
    for r in results.values():
        for c in r.columns:
            if c not in ("Epoch", *names):
                names.append(c)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Key", "Epoch", *names])
        for key, r in results.items():
            for i in range(len(r)):
                t = np.datetime64(int(r["Epoch"][i]), "s")
                if "Nanoseconds" in r:  # as the table prints tick times: with the fraction
                    t = t.astype("datetime64[ns]") + int(r["Nanoseconds"][i])
                t = t.astype(str) + "Z"
                w.writerow([key, t, *(r[c][i] if c in r else "" for c in names)])


def test_the_multi_bucket_csv_of_query_round_trips(tmp_path: Path) -> None:
    with engine.open(tmp_path / "src") as src:
        e = np.array([T0, T0 + 60, T0 + 120])
        src.write("AAPL/1Min/OHLCV", {"Epoch": e, "Open": np.array([1.5, 2, 3]),
                                      "High": np.array([2.0, 3, 4]), "Low": np.array([1, 1.5, 2]),
                                      "Close": np.array([1.75, 2.5, 3.5]),
                                      "Volume": np.array([10, 20, 30])})
        src.write("TEST/1Min/OHLCV", {"Epoch": e[:2], "Volume": np.array([5, 6]),
                                      "Close": np.array([9.5, 8.25]),
                                      "High": np.array([10.0, 9]), "Low": np.array([9.0, 8]),
                                      "Open": np.array([9.25, 8.5])})
        src.write("AAPL/1Sec/TRADE", {"Epoch": np.array([T0, T0, T0 + 1]),
                                      "Nanoseconds": np.array([5, 7, 0], "i4"),
                                      "Price": np.array([1.5, 1.25, 1.0]),
                                      "Size": np.array([100, 3, 1]),
                                      "Venue": np.array(["XNAS", "ARCA", "X"])}, variable=True)
        # types as a fresh root infers them from text (i8, f8, U as wide as the longest)
        path = tmp_path / "all.csv"
        _query_csv(src, "*/*/*", path)
        keys = src.list_keys()
        with engine.open(tmp_path / "dst") as dst:
            res = import_csv(dst, "*/*/*", str(path), key_column="Key")
            assert res.transactions == 1 and res.rows == 8
            assert dst.list_keys() == keys
            for key in keys:
                a, b = src.info(key), dst.info(key)
                assert (b["kind"], b["columns"]) == (a["kind"], a["columns"]), key
                ra, rb = src.read(key), dst.read(key)
                # the union header does not keep a bucket's column order; names and types do
                assert sorted(ra.columns) == sorted(rb.columns) and len(ra) == len(rb), key
                for c in ra.columns:
                    assert ra[c].dtype == rb[c].dtype, (key, c)
                    assert ra[c].tolist() == rb[c].tolist(), (key, c)
            # again into the existing buckets: each keeps its schema; ticks are appended
            import_csv(dst, None, str(path), key_column="Key")  # type: ignore[arg-type]
            assert dst.read("TEST/1Min/OHLCV")["Volume"].tolist() == [5, 6]
            assert len(dst.read("AAPL/1Sec/TRADE")) == 6


def test_key_column_rows_of_an_existing_bucket_must_fit_it(tmp_path: Path, db: Any) -> None:
    db.write("A/1Min/X", {"Epoch": np.array([T0]), "Close": np.array([1.0])})
    text = "Key,Epoch,Close,Extra\nA/1Min/X,1704187860,2,\nB/1Min/X,1704187860,2,7\n" \
           "A/1Min/X,1704187920,3,9\nnot a key,1704187860,1,1\n"
    with pytest.raises(CsvProblem) as info:
        import_csv(db, "*/*/*", write(tmp_path, text), key_column="Key")
    assert [p.split(":")[0] for p in info.value.problems] == ["line 4", "line 5"]
    assert "column 'Extra': bucket A/1Min/X has no such column" in info.value.problems[0]
    assert db.list_keys() == ["A/1Min/X"] and len(db.read("A/1Min/X")) == 1
    res = import_csv(db, "*/*/*", write(tmp_path, text.rsplit("A/1Min/X,17041879", 1)[0]),
                     key_column="Key")
    assert [(b.key, b.created, b.columns) for b in res.buckets] == [
        ("A/1Min/X", False, {"Close": "f8"}), ("B/1Min/X", True, {"Close": "f8", "Extra": "i8"})]


def test_mkts_import_with_a_key_column_and_no_key(tmp_path: Path) -> None:
    path = write(tmp_path, "Key;Epoch;Close\nA/1Min/X;1704187800;1\nB/1D/Y;1704187800;2\n")
    out = cli(tmp_path, "import", "--root", "db", "--key-column", "Key", path).stdout
    assert out.splitlines() == ["imported 2 rows into 2 buckets (2 new) in one transaction",
                                "  A/1Min/X: read 1 rows (new bucket: Close f8)",
                                "  B/1D/Y: read 1 rows (new bucket: Close f8)"]
    err = cli(tmp_path, "import", "--root", "db", path, ok=False).stderr
    assert "--key-column" in err


def test_empty_values_are_no_text(tmp_path: Path, db: Any,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvreader, "_CHUNK_ROWS", 2)
    text = f"time,Close,Note,Volume\n{T0},1,,\n{T0 + 60},1,,\n{T0 + 120},1,later,\n"
    with pytest.raises(CsvProblem, match="column 'Volume' is empty on every row; leave it out "
                                         "with --skip Volume"):
        read_csv(write(tmp_path, text))
    data = read_csv(write(tmp_path, text), skip=("Volume",))
    assert data.columns["Note"].tolist() == ["", "", "later"]
    text = f"time,Close\n{T0},1\n{T0 + 60},1\n{T0 + 120},\n"
    with pytest.raises(CsvProblem) as info:
        read_csv(write(tmp_path, text))
    assert info.value.problems == ["line 4: column 'Close': an empty value is not a number"]
    assert import_csv(db, "E/1Min/X", write(tmp_path, "time,Close\n")).rows == 0
