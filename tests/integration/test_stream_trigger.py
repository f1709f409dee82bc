"""Streaming: the stream trigger's hub (plugins/stream.py) and the engine's db.subscribe —
delivery, patterns, unsubscribe, and slow or failing subscribers never holding up writers."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import numpy as np
import pytest
from harness.waiting import wait_until

from mkts import engine
from mkts.plugins import ondiskagg, stream
from mkts.plugins.errors import PluginError

T0 = 1_704_204_000  # 2024-01-02 14:00 UTC


def bars(epochs: Any, value: float = 1.0) -> dict[str, np.ndarray]:
    e = np.asarray(epochs, dtype=np.int64)
    v = np.full(len(e), value)
    return {"Epoch": e, "Open": v, "High": v, "Low": v, "Close": v,
            "Volume": np.ones(len(e), dtype=np.int64)}


class Inbox:
    """A callback that records (key, columns) and lets a test wait for a count."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.items: list[tuple[str, dict[str, np.ndarray]]] = []
        self.delay = delay
        self.fail = fail
        self.cond = threading.Condition()

    def __call__(self, key: str, cols: dict[str, np.ndarray]) -> None:
        if self.delay:
            time.sleep(self.delay)  # a slow subscriber
        with self.cond:
            self.items.append((key, cols))
            self.cond.notify_all()
        if self.fail:
            raise RuntimeError("subscriber bug")

    def wait(self, n: int, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.items) >= n, timeout)

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.items]


# -- the hub -------------------------------------------------------------------------------


def test_hub_delivers_to_matching_subscribers_only() -> None:
    hub = stream.Hub()
    a, b = Inbox(), Inbox()
    hub.subscribe(["AAPL/5Min/OHLCV", "*/1D/OHLCV"], a)
    hub.subscribe("*/*/*", b)
    for key in ("AAPL/5Min/OHLCV", "AAPL/5Min/OHLCV", "NVDA/1D/OHLCV", "AAPL/1Min/OHLCV"):
        hub.publish(key, {"Epoch": np.array([1])})
    assert a.wait(3) and b.wait(4)
    assert a.keys == ["AAPL/5Min/OHLCV", "AAPL/5Min/OHLCV", "NVDA/1D/OHLCV"]  # MarketStore: 3
    hub.close()


def test_patterns_are_anchored_and_match_whole_parts() -> None:
    hub = stream.Hub()
    sub = hub.subscribe("*/1Min/OHLC", Inbox())
    assert sub.matches("AAPL/1Min/OHLC") and not sub.matches("AAPL/1Min/OHLCV")
    assert not sub.matches("X/AAPL/1Min/OHLC")
    with pytest.raises(ValueError, match="must have three parts"):
        hub.subscribe("*/1Min", Inbox())
    hub.close()


def test_set_patterns_replaces_the_subscription() -> None:
    hub = stream.Hub()
    inbox = Inbox()
    sub = hub.subscribe("A/*/*", inbox)
    sub.set_patterns(["B/*/*"])
    assert sub.patterns == ("B/*/*",)
    hub.publish("A/1Min/OHLCV", {})
    hub.publish("B/1Min/OHLCV", {})
    assert inbox.wait(1) and not inbox.wait(2, timeout=0.1)
    assert inbox.keys == ["B/1Min/OHLCV"]
    hub.close()


def test_unsubscribe_stops_delivery() -> None:
    hub = stream.Hub()
    inbox = Inbox()
    with hub.subscribe("*/*/*", inbox) as sub:
        hub.publish("A/1Min/OHLCV", {})
        assert inbox.wait(1)
    assert not sub.active and hub.stats()["subscribers"] == 0
    hub.publish("A/1Min/OHLCV", {})
    assert not inbox.wait(2, timeout=0.1)
    sub.unsubscribe()  # twice is harmless


def test_slow_subscriber_never_blocks_publish_and_drops_oldest() -> None:
    hub = stream.Hub()
    gate = threading.Event()
    got: list[int] = []

    def slow(key: str, cols: dict[str, np.ndarray]) -> None:
        gate.wait(5)
        got.append(int(cols["Epoch"][0]))

    sub = hub.subscribe("*/*/*", slow, max_pending=5)
    t = time.monotonic()
    for i in range(100):
        hub.publish("A/1Min/OHLCV", {"Epoch": np.array([i])})
    assert time.monotonic() - t < 0.5
    gate.set()
    assert wait_until(lambda: sub.pending() == 0 and bool(got) and got[-1] == 99)
    assert got[-5:] == [95, 96, 97, 98, 99]  # the newest survive
    assert sub.dropped == 100 - len(got) and hub.stats()["dropped"] == sub.dropped
    hub.close()


def test_failing_subscriber_does_not_break_the_others(caplog: Any) -> None:
    hub = stream.Hub()
    bad, good = Inbox(fail=True), Inbox()
    bad_sub = hub.subscribe("*/*/*", bad)
    hub.subscribe("*/*/*", good)
    for _ in range(3):
        hub.publish("A/1Min/OHLCV", {})
    assert good.wait(3) and bad.wait(3)
    assert wait_until(lambda: bad_sub.errors == 3)
    assert bad_sub.active and "subscriber bug" in caplog.text
    hub.close()


def test_stream_trigger_config() -> None:
    assert stream.NewTrigger({"max_pending": 7}).hub.max_pending == 7
    with pytest.raises(PluginError, match=re.escape(
            "stream config: max_pending: 0 must be greater than 0")):
        stream.NewTrigger({"max_pending": 0})
    with pytest.raises(PluginError, match=re.escape(
            "stream config: max_pending: must be an integer, not str '9'")):
        stream.NewTrigger({"max_pending": "9"})
    with pytest.raises(PluginError, match=re.escape(
            "stream config: filter: unknown key; known keys here: max_pending")):
        stream.NewTrigger({"filter": "nasdaq"})


# -- the trigger on a database -------------------------------------------------------------


def test_stream_trigger_pushes_new_rows_in_time_order(root: str) -> None:
    trig = stream.NewTrigger({})
    with engine.open(root, sync="off", triggers=[("*/*/*", trig)]) as db:
        assert stream.hub_of(db) is trig.hub
        inbox = Inbox()
        trig.hub.subscribe("*/1Min/OHLCV", inbox)
        db.write("AAPL/1Min/OHLCV", bars([T0 + 120, T0, T0 + 60], 2.0))
        db.write("AAPL/1Min/QUOTE", {"Epoch": [T0], "Bid": [1.0]})
        assert inbox.wait(1)
        db.flush()
        (key, cols), = inbox.items
        assert key == "AAPL/1Min/OHLCV"
        assert cols["Epoch"].tolist() == [T0, T0 + 60, T0 + 120]
        assert list(cols) == ["Epoch", "Open", "High", "Low", "Close", "Volume"]
    assert not inbox.wait(2, timeout=0.05)


def test_aggregated_bars_are_streamed_too(root: str) -> None:
    agg = ondiskagg.NewTrigger({"destinations": ["5Min"]})
    trig = stream.NewTrigger({})
    with engine.open(root, sync="off", triggers=[("*/1Min/OHLCV", agg),
                                                 ("*/*/*", trig)]) as db:
        inbox = Inbox()
        trig.hub.subscribe("*/5Min/*", inbox)
        db.write("AAPL/1Min/OHLCV", bars(T0 + 60 * np.arange(7)))
        assert inbox.wait(1)
        (key, cols), = inbox.items
        assert key == "AAPL/5Min/OHLCV" and cols["Epoch"].tolist() == [T0, T0 + 300]


def test_tick_rows_are_streamed_with_nanoseconds(root: str) -> None:
    trig = stream.NewTrigger({})
    with engine.open(root, sync="off", triggers=[("*/*/*", trig)]) as db:
        inbox = Inbox()
        trig.hub.subscribe("*/1Sec/TRADE", inbox)
        ticks = {"Epoch": [T0, T0, T0], "Nanoseconds": [500, 100, 300],
                 "Price": [1.0, 2.0, 3.0], "Size": [1, 2, 3]}
        db.write("AAPL/1Sec/TRADE", ticks, variable=True)
        assert inbox.wait(1)
        cols = inbox.items[0][1]
        assert cols["Nanoseconds"].tolist() == [100, 300, 500]
        assert cols["Price"].tolist() == [2.0, 3.0, 1.0]


def test_slow_stream_subscriber_does_not_slow_writers(root: str) -> None:
    trig = stream.NewTrigger({"max_pending": 2})
    with engine.open(root, sync="off", triggers=[("*/*/*", trig)]) as db:
        sub = trig.hub.subscribe("*/*/*", Inbox(delay=1.0))
        t = time.monotonic()
        for i in range(30):
            db.write("A/1Min/OHLCV", bars([T0 + 60 * i]))
        assert db.flush(timeout=5)
        assert time.monotonic() - t < 2.0
        assert sub.dropped >= 25
        sub.unsubscribe()


def test_hub_of_is_none_without_a_stream_trigger(root: str) -> None:
    with engine.open(root) as db:
        assert stream.hub_of(db) is None


def test_closing_the_database_unsubscribes_everyone(root: str) -> None:
    trig = stream.NewTrigger({})
    db = engine.open(root, triggers=[("*/*/*", trig)])
    sub = trig.hub.subscribe("*/*/*", Inbox())
    db.close()
    assert not sub.active and trig.hub.stats()["subscribers"] == 0


# -- db.subscribe (engine) -----------------------------------------------------------------


def test_db_subscribe_delivers_each_write(root: str) -> None:
    with engine.open(root, sync="off") as db:
        inbox = Inbox()
        db.subscribe("*/1Min/OHLCV", inbox)
        db.write("A/1Min/OHLCV", bars([T0, T0 + 60]))
        db.write("B/1Min/OHLCV", bars([T0]))
        db.write("B/1Min/QUOTE", {"Epoch": [T0], "Bid": [1.0]})
        assert inbox.wait(2)
        db.flush()
        assert sorted(inbox.keys) == ["A/1Min/OHLCV", "B/1Min/OHLCV"]
        cols = dict(inbox.items)["A/1Min/OHLCV"]
        assert cols["Epoch"].tolist() == [T0, T0 + 60]


def test_db_unsubscribe_stops_delivery(root: str) -> None:
    with engine.open(root, sync="off") as db:
        inbox = Inbox()
        sub = db.subscribe("*/*/*", inbox)
        db.write("A/1Min/OHLCV", bars([T0]))
        assert inbox.wait(1)
        sub.unsubscribe()
        db.write("A/1Min/OHLCV", bars([T0 + 60]))
        db.flush()
        assert not inbox.wait(2, timeout=0.1)


def test_db_slow_subscriber_does_not_block_writers(root: str) -> None:
    with engine.open(root, sync="off") as db:
        gate = threading.Event()
        sub = db.subscribe("*/*/*", lambda k, c: gate.wait(5), max_pending=3)
        t = time.monotonic()
        for i in range(50):
            db.write("A/1Min/OHLCV", bars([T0 + 60 * i]))
        assert db.flush(timeout=5)
        assert time.monotonic() - t < 2.0
        assert sub.dropped >= 45
        gate.set()
        sub.unsubscribe()


def test_db_failing_subscriber_does_not_break_the_others(root: str, caplog: Any) -> None:
    with engine.open(root, sync="off") as db:
        bad, good = Inbox(fail=True), Inbox()
        db.subscribe("*/*/*", bad)
        db.subscribe("*/*/*", good)
        for i in range(3):
            db.write("A/1Min/OHLCV", bars([T0 + 60 * i]))
        assert good.wait(3) and bad.wait(3)
        db.write("A/1Min/OHLCV", bars([T0 + 600]))
        assert good.wait(4) and bad.wait(4)
        assert "subscriber bug" in caplog.text
        assert db.stats()["trigger_errors"] == 0
