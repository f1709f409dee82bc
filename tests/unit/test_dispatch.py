"""The trigger dispatcher (engine/dispatch.py) on its own: which events are decoded and for
whom, firing order, flush() across writes made by triggers, and flush() timeouts."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from engine.dispatch import Dispatcher, Records
from engine.keys import parse_key

pytestmark = pytest.mark.unit


class _Write:
    def __init__(self, key: str) -> None:
        self.key = parse_key(key)


class _Event:
    def __init__(self, txn: int, *keys: str) -> None:
        self.txn = txn
        self.writes = [_Write(k) for k in keys]
        self.replayed = False


class _Decoder:
    """Stands in for Database._event_records and counts the events it decodes."""

    def __init__(self) -> None:
        self.decoded: list[int] = []

    def __call__(self, event: _Event) -> list[Records]:
        self.decoded.append(event.txn)
        rows = np.zeros(1, dtype=[("Close", "f4")])
        return [Records(w.key, 2024, event.txn, False, np.array([0]), rows,
                        np.array([1_704_067_200]), ["Close"]) for w in event.writes]


class _Recorder:
    def __init__(self, name: str, log: list[tuple[str, str, int]]) -> None:
        self.name = name
        self.log = log

    def fire(self, key_path: str, records: Records) -> None:
        self.log.append((self.name, str(records.key), records.txn))


def _dispatcher(triggers: list[tuple[str, Any]], db: Any = None) -> tuple[Dispatcher, _Decoder]:
    decoder = _Decoder()
    d = Dispatcher(db, triggers, decoder)
    d.start()
    return d, decoder


def test_events_nobody_listens_to_are_not_decoded() -> None:
    log: list[tuple[str, str, int]] = []
    d, decoder = _dispatcher([("*/1Min/OHLCV", _Recorder("t", log))])
    try:
        d.publish(_Event(1, "A/5Min/OHLCV", "A/1H/OHLCV"))  # e.g. the bars a trigger wrote
        d.publish(_Event(2, "A/1Min/OHLCV"))
        assert d.flush(timeout=5)
        assert decoder.decoded == [2]
        assert log == [("t", "A/1Min/OHLCV", 2)]
    finally:
        d.stop()


def test_a_subscriber_gets_events_no_trigger_matches() -> None:
    got: list[str] = []
    done = threading.Event()
    d, decoder = _dispatcher([("*/1Min/OHLCV", _Recorder("t", []))])
    try:
        d.subscribe("*/5Min/*", lambda key, cols: (got.append(key), done.set()))
        d.publish(_Event(1, "A/5Min/OHLCV"))
        assert d.flush(timeout=5) and done.wait(5)
        assert decoder.decoded == [1] and got == ["A/5Min/OHLCV"]
    finally:
        d.stop()


def test_triggers_fire_per_record_in_configuration_order() -> None:
    log: list[tuple[str, str, int]] = []
    d, _ = _dispatcher([("*/1Min/*", _Recorder("first", log)), ("B/*/*", _Recorder("b", log)),
                        ("*/1Min/OHLCV", _Recorder("last", log))])
    try:
        d.publish(_Event(1, "A/1Min/OHLCV", "B/1Min/OHLCV"))
        d.publish(_Event(2, "B/1D/OHLCV"))
        assert d.flush(timeout=5)
        assert log == [("first", "A/1Min/OHLCV", 1), ("last", "A/1Min/OHLCV", 1),
                       ("first", "B/1Min/OHLCV", 1), ("b", "B/1Min/OHLCV", 1),
                       ("last", "B/1Min/OHLCV", 1), ("b", "B/1D/OHLCV", 2)]
    finally:
        d.stop()


def test_flush_waits_for_events_published_by_triggers() -> None:
    log: list[tuple[str, str, int]] = []
    box: dict[str, Dispatcher] = {}

    class Chain:
        """Publishes a follow-up event from inside fire, as a trigger's own write does."""

        def fire(self, key_path: str, records: Records) -> None:
            if records.txn < 20:
                threading.Event().wait(0.01)
                box["d"].publish(_Event(records.txn + 1, "A/1Min/OHLCV"))

    d, _ = _dispatcher([("*/1Min/OHLCV", Chain()), ("*/1Min/OHLCV", _Recorder("r", log))])
    box["d"] = d
    try:
        d.publish(_Event(1, "A/1Min/OHLCV"))
        assert d.flush(timeout=10)
        assert [txn for _, _, txn in log] == list(range(1, 21))
        assert d.idle()
    finally:
        d.stop()


def test_flush_times_out_while_a_trigger_is_busy_and_stop_drains() -> None:
    release = threading.Event()
    log: list[tuple[str, str, int]] = []

    class Stuck:
        def fire(self, key_path: str, records: Records) -> None:
            release.wait(5)

    d, _ = _dispatcher([("*/*/*", Stuck()), ("*/*/*", _Recorder("r", log))])
    d.publish(_Event(1, "A/1Min/OHLCV"))
    d.publish(_Event(2, "A/1Min/OHLCV"))
    assert d.flush(timeout=0.05) is False
    assert not d.idle()
    release.set()
    d.stop()  # drains what is queued before the thread ends
    assert [txn for _, _, txn in log] == [1, 2]
