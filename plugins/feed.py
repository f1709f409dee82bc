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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.engine import NS, parse_time_text, to_epoch_ns
from mkts.engine.uniq import unique
from mkts.plugins import synth
from mkts.plugins.errors import PluginConfigError, PluginError
from mkts.plugins.settings import at_least, build, rules

__all__ = ["NewBgWorker", "Feed", "FeedConfig"]

log = logging.getLogger("mkts.plugins.feed")

_CHUNK_DAYS = 28  # synthetic bars are generated four weeks at a time


def _symbols(v: tuple[str, ...] | int) -> str | None:
    if isinstance(v, int):
        return None if v > 0 else "must be a positive count or a list of names"
    if not v or not all(s.strip() for s in v):
        return "must be a non-empty list of names"
    return None


def _day(text: str) -> _dt.date:
    """The day an ISO-8601 date names (engine's time parser); ValueError if it is none."""
    ns, naive = parse_time_text(text)
    if not naive or ns % (86_400 * NS):
        raise ValueError(text)
    return _dt.date(1970, 1, 1) + _dt.timedelta(days=ns // (86_400 * NS))


def _date(v: str) -> str | None:
    try:
        _day(v)
    except ValueError:
        return "is not a date like 2024-01-02"
    return None


def _key(v: str) -> str | None:
    return None if v.count("/") == 2 else "must look like '{symbol}/1Min/OHLCV'"


def _path(v: str | None) -> str | None:
    return None if v is None or v.strip() else "must be a file path"


@dataclass(frozen=True)
class FeedConfig:
    """feed's `config:` (the keys of the module docstring), checked like mkts.yml."""

    symbols: tuple[str, ...] | int = field(default=("AAPL", "MSFT"), metadata=rules(
        check=_symbols, help="symbols of the synthetic market, or how many"))
    start: str = field(default="2024-01-02", metadata=rules(check=_date))
    interval_s: float = field(default=1.0, metadata=rules(
        check=at_least(0), help="wall-clock seconds between writes"))
    bars_per_write: int = field(default=1, metadata=rules(check=at_least(1)))
    max_bars: int = field(default=0, metadata=rules(check=at_least(0)))
    seed: int = field(default=7, metadata=rules(check=at_least(0)))
    csv: str | None = field(default=None, metadata=rules(check=_path))
    key: str = field(default="{symbol}/1Min/OHLCV", metadata=rules(check=_key))


def NewBgWorker(config: Mapping[str, Any]) -> Feed:
    """Build the feed from its `config:` (`FeedConfig`); raises PluginConfigError naming the
    bad key."""
    c = build(FeedConfig, config, source="feed config", error=PluginConfigError)
    if c.csv is not None:
        rows = _read_csv(c.csv, c.key)
        return Feed(rows=rows, interval_s=c.interval_s, bars_per_write=c.bars_per_write,
                    max_bars=c.max_bars)
    symbols = synth.symbols(c.symbols) if isinstance(c.symbols, int) else list(c.symbols)
    keys = {s: c.key.format(symbol=s) for s in symbols}
    return Feed(synthetic=(keys, _day(c.start), c.seed),
                interval_s=c.interval_s, bars_per_write=c.bars_per_write, max_bars=c.max_bars)


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


def _bad(key: str, problem: str) -> PluginConfigError:
    return PluginConfigError(problem, key, "feed config")


def _read_csv(path: str, key: str) -> list[tuple[int, dict[str, dict[str, np.ndarray]]]]:
    """Rows grouped by time: [(epoch, {bucket key: columns})], in time order."""
    if not os.path.isfile(path):
        raise _bad("csv", f"{path!r} does not exist (relative paths are "
                          f"resolved against {os.getcwd()})")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise _bad("csv", f"{path!r} is empty") from None
        body = [r for r in reader if r]
    if "Epoch" not in header:
        raise _bad("csv", f"{path!r} needs an Epoch column (epoch seconds or "
                          f"ISO-8601 time); it has {', '.join(header)}")
    symbol_col = header.index("Symbol") if "Symbol" in header else None
    if symbol_col is None and "{symbol}" in key:
        raise _bad("key", f"{key!r} names no bucket: the csv file {path!r} has no Symbol "
                          "column, so write the bucket itself (e.g. AAPL/1Min/OHLCV)")
    names = [h for h in header if h not in ("Symbol",)]
    cols: dict[str, list[str]] = {h: [] for h in names}
    syms: list[str] = []
    for n, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise _bad("csv", f"{path}:{n}: expected {len(header)} fields, got {len(r)}")
        for h, v in zip(header, r, strict=True):
            if h == "Symbol":
                syms.append(v.strip())
            else:
                cols[h].append(v.strip())
    try:
        epochs = _epochs(cols.pop("Epoch"))
        values = {h: _column(v) for h, v in cols.items()}
    except ValueError as exc:
        raise _bad("csv", f"{path!r}: {exc}") from exc
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
    """Epoch seconds of each text: an integer, or an ISO-8601 time (no offset = UTC)."""
    out = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        try:
            out[i] = int(t)
        except ValueError:
            try:
                out[i] = to_epoch_ns(t, "Epoch") // NS
            except ValueError as exc:
                raise ValueError(f"Epoch value {t!r} is neither epoch seconds nor an ISO-8601 "
                                 f"time ({exc})") from exc
    return out


def _column(texts: list[str]) -> np.ndarray:
    try:
        return np.array([int(t) for t in texts], dtype=np.int64)
    except ValueError:
        return np.array([float(t) for t in texts], dtype=np.float64)
