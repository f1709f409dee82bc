"""feed: an example background worker that writes 1Min bars into the database at a set pace.

Either a synthetic market (`plugins.synth`: realistic bars during New York sessions) or a
replay of a CSV file. It exists to show data flowing through triggers (ondiskagg, stream)
and as a template for real feeders; it is not a market-data connector.

    bgworkers:
      - module: mkts.plugins.feed
        name: feed
        config:
          symbols: [AAPL, MSFT]     # synthetic mode
          start: "2024-01-02"       # first day of the synthetic market
          interval_s: 1.0           # wall-clock seconds between writes
          bars_per_write: 1         # minutes written per symbol per write
          max_bars: 0               # stop after this many minutes (0 = run until close)
          # csv: /path/bars.csv     # replay mode: Epoch,[Symbol,]Open,High,Low,Close,Volume
          # key: "{symbol}/1Min/OHLCV"
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from mkts.engine.uniq import unique
from mkts.plugins import synth
from mkts.plugins.errors import PluginError

__all__ = ["NewBgWorker", "Feed"]

log = logging.getLogger("mkts.plugins.feed")

_DEFAULTS: dict[str, Any] = {
    "symbols": ["AAPL", "MSFT"],
    "start": "2024-01-02",
    "interval_s": 1.0,
    "bars_per_write": 1,
    "max_bars": 0,
    "seed": 7,
    "csv": None,
    "key": "{symbol}/1Min/OHLCV",
}
_CHUNK_DAYS = 28  # synthetic bars are generated four weeks at a time


def NewBgWorker(config: Mapping[str, Any]) -> Feed:
    """Build the feed from its `config:` (keys in the module docstring); raises PluginError
    naming the bad key."""
    if not isinstance(config, Mapping):
        raise PluginError(f"feed: config must be a mapping, not {type(config).__name__}")
    unknown = sorted(set(config) - set(_DEFAULTS))
    if unknown:
        raise PluginError(f"feed: unknown config key {unknown[0]!r}; known keys: "
                          f"{', '.join(_DEFAULTS)}")
    c = {**_DEFAULTS, **config}
    interval = _number(c, "interval_s", minimum=0.0)
    per_write = int(_number(c, "bars_per_write", minimum=1, integer=True))
    max_bars = int(_number(c, "max_bars", minimum=0, integer=True))
    seed = int(_number(c, "seed", minimum=0, integer=True))
    key = c["key"]
    if not isinstance(key, str) or key.count("/") != 2:
        raise PluginError(f"feed: key must look like '{{symbol}}/1Min/OHLCV', not {key!r}")
    if c["csv"] is not None:
        rows = _read_csv(c["csv"], key)
        return Feed(rows=rows, interval_s=interval, bars_per_write=per_write, max_bars=max_bars)
    symbols = c["symbols"]
    if isinstance(symbols, int) and not isinstance(symbols, bool) and symbols > 0:
        symbols = synth.symbols(symbols)
    if not isinstance(symbols, (list, tuple)) or not symbols or \
            not all(isinstance(s, str) and s for s in symbols):
        raise PluginError(f"feed: symbols must be a non-empty list of names, not {symbols!r}")
    try:
        start = _dt.date.fromisoformat(str(c["start"]))
    except ValueError as exc:
        raise PluginError(f"feed: start must be a date like 2024-01-02, not {c['start']!r}") from exc
    keys = {s: key.format(symbol=s) for s in symbols}
    return Feed(synthetic=(keys, start, seed), interval_s=interval, bars_per_write=per_write,
                max_bars=max_bars)


class Feed:
    """The worker. `run()` writes one batch (all symbols, one transaction) every
    `interval_s` seconds until `stop()`, `max_bars` or the end of the CSV."""

    def __init__(self, *, interval_s: float, bars_per_write: int, max_bars: int,
                 synthetic: tuple[dict[str, str], _dt.date, int] | None = None,
                 rows: list[tuple[int, dict[str, dict[str, np.ndarray]]]] | None = None
                 ) -> None:
        self.interval_s = interval_s
        self.bars_per_write = bars_per_write
        self.max_bars = max_bars
        self._synthetic = synthetic
        self._rows = rows
        self._stop = threading.Event()
        self._db: Any = None
        self.writes = 0
        self.bars = 0

    def __repr__(self) -> str:
        mode = "csv" if self._rows is not None else "synthetic"
        return f"<feed {mode} every {self.interval_s}s, {self.writes} writes>"

    def start(self, db: Any) -> None:
        self._db = db

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        if self._db is None:
            raise PluginError("feed: run() before start(db)")
        steps = self._csv_steps() if self._rows is not None else self._synthetic_steps()
        for batch in steps:
            if self._stop.is_set():
                break
            self._db.write_many(batch)
            self.writes += 1
            if self._stop.wait(self.interval_s):
                break
        log.info("feed stopped after %d writes (%d bars)", self.writes, self.bars)

    # -- sources -----------------------------------------------------------------------
    def _synthetic_steps(self) -> Iterator[dict[str, Any]]:
        assert self._synthetic is not None
        keys, day, seed = self._synthetic
        scale = dict.fromkeys(keys, 1.0)
        last_close: dict[str, float] = {}
        written = 0
        chunk = 0
        while True:
            end = day + _dt.timedelta(days=_CHUNK_DAYS - 1)
            bars: dict[str, np.ndarray] = {}
            for sym in keys:
                b = synth.minute_bars(sym, day, end, seed=seed + chunk)
                if len(b) and sym in last_close:  # continue the walk where it stopped
                    scale[sym] = last_close[sym] / float(b["Open"][0])
                for col in ("Open", "High", "Low", "Close"):
                    b[col] *= scale[sym]
                if len(b):
                    last_close[sym] = float(b["Close"][-1])
                bars[sym] = b
            minutes = unique(np.concatenate([b["Epoch"] for b in bars.values()]))
            for i in range(0, len(minutes), self.bars_per_write):
                take = self.bars_per_write
                if self.max_bars:
                    take = min(take, self.max_bars - written)
                    if take <= 0:
                        return
                window = minutes[i:i + take]
                lo, hi = int(window[0]), int(window[-1])
                batch: dict[str, np.ndarray] = {}
                for sym, b in bars.items():
                    a = int(np.searchsorted(b["Epoch"], lo, side="left"))
                    z = int(np.searchsorted(b["Epoch"], hi, side="right"))
                    if z > a:
                        batch[keys[sym]] = b[a:z]
                written += len(window)
                self.bars += sum(len(v) for v in batch.values())
                yield batch
            day = end + _dt.timedelta(days=1)
            chunk += 1

    def _csv_steps(self) -> Iterator[dict[str, Any]]:
        assert self._rows is not None
        written = 0
        for i in range(0, len(self._rows), self.bars_per_write):
            take = self.bars_per_write
            if self.max_bars:
                take = min(take, self.max_bars - written)
                if take <= 0:
                    return
            batch: dict[str, list[dict[str, np.ndarray]]] = {}
            for _, per_key in self._rows[i:i + take]:
                for k, row in per_key.items():
                    batch.setdefault(k, []).append(row)
            written += take
            out = {k: _stack(v) for k, v in batch.items()}
            self.bars += sum(len(v["Epoch"]) for v in out.values())
            yield out


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {c: np.concatenate([r[c] for r in rows]) for c in rows[0]}


def _number(c: Mapping[str, Any], name: str, *, minimum: float, integer: bool = False) -> float:
    v = c[name]
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or v < minimum:
        kind = "an integer" if integer else "a number"
        raise PluginError(f"feed: {name} must be {kind} >= {minimum}, not {v!r}")
    return float(v)


def _read_csv(path: Any, key: str) -> list[tuple[int, dict[str, dict[str, np.ndarray]]]]:
    """Rows grouped by time: [(epoch, {bucket key: columns})], in time order."""
    if not isinstance(path, str) or not path:
        raise PluginError(f"feed: csv must be a file path, not {path!r}")
    if not os.path.isfile(path):
        raise PluginError(f"feed: csv file {path!r} does not exist (relative paths are "
                          f"resolved against {os.getcwd()})")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise PluginError(f"feed: csv file {path!r} is empty") from None
        body = [r for r in reader if r]
    if "Epoch" not in header:
        raise PluginError(f"feed: csv file {path!r} needs an Epoch column (epoch seconds or "
                          f"ISO-8601 time); it has {', '.join(header)}")
    symbol_col = header.index("Symbol") if "Symbol" in header else None
    if symbol_col is None and "{symbol}" in key:
        raise PluginError(f"feed: csv file {path!r} has no Symbol column, so `key` must name "
                          f"the bucket (e.g. AAPL/1Min/OHLCV), not {key!r}")
    names = [h for h in header if h not in ("Symbol",)]
    cols: dict[str, list[str]] = {h: [] for h in names}
    syms: list[str] = []
    for n, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise PluginError(f"feed: {path}:{n}: expected {len(header)} fields, got {len(r)}")
        for h, v in zip(header, r, strict=True):
            if h == "Symbol":
                syms.append(v.strip())
            else:
                cols[h].append(v.strip())
    try:
        epochs = _epochs(cols.pop("Epoch"))
        values = {h: _column(v) for h, v in cols.items()}
    except ValueError as exc:
        raise PluginError(f"feed: csv file {path!r}: {exc}") from exc
    keys = [key.format(symbol=s) for s in syms] if symbol_col is not None else [key] * len(epochs)
    order = np.argsort(epochs, kind="stable")
    out: list[tuple[int, dict[str, dict[str, np.ndarray]]]] = []
    for i in order.tolist():
        e = int(epochs[i])
        if not out or out[-1][0] != e:
            out.append((e, {}))
        row = {"Epoch": epochs[i:i + 1], **{h: v[i:i + 1] for h, v in values.items()}}
        group = out[-1][1]
        group[keys[i]] = _stack([group[keys[i]], row]) if keys[i] in group else row
    return out


def _epochs(texts: list[str]) -> np.ndarray:
    out = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        try:
            out[i] = int(t)
        except ValueError:
            try:
                out[i] = np.datetime64(t.rstrip("Z"), "s").astype(np.int64)
            except ValueError as exc:
                raise ValueError(f"Epoch value {t!r} is neither epoch seconds nor an ISO-8601 "
                                 "time") from exc
    return out


def _column(texts: list[str]) -> np.ndarray:
    try:
        return np.array([int(t) for t in texts], dtype=np.int64)
    except ValueError:
        return np.array([float(t) for t in texts], dtype=np.float64)
