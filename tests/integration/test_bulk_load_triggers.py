"""Bulk loads with triggers attached (docs/format.md "Bulk loads"): a live bulk load hands its
rows to triggers and subscribers from memory; a replayed WAL op 7 carries none, so its rows
are read back from the file it installed (or the `.ingest` file kept beside a year that had
a file). Either way ondiskagg's bars equal a from-scratch aggregation. A crash is simulated
by copying the root while the database is open (the log still holds the records)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np

from mkts import engine
from mkts.engine import journal
from mkts.engine.ingest import prepare, raw_columns
from mkts.engine.plan import plan_fixed
from mkts.plugins import aggfuncs, ondiskagg, synth

BASE = "BULK/1Min/OHLCV"
DESTS = ["5Min", "1H", "1D"]
Y2023 = 1_672_531_200
QUIET = {"checkpoint_interval_s": 1e9}  # nothing retired: a copy replays every record


def _bars(n: int, start: int = Y2023, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=synth.BAR_DTYPE)
    out["Epoch"] = start + 60 * np.arange(n)
    mid = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2)
    out["Open"], out["Close"] = mid, mid + 0.01
    out["High"], out["Low"] = mid + 0.25, mid - 0.25
    out["Volume"] = rng.integers(1, 1000, n)
    return out


class Heard:
    """A trigger that only counts the rows it is given, and whether they were replayed."""

    def __init__(self) -> None:
        self.rows = 0
        self.replayed: set[bool] = set()

    def fire(self, key_path: str, records: Any) -> None:
        self.rows += len(records)
        self.replayed.add(bool(records.replayed))


def _agg() -> Any:
    return ondiskagg.NewTrigger({"destinations": DESTS})


def _assert_matches_scratch(db: engine.Database, rows: int) -> None:
    assert db.flush(timeout=60)
    r = db.read(BASE)
    assert len(r) == rows
    cols = {c: np.asarray(r[c]) for c in r.columns}
    for d in DESTS:
        exp = aggfuncs.aggregate(cols, db.calendar, d)
        key = f"BULK/{d}/OHLCV"
        if not len(exp["Epoch"]):
            assert key not in db.list_keys() or len(db.read(key)) == 0
            continue
        got = db.read(key)
        for c, v in exp.items():
            np.testing.assert_array_equal(np.asarray(got[c]), v, err_msg=f"{d} {c}")


def _files(root: str, key: str = BASE) -> list[str]:
    return sorted(os.listdir(os.path.join(root, key)))


def test_a_bulk_load_with_ondiskagg_attached_is_sealed_and_aggregated(root: str) -> None:
    rows = _bars(30_000)
    got: list[int] = []
    with engine.open(root, triggers=[("*/1Min/OHLCV", _agg())], **QUIET) as db:
        sub = db.subscribe(BASE, lambda key, cols: got.append(len(cols["Epoch"])))
        db.write(BASE, rows)
        assert _files(root) == ["2023.sealed", "bucket.hdr"]  # the rows skipped the log
        _assert_matches_scratch(db, 30_000)
        db.write(BASE, _bars(20, Y2023 + 60 * 29_990, seed=2))  # overlay; bars follow
        _assert_matches_scratch(db, 30_010)
        sub.unsubscribe()
    assert sum(got) == 30_020  # subscribers get the bulk load's rows too


def test_replayed_bulk_loads_give_ondiskagg_their_rows_back_from_the_sealed_file(
        root: str) -> None:
    heard = Heard()
    with engine.open(root, triggers=[("*/1Min/OHLCV", heard)], **QUIET) as db:
        db.write(BASE, _bars(30_000))
        db.write(BASE, _bars(15_000, Y2023 + 60 * 40_000, seed=3))  # into the overlay
        assert db.flush(timeout=60) and heard.rows == 45_000
        shutil.copytree(root, root + ".crash")
    again = Heard()
    with engine.open(root + ".crash", triggers=[("*/1Min/OHLCV", _agg()), (BASE, again)],
                     **QUIET) as db:
        _assert_matches_scratch(db, 45_000)
        assert again.rows == 45_000 and again.replayed == {True}


def test_a_bulk_load_whose_year_a_later_delete_removed_replays_without_its_file(
        root: str) -> None:
    with engine.open(root, triggers=[("*/1Min/OHLCV", Heard())], **QUIET) as db:
        db.write(BASE, _bars(30_000))
        db.write(BASE, _bars(100, Y2023 + 365 * 86_400))  # 2024, live
        db.delete(BASE, Y2023, Y2023 + 365 * 86_400 - 1)  # 2023 goes (op 5)
        assert _files(root) == ["2024.bin", "bucket.hdr"]
        shutil.copytree(root, root + ".crash")
    with engine.open(root + ".crash", triggers=[("*/1Min/OHLCV", _agg())], **QUIET) as db:
        _assert_matches_scratch(db, 100)
        assert db.info(BASE)["years"] == [2024]


def test_a_replayed_bulk_load_merged_into_an_existing_year_reads_its_kept_file(
        root: str) -> None:
    rows = _bars(20_000)
    with engine.open(root, triggers=[("*/1Min/OHLCV", Heard())], **QUIET) as db:
        db.create(BASE, {c: "f4" for c in ("Open", "High", "Low", "Close")} | {"Volume": "i8"})
        bucket = db.catalog.get(engine.parse_key(BASE))
        batch = prepare(raw_columns(rows, BASE), bucket.schema, db.calendar, BASE)
        writes = db._writes.bulk.fixed(plan_fixed(bucket.key, bucket.schema, batch, db.calendar))
        db.write(BASE, rows[-1:])  # logged first: the year becomes a live file
        db._pipeline.commit_built(journal.encode_parts(list(writes)), writes)
        assert "2023.bin" in _files(root)
        shutil.copytree(root, root + ".crash")
    with engine.open(root + ".crash", triggers=[("*/1Min/OHLCV", _agg())], **QUIET) as db:
        _assert_matches_scratch(db, 20_000)
