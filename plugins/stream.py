"""stream: push every newly written row to in-process subscribers (the server's `/ws` is one).

Owns the trigger and the `Hub` that fans batches out; the WebSocket protocol belongs to the
server, which finds the hub with `hub_of(db)` and subscribes one callback per connection.

    triggers:
      - module: stream.so                 # or mkts.plugins.stream
        on: "*/*/*"
        config: {max_pending: 1000}       # optional, per subscriber
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.engine import KeyPattern, parse_pattern
from mkts.plugins.errors import PluginConfigError
from mkts.plugins.settings import build, positive, rules

__all__ = ["NewTrigger", "StreamConfig", "StreamTrigger", "Hub", "StreamSubscription", "hub_of",
           "Callback"]

log = logging.getLogger("mkts.plugins.stream")

Callback = Callable[[str, dict[str, np.ndarray]], Any]
"""`callback(key, columns)`: key `SYM/TF/ATTR`, columns {name: array} with Epoch first (and
Nanoseconds for tick buckets), the rows of one write in time order."""

DEFAULT_MAX_PENDING = 1000


class StreamSubscription:
    """One subscriber: its patterns, its bounded queue and the thread that calls it.

    When the queue holds `max_pending` batches, the oldest is dropped (counted in
    `dropped`), so a slow subscriber never makes the trigger thread wait."""

    def __init__(self, hub: Hub, patterns: Iterable[str] | str, callback: Callback,
                 max_pending: int) -> None:
        if not callable(callback):
            raise TypeError(f"stream callback must be callable, not {callback!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending={max_pending!r} must be a positive integer")
        self._hub = hub
        self._patterns = _patterns(patterns)
        self.callback = callback
        self.max_pending = max_pending
        self.delivered = 0
        self.dropped = 0
        self.errors = 0
        self._queue: deque[tuple[str, dict[str, np.ndarray]]] = deque()
        self._cond = threading.Condition()
        self._active = True
        self._thread = threading.Thread(target=self._run, name="mkts-stream-subscriber",
                                        daemon=True)
        self._thread.start()

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(p.pattern for p in self._patterns)

    @property
    def active(self) -> bool:
        return self._active

    def set_patterns(self, patterns: Iterable[str] | str) -> None:
        """Replace the subscription's patterns (what a `/ws` subscribe message does)."""
        self._patterns = _patterns(patterns)

    def matches(self, key: str) -> bool:
        return any(p.matches(key) for p in self._patterns)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def _offer(self, key: str, columns: dict[str, np.ndarray]) -> None:
        with self._cond:
            if not self._active:
                return
            if len(self._queue) >= self.max_pending:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((key, columns))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._active and not self._queue:
                    self._cond.wait()
                if not self._active:
                    return
                key, columns = self._queue.popleft()
            try:
                self.callback(key, columns)
                self.delivered += 1
            except Exception:
                self.errors += 1
                log.exception("stream subscriber %r failed on %s; it stays subscribed",
                              self.callback, key)

    def unsubscribe(self) -> None:
        """Stop delivery; batches still queued are discarded. Safe to call twice."""
        with self._cond:
            self._active = False
            self._queue.clear()
            self._cond.notify()
        self._hub._remove(self)

    def __enter__(self) -> StreamSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        return f"<StreamSubscription {list(self.patterns)} delivered={self.delivered} " \
               f"dropped={self.dropped}>"


class Hub:
    """Fans batches out to subscribers. `publish` never blocks on a subscriber: each one has
    its own bounded queue and thread. Thread-safe."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._subs: list[StreamSubscription] = []
        self._lock = threading.Lock()
        self.published = 0

    def subscribe(self, patterns: Iterable[str] | str, callback: Callback, *,
                  max_pending: int | None = None) -> StreamSubscription:
        """Call `callback(key, columns)` for each batch written to a bucket matching any of
        `patterns` (key patterns like `*/1Min/OHLCV` or `AA*,MSFT/1Min/*`: engine.patterns)."""
        sub = StreamSubscription(self, patterns, callback,
                                 self.max_pending if max_pending is None else max_pending)
        with self._lock:
            self._subs.append(sub)
        return sub

    def publish(self, key: str, columns: dict[str, np.ndarray]) -> int:
        """Queue one batch for every matching subscriber; returns how many matched."""
        with self._lock:
            subs = list(self._subs)
        self.published += 1
        n = 0
        for sub in subs:
            if sub.matches(key):
                sub._offer(key, columns)
                n += 1
        return n

    @property
    def subscribers(self) -> list[StreamSubscription]:
        with self._lock:
            return list(self._subs)

    def stats(self) -> dict[str, int]:
        subs = self.subscribers
        return {"subscribers": len(subs), "published": self.published,
                "dropped": sum(s.dropped for s in subs), "errors": sum(s.errors for s in subs)}

    def _remove(self, sub: StreamSubscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def close(self) -> None:
        """Unsubscribe everyone."""
        for sub in self.subscribers:
            sub.unsubscribe()


class StreamTrigger:
    """The trigger: each write to a matching bucket becomes one batch on `hub`.

    Replayed transactions are not streamed (they are history, not news). Subscribers get
    rows only: a range delete (records without rows, `records.removed` set) sends nothing,
    an update sends the rows it wrote (docs/plugins.md "stream")."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.hub = Hub(max_pending)

    def __repr__(self) -> str:
        return f"<stream {self.hub.stats()}>"

    def fire(self, key_path: str, records: Any) -> None:
        if records.replayed or not len(records):
            return
        columns = records.columns()
        epochs = np.asarray(columns["Epoch"])
        if "Nanoseconds" in columns:
            order = np.lexsort((np.asarray(columns["Nanoseconds"]), epochs))
        else:
            order = np.argsort(epochs, kind="stable")
        batch = {name: np.asarray(col)[order] for name, col in columns.items()}  # copies
        self.hub.publish(str(records.key), batch)

    def stop(self) -> None:
        self.hub.close()


@dataclass(frozen=True)
class StreamConfig:
    """stream's `config:`, checked like mkts.yml."""

    max_pending: int = field(default=DEFAULT_MAX_PENDING, metadata=rules(
        check=positive, help="batches queued per subscriber before the oldest is dropped"))


def NewTrigger(config: Mapping[str, Any]) -> StreamTrigger:
    """Build the stream trigger from its `config:` (`StreamConfig`); raises
    PluginConfigError naming the bad key."""
    cfg = build(StreamConfig, config, source="stream config", error=PluginConfigError)
    return StreamTrigger(cfg.max_pending)


def hub_of(db: Any) -> Hub | None:
    """The hub of the first stream trigger attached to `db` (None when there is none)."""
    for t in getattr(db, "triggers", ()):
        if isinstance(t, StreamTrigger):
            return t.hub
    return None


def _patterns(patterns: Iterable[str] | str) -> tuple[KeyPattern, ...]:
    if isinstance(patterns, str):
        patterns = [patterns]
    return tuple(parse_pattern(p) for p in patterns)
