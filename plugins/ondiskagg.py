"""ondiskagg: keep `SYM/<dest>/ATTR` bars on disk up to date from the base bucket just written.

Owns choosing which destination bars a write touched, re-reading their base rows and writing
the recomputed bars (plus `rebuild`, the from-scratch pass). The math is in
`plugins.aggfuncs`, the `config:` schema in `plugins.ondiskconfig`; the contract a trigger follows is in `plugins.base`.

    triggers:
      - module: ondiskagg.so              # or mkts.plugins.ondiskagg
        on: "*/1Min/OHLCV"
        config:
          destinations: [5Min, 15Min, 1H, 1D]
          filter: XNYS                    # optional; only for destinations of one day
          batch_ms: 10                    # optional; a burst of writes gathers this long
                                          # and is recomputed once (0: fire at once)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mkts.engine import NS, SchemaError, parse_pattern
from mkts.plugins import aggfuncs
from mkts.plugins.aggfuncs import BARS, OHLC, TICKS, SessionFilter
from mkts.plugins.errors import PluginConfigError, PluginError
from mkts.plugins.ondiskconfig import OnDiskAggConfig, parse_config
from mkts.plugins.progress import track

__all__ = ["NewTrigger", "OnDiskAgg", "OnDiskAggConfig", "PluginConfigError", "parse_config",
           "rebuild", "TICK_OUTPUT_ATTR"]

log = logging.getLogger("mkts.plugins.ondiskagg")

TICK_OUTPUT_ATTR = "OHLCV"  # ticks (e.g. AAPL/1Sec/TRADE) aggregate into AAPL/<dest>/OHLCV


def NewTrigger(config: Mapping[str, Any]) -> OnDiskAgg:
    """Build the trigger from its `config:` (`OnDiskAggConfig`: destinations, filter,
    batch_ms). Raises PluginConfigError naming the bad key."""
    return OnDiskAgg(parse_config(config))


class OnDiskAgg:
    """The aggregation trigger. `fire` recomputes every destination bar the records touched
    from all base rows of that bar and writes them in one transaction.

    Destinations must be longer than the base timeframe and a multiple of it (ticks: at
    least as long); that is checked at the first fire for each base timeframe, and a
    destination that does not fit is skipped with one logged error.

    It recomputes from the database, so it takes the records of several transactions in
    one fire (`coalesce`): a burst of writes to a bucket costs one recompute."""

    coalesce = True

    def __init__(self, config: OnDiskAggConfig) -> None:
        # the destinations without repeats, shortest first
        dests = {tf.name: tf for tf in map(aggfuncs.as_timeframe, config.destinations)}
        self.destinations = tuple(sorted(dests.values(), key=lambda t: t.seconds))
        self.filter_name: str | None = None
        self.session: SessionFilter | None = None
        if config.filter:
            self.session = aggfuncs.session_filter(config.filter)
            self.filter_name = self.session.name
            if not any(d.is_daily for d in self.destinations):
                log.warning("ondiskagg: filter %r only applies to destinations of one day; "
                            "none of %s is", config.filter, [d.name for d in self.destinations])
        self.coalesce_window_s = config.batch_ms / 1000.0
        self._db: Any = None
        self._plans: dict[tuple[str, str], tuple[Any, ...]] = {}
        # (bucket key, dtype of its stored rows) -> what _plan said, so fires skip planning
        self._known: dict[tuple[str, np.dtype], tuple[Any, ...]] = {}
        self._warned: set[str] = set()
        self.fires = 0
        self.bars_written = 0
        self.skipped = 0

    def __repr__(self) -> str:
        f = f", filter={self.filter_name!r}" if self.filter_name else ""
        return f"<ondiskagg {[d.name for d in self.destinations]}{f}>"

    def start(self, db: Any) -> None:
        self._db = db

    def stats(self) -> dict[str, int]:
        return {"fires": self.fires, "bars_written": self.bars_written, "skipped": self.skipped}

    def sources(self, key: str) -> str | None:
        """The key pattern of the base buckets this trigger writes bucket `key` from, or
        None when `key` is none of its destinations (docs/plugins.md "Buckets a trigger
        maintains"): `SYM/<dest>/ATTR` is written from `SYM/*/ATTR` (bars), and an
        `SYM/<dest>/OHLCV` also from any tick bucket of the symbol (`SYM/*/*`). Reads of
        `key` wait for this trigger's pending work on those bases; destroying a base
        destroys `key` with it."""
        sym, tf, attr = key.split("/")
        if not any(d.name == tf for d in self.destinations):
            return None
        return f"{sym}/*/{'*' if attr == TICK_OUTPUT_ATTR else attr}"

    def columns_changed(self, key: str, names: Sequence[str], op: str, args: tuple[Any, ...]
                        ) -> list[tuple[str, str, tuple[Any, ...]]]:
        """The column changes that keep this trigger's destinations of base `key` equal to a
        from-scratch aggregation after `op` ("add" name dtype fill | "drop" name | "rename"
        old new) of its columns `names` (docs/plugins.md "Column changes of a base"):
        losing the summed column (Volume of bars, Size of ticks) drops Volume from the
        destinations; gaining it with fill 0 adds Volume (fill 0); other columns are not
        aggregated and change nothing. Dropping or renaming an aggregated price column, or
        gaining the summed column with another fill, raises SchemaError: nothing changes."""
        sym, tfname, attr = key.split("/")
        kind = aggfuncs.base_kind(names)
        if kind is None or (kind == BARS and any(d.name == tfname for d in self.destinations)):
            return []
        prices, summed = (OHLC, "Volume") if kind == BARS else (("Price",), "Size")
        out_attr = attr if kind == BARS else TICK_OUTPUT_ATTR
        dests = [f"{sym}/{d.name}/{out_attr}" for d in self.destinations]
        gone = args[0] if op in ("drop", "rename") else None
        gained = args[0] if op == "add" else args[1] if op == "rename" else None
        if gone in prices:
            raise SchemaError(
                f"{key}: ondiskagg aggregates column {gone!r} into {', '.join(dests)}; "
                f"{op}ping it would leave those bars without their source. Destroy the "
                "aggregates and detach the trigger first (or add a new column instead)")
        if gone == summed:
            return [(d, "drop", ("Volume",)) for d in dests]
        if gained == summed and summed not in names:
            if op == "rename" or args[2] != 0:
                raise SchemaError(
                    f"{key}: a {summed} column is summed by ondiskagg into the Volume of "
                    f"{', '.join(dests)}; add it with fill=0 so that the bars of earlier rows "
                    "stay equal to their sum")
            vol = aggfuncs.volume_dtype(np.dtype(args[1]))
            return [(d, "add", ("Volume", vol.str, 0)) for d in dests]
        return []

    # -- the trigger -------------------------------------------------------------------
    def fire(self, key_path: str, records: Any) -> None:
        db = self._db
        if db is None:
            raise PluginError("ondiskagg: fire() before start(db); attach it with "
                              "engine.open(..., triggers=[(pattern, trigger)])")
        removed = getattr(records, "removed", None)
        if not len(records) and removed is None:
            return
        key = str(records.key)
        # the stored rows' dtype names the bucket's columns: plan once per bucket and schema
        known = (key, records.rows.dtype)
        plan = self._known.get(known)
        if plan is None:
            plan = self._plan(key, list(records.columns()))
            if plan is None:
                return
            self._known[known] = plan
        self.fires += 1
        if removed is not None:
            self._recompute_removed(db, key, removed, records.nanos is not None, *plan)
            return
        out = self._recompute(db, key, records.epochs, records.nanos is not None, *plan)
        self._write(db, out)

    def _recompute_removed(self, db: Any, key: str, removed: tuple[int, int], variable: bool,
                           kind: str, dests: Sequence[Any], out_key: str, cols: Sequence[str]
                           ) -> None:
        """After a delete (or update) removed base rows in [start_ns, end_ns]: every
        destination bar overlapping that range is recomputed from the base, and the bars
        left without base rows are deleted, in one transaction for all destinations."""
        cal = db.calendar
        lo, hi = removed[0] // NS, removed[1] // NS
        existing = set(db.list_keys())
        with db.transaction() as tx:
            for d in dests:
                labels = aggfuncs.bar_labels(cal, np.array([lo, hi], dtype=np.int64), d)
                _, ends = aggfuncs.bar_bounds(cal, labels, d)
                a, b = int(labels[0]), int(ends[1])
                rows = _read_runs(db, key, np.array([a]), np.array([b]), cols, variable)
                bars = self._bars(cal, rows, kind, d)
                dest = out_key.format(d.name)
                if len(bars["Epoch"]):
                    tx.update(dest, _records(bars), start=a, end=b - 1)
                    self.bars_written += len(bars["Epoch"])
                elif dest in existing:
                    tx.delete(dest, a, b - 1)

    def _plan(self, key: str, names: Sequence[str]) -> tuple[Any, ...] | None:
        """(kind, destinations, output attr, columns to read) for a base bucket, or None to
        skip it (logged once per bucket)."""
        sym, tfname, attr = key.split("/")
        kind = aggfuncs.base_kind(names)
        if kind is None:
            self._skip(key, f"ondiskagg: skipping {key}: it has no Open/High/Low/Close columns "
                            "(bars) and no Price column (ticks); columns are "
                            f"{', '.join(n for n in names if n != 'Epoch')}. Point `on:` at "
                            "OHLC or tick buckets only")
            return None
        if kind == BARS and any(d.name == tfname for d in self.destinations):
            return None  # our own output (e.g. `on: */*/OHLCV`): never aggregate it again
        cached = self._plans.get((tfname, kind))
        if cached is None:
            base = aggfuncs.as_timeframe(tfname)
            ok: list[Any] = []
            bad: list[Any] = []
            for d in self.destinations:
                fits = d.seconds % base.seconds == 0 and (
                    d.seconds > base.seconds or (kind == TICKS and d.seconds == base.seconds))
                (ok if fits else bad).append(d)
            if bad:
                need = "at least as long as" if kind == TICKS else "longer than"
                log.error("ondiskagg: destinations %s do not fit base timeframe %s (each must be "
                          "%s %s and a multiple of it); they are skipped for %s buckets",
                          [d.name for d in bad], tfname, need, tfname, tfname)
            cached = self._plans[(tfname, kind)] = tuple(ok)
        if not cached:
            return None
        if kind == BARS:
            cols = [*OHLC, *(["Volume"] if "Volume" in names else [])]
            out_attr = attr
        else:
            cols = ["Price", *(["Size"] if "Size" in names else [])]
            out_attr = TICK_OUTPUT_ATTR
        return kind, cached, f"{sym}/{{}}/{out_attr}", cols

    def _skip(self, key: str, message: str) -> None:
        self.skipped += 1
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def _recompute(self, db: Any, key: str, epochs: np.ndarray, variable: bool, kind: str,
                   dests: Sequence[Any], out_key: str, cols: Sequence[str]
                   ) -> dict[str, dict[str, np.ndarray]]:
        """Recompute every destination bar containing one of `epochs` from the base rows,
        read once for the union of those bars; all destinations in one pass per column."""
        starts, ends, counts = aggfuncs.touched_bars(db.calendar, epochs, dests)
        run_lo, run_hi = aggfuncs.merge_ranges(starts, ends)
        rows = _read_runs(db, key, run_lo, run_hi, cols, variable)
        out: dict[str, dict[str, np.ndarray]] = {}
        if self.session is None or not any(d.is_daily for d in dests):
            bars, has = aggfuncs.reduce_spans(kind, rows, starts, ends)
            _split(out, out_key, dests, counts, bars, has)
            return out
        # the exchange-session filter applies to the daily destinations only
        at = np.cumsum([0, *counts])
        keep = self.session.mask(rows["Epoch"])
        in_session = rows if keep.all() else {c: v[keep] for c, v in rows.items()}
        for daily, source in ((False, rows), (True, in_session)):
            group = [i for i, d in enumerate(dests) if d.is_daily == daily]
            if group:
                sel = np.concatenate([np.arange(at[i], at[i + 1]) for i in group])
                bars, has = aggfuncs.reduce_spans(kind, source, starts[sel], ends[sel])
                _split(out, out_key, [dests[i] for i in group], [counts[i] for i in group],
                       bars, has)
        return out

    def _bars(self, cal: Any, rows: dict[str, np.ndarray], kind: str, dest: Any
              ) -> dict[str, np.ndarray]:
        """All `dest` bars of `rows` (from scratch: `rebuild`)."""
        epochs = rows["Epoch"]
        labels = aggfuncs.bar_labels(cal, epochs, dest)
        if self.session is not None and dest.is_daily:
            keep = self.session.mask(epochs)
            if not keep.all():
                rows = {n: c[keep] for n, c in rows.items()}
                labels = labels[keep]
        if kind == BARS:
            return aggfuncs.reduce_bars(labels, rows)
        return aggfuncs.reduce_ticks(labels, rows)

    def _write(self, db: Any, out: Mapping[str, Mapping[str, np.ndarray]]) -> int:
        items = {k: _records(v) for k, v in out.items() if len(v["Epoch"])}
        if items:
            db.write_many(items)
        n = sum(len(v) for v in items.values())
        self.bars_written += n
        return n


def _records(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The bars as one structured array: rows whose fields have the destination bucket's
    types take the engine's byte-copy write path (engine/fastpath.py)."""
    n = len(columns["Epoch"])
    out = np.empty(n, dtype=[(name, col.dtype) for name, col in columns.items()])
    for name, col in columns.items():
        out[name] = col
    return out


def _split(out: dict[str, dict[str, np.ndarray]], out_key: str, dests: Sequence[Any],
           counts: Sequence[int], bars: dict[str, np.ndarray], has: np.ndarray) -> None:
    """Cut the bars of several destinations (concatenated in `dests` order, counts[i] bars
    each) per destination into `out`, dropping bars without rows."""
    every = bool(has.all())
    at = 0
    for d, k in zip(dests, counts, strict=True):
        part = slice(at, at + k)
        at += k
        if every:
            out[out_key.format(d.name)] = {c: v[part] for c, v in bars.items()}
            continue
        m = has[part]
        if m.any():
            out[out_key.format(d.name)] = {c: v[part][m] for c, v in bars.items()}


def _read_runs(db: Any, key: str, run_lo: np.ndarray, run_hi: np.ndarray,
               cols: Sequence[str], variable: bool) -> dict[str, np.ndarray]:
    """Base rows labelled inside the runs [lo, hi), in time order, as columns."""
    chunks = []
    for a, b in zip(run_lo.tolist(), run_hi.tolist(), strict=True):
        # end is inclusive: the last second before b for bars (their labels are whole
        # seconds), exact to the nanosecond for ticks (the last ns before b)
        end: Any = np.datetime64(b * NS - 1, "ns") if variable else b - 1
        r = db.read(key, a, end, columns=cols)  # ascending time, ties in write order
        arr = {c: np.asarray(r[c]) for c in r.columns}
        e = arr["Epoch"]
        if len(e) and (e[0] < a or e[-1] >= b):  # a base interval reaching over the edge
            sel = (e >= a) & (e < b)
            arr = {c: v[sel] for c, v in arr.items()}
        chunks.append(arr)
    if len(chunks) == 1:
        return chunks[0]
    return {c: np.concatenate([ch[c] for ch in chunks]) for c in chunks[0]}


# -- from scratch ------------------------------------------------------------------------


def rebuild(db: Any, pattern: str = "*/1Min/OHLCV",
            destinations: Iterable[str] = ("5Min", "15Min", "1H", "1D"), *,
            filter: str | None = None, replace: bool = True, progress: bool = True) -> int:
    """Recompute every destination bucket of every base bucket matching the key pattern
    `pattern` from scratch; returns the number of bars written.

    With `replace` (the default) each existing destination bucket is destroyed first, so
    bars the base no longer supports (e.g. after a filter change) disappear. Works one base
    bucket and year at a time; shows a tqdm progress bar when `progress` and tqdm is
    installed. Safe to run while the trigger is active (both write the same bars)."""
    agg = OnDiskAgg(parse_config({"destinations": list(destinations), "filter": filter},
                                 source="ondiskagg.rebuild"))
    work: list[tuple[str, int, bool, tuple[Any, ...]]] = []
    existing = set(db.list_keys())
    for key in parse_pattern(pattern).select(existing):
        info = db.info(key)
        plan = agg._plan(key, list(info["columns"]))
        if plan is not None:
            variable = info["kind"] == "variable"
            work.extend((key, y, variable, plan) for y in info["years"])
    if replace:
        outputs = {plan[2].format(d.name) for *_, plan in work for d in plan[1]}
        for out in sorted(outputs & existing):
            db.destroy(out)
    total = 0
    cal = db.calendar
    for key, year, variable, (kind, dests, out_key, cols) in track(
            work, len(work), "rebuild aggregates", unit="bucket-year", enabled=progress):
        lo, hi = cal.year_start(year), cal.year_start(year + 1)
        rows = _read_runs(db, key, np.array([lo]), np.array([hi]), cols, variable)
        if len(rows["Epoch"]):
            out = {out_key.format(d.name): agg._bars(cal, rows, kind, d) for d in dests}
            total += agg._write(db, out)
    return total
