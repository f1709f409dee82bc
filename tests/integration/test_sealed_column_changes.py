"""Column changes meet sealed years (docs/format.md "Column changes", "The three states of a
year"): a sealed file of an older schema reads through the translation, an overlay of an
older schema is migrated before a write, and a re-seal writes the current schema. The
oracle is a database that never sealed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mkts import engine
from mkts.engine.header import COLUMNS_FORMAT_VERSION, decode_header

KEY = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2023 = 1_672_531_200  # 2023-01-01 UTC


def _rows(ticks: bool, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    if ticks:
        out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8"),
                                 ("Size", "<i8")])
        t = np.sort(rng.integers(0, 86_400 * 10**9 * 30, n)) + (Y2023 + 86_400 * 40) * 10**9
        out["Epoch"], out["Nanoseconds"] = np.divmod(t, 10**9)
        out["Price"] = np.round(rng.normal(50, 2, n), 2)
        out["Size"] = np.arange(n)
        return out
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Price", "<f4"), ("Size", "<i8")])
    out["Epoch"] = Y2023 + 86_400 * 9 + 180 * np.arange(n)
    out["Price"] = np.round(100 + np.cumsum(rng.normal(0, 0.1, n)), 2)
    out["Size"] = rng.integers(1, 10**6, n)
    return out


def _same(a: engine.Result, b: engine.Result) -> None:
    assert a.columns == b.columns
    for c in a.columns:
        assert a[c].tobytes() == b[c].tobytes(), c


def _reads(db: engine.Database, key: str) -> list[engine.Result]:
    mid = Y2023 + 86_400 * 50
    return [db.read(key), db.read(key, mid, limit=40), db.read(key, columns=["P"]),
            db.read(key, columns=["VWAP"], limit=9, limit_from_start=True)]


def _alter(db: engine.Database, key: str) -> None:
    db.add_column(key, "VWAP", "f8", fill=1.5)
    db.rename_column(key, "Price", "P")
    db.drop_column(key, "Size")


def _new_rows(rows: np.ndarray) -> np.ndarray:
    """`rows` in the changed columns (P, VWAP)."""
    names = [n for n in ("Epoch", "Nanoseconds") if n in (rows.dtype.names or ())]
    out = np.zeros(len(rows), dtype=[*((n, rows.dtype[n]) for n in names),
                                     ("P", rows.dtype["Price"]), ("VWAP", "<f8")])
    for n in names:
        out[n] = rows[n]
    out["P"] = rows["Price"] + 1
    out["VWAP"] = np.arange(len(rows)) / 4
    return out


@pytest.mark.parametrize("key", [KEY, TICKS])
@pytest.mark.parametrize("overlay_first", [False, True])
def test_a_sealed_year_reads_translated_after_a_column_change_and_reseals_in_it(
        tmp_path: Path, key: str, overlay_first: bool) -> None:
    ticks = key == TICKS
    rows = _rows(ticks, 4_000)
    db = engine.open(str(tmp_path / "db"))
    ref = engine.open(str(tmp_path / "ref"))
    try:
        for d in (db, ref):
            d.write(key, rows[:3_000], variable=ticks)
        db.seal(key, 2023)
        bucket = db.catalog.get(engine.parse_key(key))
        if overlay_first:  # an overlay written in the old columns, before the change
            for d in (db, ref):
                d.write(key, rows[2_500:3_200], variable=ticks)
            assert 2023 in bucket.overlays
        for d in (db, ref):
            _alter(d, key)
        for a, b in zip(_reads(db, key), _reads(ref, key), strict=True):
            _same(a, b)
        assert db.read(key)["VWAP"][0] == 1.5  # the sealed rows read the added column's fill
        # A write into the sealed year goes to its overlay, migrated first when it is old.
        new = _new_rows(rows[3_100:])
        for d in (db, ref):
            d.write(key, new, variable=ticks)
        ov = Path(bucket.path, "2023.overlay").read_bytes()
        h = decode_header(ov, "overlay")
        assert (h.version, h.schema_version, list(h.schema.names)) == (
            COLUMNS_FORMAT_VERSION, bucket.schema_version, ["P", "VWAP"])
        assert h.base_generation == db.catalog.sealed_reader(bucket, 2023).meta.generation
        for a, b in zip(_reads(db, key), _reads(ref, key), strict=True):
            _same(a, b)
        assert db.seal(key, 2023) == [f"{key}/2023"]  # re-seal: the current schema
        meta = db.catalog.sealed_reader(bucket, 2023).meta
        assert (meta.schema_version, meta.schema.names) == (bucket.schema_version, ["P", "VWAP"])
        want = _reads(ref, key)
        for a, b in zip(_reads(db, key), want, strict=True):
            _same(a, b)
    finally:
        db.close()
        ref.close()
    again = engine.open(str(tmp_path / "db"))
    try:
        for a, b in zip(_reads(again, key), want, strict=True):
            _same(a, b)
    finally:
        again.close()


def test_sealing_a_live_year_of_an_older_schema_writes_the_current_one(tmp_path: Path) -> None:
    rows = _rows(False, 2_000)
    db = engine.open(str(tmp_path / "db"))
    try:
        db.write(KEY, rows)
        _alter(db, KEY)
        want = _reads(db, KEY)
        assert db.seal(KEY, 2023) == [f"{KEY}/2023"]
        bucket = db.catalog.get(engine.parse_key(KEY))
        assert list(db.catalog.sealed_reader(bucket, 2023).meta.schema.names) == ["P", "VWAP"]
        for a, b in zip(_reads(db, KEY), want, strict=True):
            _same(a, b)
    finally:
        db.close()
