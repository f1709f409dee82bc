"""Readers running during heavy writes see whole transactions only: never half of a
write_many across two buckets (or two year files), never a torn row."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from mkts import engine

A, B = "A/1Min/X", "B/1Min/X"
COLUMNS = {"F8": "f8", "I8": "i8", "F4": "f4", "U2": "u2", "I4": "i4"}
JAN1_2024 = 1_704_067_200
# 200 minutes on each side of the year boundary: every write touches four year files.
EPOCHS = np.arange(JAN1_2024 - 200 * 60, JAN1_2024 + 200 * 60, 60, dtype=np.int64)
WRITES = 150


def _rows(v: int) -> dict[str, Any]:
    """Every column of every row carries the value v."""
    out: dict[str, Any] = {"Epoch": EPOCHS}
    for name, dtype in COLUMNS.items():
        out[name] = np.full(len(EPOCHS), v, dtype=dtype)
    return out


def _values(r: engine.Result) -> np.ndarray:
    """The single value of each row, after checking that no row is torn."""
    first = np.asarray(r["F8"])
    for name in COLUMNS:
        col = np.asarray(r[name]).astype(np.float64)
        if not np.array_equal(col, first):
            raise AssertionError(f"{r.key}: a torn row: {name} differs from F8")
    return first


def test_readers_never_see_half_a_transaction(db: engine.Database) -> None:
    db.create(A, COLUMNS)
    db.create(B, COLUMNS)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: set[int] = set()
    reads = [0]

    def check_pair() -> None:
        rs = db.query("A,B/1Min/X")
        assert list(rs) == [A, B]
        a, b = _values(rs[A]), _values(rs[B])
        if len(a) != len(b) or not np.array_equal(a, b):
            raise AssertionError(f"half a write_many: A={set(a.tolist())} B={set(b.tolist())}")
        if len(a) and (len(a) != len(EPOCHS) or len(set(a.tolist())) != 1):
            raise AssertionError(f"half a transaction within one bucket: {set(a.tolist())}")
        if len(a):
            assert rs[A]["Epoch"].tolist() == EPOCHS.tolist()
            seen.add(int(a[0]))

    def check_one() -> None:
        r = db.read(B, JAN1_2024 - 600, JAN1_2024 + 600, columns=["U2", "F8", "I4", "F4", "I8"])
        vals = _values(r)
        if len(vals) and len(set(vals.tolist())) != 1:
            raise AssertionError(f"rows from two transactions across a year file: {set(vals)}")

    def reader(check: Any) -> None:
        try:
            while not stop.is_set():
                check()
                reads[0] += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(c,), daemon=True)
               for c in (check_pair, check_pair, check_one)]
    for t in threads:
        t.start()
    started = time.monotonic()
    try:
        for v in range(1, WRITES + 1):
            db.write_many({A: _rows(v), B: _rows(v)})
            if errors:
                break
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors[0]
    assert not any(t.is_alive() for t in threads)
    assert reads[0] > 10, f"readers made only {reads[0]} reads in {time.monotonic() - started:.1f} s"
    assert len(seen) >= 2, f"readers saw only {seen}"
    final = db.query("A,B/1Min/X")
    assert set(_values(final[A]).tolist()) == {WRITES}
    assert set(_values(final[B]).tolist()) == {WRITES}


def test_concurrent_writers_to_different_buckets_all_land(db: engine.Database) -> None:
    errors: list[BaseException] = []

    def writer(sym: str) -> None:
        try:
            for i in range(40):
                db.write(f"{sym}/1Min/X", {"Epoch": [JAN1_2024 + 60 * i], "V": [float(i)]})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in ("P", "Q", "R", "S")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    rs = db.query("*/1Min/X")
    assert list(rs) == ["P/1Min/X", "Q/1Min/X", "R/1Min/X", "S/1Min/X"]
    for r in rs.values():
        assert r["V"].tolist() == [float(i) for i in range(40)]
        assert r["Epoch"].tolist() == [JAN1_2024 + 60 * i for i in range(40)]
