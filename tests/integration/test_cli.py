"""Every `mkts` command through a subprocess: output, exit status, and errors as one line on
stderr (never a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["init", "start", "query", "import", "list", "info", "destroy", "delete", "alter",
            "check", "wal", "compact", "seal", "rebuild-aggregates", "export", "bench"]
BARS_CSV = """time,Open,High,Low,Close,Volume
2024-01-02 09:30:00,10,11,9,10.5,100
2024-01-02 09:31:00,10.5,12,10,11.5,200
2024-01-02 09:32:00,11.5,11.5,8,9,300
2024-01-02 09:35:00,9,9.5,8.5,9.25,400
"""

Run = Callable[..., subprocess.CompletedProcess[str]]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("MKTS_DEBUG", None)
    return env


@pytest.fixture
def mkts(tmp_path: Path) -> Run:
    """`mkts(*args, ok=True)` runs the CLI in tmp_path; checks no traceback ever appears and,
    with ok=True/False, the exit status."""

    def run(*args: str, ok: bool | None = True, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([sys.executable, "-m", "mkts.cli", *args], capture_output=True,
                             text=True, cwd=str(tmp_path), env=_env(), timeout=120,
                             input=stdin)
        assert "Traceback" not in res.stderr, res.stderr
        if ok is True:
            assert res.returncode == 0, res.stderr
        elif ok is False:
            assert res.returncode != 0, res.stdout
        return res

    return run


def one_error_line(res: subprocess.CompletedProcess[str], command: str) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"mkts {command}: "), lines[0]
    return lines[0]


@pytest.fixture
def configured(tmp_path: Path, mkts: Run) -> Path:
    """./mkts.yml (from `mkts init`) with a root under tmp_path, and 1Min bars imported."""
    mkts("init")
    (tmp_path / "bars.csv").write_text(BARS_CSV)
    mkts("import", "AAPL/1Min/OHLCV", "bars.csv")
    return tmp_path


# -- help and usage -----------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(mkts: Run, command: str) -> None:
    res = mkts(command, "--help")
    assert res.stdout.startswith(f"usage: mkts {command}")


def test_no_command_prints_help_and_fails(mkts: Run) -> None:
    res = mkts(ok=False)
    assert res.returncode == 2 and "COMMAND" in res.stderr
    assert mkts("--version").stdout.strip() == "mkts 0.1.0"


# -- init -----------------------------------------------------------------------------------
def test_init_writes_the_commented_default_and_refuses_to_overwrite(tmp_path: Path,
                                                                    mkts: Run) -> None:
    res = mkts("init")
    text = (tmp_path / "mkts.yml").read_text()
    assert text == (REPO / "mkts.yml").read_text()
    assert "wrote mkts.yml" in res.stdout
    assert "already exists" in one_error_line(mkts("init", ok=False), "init")
    mkts("init", "-c", "other.yml", "--root-directory", "/tmp/elsewhere")
    assert yaml.safe_load((tmp_path / "other.yml").read_text())["root_directory"] == \
        "/tmp/elsewhere"
    mkts("init", "--force")


# -- import, query, list, info --------------------------------------------------------------
def test_import_then_query_as_table_and_csv(configured: Path, mkts: Run) -> None:
    out = mkts("query", "AAPL/1Min/OHLCV").stdout.splitlines()
    assert out[0].split() == ["Epoch", "Open", "High", "Low", "Close", "Volume"]
    assert out[1].split() == ["2024-01-02T09:30:00Z", "10.0", "11.0", "9.0", "10.5", "100"]
    assert len(out) == 5
    csv_out = mkts("query", "AAPL/1Min/OHLCV", "--csv", "--limit", "2", "--columns",
                   "Close,Volume").stdout
    assert csv_out == ("Epoch,Close,Volume\n2024-01-02T09:32:00Z,9.0,300\n"
                       "2024-01-02T09:35:00Z,9.25,400\n")
    first = mkts("query", "AAPL/1Min/OHLCV", "--csv", "--limit", "1", "--first", "--epoch",
                 "--columns", "Open").stdout
    assert first == "Epoch,Open\n1704187800,10.0\n"
    ranged = mkts("query", "AAPL/1Min/OHLCV", "--csv", "--start", "2024-01-02T09:31:00Z",
                  "--end", "1704187920", "--columns", "Volume").stdout
    assert ranged.splitlines()[1:] == ["2024-01-02T09:31:00Z,200", "2024-01-02T09:32:00Z,300"]
    # the ondiskagg trigger from the default mkts.yml made the 5Min bars during the import
    agg = mkts("query", "AAPL/5Min/OHLCV", "--csv").stdout.splitlines()
    assert agg[1:] == ["2024-01-02T09:30:00Z,10.0,12.0,8.0,9.0,600",
                       "2024-01-02T09:35:00Z,9.0,9.5,8.5,9.25,400"]


def test_query_several_buckets_and_csv_round_trip(configured: Path, mkts: Run) -> None:
    (configured / "msft.csv").write_text(BARS_CSV.replace(",10,", ",20,"))
    mkts("import", "MSFT/1Min/OHLCV", "msft.csv")
    res = mkts("query", "MSFT,AAPL/1Min/OHLCV", "--csv", "--limit", "1", "--columns", "Open")
    assert res.stdout.splitlines() == ["Key,Epoch,Open", "MSFT/1Min/OHLCV,2024-01-02T09:35:00Z,9.0",
                                       "AAPL/1Min/OHLCV,2024-01-02T09:35:00Z,9.0"]
    exported = mkts("query", "MSFT/1Min/OHLCV", "--csv").stdout
    (configured / "copy.csv").write_text(exported)
    mkts("import", "COPY/1Min/OHLCV", "copy.csv", "--types", "Volume=i8")
    assert mkts("query", "COPY/1Min/OHLCV", "--csv").stdout == exported


def test_query_of_buckets_with_different_columns_is_one_unambiguous_table(
        tmp_path: Path, mkts: Run) -> None:
    (tmp_path / "test.csv").write_text("Epoch,Volume,Close,High,Low,Open\n"
                                       "1704187800,5,1.5,2.5,1.25,1.75\n")
    (tmp_path / "bars.csv").write_text(BARS_CSV)
    (tmp_path / "ticks.csv").write_text("time,Price,Size\n2024-01-02T09:30:00.5Z,7.5,3\n")
    mkts("import", "--root", "db", "TEST/1Min/OHLCV", "test.csv")
    mkts("import", "--root", "db", "AAPL/1Min/OHLCV", "bars.csv")
    mkts("import", "--root", "db", "--ticks", "TICK/1Min/OHLCV", "ticks.csv")
    res = mkts("query", "--root", "db", "*/1Min/*", "--limit", "1", "--first", "--csv")
    assert res.stdout.splitlines() == [
        "Key,Epoch,Open,High,Low,Close,Volume,Price,Size,Nanoseconds",
        "AAPL/1Min/OHLCV,2024-01-02T09:30:00Z,10.0,11.0,9.0,10.5,100,,,",
        "TEST/1Min/OHLCV,2024-01-02T09:30:00Z,1.75,2.5,1.25,1.5,5,,,",
        "TICK/1Min/OHLCV,2024-01-02T09:30:00.500000000Z,,,,,,7.5,3,500000000"]
    raw = mkts("query", "--root", "db", "TICK,TEST/1Min/*", "--first", "--limit", "1", "--csv",
               "--epoch").stdout.splitlines()
    assert raw == ["Key,Epoch,Price,Size,Nanoseconds,Volume,Close,High,Low,Open",
                   "TICK/1Min/OHLCV,1704187800,7.5,3,500000000,,,,,",
                   "TEST/1Min/OHLCV,1704187800,,,,5,1.5,2.5,1.25,1.75"]
    # a pattern that could match several buckets always has the Key column, even if one did
    assert mkts("query", "--root", "db", "TE*/1Min/OHLCV", "--csv", "--columns",
                "Open").stdout.splitlines() == ["Key,Epoch,Open",
                                                "TEST/1Min/OHLCV,2024-01-02T09:30:00Z,1.75"]
    # the table: one header per bucket, in that bucket's own columns
    table = mkts("query", "--root", "db", "TEST,TICK/1Min/OHLCV").stdout.splitlines()
    assert table[0] == "TEST/1Min/OHLCV (1 rows)"
    assert table[1].split() == ["Epoch", "Volume", "Close", "High", "Low", "Open"]
    assert table[2].split() == ["2024-01-02T09:30:00Z", "5", "1.5", "2.5", "1.25", "1.75"]
    assert table[4] == "TICK/1Min/OHLCV (1 rows)"
    assert table[5].split() == ["Epoch", "Price", "Size"]


def test_query_says_which_buckets_are_missing_or_empty(configured: Path, mkts: Run) -> None:
    res = mkts("query", "AAPL,NOPE,ZZ*/1Min/OHLCV", "--csv", "--limit", "1", "--columns",
               "Open")
    assert res.stdout.splitlines() == ["Key,Epoch,Open", "AAPL/1Min/OHLCV,2024-01-02T09:35:00Z,9.0"]
    assert res.stderr.splitlines() == ["mkts query: bucket NOPE/1Min/OHLCV does not exist",
                                       "mkts query: no bucket matches ZZ*/1Min/OHLCV"]
    res = mkts("query", "AAPL/1Min,1D/OHLCV", "--start", "2024-01-02T09:33:00Z", "--end",
               "2024-01-02T09:34:00Z")
    assert res.stderr.splitlines() == ["mkts query: AAPL/1Min/OHLCV: no rows in the range"]
    assert "AAPL/1D/OHLCV (1 rows)" in res.stdout
    line = one_error_line(mkts("query", "NOPE,NADA/1Min/OHLCV", ok=False), "query")
    assert "no bucket matches NOPE,NADA/1Min/OHLCV" in line


def test_list_and_info(configured: Path, mkts: Run) -> None:
    keys = mkts("list").stdout.split()
    assert keys == ["AAPL/15Min/OHLCV", "AAPL/1D/OHLCV", "AAPL/1H/OHLCV", "AAPL/1Min/OHLCV",
                    "AAPL/5Min/OHLCV"]
    assert mkts("list", "--symbols").stdout.split() == ["AAPL"]
    info = mkts("info", "AAPL/1Min/OHLCV").stdout
    assert "kind:       fixed" in info
    assert "columns:    Epoch i8, Open f8, High f8, Low f8, Close f8, Volume i8" in info
    assert "first:      2024-01-02T09:30:00Z" in info
    assert "last:       2024-01-02T09:35:00Z" in info
    assert "rows:       4" in info and "bytes:" not in info


def test_list_long_describes_each_bucket(tmp_path: Path, mkts: Run) -> None:
    (tmp_path / "bars.csv").write_text(BARS_CSV)
    (tmp_path / "ticks.csv").write_text("time,Price,Size\n2024-01-02T09:30:00.5Z,7.5,3\n"
                                        "2025-03-04T10:00:00.25Z,8.5,4\n")
    mkts("import", "--root", "db", "AAPL/1Min/OHLCV", "bars.csv")
    mkts("import", "--root", "db", "--ticks", "T/1Sec/TRADE", "ticks.csv")
    from mkts import engine

    with engine.open(tmp_path / "db") as db:
        db.create("EMPTY/1D/OHLCV", {"Epoch": "i8", "Close": "f8"})
    lines = mkts("list", "--root", "db", "--long").stdout.splitlines()
    assert lines[0].split() == ["KEY", "KIND", "FIRST", "LAST", "ROWS", "ALLOCATED", "APPARENT"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == ["AAPL/1Min/OHLCV", "EMPTY/1D/OHLCV", "T/1Sec/TRADE"]
    assert rows["AAPL/1Min/OHLCV"][1:5] == ["bars", "2024-01-02T09:30:00Z",
                                            "2024-01-02T09:35:00Z", "4"]
    assert rows["T/1Sec/TRADE"][1:5] == ["ticks", "2024-01-02T09:30:00.500000000Z",
                                         "2025-03-04T10:00:00.250000000Z", "2"]
    assert rows["EMPTY/1D/OHLCV"][1:5] == ["bars", "-", "-", "0"]
    for key, row in rows.items():
        files = [p for p in (tmp_path / "db" / key).iterdir() if p.is_file()]
        assert int(row[5]) == sum(p.stat().st_blocks * 512 for p in files)
        assert int(row[6]) == sum(p.stat().st_size for p in files)
    assert int(rows["AAPL/1Min/OHLCV"][6]) > 25_000_000  # a sparse year of 1Min slots
    assert mkts("list", "--root", "db", "-l", "T*/*/*").stdout.splitlines()[1].startswith(
        "T/1Sec/TRADE  ticks")
    assert mkts("list", "--root", "db", "-l", "NOPE/*/*").stdout == ""


def test_query_and_list_take_key_patterns(configured: Path, mkts: Run) -> None:
    (configured / "aax.csv").write_text(BARS_CSV)
    mkts("import", "AAX/1Min/OHLCV", "aax.csv")
    mkts("import", "MSFT/1Min/OHLCV", "aax.csv")
    res = mkts("query", "AA*/1Min/OHLCV", "--csv", "--limit", "1", "--columns", "Close")
    assert res.stdout.splitlines() == ["Key,Epoch,Close",
                                       "AAPL/1Min/OHLCV,2024-01-02T09:35:00Z,9.25",
                                       "AAX/1Min/OHLCV,2024-01-02T09:35:00Z,9.25"]
    assert mkts("list", "MSFT,AA*/1Min/*").stdout.split() == [
        "MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV", "AAX/1Min/OHLCV"]
    assert mkts("list", "*/1D/*", "--symbols").stdout.split() == ["AAPL", "AAX", "MSFT"]
    assert mkts("list", "NOPE*/*/*").stdout == ""
    line = one_error_line(mkts("list", "AA?/1Min/OHLCV", ok=False), "list")
    assert "the symbol part 'AA?' has a character that is not allowed" in line


def test_bad_keys_and_missing_buckets_are_one_line(configured: Path, mkts: Run) -> None:
    for args, command in [(("query", "../etc/1Min/OHLCV"), "query"),
                          (("query", "AAPL/1Min"), "query"),
                          (("query", "NOPE/1Min/OHLCV"), "query"),
                          (("info", "NOPE/1Min/OHLCV"), "info"),
                          (("destroy", "NOPE/1Min/OHLCV"), "destroy"),
                          (("compact", "AAPL/1Min"), "compact"),
                          (("query", "AAPL/1Min/OHLCV", "--start", "yesterday"), "query"),
                          (("query", "AAPL/1Min/OHLCV", "--columns", "Nope"), "query")]:
        res = mkts(*args, ok=False)
        assert res.returncode == 1
        line = one_error_line(res, command)
        assert len(line) < 300


def test_missing_config_and_missing_root_are_one_line(tmp_path: Path, mkts: Run) -> None:
    line = one_error_line(mkts("list", ok=False), "list")
    assert "mkts.yml not found" in line and "mkts init" in line
    line = one_error_line(mkts("list", "--root", "nowhere", ok=False), "list")
    assert "does not exist" in line
    (tmp_path / "bad.yml").write_text("root_directory: x\nwal: {sync: sometimes}\n")
    line = one_error_line(mkts("list", "-c", "bad.yml", ok=False), "list")
    assert "wal.sync" in line


def test_destroy_removes_the_bucket(configured: Path, mkts: Run) -> None:
    res = mkts("destroy", "--yes", "AAPL/5Min/OHLCV", stdin="")
    assert res.stdout.strip() == "destroyed AAPL/5Min/OHLCV"
    assert "AAPL/5Min/OHLCV" not in mkts("list").stdout.split()


def test_destroy_without_a_terminal_needs_yes(configured: Path, mkts: Run) -> None:
    line = one_error_line(mkts("destroy", "AAPL/5Min/OHLCV", stdin="y\n", ok=False), "destroy")
    assert "stdin is not a terminal; pass --yes" in line
    assert "AAPL/5Min/OHLCV" in mkts("list").stdout.split()


def _destroy_on_a_terminal(cwd: Path, answer: bytes) -> tuple[int, str, str]:
    """`mkts destroy AAPL/5Min/OHLCV` with stdin a pseudo-terminal on which `answer` is typed."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mkts.cli", "destroy", "AAPL/5Min/OHLCV"],
                                stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=str(cwd), env=_env(), text=True)
        os.write(master, answer)  # the terminal keeps the line until the prompt reads it
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    return proc.returncode, out, err


def test_destroy_asks_on_a_terminal(configured: Path, mkts: Run) -> None:
    status, out, err = _destroy_on_a_terminal(configured, b"n\n")
    assert status == 1 and out == ""
    assert err.startswith("delete bucket AAPL/5Min/OHLCV and all its data (2 rows in 2024)? "
                          "This cannot be undone. [y/N] ")
    assert err.endswith("mkts destroy: not confirmed; nothing was deleted\n")
    assert "AAPL/5Min/OHLCV" in mkts("list").stdout.split()
    status, out, err = _destroy_on_a_terminal(configured, b"y\n")
    assert status == 0 and out == "destroyed AAPL/5Min/OHLCV\n", err
    assert "AAPL/5Min/OHLCV" not in mkts("list").stdout.split()


def test_alter_adds_renames_and_drops_a_column(configured: Path, mkts: Run) -> None:
    res = mkts("alter", "AAPL/1Min/OHLCV", "add", "VWAP", "f8", "--fill", "1.5")
    assert res.stdout.splitlines() == [
        "AAPL/1Min/OHLCV: added column VWAP (f8)",
        "columns:    Epoch i8, Open f8, High f8, Low f8, Close f8, Volume i8, VWAP f8"]
    assert "1.5" in mkts("query", "AAPL/1Min/OHLCV", "--csv").stdout.splitlines()[1]
    mkts("alter", "AAPL/1Min/OHLCV", "rename", "VWAP", "Vwap")
    # Volume of a base is summed by the configured ondiskagg: its aggregates drop it too
    res = mkts("alter", "--yes", "AAPL/1Min/OHLCV", "drop", "Volume", stdin="")
    assert res.stdout.splitlines()[0] == "AAPL/1Min/OHLCV: dropped column Volume"
    assert "Volume" not in mkts("info", "AAPL/5Min/OHLCV").stdout
    assert mkts("check").returncode == 0


def test_alter_drop_without_a_terminal_needs_yes(configured: Path, mkts: Run) -> None:
    line = one_error_line(mkts("alter", "AAPL/1Min/OHLCV", "drop", "Volume", stdin="y\n",
                               ok=False), "alter")
    assert "stdin is not a terminal; pass --yes" in line
    assert "Volume" in mkts("info", "AAPL/1Min/OHLCV").stdout


def test_alter_drop_asks_on_a_terminal(configured: Path, mkts: Run) -> None:
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mkts.cli", "alter", "AAPL/1Min/OHLCV",
                                 "drop", "Volume"], stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=str(configured), env=_env(),
                                text=True)
        os.write(master, b"n\n")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 1 and out == ""
    assert err.startswith("delete column Volume of AAPL/1Min/OHLCV (its values in every "
                          "year)? This cannot be undone. [y/N] ")
    assert "Volume" in mkts("info", "AAPL/1Min/OHLCV").stdout


def test_alter_errors_are_one_line_and_change_nothing(configured: Path, mkts: Run) -> None:
    for args, says in [(("add", "Open", "f8"), "exists already"),
                       (("add", "Flag", "u1", "--fill", "300"), "does not fit"),
                       (("rename", "Close", "Last"), "ondiskagg aggregates column 'Close'"),
                       (("drop", "Nope"), "has no column 'Nope'"),
                       (("add", "Flag"), "mkts alter KEY add NAME DTYPE")]:
        line = one_error_line(mkts("alter", "AAPL/1Min/OHLCV", *args, ok=False), "alter")
        assert says in line, line
    assert "Flag" not in mkts("info", "AAPL/1Min/OHLCV").stdout


def test_root_option_works_without_a_config(tmp_path: Path, mkts: Run) -> None:
    (tmp_path / "bars.csv").write_text(BARS_CSV)
    mkts("import", "--root", "plain", "X/1Min/OHLCV", "bars.csv")
    assert mkts("list", "--root", "plain").stdout.split() == ["X/1Min/OHLCV"]  # no plugins
    res = mkts("rebuild-aggregates", "--root", "plain", ok=False)
    assert "nothing to rebuild" in one_error_line(res, "rebuild-aggregates")


# -- check, wal inspect, compact, rebuild-aggregates ----------------------------------------
def test_check_passes_on_a_healthy_database(configured: Path, mkts: Run) -> None:
    res = mkts("check")
    assert res.stdout.strip().endswith(": ok")
    assert "5 bucket(s)" in res.stdout and "4 aggregate(s)" in res.stdout


def test_check_finds_stale_aggregates_and_rebuild_fixes_them(configured: Path, mkts: Run
                                                             ) -> None:
    from mkts import engine

    # write a base bar without triggers (as a crash before aggregation would leave it)
    with engine.open(configured / "data") as db:
        db.write("AAPL/1Min/OHLCV", {"Epoch": np.array([1_704_187_860]), "Open": [1.0],
                                     "High": [99.0], "Low": [1.0], "Close": [1.0],
                                     "Volume": [5]})
    res = mkts("check", ok=False)
    assert res.returncode == 1
    assert "AAPL/5Min/OHLCV: does not match an aggregation of AAPL/1Min/OHLCV: 1 bar(s) differ" \
        in res.stderr
    assert "rebuild-aggregates" in res.stderr
    out = mkts("rebuild-aggregates").stdout
    assert "rebuilt 5Min, 15Min, 1H, 1D from */1Min/OHLCV" in out
    assert mkts("check").returncode == 0
    assert "99.0" in mkts("query", "AAPL/5Min/OHLCV", "--limit", "2", "--first").stdout


def test_check_finds_a_damaged_header(configured: Path, mkts: Run) -> None:
    path = configured / "data" / "AAPL" / "1Min" / "OHLCV" / "2024.bin"
    with open(path, "r+b") as fh:  # flip a byte of the header: its checksum no longer matches
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    res = mkts("check", "--no-aggregates", ok=False)
    assert "error: AAPL/1Min/OHLCV/2024.bin: header checksum does not match" in res.stderr
    assert "problem(s) found" in res.stderr


def test_check_finds_a_misplaced_record(tmp_path: Path, mkts: Run) -> None:
    from mkts import engine

    root = tmp_path / "db"
    with engine.open(root) as db:
        db.write("M/1Min/X", {"Epoch": np.array([1_704_187_800, 1_704_187_860]), "V": [1.0, 2.0]})
        f = db.catalog.year_file(db.catalog.get(next(iter(db.catalog.buckets))), 2024)
        hs, rs = f.header.header_size, f.header.record_size
        slot = (1_704_187_800 - f.header.year_start) // 60
    with open(root / "M" / "1Min" / "X" / "2024.bin", "r+b") as fh:
        fh.seek(hs + slot * rs)
        fh.write((12345).to_bytes(8, "little"))  # the slot number of another slot
    res = mkts("check", "--root", "db", ok=False)
    assert "1 slot(s) hold a record whose slot number does not match its position" in res.stderr


def test_check_notes_an_unreplayed_log_and_finds_a_corrupt_one(tmp_path: Path, mkts: Run
                                                                ) -> None:
    crash = ("import os, numpy as np, engine\n"
             "db = engine.open('db')\n"
             "for i in range(2):\n"
             "    db.write('A/1Min/X', {'Epoch': np.array([1704187800 + 60 * i]), 'V': [1.0]})\n"
             "os._exit(0)  # no close: the log is not checkpointed\n")
    subprocess.run([sys.executable, "-c", crash], cwd=str(tmp_path), env=_env(), check=True,
                   timeout=60)
    res = mkts("check", "--root", "db")
    assert "2 transaction(s) were not checkpointed" in res.stdout
    (segment,) = (tmp_path / "db" / "wal").glob("*.wal")
    data = bytearray(segment.read_bytes())
    data[60] ^= 0xFF  # inside the first record, which a valid record follows
    segment.write_bytes(bytes(data))
    res = mkts("check", "--root", "db", ok=False)
    assert "error: wal: write-ahead log is corrupt" in res.stderr
    assert mkts("wal", "inspect", "--root", "db", ok=False).returncode == 1


def test_wal_inspect(configured: Path, mkts: Run) -> None:
    res = mkts("wal", "inspect")
    assert res.returncode == 0
    assert res.stdout.strip()
    res = mkts("wal", "inspect", "nowhere", ok=False)
    assert "no such write-ahead log" in one_error_line(res, "wal")


def test_compact_a_tick_bucket(tmp_path: Path, mkts: Run) -> None:
    csv_text = "time,Price,Size\n" + "".join(
        f"2024-01-02T09:30:0{i % 10}.{i:03d}Z,{i}.5,{i}\n" for i in range(30))
    (tmp_path / "t1.csv").write_text(csv_text)
    mkts("import", "--root", "db", "--ticks", "T/1Sec/TRADE", "t1.csv")
    mkts("import", "--root", "db", "T/1Sec/TRADE", "t1.csv")  # append the same ticks again
    res = mkts("compact", "--root", "db", "T/1Sec/TRADE")
    assert res.stdout.startswith("compacted T/1Sec/TRADE: data ")
    info = mkts("info", "--root", "db", "T/1Sec/TRADE").stdout
    assert "rows:       60" in info and "0 reclaimable" in info
    assert "already compact" in mkts("compact", "--root", "db", "T/1Sec/TRADE").stdout
    q = mkts("query", "--root", "db", "T/1Sec/TRADE", "--limit", "2", "--csv").stdout
    assert q.splitlines()[1:] == ["2024-01-02T09:30:09.029000000Z,29.5,29"] * 2


def test_writing_commands_refuse_a_root_in_use(configured: Path, mkts: Run) -> None:
    from mkts import engine

    with engine.open(configured / "data"):
        line = one_error_line(mkts("destroy", "--yes", "AAPL/1Min/OHLCV", ok=False),
                              "destroy")
        assert f"in use by pid {os.getpid()}" in line
        # reading commands open read-only and work beside the writer
        assert "AAPL/1Min/OHLCV" in mkts("list").stdout
        assert mkts("check").returncode == 0


def test_export_takes_the_database_like_the_other_commands(configured: Path, mkts: Run
                                                          ) -> None:
    pytest.importorskip("pyarrow")
    mkts("init", "-c", "other.yml", "--root-directory", str(configured / "data"))
    for args in (["a"], ["-c", "other.yml", "b"], ["--root", "data", "c"], ["data", "d"]):
        res = mkts("export", "--no-progress", "--pattern", "AAPL/1Min/OHLCV", *args)
        assert res.stdout.startswith("exported 4 rows in 1 partition(s)"), res.stdout
        assert (configured / args[-1] / "symbol=AAPL").is_dir()
    res = mkts("export", "-c", "other.yml", "data", "e", ok=False)
    assert res.returncode == 2 and "give the database once" in one_error_line(res, "export")
    line = one_error_line(mkts("export", "-c", "nope.yml", "f", ok=False), "export")
    assert "nope.yml not found" in line


def test_bench_is_a_thin_wrapper(mkts: Run) -> None:
    if (REPO / "benchmarks" / "compare.py").exists():
        assert "benchmarks.compare" in mkts("bench", "--", "--help").stdout
        res = mkts("bench", "--no-such-option", ok=False)  # the runner's own usage error
        assert res.returncode == 2 and "--no-such-option" in res.stderr
    else:
        line = one_error_line(mkts("bench", ok=False), "bench")
        assert "benchmarks/compare.py" in line


def test_bench_output_names_no_internal_issue_numbers(tmp_path: Path, mkts: Run) -> None:
    import re
    import shutil

    stored = REPO / "benchmarks" / "results" / "compare-full.json"
    if not (REPO / "benchmarks" / "compare.py").exists() or not stored.exists():
        pytest.skip("no benchmark runner or stored results in this installation")
    shutil.copy(stored, tmp_path / "run.json")
    texts = {"mkts bench --help": mkts("bench", "--help").stdout,
             "mkts bench -- --help": mkts("bench", "--", "--help").stdout,
             "mkts bench --render": mkts("bench", "--render", "run.json").stdout,
             "the stored report": stored.with_suffix(".md").read_text()}
    assert "## Goals" in texts["mkts bench --render"]
    for what, text in texts.items():
        found = re.findall(r"(?i).{0,40}\bissues?\b.{0,10}", text)
        assert not found, f"{what} mentions issues: {found}"


def test_the_multi_bucket_csv_of_query_imports_back_with_ticks(tmp_path: Path, mkts: Run) -> None:
    # issue: the CSV of `mkts query PATTERN --csv` must be re-importable by `mkts import`
    from mkts import engine

    with engine.open(tmp_path / "src") as db:
        db.write("AAPL/1Min/OHLCV", {"Epoch": [60, 120], "Open": [1.5, 2.5], "High": [2.0, 3.0],
                                     "Low": [1.0, 2.0], "Close": [1.75, 2.75],
                                     "Volume": [10, 20]})
        db.write("TEST/1Min/OHLCV", {"Epoch": [60], "Volume": [7], "Close": [9.5],
                                     "High": [10.0], "Low": [9.0], "Open": [9.25]})
        db.write("AAPL/1Min/TRADES", {"Epoch": [60, 60, 61], "Nanoseconds": [5, 5, 999],
                                      "Price": [1.5, 1.25, 1.0], "Size": [100, 5, 1]},
                 variable=True)
    csv_text = mkts("query", "*/1Min/*", "--root", "src", "--csv").stdout
    (tmp_path / "all.csv").write_text(csv_text)
    mkts("import", "--key-column", "Key", "all.csv", "--root", "dst")
    with engine.open(tmp_path / "src", readonly=True) as a, \
            engine.open(tmp_path / "dst", readonly=True) as b:
        assert b.list_keys() == a.list_keys()
        for key in a.list_keys():
            ra, rb = a.read(key), b.read(key)
            assert sorted(rb.columns) == sorted(ra.columns), key
            for c in ra.columns:
                assert np.array_equal(rb[c], ra[c]), (key, c)
        assert b.info("AAPL/1Min/TRADES")["rows"] == 3  # still ticks: duplicates kept


# -- delete and import --replace ------------------------------------------------------------
def test_delete_removes_a_range_and_the_aggregates_follow(configured: Path, mkts: Run) -> None:
    res = mkts("delete", "AAPL/1Min/OHLCV", "--start", "2024-01-02 09:31", "--end",
               "2024-01-02 09:32", "--yes", stdin="")
    assert res.stdout.strip() == ("deleted 2 rows of AAPL/1Min/OHLCV from 2024-01-02 09:31 "
                                  "to 2024-01-02 09:32")
    out = mkts("query", "AAPL/1Min/OHLCV", "--csv", "--epoch").stdout.splitlines()
    assert [line.split(",")[0] for line in out[1:]] == ["1704187800", "1704188100"]
    assert mkts("check").stdout.strip().endswith(": ok")  # the 5Min bar was recomputed
    five = mkts("query", "AAPL/5Min/OHLCV", "--csv").stdout.splitlines()
    assert [float(x) for x in five[1].split(",")[1:]] == [10, 11, 9, 10.5, 100]


def test_delete_without_a_terminal_needs_yes(configured: Path, mkts: Run) -> None:
    line = one_error_line(mkts("delete", "AAPL/1Min/OHLCV", stdin="y\n", ok=False), "delete")
    assert "stdin is not a terminal; pass --yes" in line
    assert len(mkts("query", "AAPL/1Min/OHLCV", "--csv").stdout.splitlines()) == 5
    line = one_error_line(mkts("delete", "NOPE/1Min/OHLCV", "--yes", ok=False), "delete")
    assert "NOPE/1Min/OHLCV" in line


def test_import_replace_loads_a_corrected_day_without_duplicates(tmp_path: Path,
                                                                 mkts: Run) -> None:
    (tmp_path / "day.csv").write_text("Epoch,Price,Size\n2024-01-02T10:00:00.1Z,1,1\n"
                                      "2024-01-02T10:00:00.2Z,2,1\n"
                                      "2024-01-02T10:00:01.3Z,3,1\n")
    (tmp_path / "fixed.csv").write_text("Epoch,Price,Size\n2024-01-02T10:00:00.1Z,10,1\n"
                                        "2024-01-02T10:00:01.3Z,30,1\n")
    mkts("import", "--root", "db", "X/1Sec/TRADE", "day.csv", "--ticks")
    for _ in range(2):  # loading the correction twice changes nothing the second time
        mkts("import", "--root", "db", "X/1Sec/TRADE", "fixed.csv", "--replace")
        rows = mkts("query", "--root", "db", "X/1Sec/TRADE", "--csv").stdout.splitlines()
        assert [r.split(",")[1] for r in rows[1:]] == ["10", "30"]
    mkts("import", "--root", "db", "X/1Sec/TRADE", "fixed.csv")  # without: added again
    assert len(mkts("query", "--root", "db", "X/1Sec/TRADE", "--csv").stdout.splitlines()) == 5
