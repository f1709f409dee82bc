"""A read-only handle beside a writer that seals, re-seals or drops a year the handle has
already read: its next read returns the year's rows as they now are, never a checksum error
for a healthy file (docs/format.md "Read-only handles beside a seal")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mkts import engine

KEY = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2022 = 1_640_995_200  # 2022-01-01 UTC
Y2023 = 1_672_531_200
REPO = Path(__file__).resolve().parents[2]


def _bars(n: int, start: int, value: float) -> np.ndarray:
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Close", "<f8"), ("Volume", "<i8")])
    out["Epoch"] = start + 60 * np.arange(n) * 7
    out["Close"] = value + np.arange(n) / 8
    out["Volume"] = np.arange(n) + 1
    return out


def _ticks(n: int, start: int) -> np.ndarray:
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8")])
    out["Epoch"] = start + np.arange(n) // 3
    out["Nanoseconds"] = (np.arange(n) % 3) * 1000
    out["Price"] = np.arange(n) / 4
    return out


WRITER = """
import sys
import numpy as np
from mkts import engine
root, step = sys.argv[1], sys.argv[2]
KEY, TICKS, Y2022 = sys.argv[3:5] + [int(sys.argv[5])]
db = engine.open(root, bulk_load_rows=0, seal_after_days=0)
if step == "write-sealed-year":
    rows = np.zeros(5, dtype=[("Epoch", "<i8"), ("Close", "<f8"), ("Volume", "<i8")])
    rows["Epoch"] = Y2022 + 86_400 * 100 + 60 * np.arange(5)
    rows["Close"] = 7.0
    db.write(KEY, rows)
elif step == "write-ticks":
    rows = np.zeros(4, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8")])
    rows["Epoch"] = Y2022 + 86_400 * 200
    rows["Nanoseconds"] = np.arange(4)
    rows["Price"] = 9.5
    db.write(TICKS, rows, variable=True)
elif step.startswith("seal "):
    key, year = step.split()[1:]
    assert db.seal(key, year=int(year)) == [f"{key}/{year}"]
elif step.startswith("delete "):
    db.delete(step.split()[1], "2022-01-01T00:00:00Z", "2022-12-31T23:59:59Z")
elif step.startswith("reseal-loop "):
    for i in range(int(step.split()[1])):
        rows = np.zeros(1, dtype=[("Epoch", "<i8"), ("Close", "<f8"), ("Volume", "<i8")])
        rows["Epoch"] = Y2022 + 86_400 * 200 + 60 * i
        rows["Close"] = 100.0 + i
        db.write(KEY, rows)
        assert db.seal(KEY, year=2022) == [f"{KEY}/2022"]
db.close()
"""


def _writer(root: str, step: str) -> None:
    """Run one step of the writer in another process (this one keeps its read-only handle)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", WRITER, root, step, KEY, TICKS, str(Y2022)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr


def _rows(db: engine.Database, key: str) -> list[tuple[int, float]]:
    r = db.read(key)
    return list(zip(r["Epoch"].tolist(), r["Close" if key == KEY else "Price"].tolist(),
                    strict=True))


def _expected(root: str, key: str) -> list[tuple[int, float]]:
    """What a handle opened now reads."""
    with engine.open(root, readonly=True) as fresh:
        return _rows(fresh, key)


@pytest.fixture
def bars_root(root: str) -> str:
    """2022 sealed with an overlay (a write after the seal), 2023 live."""
    with engine.open(root, bulk_load_rows=0, seal_after_days=0) as db:
        db.write(KEY, _bars(40_000, Y2022 + 3600, 1.0))
        db.write(KEY, _bars(300, Y2023 + 3600, 2.0))
        assert db.seal(KEY, year=2022) == [f"{KEY}/2022"]
        db.write(KEY, _bars(50, Y2022 + 86_400 * 10 + 30, 3.0))
    return root


def test_reader_in_another_process_reads_a_year_resealed_under_it(bars_root: str) -> None:
    reader = engine.open(bars_root, readonly=True)
    try:
        before = _rows(reader, KEY)
        assert len(before) == 40_350
        _writer(bars_root, f"seal {KEY} 2022")  # generation 2 replaces the file read before
        assert _rows(reader, KEY) == before
        _writer(bars_root, "write-sealed-year")  # an overlay of generation 2
        after = _rows(reader, KEY)
        assert after == _expected(bars_root, KEY)
        assert len(after) == 40_354  # 5 rows, one of them in the slot of an earlier bar
        _writer(bars_root, f"seal {KEY} 2022")  # and generation 3 again
        assert _rows(reader, KEY) == after
    finally:
        reader.close()


def test_reader_reads_while_another_process_reseals_over_and_over(bars_root: str) -> None:
    """Reads racing 30 re-seals (and the writes into the year between them) each return
    the year as one of the writer's states: the 40 350 rows and some of the new ones."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    reader = engine.open(bars_root, readonly=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, bars_root, "reseal-loop 30", KEY,
                               TICKS, str(Y2022)], env=env, stderr=subprocess.PIPE)
    try:
        seen = set()
        while writer.poll() is None:
            got = reader.read(KEY, Y2022, Y2022 + 86_400 * 365 - 1)
            n = len(got) - 40_050
            new = got["Close"][len(got) - n:].tolist()
            assert 0 <= n <= 30 and new == [100.0 + i for i in range(n)]
            seen.add(n)
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert len(_rows(reader, KEY)) == 40_380 and len(seen) > 1
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.communicate()
        reader.close()


def test_reader_in_another_process_reads_a_live_year_sealed_under_it(bars_root: str) -> None:
    reader = engine.open(bars_root, readonly=True)
    try:
        before = _rows(reader, KEY)  # 2023's live file is open in the reader's file cache
        _writer(bars_root, f"seal {KEY} 2023")
        assert not os.path.exists(os.path.join(bars_root, KEY, "2023.bin"))
        assert _rows(reader, KEY) == before
        assert 2023 in reader.catalog.buckets[engine.parse_key(KEY)].sealed
    finally:
        reader.close()


def test_reader_in_another_process_reads_a_sealed_year_dropped_under_it(bars_root: str) -> None:
    reader = engine.open(bars_root, readonly=True)
    try:
        assert len(_rows(reader, KEY)) == 40_350
        _writer(bars_root, f"delete {KEY}")  # every row of sealed 2022: op 5 drops its files
        assert not os.path.exists(os.path.join(bars_root, KEY, "2022.sealed"))
        got = _rows(reader, KEY)
        assert got == _expected(bars_root, KEY) and len(got) == 300
    finally:
        reader.close()


def test_reader_in_another_process_reads_a_tick_year_resealed_under_it(root: str) -> None:
    with engine.open(root, bulk_load_rows=0, seal_after_days=0) as db:
        db.write(TICKS, _ticks(30_000, Y2022 + 86_400), variable=True)
        db.seal(TICKS, year=2022)
    reader = engine.open(root, readonly=True)
    try:
        before = _rows(reader, TICKS)
        _writer(root, "write-ticks")
        _writer(root, f"seal {TICKS} 2022")
        got = _rows(reader, TICKS)
        assert got == _expected(root, TICKS) and len(got) == len(before) + 4
    finally:
        reader.close()


def test_reader_in_the_same_process_reads_a_year_resealed_under_it(bars_root: str) -> None:
    writer = engine.open(bars_root, bulk_load_rows=0, seal_after_days=0)
    reader = engine.open(bars_root, readonly=True)
    try:
        before = _rows(reader, KEY)
        assert writer.seal(KEY, year=2022) == [f"{KEY}/2022"]
        assert _rows(reader, KEY) == before
        writer.write(KEY, _bars(3, Y2022 + 86_400 * 300, 5.0))
        assert writer.seal(KEY, year=2022) == [f"{KEY}/2022"]
        assert _rows(reader, KEY) == _rows(writer, KEY)
        writer.delete(KEY, "2022-01-01T00:00:00Z", "2022-12-31T23:59:59Z")
        assert _rows(reader, KEY) == _rows(writer, KEY)
    finally:
        reader.close()
        writer.close()


def test_reader_in_the_same_process_sees_a_year_created_after_it_opened(root: str) -> None:
    with engine.open(root, seal_after_days=0) as writer:
        writer.write(KEY, _bars(10, Y2023 + 3600, 1.0))
        reader = engine.open(root, readonly=True)
        try:
            assert len(_rows(reader, KEY)) == 10
            writer.write(KEY, _bars(4, Y2022 + 3600, 2.0))  # 2022.bin did not exist
            assert _rows(reader, KEY) == _rows(writer, KEY) and len(_rows(reader, KEY)) == 14
        finally:
            reader.close()


def test_reader_still_reports_a_damaged_sealed_file(bars_root: str) -> None:
    """A file that was not replaced and does not read is damage, as before (its footer was
    read at open)."""
    reader = engine.open(bars_root, readonly=True)
    try:
        path = os.path.join(bars_root, KEY, "2022.sealed")
        with open(path, "r+b") as f:
            f.seek(4096 + 10)
            b = f.read(1)
            f.seek(4096 + 10)
            f.write(bytes([b[0] ^ 0xFF]))
        with pytest.raises(engine.CorruptFileError, match="2022.sealed: column"):
            reader.read(KEY)
    finally:
        reader.close()
