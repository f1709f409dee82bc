"""The database against an in-memory model under writes, range deletes and updates, mixed
transactions, column changes, compaction, checkpoints, reopens and replays of the log: a
hypothesis state machine drives a fixed 1Min bucket (bars) and a 1Sec tick bucket (trades)
across a year boundary, with ondiskagg attached (or not: then any column may be dropped or
renamed). After every step each base bucket reads exactly as the model says (every column,
fills of rows written before an add, an emptied year gone) and every aggregate equals a
from-scratch aggregation of its base (with Volume exactly while the base has the summed
column).

The model is plain Python, per bucket: the current columns as [(name, id, dtype, fill)]
and the rows as {column id: value} (a rename moves nothing, a dropped id is never read
again); fixed rows by label (t // 60 * 60 in the UTC database; the last write of an
interval wins), ticks a list of (ns, row) in write order, read back stably sorted by time.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import numpy as np
import pytest
from harness.sparse import copy_root
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from mkts import engine
from mkts.check import check_root
from mkts.plugins import aggfuncs, ondiskagg
from mkts.wiring import AggregationSpec

BARS, TRADES = "A/1Min/OHLCV", "T/1Sec/TRADE"
KEYS = (BARS, TRADES)
DESTS = ("5Min", "1H")
TRIGGER_ON = ("*/1Min/OHLCV", "*/1Sec/TRADE")
NS = 1_000_000_000
BOUNDARY = 1_704_067_200  # 2024-01-01 UTC: rows on both sides, so years come and go
PRICES = {BARS: ("Open", "High", "Low", "Close"), TRADES: ("Price",)}
SUMMED = {BARS: "Volume", TRADES: "Size"}  # summed by ondiskagg into the bars' Volume
INITIAL = {BARS: [("Open", "f8"), ("High", "f8"), ("Low", "f8"), ("Close", "f8"),
                  ("Volume", "i8")],
           TRADES: [("Price", "f8"), ("Size", "i8")]}
# New names: never a price column while ondiskagg is attached (a tick bucket gaining
# Open..Close would turn into a bar bucket under it); the summed names on both buckets.
NEW_NAMES = ["X", "Y", "Z", "Volume", "Size"]
FREE_NAMES = [*NEW_NAMES, "Open", "Price"]

bar_times = st.builds(lambda m, s: BOUNDARY + 60 * m + s, st.integers(-30, 30),
                      st.integers(0, 59))
tick_times = st.builds(lambda s, n: (BOUNDARY + s) * NS + n, st.integers(-90, 90),
                       st.sampled_from([0, 1, 500_000_000, 999_999_999]))
prices = st.integers(1, 1000)
bar_rows = st.lists(st.tuples(bar_times, prices), min_size=1, max_size=12)
tick_rows = st.lists(st.tuples(tick_times, prices), min_size=1, max_size=15)
ends = st.one_of(st.none(), st.integers(-2 * 3600, 2 * 3600).map(lambda s: (BOUNDARY + s) * NS),
                 tick_times)
keys = st.sampled_from(KEYS)
# Which current columns a write leaves out (with allow_missing_columns): bit i for column i.
omits = st.one_of(st.just(0), st.integers(0, 127))
refusable = st.sampled_from([False, False, False, True])  # a column change may be refused
Row = dict[int, int]


def _t(ns: int | None) -> Any:
    return None if ns is None else np.datetime64(ns, "ns")


def _value(p: int, cid: int) -> int:
    """The value column `cid` of a row written with price `p` holds (any exact number)."""
    return p * 10 if cid == 5 else p + 3 * cid


def _ordered(a: int | None, b: int | None) -> tuple[int | None, int | None]:
    """A range's ends with the start never after the end (an open end stays open)."""
    return (a, b) if a is None or b is None else (min(a, b), max(a, b))


def _year(ns: int) -> int:
    return int(np.datetime64(ns, "ns").astype("M8[Y]").astype(int)) + 1970


class CorrectionsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="mkts-corrections-")
        self.root = self.dir + "/db"
        self.copies = 0
        self.db: engine.Database | None = None
        self.sync = "always"
        self.agg = True
        self.allow_missing = False
        self.next_id = 8
        self.cols: dict[str, list[tuple[str, int, str, int]]] = {
            key: [(n, i + 1, dt, 0) for i, (n, dt) in enumerate(cols)]
            for key, cols in INITIAL.items()}
        self.fixed: dict[int, Row] = {}
        self.ticks: list[tuple[int, Row]] = []
        self.made: set[str] = set()

    def _open(self) -> None:
        trig = ondiskagg.NewTrigger({"destinations": list(DESTS), "batch_ms": 0})
        triggers = [(p, trig) for p in TRIGGER_ON] if self.agg else []
        self.db = engine.open(self.root, sync=self.sync, triggers=triggers,
                              allow_missing_columns=self.allow_missing)

    @property
    def handle(self) -> engine.Database:
        assert self.db is not None
        return self.db

    def teardown(self) -> None:
        try:
            if self.db is not None:
                self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(sync=st.sampled_from(["always", "interval", "off"]),
                agg=st.sampled_from([True, True, False]), allow_missing=st.booleans())
    def open_empty(self, sync: str, agg: bool, allow_missing: bool) -> None:
        self.sync, self.agg, self.allow_missing = sync, agg, allow_missing
        self._open()
        self.handle.create(TRADES, {n: dt for n, _, dt, _ in self.cols[TRADES]}, variable=True)
        self.made.add(TRADES)

    # -- the model -------------------------------------------------------------------------
    def _data(self, key: str, rows: list[tuple[int, int]], omit: int
              ) -> tuple[dict[str, np.ndarray], list[tuple[int, Row]]]:
        """The arrays a write of `rows` passes in the current columns (leaving out the
        columns `omit` selects when that is allowed), and the model's rows for it."""
        cols = self.cols[key]
        if not (self.allow_missing and key in self.made):
            omit = 0
        kept = [c for i, c in enumerate(cols) if not omit >> i & 1] or cols[:1]
        times = [t for t, _ in rows]
        data: dict[str, np.ndarray] = {}
        if key == BARS:
            data["Epoch"] = np.array(times, dtype=np.int64)
        else:
            ns = np.array(times, dtype=np.int64)
            data["Epoch"], data["Nanoseconds"] = ns // NS, (ns % NS).astype("i4")
        for name, cid, dt, _ in kept:
            data[name] = np.array([_value(p, cid) for _, p in rows], dtype=dt)
        out = []
        for t, p in rows:
            row = {cid: (_value(p, cid) if (n, cid, dt, f) in kept else f)
                   for n, cid, dt, f in cols}
            out.append((t // 60 * 60 * NS if key == BARS else t, row))
        return data, out

    def _remove(self, key: str, lo: int | None, hi: int | None) -> int:
        lo = -(1 << 62) if lo is None else lo
        hi = 1 << 62 if hi is None else hi
        before = self._count(key)
        if key == BARS:
            self.fixed = {t: v for t, v in self.fixed.items() if not lo <= t <= hi}
        else:
            self.ticks = [r for r in self.ticks if not lo <= r[0] <= hi]
        return before - self._count(key)

    def _add(self, key: str, rows: list[tuple[int, Row]]) -> None:
        if key == BARS:
            for t, row in rows:
                self.fixed[t] = row
        else:
            self.ticks.extend(rows)
        self.made.add(key)

    def _count(self, key: str) -> int:
        return len(self.fixed) if key == BARS else len(self.ticks)

    # -- rows ------------------------------------------------------------------------------
    @rule(rows=bar_rows, omit=omits)
    def write_bars(self, rows: list[tuple[int, int]], omit: int) -> None:
        data, model = self._data(BARS, rows, omit)
        self.handle.write(BARS, data)
        self._add(BARS, model)

    @rule(rows=tick_rows, omit=omits)
    def write_ticks(self, rows: list[tuple[int, int]], omit: int) -> None:
        data, model = self._data(TRADES, rows, omit)
        self.handle.write(TRADES, data)
        self._add(TRADES, model)

    @rule(key=keys, a=ends, b=ends)
    def delete(self, key: str, a: int | None, b: int | None) -> None:
        if key not in self.made:
            with pytest.raises(engine.BucketNotFoundError):
                self.handle.delete(key, _t(a), _t(b))
            return
        a, b = _ordered(a, b)
        removed = self.handle.delete(key, _t(a), _t(b))
        assert removed == self._remove(key, a, b)

    def _range(self, model: list[tuple[int, Row]], a: int | None, b: int | None,
               explicit: bool) -> tuple[int, int, bool]:
        """The range an update replaces: [a, b] when given, else the span of its rows (by
        label for bars); and whether it was given."""
        if explicit and a is not None and b is not None:
            return min(a, b), max(a, b), True
        times = [t for t, _ in model]
        return min(times), max(times), False

    @rule(key=keys, bars=bar_rows, ticks=tick_rows, a=ends, b=ends, explicit=st.booleans(),
          omit=omits)
    def update(self, key: str, bars: list[tuple[int, int]], ticks: list[tuple[int, int]],
               a: int | None, b: int | None, explicit: bool, omit: int) -> None:
        data, model = self._data(key, bars if key == BARS else ticks, omit)
        lo, hi, given = self._range(model, a, b, explicit)
        if given:
            self.handle.update(key, data, start=_t(lo), end=_t(hi))
        else:
            self.handle.update(key, data)
        if key in self.made:
            self._remove(key, lo, hi)
        self._add(key, model)

    @rule(steps=st.lists(st.tuples(st.sampled_from(["write", "delete", "update"]), keys,
                                   bar_rows, tick_rows, ends, ends, omits),
                         min_size=1, max_size=4))
    def transaction(self, steps: list[tuple[Any, ...]]) -> None:
        """Writes, deletes and updates of both buckets, in call order, as one transaction
        (later steps see earlier ones); a delete of a bucket that does not exist (nor is
        written by an earlier step) fails it whole, with nothing changed."""
        made = set(self.made)
        for kind, key, *_ in steps:
            if kind == "delete" and key not in made:
                with pytest.raises(engine.BucketNotFoundError), \
                        self.handle.transaction() as tx:
                    for kind, key, bars, ticks, a, b, _ in steps:
                        if kind == "delete":
                            tx.delete(key, *map(_t, _ordered(a, b)))
                        else:
                            data, _ = self._data(key, bars if key == BARS else ticks, 0)
                            getattr(tx, kind)(key, data)
                return
            made.add(key)
        removed: dict[str, int] = {}
        with self.handle.transaction() as tx:
            for kind, key, bars, ticks, a, b, omit in steps:
                if kind == "delete":
                    lo, hi = _ordered(a, b)
                    tx.delete(key, _t(lo), _t(hi))
                    removed[key] = removed.get(key, 0) + self._remove(key, lo, hi)
                    continue
                data, model = self._data(key, bars if key == BARS else ticks, omit)
                if kind == "write":
                    tx.write(key, data)
                else:
                    lo, hi, given = self._range(model, a, b, True)
                    if given:
                        tx.update(key, data, start=_t(lo), end=_t(hi))
                    else:
                        tx.update(key, data)
                    if key in self.made:
                        removed[key] = removed.get(key, 0) + self._remove(key, lo, hi)
                self._add(key, model)
        assert tx.removed == removed

    # -- columns ---------------------------------------------------------------------------
    def _alter(self, key: str, op: str, args: tuple[Any, ...], refused: bool) -> None:
        if key not in self.made:
            with pytest.raises(engine.BucketNotFoundError):
                getattr(self.handle, f"{op}_column")(key, *args)
            return
        if refused:
            with pytest.raises(engine.SchemaError):
                getattr(self.handle, f"{op}_column")(key, *args)
            return
        getattr(self.handle, f"{op}_column")(key, *args)

    def _names(self, key: str, refusable: bool) -> list[str]:
        """The names a change may give a column of `key`: untaken ones, unless the step
        tries a refused change; never a price column while ondiskagg is attached."""
        pool = NEW_NAMES if self.agg else FREE_NAMES
        taken = {n for n, _, _, _ in self.cols[key]}
        return pool if refusable else [n for n in pool if n not in taken] or pool

    def _columns(self, key: str, refusable: bool) -> list[str]:
        """The columns a drop or rename of `key` picks from: not the aggregated prices while
        ondiskagg is attached, unless the step tries a refused change."""
        names = [n for n, _, _, _ in self.cols[key]]
        if refusable or not self.agg:
            return names
        return [n for n in names if n not in PRICES[key]] or names

    @rule(key=keys, which=st.integers(0, 9), dtype=st.sampled_from(["i8", "f8", "i4"]),
          fill=st.sampled_from([0, 0, 7, -3]), refusable=refusable)
    def add_column(self, key: str, which: int, dtype: str, fill: int, refusable: bool
                   ) -> None:
        cols = self.cols[key]
        pool = self._names(key, refusable)
        name = pool[which % len(pool)]
        taken = any(n == name for n, _, _, _ in cols)
        # ondiskagg: the summed column comes (back) with fill 0 only (its bars sum fills)
        refused = taken or (self.agg and name == SUMMED[key] and fill != 0)
        self._alter(key, "add", (name, dtype, fill), refused)
        if key in self.made and not refused:
            cols.append((name, self.next_id, dtype, fill))
            self.next_id += 1

    @rule(key=keys, which=st.integers(0, 9), refusable=refusable)
    def drop_column(self, key: str, which: int, refusable: bool) -> None:
        cols = self.cols[key]
        pool = self._columns(key, refusable)
        name = pool[which % len(pool)]
        refused = len(cols) == 1 or (self.agg and name in PRICES[key])
        self._alter(key, "drop", (name,), refused)
        if key in self.made and not refused:
            self.cols[key] = [c for c in cols if c[0] != name]

    @rule(key=keys, which=st.integers(0, 9), to=st.integers(0, 9), refusable=refusable)
    def rename_column(self, key: str, which: int, to: int, refusable: bool) -> None:
        cols = self.cols[key]
        pool = self._columns(key, refusable)
        old = pool[which % len(pool)]
        names = self._names(key, refusable)
        new = names[to % len(names)]
        refused = any(n == new for n, _, _, _ in cols) or (self.agg and (
            old in PRICES[key] or new == SUMMED[key]))
        self._alter(key, "rename", (old, new), refused)
        if key in self.made and not refused:
            self.cols[key] = [(new if n == old else n, cid, dt, f) for n, cid, dt, f in cols]

    @rule(key=keys, dest=st.sampled_from(DESTS))
    def change_an_aggregate_directly(self, key: str, dest: str) -> None:
        """A bucket ondiskagg maintains is changed through its base only."""
        out = f"{key.split('/')[0]}/{dest}/OHLCV"
        if not self.agg or out not in self.handle.list_keys():
            return
        with pytest.raises(engine.SchemaError):
            self.handle.add_column(out, "X", "i8")

    # -- files -----------------------------------------------------------------------------
    @rule()
    def compact(self) -> None:
        """Rewrites the tick bucket's year files (also those of before a column change)
        without garbage; the invariants check that every row is still there."""
        self.handle.compact(TRADES)
        assert self.handle.info(TRADES)["garbage_bytes"] == 0

    @rule()
    def checkpoint(self) -> None:
        self.handle.checkpoint()

    @rule()
    def close_and_reopen(self) -> None:
        self.handle.close()
        self._open()

    @rule()
    def check_finds_nothing_wrong(self) -> None:
        """Closed, the root passes `mkts check`: every file is where the file record says,
        with the checksum it records (the data is in closed years), and the aggregates
        equal a fresh aggregation."""
        self.handle.close()
        specs = [AggregationSpec(p, DESTS) for p in TRIGGER_ON] if self.agg else []
        report = check_root(self.root, aggregates=specs)
        errs = [str(e) for e in report.errors]
        assert errs == [], errs
        self._open()

    @rule()
    def replay_a_copy_of_the_open_root(self) -> None:
        """Copy the open root (year files as far as applied, the log not yet retired, as a
        crash that the OS survives leaves them), drop the original and open the copy: the
        log's deletes, updates and column changes are replayed onto files that may hold
        them already, and the triggers fire again for what they replay."""
        assert self.handle.wait_for_triggers(30)
        self.copies += 1
        copy = f"{self.dir}/db{self.copies}"
        copy_root(self.root, copy)
        self.handle.close()
        shutil.rmtree(self.root)
        self.root = copy
        self._open()

    # -- invariants ------------------------------------------------------------------------
    def _expected(self, key: str) -> tuple[list[int], dict[str, list[int]]]:
        if key == BARS:
            items = sorted(self.fixed.items())
        else:
            items = sorted(self.ticks, key=lambda r: r[0])  # stable: ties in write order
        return [t for t, _ in items], {
            name: [row.get(cid, fill) for _, row in items]
            for name, cid, _, fill in self.cols[key]}

    @invariant()
    def bases_match_the_model(self) -> None:
        db = self.handle
        for key in KEYS:
            if key not in self.made:
                continue
            r = db.read(key)
            times, want = self._expected(key)
            got_t = np.asarray(r["Epoch"], np.int64) * NS
            if key == TRADES:
                got_t = got_t + np.asarray(r["Nanoseconds"])
            assert got_t.tolist() == times, key
            names = [n for n in r.columns if n not in ("Epoch", "Nanoseconds")]
            assert names == [n for n, _, _, _ in self.cols[key]], key
            for name in names:
                assert np.asarray(r[name]).tolist() == want[name], (key, name)
            assert db.info(key)["years"] == sorted({_year(t) for t in times}), key

    @invariant()
    def aggregates_equal_a_fresh_aggregation(self) -> None:
        db = self.handle
        if not self.agg:
            return
        assert db.wait_for_triggers(30)
        existing = set(db.list_keys())
        for base in KEYS:
            if base not in existing:
                continue
            names = [n for n, _, _, _ in self.cols[base]]
            cols = [*PRICES[base], *([SUMMED[base]] if SUMMED[base] in names else [])]
            r = db.read(base, columns=cols)
            rows = {c: np.asarray(r[c]) for c in r.columns}
            sym = base.split("/")[0]
            for d in DESTS:
                want = aggfuncs.aggregate(rows, db.calendar, d)
                out = f"{sym}/{d}/OHLCV"
                if out not in existing:
                    assert not len(want["Epoch"]), f"{out} missing"
                    continue
                got = db.read(out)
                assert got.columns == list(want), out
                assert got["Epoch"].tolist() == want["Epoch"].tolist(), out
                for c in want:
                    assert np.allclose(np.asarray(got[c], "f8"), want[c].astype("f8")), (out, c)


def test_corrections_and_column_changes_match_the_model_and_a_fresh_aggregation(
        request: pytest.FixtureRequest) -> None:
    slow = bool(request.config.getoption("--run-slow"))
    run_state_machine_as_test(
        CorrectionsModel,
        settings=settings(
            max_examples=300 if slow else 25,
            stateful_step_count=40 if slow else 20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
