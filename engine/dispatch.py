"""Stage 5 of the write path: hand committed (and replayed) writes to triggers and subscribers.

Runs triggers on its own thread, in commit order (so per-bucket order holds), contains
every exception, and never affects a write that has committed. `flush()` waits until all
triggered work, including writes the triggers made, is done. The thread takes every event
queued since its last round at once: a trigger that sets `coalesce = True` gets one `fire`
per year file for all of them (its records merged in write order), so a burst of small
writes costs it one fire instead of one per write; its events may also wait a window
(`coalesce_window_s`) for more. Plain triggers and subscribers never wait for a window.
What `fire` receives is engine/records.py's; the subscribers' queues and threads are
engine/subscriptions.py's.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mkts.engine.contracts import Trigger
from mkts.engine.errors import InvalidKeyError
from mkts.engine.patterns import KeyPattern, parse_pattern
from mkts.engine.records import Records
from mkts.engine.subscriptions import Subscription, _Subscription

if TYPE_CHECKING:
    from mkts.engine.database import Database

__all__ = ["Dispatcher", "Records", "Subscription"]

log = logging.getLogger("mkts.triggers")


def _coalesces(trigger: Trigger) -> bool:
    return bool(getattr(trigger, "coalesce", False))


MAX_ROUND = 4096  # events the dispatcher thread takes at once (bounds a merged fire)


class Dispatcher:
    """One background thread that fires triggers in commit order."""

    def __init__(self, db: Database, triggers: Sequence[tuple[str, Trigger]],
                 to_records: Callable[[Any], list[Records]],
                 to_merged: Callable[[Sequence[Any]], list[Records]] | None = None) -> None:
        """`to_records(event)` decodes one write event; `to_merged(events)`, when given,
        decodes several straight into merged records (what `Records.merge` would make of
        theirs, without building each event's first)."""
        self._db = db
        self._triggers: list[tuple[KeyPattern, Trigger]] = []
        for pattern, trigger in triggers:
            if not callable(getattr(trigger, "fire", None)):
                raise InvalidKeyError(f"trigger {trigger!r} for {pattern!r} has no fire() method")
            self._triggers.append((parse_pattern(pattern), trigger))
        # coalescing triggers take the records of several transactions in one fire
        coalescing = [t for _, t in self._triggers if _coalesces(t)]
        self._any_coalesce = bool(coalescing)
        self._all_coalesce = len(coalescing) == len(self._triggers)
        # how long their events wait for a burst to gather (`coalesce_window_s`); flush()
        # and close cut it short
        self._window = max((float(getattr(t, "coalesce_window_s", 0.0) or 0.0)
                            for t in coalescing), default=0.0)
        self._gathering = False  # the thread is waiting out the window
        self._hurry = 0  # flush() callers waiting: no window
        self._pending: list[Any] = []  # events for coalescing triggers, in commit order
        self._pending_due = 0.0  # when the window of the oldest pending event closes
        self._to_records = to_records
        self._to_merged = to_merged
        # bucket key -> (plain, coalescing) triggers whose pattern matches it, each in
        # configuration order (the patterns never change, so each key is matched once)
        self._matching: dict[Any, tuple[tuple[Trigger, ...], tuple[Trigger, ...]]] = {}
        self._subs: list[_Subscription] = []
        self._queue: deque[Any] = deque()
        # One lock, two conditions: the dispatcher thread waits for work (`_cond`), flush()
        # waits for idleness (`_idle`). Keeping them apart means a trigger's own writes do
        # not wake every flush() waiter only for it to find the queue still busy.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._busy = False
        # events the thread is delivering now (taken from the queue, or pending being fired)
        self._inflight: list[Any] = []
        # readers waiting for a trigger's work on the base of the bucket they read (settle)
        self._settled = threading.Condition(self._lock)
        self._settling = 0
        # bucket key -> ((trigger, pattern of the base buckets it writes the key from), ...)
        self._sources: dict[Any, tuple[tuple[Trigger, KeyPattern], ...]] = {}
        self.maintaining = any(callable(getattr(t, "sources", None)) for _, t in self._triggers)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.fired = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def triggers(self) -> list[Trigger]:
        return [t for _, t in self._triggers]

    def lag_s(self) -> float:
        """Seconds since the oldest write event not yet fully delivered to the triggers and
        subscribers was published (0.0 when they are idle): how far they trail the writes."""
        with self._lock:
            heads = [q[0] for q in (self._inflight, self._pending, self._queue) if q]
        if not heads:
            return 0.0
        now = time.monotonic()
        return max(0.0, now - min(getattr(e, "published", now) for e in heads))

    def wants(self) -> bool:
        return bool(self._triggers or self._subs)

    def publish(self, event: Any) -> None:
        if not self._triggers and not self._subs:
            return
        with self._cond:
            self._queue.append(event)
            # While the thread waits out a coalescing window it need not wake for an event
            # only coalescing triggers take; plain triggers and subscribers get theirs now.
            if not self._gathering or self._subs or not self._all_coalesce \
                    or len(self._queue) >= MAX_ROUND:
                self._cond.notify()

    def start(self) -> None:
        for _, trigger in self._triggers:
            start = getattr(trigger, "start", None)
            if callable(start):
                start(self._db)
        self._thread = threading.Thread(target=self._run, name="mkts-triggers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Each round takes every queued event: plain triggers and subscribers get theirs at
        once; events for coalescing triggers wait in `_pending` until the window since the
        first of them has passed (or flush()/close asks), then fire merged."""
        lock = self._lock
        clock = time.monotonic
        with lock:
            while True:
                while not self._queue and not self._stopping:
                    if not self._pending:
                        self._cond.wait()
                        continue
                    wait = self._pending_due - clock()
                    if wait <= 0 or self._hurry:
                        break
                    self._gathering = True
                    self._cond.wait(wait)
                    self._gathering = False
                if not self._queue and not self._pending:  # stopping, all delivered
                    return
                queue = self._queue
                if len(queue) == 1:
                    events = [queue.popleft()]
                else:
                    events = [queue.popleft() for _ in range(min(len(queue), MAX_ROUND))]
                self._busy = True
                self._inflight = events
                lock.release()
                try:
                    if events:
                        self._deliver(events)
                    pending = self._pending
                    if pending and (self._hurry or self._stopping or len(pending) >= MAX_ROUND
                                    or clock() >= self._pending_due):
                        self._inflight = [*events, *pending]  # before they leave _pending
                        self._pending = []
                        self._fire_merged(pending)
                finally:
                    lock.acquire()
                    self._busy = False
                    self._inflight = []
                    if self._settling:
                        self._settled.notify_all()
                    if not self._queue and not self._pending:
                        self._idle.notify_all()

    def _routes(self, key: Any) -> tuple[tuple[Trigger, ...], tuple[Trigger, ...]]:
        """(plain triggers, coalescing triggers) whose pattern matches `key`."""
        found = self._matching.get(key)
        if found is None:
            matched = [t for pattern, t in self._triggers if pattern.matches(key)]
            found = (tuple(t for t in matched if not _coalesces(t)),
                     tuple(t for t in matched if _coalesces(t)))
            self._matching[key] = found
        return found

    def _heard(self, event: Any, part: int) -> bool:
        """Whether triggers of `_routes` part `part` (0 plain, 1 coalescing) listen to any
        bucket `event` wrote (an event that names no writes is heard by all)."""
        writes = getattr(event, "writes", None)
        return writes is None or any(self._routes(w.key)[part] for w in writes)

    def _deliver(self, events: Sequence[Any]) -> None:
        """Fire the plain triggers and feed the subscribers for `events`; queue the events
        coalescing triggers listen to in `_pending` (decoded when the window closes).
        Events nobody listens to (e.g. the bars a trigger wrote) are never decoded."""
        subs = list(self._subs)
        if self._any_coalesce:
            mine = [e for e in events if self._heard(e, 1)]
            if mine:
                if not self._pending:
                    self._pending_due = time.monotonic() + self._window
                self._pending.extend(mine)
        if not subs:
            if self._all_coalesce:
                return
            events = [e for e in events if self._heard(e, 0)]
        for event in events:
            try:
                records = self._to_records(event)
            except Exception:
                self._decode_failed([event])
                continue
            for rec in records:
                for trigger in self._routes(rec.key)[0]:
                    self._fire(trigger, rec)
                if not len(rec):
                    continue  # subscribers get rows; a delete sends them nothing
                for sub in subs:
                    if sub.pattern.matches(rec.key):
                        sub.offer(str(rec.key), rec.columns())

    def _fire_merged(self, events: Sequence[Any]) -> None:
        """Fire the coalescing triggers once per year file for `events` (in order)."""
        try:
            if self._to_merged is not None:
                merged = self._to_merged(events)
            else:
                parts: list[Records] = []
                for e in events:
                    parts.extend(self._to_records(e))
                merged = Records.merge(parts)
        except Exception:
            self._decode_failed(events)
            return
        for rec in merged:
            for trigger in self._routes(rec.key)[1]:
                self._fire(trigger, rec)

    def _decode_failed(self, events: Sequence[Any]) -> None:
        self.errors += 1
        self.last_error = traceback.format_exc()
        log.exception("could not decode write events %r for triggers", list(events))

    def _fire(self, trigger: Trigger, rec: Records) -> None:
        try:
            trigger.fire(rec.key_path, rec)
            self.fired += 1
        except Exception:
            self.errors += 1
            self.last_error = traceback.format_exc()
            log.exception("trigger %r failed on %s (txn %d)", trigger, rec.key_path, rec.txn)

    # -- buckets the triggers maintain ---------------------------------------------------
    def sources_of(self, key: Any) -> tuple[tuple[Trigger, KeyPattern], ...]:
        """(trigger, pattern of base buckets) for each trigger whose optional `sources(key)`
        says it writes bucket `key` from writes to other buckets (asked once per key)."""
        found = self._sources.get(key)
        if found is None:
            out = []
            for _, trigger in self._triggers:
                sources = getattr(trigger, "sources", None)
                if not callable(sources):
                    continue
                try:
                    pattern = sources(str(key))
                    if pattern is not None:
                        out.append((trigger, parse_pattern(pattern)))
                except Exception:
                    log.exception("trigger %r: sources(%s) failed; taken as None", trigger, key)
            found = self._sources[key] = tuple(out)
        return found

    def _feeds(self, trigger: Trigger, pattern: KeyPattern, base: Any, key: Any) -> bool:
        """Whether writes to `base` make `trigger` write `key`: the trigger listens to
        `base`, `base` matches the pattern its `sources(key)` gave, and `base` is not itself
        a bucket that trigger maintains (its own output is never its input)."""
        if base == key or not pattern.matches(base):
            return False
        plain, coalescing = self._routes(base)
        if trigger not in plain and trigger not in coalescing:
            return False
        return all(t is not trigger for t, _ in self.sources_of(base))

    def column_changes(self, key: Any, names: Sequence[str], op: str, args: tuple[Any, ...]
                       ) -> list[tuple[str, str, tuple[Any, ...]]]:
        """The column changes ((bucket key, op, args), ...) that the triggers listening to
        `key` make to the buckets they maintain when `op` changes its columns `names` (each
        trigger's optional `columns_changed(key, names, op, args)`; docs/plugins.md "Column
        changes of a base"). A trigger refuses the change by raising (SchemaError)."""
        out: list[tuple[str, str, tuple[Any, ...]]] = []
        plain, coalescing = self._routes(key)
        for trigger in (*plain, *coalescing):
            hook = getattr(trigger, "columns_changed", None)
            if callable(hook):
                out.extend(hook(str(key), list(names), op, tuple(args)) or ())
        return out

    def derived(self, base: Any, keys: Iterable[Any]) -> list[Any]:
        """Those of `keys` that a trigger maintains from `base` (destroyed with it)."""
        if not self.maintaining:
            return []
        return [k for k in keys
                if any(self._feeds(t, p, base, k) for t, p in self.sources_of(k))]

    def settle(self, key: Any, timeout: float | None = None) -> bool:
        """Before a read of bucket `key`: wait until every event already published that a
        trigger maintaining `key` owes work for (a write to one of its bases) was delivered,
        so the read sees what the trigger writes for writes acknowledged before it. Events
        published later are not waited for; reads of buckets no trigger maintains return at
        once. A coalescing trigger's window is not cut short: the wait is bounded by it plus
        the trigger's work. False on timeout."""
        if not self.maintaining or self._thread is None:
            return True
        srcs = self.sources_of(key)
        if not srcs or threading.current_thread() is self._thread:
            return True

        def owed(event: Any) -> bool:
            writes = getattr(event, "writes", None)
            return writes is not None and any(
                self._feeds(t, p, w.key, key) for w in writes for t, p in srcs)

        with self._lock:
            waiting = {id(e): e for e in (*self._queue, *self._pending, *self._inflight)
                       if owed(e)}
            if not waiting:
                return True

            def done() -> bool:
                return not any(id(e) in waiting for e in
                               (*self._queue, *self._pending, *self._inflight))

            self._settling += 1
            try:
                return self._settled.wait_for(done, timeout)
            finally:
                self._settling -= 1

    def idle(self) -> bool:
        """Nothing queued and nothing being delivered."""
        with self._lock:
            return not self._queue and not self._busy and not self._pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was delivered, including events from writes the
        triggers made meanwhile. False on timeout."""
        if self._thread is None:
            return True
        if threading.current_thread() is self._thread:
            return True  # a trigger calling flush() would wait for itself
        with self._lock:
            self._hurry += 1
            if self._gathering:
                self._cond.notify()  # no point waiting out the window: someone waits
            try:
                return self._idle.wait_for(
                    lambda: not self._queue and not self._busy and not self._pending, timeout)
            finally:
                self._hurry -= 1

    def subscribe(self, pattern: str | KeyPattern, callback: Callable[[str, dict[str, np.ndarray]], Any],
                  max_pending: int = 10_000) -> Subscription:
        sub = _Subscription(parse_pattern(pattern), callback, max_pending)
        with self._cond:
            self._subs.append(sub)
        return Subscription(self, sub)

    def _unsubscribe(self, sub: _Subscription) -> None:
        with self._cond:
            if sub in self._subs:
                self._subs.remove(sub)
        sub.cancel()

    def stop(self) -> None:
        """Drain the queue, stop the thread, call stop() on triggers that have one."""
        if self._thread is not None:
            self.flush()
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            self._thread.join()
            self._thread = None
        for sub in list(self._subs):
            sub.cancel()
        self._subs.clear()
        for _, trigger in self._triggers:
            stop = getattr(trigger, "stop", None)
            if callable(stop):
                try:
                    stop()
                except Exception:
                    log.exception("trigger %r failed to stop", trigger)
