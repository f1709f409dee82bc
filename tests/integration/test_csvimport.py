"""CSV import: time formats, types, bad rows reported by line with nothing written, tick
files, and transactions (mkts/csvimport.py; `mkts import` in docs/cli.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mkts import csvimport, csvreader, engine
from mkts.csvimport import CsvProblem, import_csv, read_csv

REPO = Path(__file__).resolve().parents[2]
T0 = 1_704_187_800  # 2024-01-02 09:30:00 UTC


def write(tmp_path: Path, text: str, name: str = "in.csv") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


@pytest.fixture
def db(tmp_path: Path) -> Any:
    handle = engine.open(tmp_path / "db")
    yield handle
    handle.close()


# -- times ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected_ns", [
    ("1704187800", T0 * 10**9),
    ("1704187800.5", T0 * 10**9 + 500_000_000),
    ("2024-01-02 09:30:00", T0 * 10**9),
    ("2024-01-02T09:30:00Z", T0 * 10**9),
    ("2024-01-02T09:30:00.123456789Z", T0 * 10**9 + 123_456_789),
    ("2024-01-02 09:30:00,5", T0 * 10**9 + 500_000_000),
    ("2024-01-02T10:30:00+01:00", T0 * 10**9),
    ("2024-01-02 04:30:00-0500", T0 * 10**9),
    ("2024/01/02 09:30", T0 * 10**9),
    ("20240102 093000", T0 * 10**9),
    ("2024-01-02", (T0 - 9 * 3600 - 1800) * 10**9),
])
def test_time_formats(tmp_path: Path, value: str, expected_ns: int) -> None:
    data = read_csv(write(tmp_path, f'Epoch,V\n"{value}",1\n'))
    assert int(data.epoch_ns[0]) == expected_ns


@pytest.mark.parametrize("value", ["2024-01-02T09:30:00.123456789Z", "2024/01/02 04:30-05:00",
                                   "20240102T093000", "2024-01-02 09:30:00,5 UTC"])
def test_csv_times_and_query_times_are_read_by_the_same_parser(tmp_path: Path,
                                                               value: str) -> None:
    data = read_csv(write(tmp_path, f'Epoch,V\n"{value}",1\n'))
    assert int(data.epoch_ns[0]) == engine.to_epoch_ns(value)


def test_naive_times_are_read_in_the_given_zone_and_offsets_are_kept(tmp_path: Path) -> None:
    text = "time,V\n2024-01-02 04:30:00,1\n2024-07-02 05:30:00,2\n2024-01-02T09:30:00Z,3\n"
    data = read_csv(write(tmp_path, text), timezone="America/New_York")
    assert (data.epoch_ns // 10**9).tolist() == [T0, T0 + 182 * 86400, T0]


def test_epoch_units_and_an_explicit_format(tmp_path: Path) -> None:
    data = read_csv(write(tmp_path, "ts,V\n1704187800123,1\n"), epoch_unit="ms")
    assert int(data.epoch_ns[0]) == T0 * 10**9 + 123_000_000
    with pytest.raises(CsvProblem) as info:
        read_csv(write(tmp_path, "ts,V\n1704187800123,1\n"))
    assert "pass --epoch-unit ms" in info.value.problems[0]
    data = read_csv(write(tmp_path, "Date,V\n01/02/2024 09:30,1\n"), time_format="%m/%d/%Y %H:%M")
    assert int(data.epoch_ns[0]) == T0 * 10**9


def test_time_column_detection(tmp_path: Path) -> None:
    assert read_csv(write(tmp_path, "V,TimeStamp\n1,1704187800\n")).time_column == "TimeStamp"
    with pytest.raises(CsvProblem, match="no time column"):
        read_csv(write(tmp_path, "when,V\n1704187800,1\n"))
    data = read_csv(write(tmp_path, "when,V\n1704187800,1\n"), time_column="when")
    assert list(data.columns) == ["V"]


# -- bad rows -------------------------------------------------------------------------------
def test_bad_rows_are_reported_by_line_and_nothing_is_written(tmp_path: Path, db: Any) -> None:
    text = ("time,Open,Volume\n"
            "2024-01-02 09:30:00,1.5,10\n"
            "2024-01-02 09:31:00,abc,11\n"          # line 3
            "\n"
            "2024-13-02 09:32:00,1.5,12\n"          # line 5
            "2024-01-02 09:33:00,1.5\n"             # line 6
            "2024-01-02 09:34:00,1.5,1.5\n"         # line 7: Volume is an integer column
            "2024-01-02 09:35:00,,13\n")            # line 8
    path = write(tmp_path, text)
    with pytest.raises(CsvProblem) as info:
        import_csv(db, "BAD/1Min/OHLCV", path, types={"Volume": np.dtype("i8")})
    p = info.value
    assert p.bad_rows == 5
    assert p.summary == f"5 bad rows in {path}; nothing was written"
    assert p.problems == [  # in line order
        "line 3: column 'Open': 'abc' is not a number",
        "line 5: column 'time': '2024-13-02 09:32:00' is not a valid date",
        "line 6: has 2 fields; the header has 3",
        "line 7: column 'Volume': '1.5' is not an integer (the column stores integers and "
        "the value has a fraction)",
        "line 8: column 'Open': an empty value is not a number",
    ]
    assert db.list_keys() == []


def test_many_bad_rows_are_counted_past_the_listed_ones(tmp_path: Path) -> None:
    text = "time,V\n" + "".join(f"{T0 + i},{'1' if i == 0 else 'x'}\n" for i in range(101))
    with pytest.raises(CsvProblem) as info:
        read_csv(write(tmp_path, text))
    assert info.value.bad_rows == 100
    assert len(info.value.problems) == csvimport.MAX_REPORTED
    assert info.value.problems[0] == "line 3: column 'V': 'x' is not a number"


def test_header_problems(tmp_path: Path) -> None:
    for text, message in [("", "is empty"), ("time,V,V\n1,2,3\n", "appears twice"),
                          ("time,V\n2024-01-02,1\n1899-12-31,2\n", "outside the supported")]:
        with pytest.raises(CsvProblem) as info:
            read_csv(write(tmp_path, text))
        assert message in info.value.summary + " ".join(info.value.problems)


def test_quoting_bom_and_blank_lines(tmp_path: Path) -> None:
    text = '\ufefftime,"Close"\r\n"2024-01-02 09:30:00","1.5"\r\n\r\n2024-01-02 09:31:00,2\r\n'
    data = read_csv(write(tmp_path, text))
    assert data.columns["Close"].tolist() == [1.5, 2.0]
    assert data.time_column == "time"


# -- types and existing buckets -------------------------------------------------------------
def test_new_bucket_types_are_inferred_or_given(tmp_path: Path, db: Any) -> None:
    text = "time,Open,Volume,Venue\n2024-01-02 09:30:00,1.5,10,XNAS\n2024-01-02 09:31:00,2,11,ARCA\n"
    res = import_csv(db, "TYP/1Min/OHLCV", write(tmp_path, text),
                     types={"Open": np.dtype("f4"), "Venue": np.dtype("U4")})
    assert res.rows == 2 and res.transactions == 1 and res.created
    assert db.info("TYP/1Min/OHLCV")["columns"] == {"Epoch": "i8", "Open": "f4", "Volume": "i8",
                                                   "Venue": "U4"}
    r = db.read("TYP/1Min/OHLCV")
    assert r["Venue"].tolist() == ["XNAS", "ARCA"]
    res = import_csv(db, "SKIP/1Min/OHLCV", write(tmp_path, text), skip=("Venue",))
    assert list(db.info("SKIP/1Min/OHLCV")["columns"]) == ["Epoch", "Open", "Volume"]


def test_an_existing_bucket_decides_the_types(tmp_path: Path, db: Any) -> None:
    db.write("EX/1Min/OHLCV", {"Epoch": np.array([T0]), "Close": np.array([1.0], "f4"),
                               "Volume": np.array([1], "i4")})
    res = import_csv(db, "EX/1Min/OHLCV", write(tmp_path, "time,Volume,Close\n"
                                                          "2024-01-02 09:31:00,7,2.25\n"))
    assert not res.created
    r = db.read("EX/1Min/OHLCV")
    assert r["Volume"].tolist() == [1, 7] and r["Close"].tolist() == [1.0, 2.25]
    for text, message in [("time,Close\n2024-01-02,1\n", "'Volume' is not in the file"),
                          ("time,Close,Volume,X\n2024-01-02,1,1,1\n", "'X' is not in the bucket"),
                          ("time,Close,Volume\n2024-01-02,1,99999999999\n", "does not fit i4")]:
        with pytest.raises(CsvProblem) as info:
            import_csv(db, "EX/1Min/OHLCV", write(tmp_path, text))
        assert message in info.value.summary + " ".join(info.value.problems)
    with pytest.raises(CsvProblem, match="drop --dtype"):
        import_csv(db, "EX/1Min/OHLCV", write(tmp_path, "time,Close,Volume\n2024-01-02,1,1\n"),
                   types={"Close": np.dtype("f8")})
    assert len(db.read("EX/1Min/OHLCV")) == 2


# -- ticks and transactions -----------------------------------------------------------------
def test_tick_files_keep_nanoseconds(tmp_path: Path, db: Any) -> None:
    text = ("time,Price,Size\n2024-01-02T09:30:00.000000007Z,1.5,1\n"
            "2024-01-02T09:30:00.000000003Z,1.25,2\n2024-01-02T09:30:00.000000003Z,1.25,2\n")
    res = import_csv(db, "TK/1Sec/TRADE", write(tmp_path, text), variable=True)
    assert res.rows == 3
    r = db.read("TK/1Sec/TRADE")
    assert r["Nanoseconds"].tolist() == [3, 3, 7]
    assert (r["Epoch"] == T0).all()
    text = "Epoch,Nanoseconds,Price,Size\n1704187800,5,9.5,4\n"
    import_csv(db, "TK/1Sec/TRADE", write(tmp_path, text))
    assert db.read("TK/1Sec/TRADE")["Nanoseconds"].tolist() == [3, 3, 5, 7]
    with pytest.raises(CsvProblem, match="--ticks"):
        import_csv(db, "NEWTK/1Sec/TRADE", write(tmp_path, text))


def test_large_files_go_in_several_transactions(tmp_path: Path, db: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvimport, "TXN_BYTES", 1000)
    text = "time,V\n" + "".join(f"{T0 + 60 * i},{i}\n" for i in range(200))
    res = import_csv(db, "BIG/1Min/X", write(tmp_path, text))
    assert res.rows == 200 and res.transactions == 5  # 24-byte rows, 41 per transaction
    assert db.read("BIG/1Min/X")["V"].tolist() == list(range(200))


def test_chunked_parsing_keeps_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setattr(csvreader, "_CHUNK_ROWS", 7)
    text = "time,V\n" + "".join(f"{T0 + 60 * i},{'x' if i == 40 else i}\n" for i in range(50))
    with pytest.raises(CsvProblem) as info:
        read_csv(write(tmp_path, text))
    assert info.value.problems == ["line 42: column 'V': 'x' is not a number"]


def test_mkts_import_lists_bad_rows_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "time,V\n2024-01-02,1\n2024-01-02,oops\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "mkts.cli", "import", "--root", "db", "K/1D/X",
                          path], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                         timeout=60)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"{path}: line 3: column 'V': 'oops' is not a number",
        f"mkts import: 1 bad row in {path}; nothing was written",
    ]
    assert not (tmp_path / "db" / "K").exists()
