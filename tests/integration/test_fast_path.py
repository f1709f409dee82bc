"""The write fast path (engine/fastpath.py) against the general path: the same log payloads,
the same year-file bytes, the same errors, and the general path for everything it declines.

Each case writes the same rows twice: as a structured array or a dict of numpy columns (the
fast path) into one root, and with the fast path disabled (the general path: the oracle)
into another."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine import fastpath
from mkts.engine.database import Database
from mkts.engine.writepath import WritePath
from mkts.wal import WriteAheadLog
from mkts.wal.fs import OsFileSystem

KEY = "AAPL/1Min/OHLCV"
DAY_KEY = "AAPL/1D/OHLCV"
T0 = 1_704_153_600  # 2024-01-02 00:00:00 UTC
NEW_YEAR_2025 = 1_735_689_600  # 2025-01-01 00:00:00 UTC
BAR = np.dtype([("Epoch", "<i8"), ("Open", "<f4"), ("High", "<f4"), ("Low", "<f4"),
                ("Close", "<f4"), ("Volume", "<i8")])


def rows(epochs: list[int], dtype: np.dtype = BAR, first: float = 0.0) -> np.ndarray:
    out = np.zeros(len(epochs), dtype=dtype)
    out["Epoch"] = epochs
    for i, name in enumerate(n for n in dtype.names or () if n != "Epoch"):
        kind = dtype.fields[name][0].kind  # type: ignore[index]
        values = first + np.arange(len(epochs)) * 1.5 + i
        out[name] = values.astype(str) if kind == "U" else values
    return out


def as_dict(data: np.ndarray) -> dict[str, np.ndarray]:
    return {name: data[name].copy() for name in data.dtype.names or ()}


@pytest.fixture
def count_general(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the writes that took the general path (write_many)."""
    calls = [0]
    real = Database.write_many

    def counting(self: Database, items: Any, **kw: Any) -> int:
        calls[0] += 1
        return real(self, items, **kw)

    monkeypatch.setattr(Database, "write_many", counting)
    yield calls


def _payloads(root: str) -> list[bytes]:
    wal = WriteAheadLog.open(os.path.join(root, "wal"), OsFileSystem(), readonly=True)
    try:
        return [r.payload for r in wal.records()]
    finally:
        wal.close()


def _data_files(root: str) -> dict[str, bytes]:
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith(".bin"):
                with open(os.path.join(d, n), "rb") as f:
                    out[os.path.relpath(os.path.join(d, n), root)] = f.read()
    return out


@contextlib.contextmanager
def general_path_only() -> Iterator[None]:
    """The oracle: every write takes the general path (ingest.prepare, plan_fixed)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(WritePath, "fast", lambda self, key, data: None)
        mp.setattr(fastpath, "input_plan", lambda *a, **kw: None)
        yield


def _both(tmp_path: Any, key: str, batches: list[np.ndarray], timezone: str = "UTC",
          form: str = "array") -> tuple[str, str, list[list[bytes]]]:
    """Write `batches` (as arrays, or as dicts of columns) into one root, and the same rows
    with the fast path disabled into another; return the roots and the payloads logged."""
    fast, slow = os.fspath(tmp_path / "fast"), os.fspath(tmp_path / "slow")
    logged = []
    for root in (fast, slow):
        with contextlib.ExitStack() as stack:
            if root == slow:
                stack.enter_context(general_path_only())
            db = stack.enter_context(engine.open(root, timezone=timezone, sync="off",
                                                 checkpoint_interval_s=3600))
            for b in batches:
                db.write(key, as_dict(b) if form == "dict" and root == fast else b)
            logged.append(_payloads(root))  # read while open: no checkpoint retired them
    assert len(logged[0]) == len(batches)
    return fast, slow, logged


CASES: dict[str, tuple[str, list[np.ndarray]]] = {
    "one row": (KEY, [rows([T0]), rows([T0 + 60])]),
    "one row, then overwrite and back-fill": (
        KEY, [rows([T0 + 600]), rows([T0 + 600], first=7.0), rows([T0 + 60]), rows([T0])]),
    "sorted rows": (KEY, [rows([T0]), rows([T0 + 60 * i for i in range(1, 50)])]),
    "out of order with duplicates (last wins)": (
        KEY, [rows([T0]), rows([T0 + 180, T0 + 60, T0 + 180, T0 - 60, T0 + 60])]),
    "across a year boundary": (
        KEY, [rows([T0]), rows([NEW_YEAR_2025 - 60, NEW_YEAR_2025, NEW_YEAR_2025 + 60]),
              rows([NEW_YEAR_2025 - 120]), rows([NEW_YEAR_2025 + 120])]),
    "seconds inside the interval": (KEY, [rows([T0]), rows([T0 + 59]), rows([T0 + 61, T0 + 3])]),
    "before 1970": (KEY, [rows([T0]), rows([-86_400 * 400 + 30]), rows([-5, -65])]),
    # A 1-row write caches its year; later batches inside that year skip the calendar.
    "cached year, then sorted rows": (
        KEY, [rows([T0]), rows([T0 + 60]), rows([T0 + 60 * i for i in range(2, 60)])]),
    "cached year, then unsorted rows with duplicates": (
        KEY, [rows([T0]), rows([T0 + 60]), rows([T0 + 300, T0 + 120, T0 + 300, T0 + 181])]),
    "cached year, then rows leaving it": (
        KEY, [rows([T0]), rows([T0 + 60]), rows([NEW_YEAR_2025 - 60, NEW_YEAR_2025 + 60]),
              rows([T0 + 120, T0 + 180])]),
    "cached year, then rows before it": (
        KEY, [rows([T0]), rows([T0 + 60]), rows([T0 - 86_400 * 400, T0 + 120])]),
    "daily bars": (DAY_KEY, [rows([T0]), rows([T0 + 86_400 + 5]), rows([T0 - 86_400 * 3,
                                                                        T0 + 86_400 * 9])]),
}


@pytest.mark.parametrize("form", ["array", "dict"])
@pytest.mark.parametrize("timezone", ["UTC", "America/New_York"])
@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_logs_and_stores_the_same_bytes(tmp_path: Any, count_general: list[int],
                                                   case: str, timezone: str, form: str) -> None:
    key, batches = CASES[case]
    fast, slow, logged = _both(tmp_path, key, batches, timezone, form)
    # The first write creates the bucket (general path); every later one is fast; the
    # oracle root took the general path every time.
    assert count_general[0] == 1 + len(batches)
    assert logged[0] == logged[1]
    files = _data_files(fast)
    assert files and files == _data_files(slow)
    with engine.open(fast, timezone=timezone) as a, engine.open(slow, timezone=timezone) as b:
        ra, rb = a.read(key), b.read(key)
        assert ra["Epoch"].tolist() == rb["Epoch"].tolist()
        assert ra["Close"].tolist() == rb["Close"].tolist()


@pytest.mark.parametrize("dtype", [
    # fields in another order than the bucket's
    np.dtype([("Volume", "<i8"), ("Close", "<f4"), ("Epoch", "<i8"), ("Open", "<f4"),
              ("High", "<f4"), ("Low", "<f4")]),
    # padded input layout
    np.dtype({"names": ["Epoch", "Open", "High", "Low", "Close", "Volume"],
              "formats": ["<i8", "<f4", "<f4", "<f4", "<f4", "<i8"],
              "offsets": [0, 8, 16, 24, 32, 40], "itemsize": 64}),
])
def test_other_input_layouts_give_the_same_bytes(tmp_path: Any, count_general: list[int],
                                                 dtype: np.dtype) -> None:
    batches = [rows([T0]), rows([T0 + 60], dtype), rows([T0 + 120, T0 + 60, T0 + 600], dtype)]
    fast, slow, logged = _both(tmp_path, KEY, batches)
    assert count_general[0] == 1 + len(batches)
    assert logged[0] == logged[1]
    assert _data_files(fast) == _data_files(slow)


@pytest.mark.parametrize("form", ["array", "dict"])
def test_padded_records_and_text_columns(tmp_path: Any, count_general: list[int],
                                         form: str) -> None:
    dtype = np.dtype([("Epoch", "<i8"), ("Flag", "u1"), ("Name", "<U3"), ("Px", "<f4")])
    batches = [rows([T0], dtype), rows([T0 + 60], dtype), rows([T0 + 120, T0 + 180], dtype)]
    fast, slow, logged = _both(tmp_path, KEY, batches, form=form)
    assert count_general[0] == 1 + len(batches)
    assert logged[0] == logged[1]
    assert _data_files(fast) == _data_files(slow)


def test_a_strided_view_is_written_like_a_copy(tmp_path: Any, count_general: list[int]) -> None:
    data = rows([T0 + 60 * i for i in range(20)])
    fast, slow, logged = _both(tmp_path, KEY, [data[:1], data[1::3], data[::-2]])
    assert logged[0] == logged[1]
    assert _data_files(fast) == _data_files(slow)


def _same_error(db: Database, data: np.ndarray, **kw: Any) -> None:
    """The array and its dict of columns fail like the general path fails."""
    with general_path_only(), pytest.raises(engine.MktsError) as oracle:
        db.write(KEY, data, **kw)
    for form in (data, as_dict(data)):
        with pytest.raises(engine.MktsError) as got:
            db.write(KEY, form, **kw)
        assert type(got.value) is type(oracle.value)
        assert str(got.value) == str(oracle.value)


BAD = {
    "year 1899": rows([T0, -2_208_988_801]),
    "one row in 1899": rows([-2_208_988_801]),
    "year 2262": rows([T0, 9_214_646_400]),
    "one row in 2262": rows([9_214_646_400]),
    "milliseconds as seconds": rows([T0 * 1000]),
    "beyond int64 nanoseconds": rows([2**62]),
    "narrower volume": rows([T0], np.dtype([("Epoch", "<i8"), ("Open", "<f4"), ("High", "<f4"),
                                           ("Low", "<f4"), ("Close", "<f4"), ("Volume", "<f8")])),
    "missing column": rows([T0], np.dtype([("Epoch", "<i8"), ("Open", "<f4")])),
    "extra column": rows([T0], np.dtype(BAR.descr + [("Extra", "<f4")])),
    "nanoseconds in a fixed bucket": rows([T0], np.dtype(BAR.descr + [("Nanoseconds", "<i4")])),
}


@pytest.mark.parametrize("case", list(BAD))
def test_rejected_structured_arrays_raise_what_the_general_path_raises(
        db: Database, root: str, snapshot: Callable[[str], Any], case: str) -> None:
    db.write(KEY, rows([T0, T0 + 60]))
    db.write(KEY, rows([T0 + 120]))  # builds the fast path's plan for BAR
    before = snapshot(root)
    _same_error(db, BAD[case])
    assert snapshot(root) == before
    assert db.read(KEY)["Epoch"].tolist() == [T0, T0 + 60, T0 + 120]


def test_shapes_the_fast_path_declines(db: Database, count_general: list[int]) -> None:
    db.write(KEY, rows([T0]))
    with pytest.raises(engine.InvalidInputError):
        db.write(KEY, rows([T0, T0 + 60]).reshape(1, 2))  # 2-D
    with pytest.raises(engine.InvalidInputError):
        db.write(KEY, rows([T0])[0:1].reshape(()))  # 0-D
    with pytest.raises(engine.SchemaError):
        db.write(KEY, rows([T0 + 60]), variable=True)
    assert db.write(KEY, rows([])) == 0
    assert count_general[0] == 5
    assert db.read(KEY)["Epoch"].tolist() == [T0]


def test_a_recreated_bucket_gets_a_new_plan(db: Database, count_general: list[int]) -> None:
    db.write(KEY, rows([T0]))
    db.write(KEY, rows([T0 + 60]))
    db.destroy(KEY)
    other = np.dtype([("Epoch", "<i8"), ("Open", "<f8"), ("High", "<f8"), ("Low", "<f8"),
                      ("Close", "<f8"), ("Volume", "<i8")])
    db.write(KEY, rows([T0], other))
    db.write(KEY, rows([T0 + 60], other, first=3.0))
    r = db.read(KEY)
    assert r["Close"].dtype == np.float64 and r["Close"].tolist() == [3.0, 6.0]
    assert count_general[0] == 2  # the two creating writes
    db.write(KEY, rows([T0 + 120]))  # the old dtype needs a cast now: the general path
    assert count_general[0] == 3
    assert db.read(KEY)["Close"].tolist() == [3.0, 6.0, 3.0]


def test_fast_writes_reach_triggers_and_subscribers(root: str) -> None:
    seen: list[tuple[str, list[int], list[float]]] = []

    class Trigger:
        def fire(self, key_path: str, records: Any) -> None:
            cols = records.columns()
            seen.append((key_path, cols["Epoch"].tolist(), cols["Close"].tolist()))

    with engine.open(root, sync="off", triggers=[("*/1Min/*", Trigger())]) as db:
        db.write(KEY, rows([T0]))
        db.write(KEY, rows([T0 + 60], first=5.0))
        db.write(KEY, rows([T0 + 180, T0 + 120]))
        db.flush()
    assert seen == [("AAPL/1Min/OHLCV/2024.bin", [T0], [3.0]),
                    ("AAPL/1Min/OHLCV/2024.bin", [T0 + 60], [8.0]),
                    ("AAPL/1Min/OHLCV/2024.bin", [T0 + 120, T0 + 180], [4.5, 3.0])]


@pytest.mark.parametrize("sync", ["always", "interval", "off"])
def test_concurrent_fast_general_and_tick_writers(root: str, sync: str) -> None:
    """Threads mixing fast, general and tick writes: every write lands, in one piece."""
    n = 60
    with engine.open(root, sync=sync, sync_interval_ms=5) as db:
        for i in range(4):
            db.write(f"S{i}/1Min/OHLCV", rows([T0]))
        db.write("T/1Sec/TRADE", {"Epoch": np.array([T0]), "Nanoseconds": np.array([0], "i4"),
                                  "Price": np.array([1.0])}, variable=True)
        errors: list[BaseException] = []

        def fast(i: int) -> None:
            try:
                for j in range(1, n + 1):
                    db.write(f"S{i}/1Min/OHLCV", rows([T0 + 60 * j], first=j))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def general() -> None:
            try:
                for j in range(1, n + 1):
                    data = rows([T0 - 60 * j], first=-j)  # lists: the general path
                    db.write("S3/1Min/OHLCV", {n: data[n].tolist() for n in BAR.names or ()})
                    db.write("T/1Sec/TRADE", {"Epoch": np.array([T0 + j]),
                                              "Nanoseconds": np.array([j], "i4"),
                                              "Price": np.array([float(j)])})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=fast, args=(i,)) for i in range(3)]
        threads.append(threading.Thread(target=general))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for i in range(3):
            r = db.read(f"S{i}/1Min/OHLCV")
            assert r["Epoch"].tolist() == [T0 + 60 * j for j in range(n + 1)]
            assert r["Open"].tolist()[1:] == [float(j) for j in range(1, n + 1)]
        assert len(db.read("S3/1Min/OHLCV")) == n + 1
        assert len(db.read("T/1Sec/TRADE")) == n + 1
    with engine.open(root) as db:  # and all of it after reopening
        assert [len(db.read(f"S{i}/1Min/OHLCV")) for i in range(4)] == [n + 1] * 4


def test_write_many_of_arrays_logs_what_dicts_log(tmp_path: Any) -> None:
    """write_many (and a bucket's first write) build records from arrays of the bucket's
    types by byte copies; the transaction is the one the same dicts give."""
    items = [
        {"A/1Min/OHLCV": rows([T0, T0 + 60]), "B/1Min/OHLCV": rows([NEW_YEAR_2025 + 5]),
         "C/1D/OHLCV": rows([T0, T0 - 86_400])},
        {"A/1Min/OHLCV": rows([T0 + 120, T0 + 60, T0 + 120]), "B/1Min/OHLCV": rows([T0]),
         "D/1Min/OHLCV": as_dict(rows([T0 + 7]))},
        {"A/1Min/OHLCV": rows([]), "B/1Min/OHLCV": rows([T0 + 60])},
        # existing buckets, one row each (the cached 1-row plan): back-fill, a new year,
        # an overwrite, and a daily bucket
        {"A/1Min/OHLCV": rows([T0 - 60]), "B/1Min/OHLCV": rows([NEW_YEAR_2025 - 60]),
         "C/1D/OHLCV": rows([T0 + 30], first=9.0), "D/1Min/OHLCV": rows([T0 + 7])},
    ]
    logged = []
    for name, conv in (("fast", lambda a: a), ("slow", as_dict)):
        root = os.fspath(tmp_path / name)
        with engine.open(root, sync="off") as db:
            for item in items:
                db.write_many({k: conv(v) if isinstance(v, np.ndarray) else v
                               for k, v in item.items()})
            logged.append(_payloads(root))
    assert len(logged[0]) == 4
    assert logged[0] == logged[1]
    assert _data_files(os.fspath(tmp_path / "fast")) == _data_files(os.fspath(tmp_path / "slow"))
