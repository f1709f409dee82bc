"""A stateful model of one tick bucket: random small batches with repeated times (near a year
boundary, a DST change, whole seconds), reads with nanosecond ranges, limits and projections,
compaction, sealing, close/reopen and replay of a copied root, all checked against a Python list kept
stably sorted by time (ties in write order)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import numpy as np
from harness.sparse import sparse_copy
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mkts import engine

NS = 1_000_000_000
ANCHORS = {
    "2024-01-01T00:00Z (UTC year start)": 1_704_067_200 * NS,
    "2024-01-01T05:00Z (New York year start)": 1_704_085_200 * NS,
    "2024-03-10T07:00Z (New York springs forward)": 1_710_054_000 * NS,
    "2024-01-02T10:00Z": 1_704_189_600 * NS,
}
# Offsets from the anchor: a few whole seconds either side (and farther, other intervals)
# plus a fraction that MarketStore's tick encoding gets wrong; few values, many repeats.
SECONDS = [-86_401, -3_601, -61, -2, -1, 0, 1, 2, 59, 60, 3_599, 86_399]
FRACTIONS = [0, 1, 250_000_000, 999_999_999]
offsets = st.builds(lambda s, f: s * NS + f, st.sampled_from(SECONDS), st.sampled_from(FRACTIONS))
PROJECTIONS = [None, ["Seq"], ["Price"], ["Nanoseconds", "Seq"], ["Price", "Seq"], ["Epoch"]]


class TickBucketMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="mkts-model-ticks-")
        self.generation = 0
        self.root = os.path.join(self.dir, "db0")
        self.db: engine.Database | None = None
        self.rows: list[tuple[int, int]] = []  # (time ns, seq), stably sorted by time
        self.seq = 0
        self.key = ""
        self.anchor = 0
        self.tz = "UTC"
        self.created = False
        self.unretired = 0  # writes since the last open: what a reopen or copy replays

    @initialize(tf=st.sampled_from(["1Min", "5Min", "1H", "1D"]),  # 1Sec: tests/integration
                tz=st.sampled_from(["UTC", "America/New_York"]),
                anchor=st.sampled_from(sorted(ANCHORS)))
    def open_database(self, tf: str, tz: str, anchor: str) -> None:
        self.key = f"SYM/{tf}/TRADE"
        self.tz = tz
        self.anchor = ANCHORS[anchor]
        self.db = engine.open(self.root, timezone=tz, sync="off")

    def teardown(self) -> None:
        try:
            if self.db is not None:
                self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def handle(self) -> engine.Database:
        assert self.db is not None
        return self.db

    # -- rules ----------------------------------------------------------------------------
    @rule(batch=st.lists(offsets, min_size=1, max_size=8),
          as_datetime=st.booleans(), say_variable=st.booleans())
    def write(self, batch: list[int], as_datetime: bool, say_variable: bool) -> None:
        times = np.array([self.anchor + o for o in batch], dtype=np.int64)
        seq = np.arange(self.seq, self.seq + len(batch), dtype=np.int64)
        data: dict[str, Any] = {"Price": seq * 0.25, "Seq": seq}
        if as_datetime:
            data["Epoch"] = times.view("datetime64[ns]")
        else:
            data["Epoch"] = times // NS
            data["Nanoseconds"] = (times % NS).astype(np.int32)
        variable = True if (say_variable or not self.created) else None
        self.handle.write(self.key, data, variable=variable)
        self.created = True
        self.seq += len(batch)
        self.unretired += 1
        self.rows.extend(zip(times.tolist(), seq.tolist(), strict=True))
        self.rows.sort(key=lambda r: r[0])

    @precondition(lambda self: self.created)
    @rule(lo=st.none() | offsets, hi=st.none() | offsets, nudge=st.sampled_from([-1, 0, 1]),
          limit=st.none() | st.integers(0, 10), from_start=st.booleans(),
          columns=st.sampled_from(PROJECTIONS))
    def read(self, lo: int | None, hi: int | None, nudge: int, limit: int | None,
             from_start: bool, columns: list[str] | None) -> None:
        start = None if lo is None else self.anchor + lo + nudge
        end = None if hi is None else self.anchor + hi
        r = self.handle.read(
            self.key, None if start is None else np.datetime64(start, "ns"),
            None if end is None else np.datetime64(end, "ns"), limit=limit,
            limit_from_start=from_start, columns=columns)
        want = [row for row in self.rows
                if (start is None or row[0] >= start) and (end is None or row[0] <= end)]
        if limit is not None:
            want = want[:limit] if from_start else want[max(0, len(want) - limit) :]
        names = ["Price", "Seq"] if columns is None else [
            c for c in columns if c not in ("Epoch", "Nanoseconds")]
        assert r.columns == ["Epoch", *names, "Nanoseconds"]
        got_t = (r["Epoch"].astype(np.int64) * NS + r["Nanoseconds"]).tolist()
        assert got_t == [row[0] for row in want]
        assert r.timestamps.view(np.int64).tolist() == got_t
        if "Seq" in names:
            assert r["Seq"].tolist() == [row[1] for row in want]
        if "Price" in names:
            assert r["Price"].tolist() == [row[1] * 0.25 for row in want]

    @precondition(lambda self: self.created)
    @rule()
    def compact(self) -> None:
        before = self.handle.info(self.key)
        self.handle.compact(self.key)
        after = self.handle.info(self.key)
        assert after["garbage_bytes"] == 0
        assert after["live_bytes"] <= before["live_bytes"]
        assert after["rows"] == len(self.rows)

    @precondition(lambda self: self.created)
    @rule(which=st.integers(0, 3))
    def seal(self, which: int) -> None:
        """Seal one year (docs/format.md "The three states of a year"): every later read,
        write, compaction and reopen must go on matching the model."""
        years = self.handle.info(self.key)["years"]
        year = years[which % len(years)]
        self.handle.seal(self.key, year)
        assert self.handle.seal(self.key, year) == []  # sealed already

    @precondition(lambda self: self.created)
    @rule()
    def info(self) -> None:
        """(A rule, not an invariant: info() scans every slot of every year file.)"""
        info = self.handle.info(self.key)
        assert info["kind"] == "variable"
        assert info["rows"] == len(self.rows)
        assert info["live_bytes"] > 0 and info["garbage_bytes"] >= 0

    @precondition(lambda self: self.unretired > 0)
    @rule(via_copy=st.booleans())
    def reopen(self, via_copy: bool) -> None:
        """Close and open again; or copy the open root (year files already applied, log not
        yet retired), drop the original and open the copy, which replays the log onto files
        that hold it already."""
        self.unretired = 0
        if not via_copy:
            self.handle.close()
            self.db = engine.open(self.root, sync="off")
            return
        self.generation += 1
        copy = os.path.join(self.dir, f"db{self.generation}")
        shutil.copytree(self.root, copy, copy_function=sparse_copy)
        self.handle.close()
        shutil.rmtree(self.root)
        self.root = copy
        self.db = engine.open(self.root, sync="off")

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def matches_the_model(self) -> None:
        if self.db is None or not self.created:
            return
        r = self.handle.read(self.key)
        assert (r["Epoch"].astype(np.int64) * NS + r["Nanoseconds"]).tolist() == [
            row[0] for row in self.rows]
        assert r["Seq"].tolist() == [row[1] for row in self.rows]


TickBucketMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_tick_bucket_matches_a_stably_sorted_model = TickBucketMachine.TestCase
