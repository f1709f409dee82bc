"""The database against an in-memory model under range deletes and updates: a hypothesis state
machine writes bars (a fixed 1Min bucket) and trades (a 1Sec tick bucket), deletes and
updates random ranges (open ends, ranges cutting tick intervals, whole years), compacts,
checkpoints and reopens, with ondiskagg attached. After every step each base bucket equals
the model and every aggregate equals a from-scratch aggregation of its base.

The model is plain Python: fixed rows {label: (price, volume)} (the last write of an
interval wins, labels t // 60 * 60 in the UTC database), ticks a list of (ns, price, size)
in write order, read back stably sorted by time.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import numpy as np
import pytest
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
from mkts.plugins import aggfuncs, ondiskagg

BARS, TRADES = "A/1Min/OHLCV", "T/1Sec/TRADE"
DESTS = ("5Min", "1H")
NS = 1_000_000_000
BOUNDARY = 1_704_067_200  # 2024-01-01 UTC: rows on both sides, so years come and go

bar_times = st.builds(lambda m, s: BOUNDARY + 60 * m + s, st.integers(-30, 30),
                      st.integers(0, 59))
tick_times = st.builds(lambda s, n: (BOUNDARY + s) * NS + n, st.integers(-90, 90),
                       st.sampled_from([0, 1, 500_000_000, 999_999_999]))
prices = st.integers(1, 1000)
bar_rows = st.lists(st.tuples(bar_times, prices), min_size=1, max_size=12)
tick_rows = st.lists(st.tuples(tick_times, prices), min_size=1, max_size=15)
ends = st.one_of(st.none(), st.integers(-2 * 3600, 2 * 3600).map(lambda s: (BOUNDARY + s) * NS),
                 tick_times)


def _bars(rows: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    p = np.array([x for _, x in rows], dtype="f8")
    return {"Epoch": np.array([t for t, _ in rows], dtype=np.int64), "Open": p, "High": p + 1,
            "Low": p - 1, "Close": p, "Volume": (p * 10).astype("i8")}


def _ticks(rows: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    t = np.array([x for x, _ in rows], dtype=np.int64)
    return {"Epoch": t // NS, "Nanoseconds": (t % NS).astype("i4"),
            "Price": np.array([x for _, x in rows], dtype="f8"),
            "Size": np.array([x % 7 + 1 for _, x in rows], dtype="i8")}


def _t(ns: int | None) -> Any:
    return None if ns is None else np.datetime64(ns, "ns")


class CorrectionsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="mkts-corrections-")
        self.root = self.dir + "/db"
        self.db: engine.Database | None = None
        self.sync = "always"
        self.fixed: dict[int, tuple[int, int]] = {}
        self.ticks: list[tuple[int, int, int]] = []
        self.made: set[str] = set()

    def _open(self) -> None:
        trig = ondiskagg.NewTrigger({"destinations": list(DESTS), "batch_ms": 0})
        self.db = engine.open(self.root, sync=self.sync,
                              triggers=[("*/1Min/OHLCV", trig), ("*/1Sec/TRADE", trig)])

    def teardown(self) -> None:
        try:
            if self.db is not None:
                self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(sync=st.sampled_from(["always", "interval", "off"]))
    def open_empty(self, sync: str) -> None:
        self.sync = sync
        self._open()
        self.db.create(TRADES, {"Price": "f8", "Size": "i8"}, variable=True)
        self.made.add(TRADES)

    # -- the model -------------------------------------------------------------------------
    def _remove(self, key: str, lo: int | None, hi: int | None) -> None:
        lo = -(1 << 62) if lo is None else lo
        hi = 1 << 62 if hi is None else hi
        if key == BARS:
            self.fixed = {t: v for t, v in self.fixed.items() if not lo <= t * NS <= hi}
        else:
            self.ticks = [r for r in self.ticks if not lo <= r[0] <= hi]

    def _add(self, key: str, rows: list[tuple[int, int]]) -> None:
        if key == BARS:
            for t, p in rows:
                self.fixed[t // 60 * 60] = (p, p * 10)
        else:
            self.ticks.extend((t, p, p % 7 + 1) for t, p in rows)
        self.made.add(key)

    # -- rules -----------------------------------------------------------------------------
    @rule(rows=bar_rows)
    def write_bars(self, rows: list[tuple[int, int]]) -> None:
        self.db.write(BARS, _bars(rows))
        self._add(BARS, rows)

    @rule(rows=tick_rows)
    def write_ticks(self, rows: list[tuple[int, int]]) -> None:
        self.db.write(TRADES, _ticks(rows))
        self._add(TRADES, rows)

    @rule(key=st.sampled_from([BARS, TRADES]), a=ends, b=ends)
    def delete(self, key: str, a: int | None, b: int | None) -> None:
        if key not in self.made:
            with pytest.raises(engine.BucketNotFoundError):
                self.db.delete(key, _t(a), _t(b))
            return
        if a is not None and b is not None and a > b:
            a, b = b, a
        before = self._count(key)
        removed = self.db.delete(key, _t(a), _t(b))
        self._remove(key, a, b)
        assert removed == before - self._count(key)

    @rule(key=st.sampled_from([BARS, TRADES]), bars=bar_rows, ticks=tick_rows,
          a=ends, b=ends, explicit=st.booleans())
    def update(self, key: str, bars: list[tuple[int, int]], ticks: list[tuple[int, int]],
               a: int | None, b: int | None, explicit: bool) -> None:
        rows = bars if key == BARS else ticks
        times = [t * NS for t, _ in rows] if key == BARS else [t for t, _ in rows]
        if key == BARS:
            times = [t // (60 * NS) * 60 * NS for t in times]  # the range goes by labels
        lo, hi = min(times), max(times)
        if explicit and a is not None and b is not None:
            lo, hi = min(a, b), max(a, b)
        data = _bars(rows) if key == BARS else _ticks(rows)
        if explicit and a is not None and b is not None:
            self.db.update(key, data, start=_t(lo), end=_t(hi))
        else:
            self.db.update(key, data)
        if key in self.made:
            self._remove(key, lo, hi)
        self._add(key, rows)

    @rule(bars=bar_rows, a=ends, b=ends)
    def transaction_across_buckets(self, bars: list[tuple[int, int]], a: int | None,
                                   b: int | None) -> None:
        """Delete trades and write bars in one transaction."""
        if a is not None and b is not None and a > b:
            a, b = b, a
        with self.db.transaction() as tx:
            tx.delete(TRADES, _t(a), _t(b))
            tx.write(BARS, _bars(bars))
        self._remove(TRADES, a, b)
        self._add(BARS, bars)

    @rule()
    def compact(self) -> None:
        self.db.compact(TRADES)

    @rule()
    def checkpoint(self) -> None:
        self.db.checkpoint()

    @rule()
    def close_and_reopen(self) -> None:
        self.db.close()
        self._open()

    def _count(self, key: str) -> int:
        return len(self.fixed) if key == BARS else len(self.ticks)

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def bases_match_the_model(self) -> None:
        if BARS in self.made:
            r = self.db.read(BARS)
            assert r["Epoch"].tolist() == sorted(self.fixed)
            assert r["Open"].tolist() == [float(self.fixed[t][0]) for t in sorted(self.fixed)]
            years = sorted({int(np.datetime64(t, "s").astype("M8[Y]").astype(int)) + 1970
                            for t in self.fixed})
            assert self.db.info(BARS)["years"] == years  # an emptied year loses its file
        r = self.db.read(TRADES)
        want = sorted(self.ticks, key=lambda x: x[0])
        got = (np.asarray(r["Epoch"], np.int64) * NS + np.asarray(r["Nanoseconds"])).tolist()
        assert got == [x[0] for x in want]
        assert r["Price"].tolist() == [float(x[1]) for x in want]

    @invariant()
    def aggregates_equal_a_fresh_aggregation(self) -> None:
        assert self.db.wait_for_triggers(30)
        keys = set(self.db.list_keys())
        for base, cols in ((BARS, ["Open", "High", "Low", "Close", "Volume"]),
                           (TRADES, ["Price", "Size"])):
            if base not in keys:
                continue
            r = self.db.read(base, columns=cols)
            rows = {c: np.asarray(r[c]) for c in r.columns}
            sym = base.split("/")[0]
            for d in DESTS:
                want = aggfuncs.aggregate(rows, self.db.calendar, d)
                out = f"{sym}/{d}/OHLCV"
                if out not in keys:
                    assert not len(want["Epoch"]), f"{out} missing"
                    continue
                got = self.db.read(out)
                assert got["Epoch"].tolist() == want["Epoch"].tolist(), out
                for c in ("Open", "High", "Low", "Close", "Volume"):
                    assert np.allclose(np.asarray(got[c], "f8"), want[c].astype("f8")), (out, c)


def test_corrections_match_the_model_and_a_fresh_aggregation(
        request: pytest.FixtureRequest) -> None:
    slow = bool(request.config.getoption("--run-slow"))
    run_state_machine_as_test(
        CorrectionsModel,
        settings=settings(
            max_examples=300 if slow else 15,
            stateful_step_count=40 if slow else 20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
