"""Opening, closing and the catalog: persistence, read-only handles, the single-writer
lock, the root's time zone, create / destroy / list / info."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

from mkts import engine

KEY = "AAPL/1Min/OHLCV"
T10 = 1_704_189_600  # 2024-01-02 10:00:00 UTC


def rows(epochs: list[int], close: list[float]) -> dict[str, Any]:
    return {"Epoch": np.array(epochs, dtype=np.int64), "Close": np.array(close, dtype="f8")}


# -- persistence ---------------------------------------------------------------------------
def test_data_survives_close_and_reopen(root: str) -> None:
    with engine.open(root) as db:
        db.write(KEY, rows([T10, T10 + 60], [1, 2]))
        db.write("MSFT/1D/OHLCV", rows([T10 - 86_400 * 400], [3]))
        db.write(KEY, rows([T10 + 30], [9]))  # overwrite
    with engine.open(root) as db:
        assert db.list_keys() == [KEY, "MSFT/1D/OHLCV"]
        r = db.read(KEY)
        assert r["Epoch"].tolist() == [T10, T10 + 60]
        assert r["Close"].tolist() == [9.0, 2.0]
        assert db.read("MSFT/1D/OHLCV")["Epoch"].tolist() == [1_669_593_600]  # 2022-11-28 00:00 UTC
        db.write(KEY, rows([T10 + 120], [4]))
    with engine.open(root, readonly=True) as db:
        assert db.read(KEY)["Close"].tolist() == [9.0, 2.0, 4.0]
        assert db.info(KEY)["columns"] == {"Epoch": "i8", "Close": "f8"}


def test_info_counts_the_rows_of_fixed_buckets(root: str) -> None:
    with engine.open(root) as db:
        db.write(KEY, rows([T10, T10 + 60, T10 - 86_400 * 400], [1, 2, 3]))  # two years
        db.write(KEY, rows([T10 + 30], [9]))  # overwrites an interval: no new row
        assert db.info(KEY)["rows"] == 3
        db.write(KEY, rows([T10 + 120], [4]))
        assert db.info(KEY)["rows"] == 4
    with engine.open(root, readonly=True) as db:
        assert db.info(KEY)["rows"] == 4
        assert "live_bytes" not in db.info(KEY)  # tick buckets only


@pytest.mark.parametrize("readonly", [False, True])
def test_info_without_rows_reads_no_year_file(root: str, readonly: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`rows=False` is the catalog's description alone: no year file is scanned."""
    from mkts.engine.yearfile import YearFile

    with engine.open(root) as db:
        db.write(KEY, rows([T10, T10 - 86_400 * 400], [1, 2]))
    with engine.open(root, readonly=readonly) as db:
        full = db.info(KEY)

        def no_scan(self: YearFile, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"{self.path} was scanned")

        monkeypatch.setattr(YearFile, "_scan", no_scan)
        monkeypatch.setattr(YearFile, "occupied", no_scan)
        lean = db.info(KEY, rows=False)
        assert lean == {k: v for k, v in full.items() if k != "rows"}
        assert lean["years"] == [2022, 2024] and "rows" not in lean


def test_open_creates_a_missing_root_but_not_its_parents(tmp_path: Any) -> None:
    root = tmp_path / "new"
    with engine.open(root) as db:
        assert os.path.isdir(root)
        assert db.list_keys() == []
    with pytest.raises(engine.InvalidInputError):
        engine.open(tmp_path / "missing" / "deeper")
    assert not (tmp_path / "missing").exists()


def test_context_manager_closes(root: str) -> None:
    with engine.open(root) as db:
        pass
    with pytest.raises(engine.ClosedError):
        db.read(KEY)


# -- read-only -----------------------------------------------------------------------------
def test_readonly_handle_refuses_writes(root: str) -> None:
    with engine.open(root) as db:
        db.write(KEY, rows([T10], [1]))
    ro = engine.open(root, readonly=True)
    try:
        for call in (lambda: ro.write(KEY, rows([T10 + 60], [2])),
                     lambda: ro.write_many({KEY: rows([T10 + 60], [2])}),
                     lambda: ro.create("NEW/1Min/OHLCV", {"Close": "f8"}),
                     lambda: ro.destroy(KEY)):
            with pytest.raises(engine.ReadOnlyError, match="readonly") as info:
                call()
            assert isinstance(info.value, PermissionError)
        assert ro.read(KEY)["Close"].tolist() == [1.0]
        assert ro.list_keys() == [KEY]
    finally:
        ro.close()
    with engine.open(root) as db:
        assert db.read(KEY)["Close"].tolist() == [1.0]
        assert db.list_keys() == [KEY]


def test_readonly_open_of_a_missing_root_is_an_error(tmp_path: Any) -> None:
    root = tmp_path / "absent"
    with pytest.raises(engine.InvalidInputError, match="does not exist"):
        engine.open(root, readonly=True)
    assert not root.exists()


def test_readonly_handle_may_open_while_a_writer_holds_the_lock(root: str,
                                                                snapshot: Any) -> None:
    with engine.open(root) as db:
        db.write(KEY, rows([T10], [1]))
        before = snapshot(root)
        with engine.open(root, readonly=True) as ro:
            assert ro.read(KEY)["Close"].tolist() == [1.0]
        assert snapshot(root) == before


# -- the lock ------------------------------------------------------------------------------
def test_second_writer_in_the_same_process_gets_locked_error(root: str) -> None:
    db = engine.open(root)
    try:
        with pytest.raises(engine.LockedError) as info:
            engine.open(root)
        assert f"pid {os.getpid()}" in str(info.value)
        assert isinstance(info.value, engine.MktsError)
        db.write(KEY, rows([T10], [1]))  # the first handle is unaffected
    finally:
        db.close()
    with engine.open(root) as db2:  # released at close
        assert db2.read(KEY)["Close"].tolist() == [1.0]


def _child_env() -> dict[str, str]:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(engine.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    return env


def test_writer_in_another_process_gets_locked_error_naming_our_pid(root: str) -> None:
    with engine.open(root):
        code = textwrap.dedent(f"""
            from mkts import engine
            try:
                engine.open({root!r})
            except engine.LockedError as exc:
                print("LockedError", exc)
            else:
                print("opened")
        """)
        out = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("LockedError")
        assert f"pid {os.getpid()}" in out.stdout


def test_lock_held_by_another_process_names_its_pid(root: str) -> None:
    code = textwrap.dedent(f"""
        import sys, engine
        db = engine.open({root!r})
        print("ready", flush=True)
        sys.stdin.readline()
        db.close()
    """)
    with subprocess.Popen([sys.executable, "-c", code], env=_child_env(), text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline().strip() == "ready"
            with pytest.raises(engine.LockedError, match=f"pid {child.pid}"):
                engine.open(root)
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.wait(timeout=60) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    with engine.open(root) as db:  # free again
        assert db.list_keys() == []


# -- the root's time zone ------------------------------------------------------------------
def test_reopening_with_a_different_timezone_is_an_error(root: str) -> None:
    with engine.open(root, timezone="America/New_York") as db:
        db.write(KEY, rows([T10], [1]))
    with pytest.raises(engine.InvalidInputError, match="America/New_York"):
        engine.open(root, timezone="UTC")
    with pytest.raises(engine.InvalidInputError):
        engine.open(root, timezone="Asia/Kolkata", readonly=True)
    with engine.open(root) as db:  # unset: the root's own zone
        assert db.timezone == "America/New_York"
        assert db.read(KEY)["Close"].tolist() == [1.0]
    with engine.open(root, timezone="America/New_York") as db:
        assert db.timezone == "America/New_York"


def test_new_root_defaults_to_utc(root: str) -> None:
    with engine.open(root) as db:
        assert db.timezone == "UTC"
    with pytest.raises(engine.InvalidInputError):
        engine.open(root, timezone="Europe/London")


def test_unknown_timezone_is_rejected(tmp_path: Any) -> None:
    with pytest.raises(engine.InvalidInputError, match="Mars/Olympus"):
        engine.open(tmp_path / "db", timezone="Mars/Olympus")


# -- create / destroy / list / info --------------------------------------------------------
def test_create_then_write(db: engine.Database) -> None:
    db.create(KEY, {"Open": "f4", "Close": "f4", "Volume": "i8"})
    assert db.list_keys() == [KEY]
    info = db.info(KEY)
    assert info["columns"] == {"Epoch": "i8", "Open": "f4", "Close": "f4", "Volume": "i8"}
    assert info["years"] == []
    assert len(db.read(KEY)) == 0
    assert db.read(KEY).columns == ["Epoch", "Open", "Close", "Volume"]
    db.write(KEY, {"Epoch": [T10], "Volume": [5], "Close": [2.0], "Open": [1]})
    r = db.read(KEY)
    assert (r["Open"].tolist(), r["Close"].tolist(), r["Volume"].tolist()) == ([1.0], [2.0], [5])
    assert r["Open"].dtype == np.dtype("f4")
    with pytest.raises(engine.SchemaError, match="Open"):
        db.write(KEY, {"Epoch": [T10], "Volume": [5], "Close": [2.0]})


def test_create_from_a_numpy_dtype(db: engine.Database) -> None:
    dtype = np.dtype([("Epoch", "i8"), ("Bid", "f8"), ("Ask", "f8"), ("Venue", "U8")])
    db.create("EURUSD/1Sec/QUOTE", dtype)
    assert db.info("EURUSD/1Sec/QUOTE")["columns"] == {"Epoch": "i8", "Bid": "f8", "Ask": "f8",
                                                       "Venue": "U8"}


def test_create_twice_with_the_same_schema_is_a_no_op(db: engine.Database) -> None:
    db.create(KEY, {"Close": "f8"})
    db.write(KEY, rows([T10], [1]))
    db.create(KEY, {"Close": "f8"})
    assert db.read(KEY)["Close"].tolist() == [1.0]


@pytest.mark.parametrize("other", [{"Close": "f4"}, {"Close": "f8", "Open": "f8"}, {"Open": "f8"}])
def test_create_with_a_conflicting_schema_is_an_error(db: engine.Database, root: str,
                                                      snapshot: Any, other: dict[str, str]) -> None:
    db.write(KEY, rows([T10], [1]))
    before = snapshot(root)
    with pytest.raises(engine.BucketExistsError) as info:
        db.create(KEY, other)
    assert isinstance(info.value, ValueError)
    assert KEY in str(info.value)
    assert snapshot(root) == before


def test_create_rejects_bad_columns(db: engine.Database) -> None:
    for columns in ({"Close": "c16"}, {"Close": "U"}, {"_slot": "i8"}):
        with pytest.raises(engine.SchemaError):
            db.create(KEY, columns)
    assert db.list_keys() == []


def test_destroy_removes_the_bucket_and_empty_directories(db: engine.Database, root: str) -> None:
    db.write(KEY, rows([T10], [1]))
    db.write("AAPL/1D/OHLCV", rows([T10], [1]))
    db.write("MSFT/1Min/OHLCV", rows([T10], [1]))
    assert db.list_symbols() == ["AAPL", "MSFT"]
    db.destroy("MSFT/1Min/OHLCV")
    assert not os.path.exists(os.path.join(root, "MSFT"))
    assert db.list_symbols() == ["AAPL"]
    assert db.list_keys() == ["AAPL/1D/OHLCV", KEY]
    db.destroy(KEY)
    assert not os.path.exists(os.path.join(root, "AAPL", "1Min"))
    assert os.path.isdir(os.path.join(root, "AAPL", "1D", "OHLCV"))
    assert db.list_symbols() == ["AAPL"]
    with pytest.raises(engine.BucketNotFoundError):
        db.read(KEY)
    db.destroy("AAPL/1D/OHLCV")
    assert db.list_symbols() == [] and db.list_keys() == []
    assert not os.path.exists(os.path.join(root, "AAPL"))


def test_destroyed_bucket_stays_gone_and_can_be_recreated(root: str) -> None:
    with engine.open(root) as db:
        db.write(KEY, rows([T10, T10 + 60], [1, 2]))
        db.destroy(KEY)
        db.write(KEY, {"Epoch": [T10 + 120], "Open": np.array([7], "i4")})  # a new schema
    with engine.open(root) as db:
        assert db.info(KEY)["columns"] == {"Epoch": "i8", "Open": "i4"}
        r = db.read(KEY)
        assert r["Epoch"].tolist() == [T10 + 120]
        assert r["Open"].tolist() == [7]


def test_info_describes_the_bucket(db: engine.Database) -> None:
    db.write("AAPL/5Min/OHLCV", {"Epoch": [T10, T10 - 86_400 * 366, T10 - 86_400 * 800],
                                 "Close": np.array([1, 2, 3], "f4"), "N": np.array([1, 2, 3], "u1")})
    info = db.info("AAPL/5Min/OHLCV")
    assert {"timeframe", "columns", "kind", "years"} <= set(info)
    assert info["timeframe"] == "5Min"
    assert info["kind"] == "fixed"
    assert list(info["columns"]) == ["Epoch", "Close", "N"]
    assert info["columns"] == {"Epoch": "i8", "Close": "f4", "N": "u1"}
    assert info["years"] == [2021, 2023, 2024]


def test_list_keys_and_symbols_are_sorted(db: engine.Database) -> None:
    for key in ("MSFT/1Min/OHLCV", "AAPL/1D/OHLCV", "AAPL/1Min/OHLCV", "BRK.B/1H/TRADES"):
        db.create(key, {"Close": "f8"})
    assert db.list_keys() == ["AAPL/1D/OHLCV", "AAPL/1Min/OHLCV", "BRK.B/1H/TRADES",
                              "MSFT/1Min/OHLCV"]
    assert db.list_symbols() == ["AAPL", "BRK.B", "MSFT"]


@pytest.mark.parametrize("sync", ["always", "interval", "off"])
def test_own_writes_are_visible_at_once_in_every_sync_mode(root: str, sync: str) -> None:
    with engine.open(root, sync=sync) as db:
        db.write(KEY, rows([T10, T10 - 86_400 * 365], [1, 2]))
        assert db.info(KEY)["years"] == [2023, 2024]
        assert db.read(KEY)["Close"].tolist() == [2.0, 1.0]
        assert list(db.query("*/*/*")) == [KEY]
    with engine.open(root) as db:
        assert db.read(KEY)["Close"].tolist() == [2.0, 1.0]
