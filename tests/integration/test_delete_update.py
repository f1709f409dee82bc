"""Range deletes, range replaces (`update`) and transactions that mix them with writes
(docs/format.md "Deletes and updates"): what they remove, what they return, the files they
leave, the errors, atomicity for readers, what triggers and subscribers hear, and `mkts
check` of the aggregates afterwards."""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import pytest
from harness.waiting import wait_until

from mkts import engine
from mkts.check import check_root
from mkts.plugins import ondiskagg, stream
from mkts.wiring import AggregationSpec

T0 = 1_704_204_000  # 2024-01-02 14:00 UTC
NS = 1_000_000_000


def bars(epochs: Any, value: float = 1.0) -> dict[str, np.ndarray]:
    e = np.asarray(epochs, dtype=np.int64)
    v = np.full(len(e), value) + np.arange(len(e))
    return {"Epoch": e, "Open": v, "High": v, "Low": v, "Close": v,
            "Volume": np.ones(len(e), dtype=np.int64)}


def ticks(times_ns: Any, price: float = 1.0) -> dict[str, np.ndarray]:
    t = np.asarray(times_ns, dtype=np.int64)
    return {"Epoch": t // NS, "Nanoseconds": (t % NS).astype("i4"),
            "Price": price + np.arange(len(t), dtype="f8"), "Size": np.ones(len(t), "i8")}


def tick_times(r: engine.Result) -> list[int]:
    return (np.asarray(r["Epoch"], np.int64) * NS + np.asarray(r["Nanoseconds"])).tolist()


def test_fixed_delete_goes_by_interval_label(db: engine.Database) -> None:
    db.write("A/5Min/OHLCV", bars(T0 + 300 * np.arange(6)))
    # 14:07 is inside the 14:05 bar: that bar's label is before the start, so it stays
    removed = db.delete("A/5Min/OHLCV", T0 + 420, T0 + 900)
    assert removed == 2  # 14:10 and 14:15
    assert db.read("A/5Min/OHLCV")["Epoch"].tolist() == [T0, T0 + 300, T0 + 1200, T0 + 1500]


def test_tick_delete_cuts_intervals_to_the_nanosecond(db: engine.Database) -> None:
    times = [(T0 + s) * NS + n for s in range(4) for n in (0, 250_000_000, 500_000_000)]
    db.write("T/1Sec/TRADE", ticks(times), variable=True)
    start, end = (T0 + 0) * NS + 250_000_000, (T0 + 2) * NS + 250_000_000
    removed = db.delete("T/1Sec/TRADE", np.datetime64(start, "ns"), np.datetime64(end, "ns"))
    assert removed == 7  # both ends inclusive
    assert tick_times(db.read("T/1Sec/TRADE")) == [t for t in times if not start <= t <= end]
    # the cut intervals' remaining rows keep their values and order
    assert db.read("T/1Sec/TRADE")["Price"].tolist() == [1.0, 9.0, 10.0, 11.0, 12.0]


def test_a_year_left_empty_loses_its_file(db: engine.Database) -> None:
    db.write("A/1D/OHLCV", bars([T0 - 10 * 86400, T0]))  # 2023-12-23 and 2024-01-02
    path = os.path.join(db.root, "A", "1D", "OHLCV", "2023.bin")
    assert os.path.exists(path)
    assert db.delete("A/1D/OHLCV", end="2023-12-31") == 1
    assert not os.path.exists(path)
    assert db.info("A/1D/OHLCV")["years"] == [2024]
    assert db.delete("A/1D/OHLCV") == 1  # everything: the bucket stays, without years
    assert db.info("A/1D/OHLCV")["years"] == [] and db.list_keys() == ["A/1D/OHLCV"]
    db.write("A/1D/OHLCV", bars([T0]))  # and takes writes again
    assert db.read("A/1D/OHLCV")["Epoch"].tolist() == [T0 // 86400 * 86400]


def test_delete_of_nothing_changes_nothing(db: engine.Database, snapshot: Any) -> None:
    db.write("A/1Min/OHLCV", bars([T0]))
    db.checkpoint()
    before = snapshot(db.root)
    assert db.delete("A/1Min/OHLCV", T0 + 60, T0 + 600) == 0
    with db.transaction() as tx:
        tx.delete("A/1Min/OHLCV", T0 + 60)
    assert tx.txn == 0 and tx.removed == {"A/1Min/OHLCV": 0}
    assert snapshot(db.root) == before  # not even logged


@pytest.mark.parametrize("call, error", [
    (lambda db: db.delete("A/1Min/OHLCV", T0 + 60, T0), engine.InvalidInputError),
    (lambda db: db.delete("Z/1Min/OHLCV"), engine.BucketNotFoundError),
    (lambda db: db.delete("A/1Min/OHLCV", "yesterday"), engine.InvalidInputError),
    (lambda db: db.update("A/1Min/OHLCV", {"Epoch": [T0], "Open": ["x"]}),
     engine.MktsError),
])
def test_bad_deletes_and_updates_raise_and_change_nothing(db: engine.Database, call: Any,
                                                          error: type) -> None:
    db.write("A/1Min/OHLCV", bars([T0, T0 + 60]))
    with pytest.raises(error):
        call(db)
    assert db.read("A/1Min/OHLCV")["Epoch"].tolist() == [T0, T0 + 60]


def test_update_replaces_the_span_of_its_data_by_default(db: engine.Database) -> None:
    times = [(T0 + s) * NS for s in range(10)]
    db.write("T/1Sec/TRADE", ticks(times), variable=True)
    new = [(T0 + 2) * NS, (T0 + 2) * NS + 5, (T0 + 5) * NS]
    txn = db.update("T/1Sec/TRADE", ticks(new, 100.0))
    assert txn > 0
    got = tick_times(db.read("T/1Sec/TRADE"))
    assert got == sorted(times[:2] + new + times[6:])  # 2..5 replaced; no duplicates
    db.update("T/1Sec/TRADE", ticks(new, 100.0))  # loading the corrected day again
    assert tick_times(db.read("T/1Sec/TRADE")) == got


def test_update_with_an_explicit_range_and_no_rows_is_a_delete(db: engine.Database) -> None:
    db.write("A/1Min/OHLCV", bars(T0 + 60 * np.arange(5)))
    db.update("A/1Min/OHLCV", bars([T0 + 60]), start=T0, end=T0 + 180)
    assert db.read("A/1Min/OHLCV")["Epoch"].tolist() == [T0 + 60, T0 + 240]
    db.update("A/1Min/OHLCV", bars([]), start=T0, end=T0 + 60)
    assert db.read("A/1Min/OHLCV")["Epoch"].tolist() == [T0 + 240]


def test_transaction_mixes_buckets_and_is_all_or_nothing(db: engine.Database) -> None:
    db.write("A/1Min/OHLCV", bars(T0 + 60 * np.arange(3)))
    db.write("T/1Sec/TRADE", ticks([T0 * NS, (T0 + 1) * NS]), variable=True)
    with db.transaction() as tx:
        tx.delete("A/1Min/OHLCV", T0, T0)
        tx.update("T/1Sec/TRADE", ticks([T0 * NS + 7]), start=T0, end=T0 + 1)
        tx.write("B/1Min/OHLCV", bars([T0]))
    assert tx.txn > 0 and tx.removed == {"A/1Min/OHLCV": 1, "T/1Sec/TRADE": 2}
    assert db.read("A/1Min/OHLCV")["Epoch"].tolist() == [T0 + 60, T0 + 120]
    assert tick_times(db.read("T/1Sec/TRADE")) == [T0 * NS + 7]
    with pytest.raises(engine.BucketNotFoundError):
        with db.transaction() as tx:
            tx.delete("A/1Min/OHLCV")
            tx.delete("NOPE/1Min/OHLCV")
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.delete("A/1Min/OHLCV")
            raise RuntimeError("the block failed: nothing is committed")
    assert db.read("A/1Min/OHLCV")["Epoch"].tolist() == [T0 + 60, T0 + 120]


def test_deletes_survive_reopen_and_interval_mode_returns_applied(root: str) -> None:
    with engine.open(root, sync="interval", sync_interval_ms=10**6) as db:
        db.write("A/1Min/OHLCV", bars(T0 + 60 * np.arange(4)))
        assert db.delete("A/1Min/OHLCV", T0 + 60, T0 + 120) == 2
        assert db.read("A/1Min/OHLCV")["Epoch"].tolist() == [T0, T0 + 180]
    with engine.open(root) as db:
        assert db.read("A/1Min/OHLCV")["Epoch"].tolist() == [T0, T0 + 180]


def test_readers_never_see_an_update_half_applied(db: engine.Database) -> None:
    epochs = T0 + 60 * np.arange(200)
    db.write("A/1Min/OHLCV", bars(epochs, 0.0))
    stop = threading.Event()
    seen: list[tuple[int, set[float]]] = []

    def read() -> None:
        while not stop.is_set():
            r = db.read("A/1Min/OHLCV")
            seen.append((len(r), set((np.asarray(r["Open"]) - np.arange(len(r))).tolist())))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 30):
            db.update("A/1Min/OHLCV", bars(epochs, 1000.0 * i))
    finally:
        stop.set()
        reader.join()
    assert seen
    for n, versions in seen:  # every row of one read is from the same version
        assert n == 200 and len(versions) == 1, (n, sorted(versions)[:3])


def test_triggers_hear_the_removed_range_and_subscribers_only_rows(root: str) -> None:
    heard: list[Any] = []

    class Spy:
        def fire(self, key_path: str, records: Any) -> None:
            heard.append((key_path, len(records), records.removed))

    hub_trigger = stream.NewTrigger({})
    got: list[tuple[str, int]] = []
    with engine.open(root, triggers=[("*/*/*", Spy()), ("*/*/*", hub_trigger)]) as db:
        sub = stream.hub_of(db).subscribe("*/*/*", lambda k, c: got.append((k, len(c["Epoch"]))))
        db.write("A/1Min/OHLCV", bars([T0, T0 + 60]))
        db.delete("A/1Min/OHLCV", T0, T0 + 30)
        db.update("A/1Min/OHLCV", bars([T0 + 60]))
        assert db.wait_for_triggers(10)
        assert wait_until(lambda: len(got) >= 2), "the subscriber got no batches"
        sub.unsubscribe()
    path = "A/1Min/OHLCV/2024.bin"
    assert heard == [(path, 2, None), (path, 0, (T0 * NS, (T0 + 30) * NS)),
                     (path, 0, ((T0 + 60) * NS, (T0 + 60) * NS)), (path, 1, None)]
    # subscribers get the rows written (the update's replacement), never a delete
    assert got == [("A/1Min/OHLCV", 2), ("A/1Min/OHLCV", 1)]


def test_aggregates_follow_deletes_and_check_verifies_them(root: str) -> None:
    agg = ondiskagg.NewTrigger({"destinations": ["5Min", "1D"], "batch_ms": 0})
    with engine.open(root, triggers=[("*/1Min/OHLCV", agg)]) as db:
        db.write("A/1Min/OHLCV", bars(T0 + 60 * np.arange(20)))
        db.delete("A/1Min/OHLCV", T0 + 300, T0 + 599)  # the second 5Min bar's rows
        db.update("A/1Min/OHLCV", bars([T0 + 60], 50.0), start=T0, end=T0 + 120)
        assert db.wait_for_triggers(10)
        five = db.read("A/5Min/OHLCV")
        assert five["Epoch"].tolist() == [T0, T0 + 600, T0 + 900]  # the 14:05 bar is gone
        assert five["Open"].tolist()[0] == 50.0 and five["Volume"].tolist()[0] == 3
        db.delete("A/1Min/OHLCV")
        assert db.wait_for_triggers(10)
        assert len(db.read("A/5Min/OHLCV")) == 0 and len(db.read("A/1D/OHLCV")) == 0
        db.write("A/1Min/OHLCV", bars(T0 + 60 * np.arange(3)))
    spec = [AggregationSpec("*/1Min/OHLCV", ("5Min", "1D"))]
    assert not check_root(root, aggregates=spec).errors
    with engine.open(root) as db:  # without the trigger: a stale bar is left behind
        db.delete("A/1Min/OHLCV", T0, T0 + 60)
    errors = check_root(root, aggregates=spec).errors
    assert errors and "differ" in str(errors[0])


def test_a_transaction_deletes_what_it_wrote_before_in_a_new_year(db: engine.Database) -> None:
    next_year = 1_735_689_600 + 3600  # 2025-01-01 01:00 UTC: no year file yet
    db.write("T/1Sec/TRADE", ticks([T0 * NS]), variable=True)
    with db.transaction() as tx:
        tx.write("T/1Sec/TRADE", ticks([next_year * NS, next_year * NS + 1]))
        tx.write("A/1Min/OHLCV", bars([next_year]))
        tx.delete("T/1Sec/TRADE", np.datetime64(next_year * NS + 1, "ns"))
        tx.delete("A/1Min/OHLCV", "2025-01-01")
    assert tx.removed == {"T/1Sec/TRADE": 1, "A/1Min/OHLCV": 1}
    assert tick_times(db.read("T/1Sec/TRADE")) == [T0 * NS, next_year * NS]
    assert len(db.read("A/1Min/OHLCV")) == 0 and db.info("A/1Min/OHLCV")["years"] == []
