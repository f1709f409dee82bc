"""The trigger dispatcher (engine/dispatch.py) on its own: which events are decoded and for
whom, firing order, flush() across writes made by triggers, and flush() timeouts."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from harness.waiting import wait_until

from mkts.engine.dispatch import Dispatcher, Records
from mkts.engine.keys import parse_key
from mkts.engine.patterns import parse_pattern


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
                threading.Event().wait(0.01)  # a slow trigger
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


def test_lag_is_the_age_of_the_oldest_undelivered_event_and_zero_when_idle() -> None:
    import time

    release = threading.Event()

    class Stuck:
        def fire(self, key_path: str, records: Records) -> None:
            release.wait(5)

    d, _ = _dispatcher([("*/*/*", Stuck())])
    assert d.lag_s() == 0.0
    old = _Event(1, "A/1Min/OHLCV")
    old.published = time.monotonic() - 30.0  # type: ignore[attr-defined]
    d.publish(old)
    d.publish(_Event(2, "A/1Min/OHLCV"))
    assert d.lag_s() >= 30.0  # the stuck first event, not the newer one
    release.set()
    assert wait_until(d.idle)
    assert d.lag_s() == 0.0
    d.stop()


# -- coalescing triggers -------------------------------------------------------------------


def _recs(key: str, year: int, txn: int, slots: list[int], replayed: bool = False) -> Records:
    rows = np.zeros(len(slots), dtype=[("Close", "f4")])
    rows["Close"] = [txn * 100 + s for s in slots]
    return Records(parse_key(key), year, txn, replayed, np.array(slots), rows,
                   1_704_067_200 + 60 * np.array(slots), ["Close"])


def test_merge_joins_per_year_file_in_write_order_and_keeps_replayed_apart() -> None:
    parts = [_recs("A/1Min/OHLCV", 2024, 1, [5, 6]), _recs("B/1Min/OHLCV", 2024, 1, [1]),
             _recs("A/1Min/OHLCV", 2024, 2, [3, 5], replayed=True),
             _recs("A/1Min/OHLCV", 2024, 3, [5]), _recs("A/1Min/OHLCV", 2025, 3, [0])]
    merged = Records.merge(parts)
    assert [(str(r.key), r.year, r.replayed, r.txn) for r in merged] == [
        ("A/1Min/OHLCV", 2024, False, 3), ("B/1Min/OHLCV", 2024, False, 1),
        ("A/1Min/OHLCV", 2024, True, 2), ("A/1Min/OHLCV", 2025, False, 3)]
    a = merged[0]
    assert a.slots.tolist() == [5, 6, 5]  # a slot written twice appears twice, in order
    assert a.rows["Close"].tolist() == [105, 106, 305]
    assert a.epochs.tolist() == (1_704_067_200 + 60 * np.array([5, 6, 5])).tolist()
    assert merged[1] is parts[1]


class _Coalescing(_Recorder):
    coalesce = True

    def __init__(self, name: str, log: list[tuple[str, str, int]], window: float = 0.0) -> None:
        super().__init__(name, log)
        self.coalesce_window_s = window
        self.slots: list[list[int]] = []

    def fire(self, key_path: str, records: Records) -> None:
        super().fire(key_path, records)
        self.slots.append(records.slots.tolist())


class _SlotDecoder(_Decoder):
    """Each event writes slot `txn` of its buckets; also decodes rounds (merged)."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[list[int]] = []

    def __call__(self, event: _Event) -> list[Records]:
        self.decoded.append(event.txn)
        return [_recs(str(w.key), 2024, event.txn, [event.txn]) for w in event.writes]

    def merged(self, events: list[_Event]) -> list[Records]:
        self.rounds.append([e.txn for e in events])
        return Records.merge([_recs(str(w.key), 2024, e.txn, [e.txn])
                              for e in events for w in e.writes])


def _held(d: Dispatcher, *events: _Event) -> None:
    """Publish `events` while the dispatcher thread is busy, so they queue up together."""
    release = threading.Event()
    busy = threading.Event()

    class Gate:
        def fire(self, key_path: str, records: Records) -> None:
            busy.set()
            release.wait(5)

    d._triggers.insert(0, (parse_pattern("G/*/*"), Gate()))  # not coalescing
    d._matching.clear()
    d._all_coalesce = False
    d.publish(_Event(0, "G/1Sec/GATE"))
    assert busy.wait(5)
    for e in events:
        d.publish(e)
    release.set()


def test_a_coalescing_trigger_fires_once_per_file_for_queued_writes() -> None:
    log: list[tuple[str, str, int]] = []
    merged = _Coalescing("merged", log)
    decoder = _SlotDecoder()
    d = Dispatcher(None, [("*/1Min/OHLCV", merged), ("*/1Min/OHLCV", _Recorder("each", log))],
                   decoder)
    d.start()
    try:
        _held(d, _Event(1, "A/1Min/OHLCV"), _Event(2, "A/1Min/OHLCV", "B/1Min/OHLCV"),
              _Event(3, "A/1Min/OHLCV"))
        assert d.flush(timeout=5)
        each = [(k, t) for n, k, t in log if n == "each"]
        assert each == [("A/1Min/OHLCV", 1), ("A/1Min/OHLCV", 2), ("B/1Min/OHLCV", 2),
                        ("A/1Min/OHLCV", 3)]
        assert [(k, t) for n, k, t in log if n == "merged"] == [("A/1Min/OHLCV", 3),
                                                                 ("B/1Min/OHLCV", 2)]
        assert merged.slots == [[1, 2, 3], [2]]
    finally:
        d.stop()


def test_coalescing_triggers_decode_a_round_once_plain_listeners_per_event() -> None:
    log: list[tuple[str, str, int]] = []
    decoder = _SlotDecoder()
    d = Dispatcher(None, [("*/1Min/OHLCV", _Coalescing("m", log))], decoder, decoder.merged)
    d.start()
    try:
        _held(d, _Event(1, "A/1Min/OHLCV"), _Event(2, "A/1Min/OHLCV"))
        assert d.flush(timeout=5)
        # only the gate (a plain trigger) needed its event decoded on its own
        assert decoder.decoded == [0] and decoder.rounds == [[1, 2]]
        with d.subscribe("*/*/*", lambda key, cols: None):
            d.publish(_Event(4, "A/1Min/OHLCV"))
            assert d.flush(timeout=5)
        assert decoder.decoded == [0, 4] and decoder.rounds == [[1, 2], [4]]
        assert [t for _, _, t in log] == [2, 4]
    finally:
        d.stop()


def test_plain_triggers_and_subscribers_do_not_wait_for_a_coalescing_window() -> None:
    log: list[tuple[str, str, int]] = []
    got = threading.Event()
    slow = _Coalescing("slow", log, window=30.0)
    d, _ = _dispatcher([("*/1Min/OHLCV", slow), ("*/1Min/OHLCV", _Recorder("now", log))])
    try:
        with d.subscribe("*/*/*", lambda key, cols: got.set()):
            d.publish(_Event(1, "A/1Min/OHLCV"))
            assert got.wait(10)  # long before the 30 s window ends
            assert wait_until(lambda: log, timeout=5)
            assert log == [("now", "A/1Min/OHLCV", 1)]
            assert not d.idle()  # the coalescing trigger's fire is still pending
            assert d.flush(timeout=10)
            assert log == [("now", "A/1Min/OHLCV", 1), ("slow", "A/1Min/OHLCV", 1)]
    finally:
        d.stop()


def test_the_window_gathers_a_burst_and_flush_does_not_wait_it_out() -> None:
    log: list[tuple[str, str, int]] = []
    trig = _Coalescing("m", log, window=30.0)
    d, _ = _dispatcher([("*/1Min/OHLCV", trig)])
    try:
        d.publish(_Event(1, "A/1Min/OHLCV"))
        # let the thread take event 1 and wait out the window (had it not yet, it would take
        # both events in one round: the same single merged fire)
        threading.Event().wait(0.05)
        d.publish(_Event(2, "A/1Min/OHLCV"))
        assert not d.idle() and log == []
        assert d.flush(timeout=10)  # well before the 30 s window ends
        assert log == [("m", "A/1Min/OHLCV", 2)] and trig.slots == [[0, 0]]
    finally:
        d.stop()
