"""The database against an in-memory model, with crashes (docs/design.md §10): a hypothesis
state machine writes transactions across fixed buckets (new buckets, both sides of a year
boundary, overwrites) and tick buckets (duplicate timestamps), reads ranges, checkpoints,
closes and reopens, and crashes the FaultFS it runs on, between operations or in the middle
of a write, in every crash mode, then reopens.

After a crash the database equals the model after some prefix of the transactions that is at
least everything acknowledged (sync="always": exactly the acknowledged ones, and perhaps the
one in flight; sync="interval": everything a log fsync covered). The model and the
self-checking rows are tests/crash/crashwork.py's.
"""

from __future__ import annotations

from typing import Any

import pytest
from crash.crashrun import (
    STRICT_MODES,
    crash_fs,
    fresh_fs,
    open_db,
    wal_synced_appends,
    with_spare_capacity,
)
from crash.crashwork import (
    BOUNDARY,
    Model,
    Txn,
    describe_diff,
    ensure_tick_bucket,
    match_prefix,
    read_state,
)
from harness.crashpoints import SimulatedCrash
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

FIXED = {"A/1H/BAR": 3600, "B/1D/BAR": 86400}
TICK = "T/1H/TICK"
TICK_SECONDS = (-3601, -1, 0, 1, 3599)
TICK_NANOS = (0, 1, 999_999_999)

fixed_rows = st.lists(st.tuples(st.integers(-4, 3), st.floats(0, 0.999)), min_size=1,
                      max_size=5)
tick_rows = st.lists(st.tuples(st.sampled_from(TICK_SECONDS), st.sampled_from(TICK_NANOS)),
                     min_size=1, max_size=6)


class CrashModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.db: Any = None
        self.next_tid = 1
        self.new_buckets: list[str] = []
        self.base = Model()  # the state when the current FaultFS was created (all durable)
        self.session: list[Txn] = []  # acknowledged since then, in commit order

    @initialize(sync=st.sampled_from(["always", "always", "interval"]))
    def open(self, sync: str) -> None:
        self.sync = sync
        self.fs = fresh_fs()
        self.db = open_db(self.fs, sync)
        ensure_tick_bucket(self.db)

    def teardown(self) -> None:
        if self.db is not None:
            self.db.close()

    @property
    def model(self) -> Model:
        return self.base.after(self.session)

    def _txn(self, rows: dict[str, list[tuple[int, int, int]]]) -> Txn:
        tid, self.next_tid = self.next_tid, self.next_tid + 1
        return Txn(tid, {k: [(e, ns, i) for i, (e, ns, _) in enumerate(v)]
                         for k, v in rows.items()})

    @staticmethod
    def _fixed(key: str, rows: list[tuple[int, float]]) -> list[tuple[int, int, int]]:
        tf = FIXED.get(key, 86400)
        return [(BOUNDARY + tf * j + int(frac * tf), 0, 0) for j, frac in rows]

    def _write(self, txn: Txn) -> None:
        txn.write(self.db)
        self.session.append(txn)

    # -- writes ----------------------------------------------------------------------------
    @rule(key=st.sampled_from(sorted(FIXED)), rows=fixed_rows,
          other=st.one_of(st.none(), fixed_rows))
    def write(self, key: str, rows: list, other: list | None) -> None:
        parts = {key: self._fixed(key, rows)}
        if other is not None:  # a second bucket in the same transaction
            second = "B/1D/BAR" if key == "A/1H/BAR" else "A/1H/BAR"
            parts[second] = self._fixed(second, other)
        self._write(self._txn(parts))

    @rule(rows=fixed_rows, with_existing=st.booleans())
    def write_new_bucket(self, rows: list, with_existing: bool) -> None:
        key = f"N{len(self.new_buckets)}/1D/BAR"
        self.new_buckets.append(key)
        parts = {key: self._fixed(key, rows)}
        if with_existing:
            parts["A/1H/BAR"] = self._fixed("A/1H/BAR", rows)
        self._write(self._txn(parts))

    @precondition(lambda self: bool(self.new_buckets))
    @rule(data=st.data(), rows=fixed_rows)
    def write_existing_new_bucket(self, data: st.DataObject, rows: list) -> None:
        key = data.draw(st.sampled_from(self.new_buckets))
        self._write(self._txn({key: self._fixed(key, rows)}))

    @rule(rows=tick_rows, with_fixed=st.booleans())
    def write_ticks(self, rows: list, with_fixed: bool) -> None:
        parts = {TICK: [(BOUNDARY + s, ns, 0) for s, ns in rows]}
        if with_fixed:
            parts["B/1D/BAR"] = self._fixed("B/1D/BAR", [(rows[0][0] % 3, 0.5)])
        self._write(self._txn(parts))

    # -- reads and maintenance -------------------------------------------------------------
    @rule(key=st.sampled_from(sorted(FIXED)), lo=st.integers(-5, 4), span=st.integers(0, 6))
    def read_range(self, key: str, lo: int, span: int) -> None:
        tf = FIXED[key]
        start, end = BOUNDARY + tf * lo, BOUNDARY + tf * (lo + span) + tf // 2
        want = {t: v for t, v in self.model.state().fixed.get(key, {}).items()
                if start <= t <= end}
        r = self.db.read(key, start, end) if key in self.db.list_keys() else None
        got = {} if r is None else dict(zip(r["Epoch"].tolist(),
                                            zip(r["Txn"].tolist(), r["Pos"].tolist(),
                                                strict=True), strict=True))
        assert got == want

    @rule()
    def checkpoint(self) -> None:
        self.db.checkpoint()

    @rule()
    def close_reopen(self) -> None:
        self.db.close()
        self.db = open_db(self.fs, self.sync)

    # -- crashes ---------------------------------------------------------------------------
    @rule(mode=st.sampled_from(STRICT_MODES), seed=st.integers(0, 2**32 - 1),
          at=st.one_of(st.none(), st.integers(1, 40)), rows=fixed_rows, ticks=st.booleans())
    def crash(self, mode: str, seed: int, at: int | None, rows: list, ticks: bool) -> None:
        """Crash between operations (at=None), or at the at-th FS call of a write."""
        inflight = None
        if at is not None:
            parts = {"A/1H/BAR": self._fixed("A/1H/BAR", rows)}
            if ticks:
                parts[TICK] = [(BOUNDARY + s, 0, 0) for s, _ in rows]
            txn = self._txn(parts)
            self.fs.crash_at("*", at)
            try:
                self._write(txn)
            except SimulatedCrash:
                inflight = txn
            else:
                self.fs.clear_faults()  # the write finished first: crash after it
        self.fs.inject("*", 1, persistent=True)  # frozen: the old handle changes nothing
        try:
            self.db.close()
        except (SimulatedCrash, OSError):
            pass
        self.db = None
        # (spare capacity: FaultFS maps would go stale as tick files grow; see crashrun.py)
        after = with_spare_capacity(crash_fs(self.fs, mode, seed))
        if self.sync == "always" or mode == "PROCESS_CRASH":
            lowest = len(self.session)
        else:
            lowest = min(wal_synced_appends(self.fs.trace), len(self.session))
        pending = self.session + ([inflight] if inflight is not None else [])
        self.db = open_db(after, self.sync)
        observed = read_state(self.db)
        k = match_prefix(observed, self.base, pending, lowest)
        self.base = self.base.after(pending[:k])
        self.session = []
        self.fs = after

    @invariant()
    def matches_the_model(self) -> None:
        if self.db is not None:
            got, want = read_state(self.db), self.model.state()
            assert got == want, describe_diff(got, want)


def test_crashes_keep_a_prefix_of_the_model(request: pytest.FixtureRequest) -> None:
    slow = bool(request.config.getoption("--run-slow"))
    run_state_machine_as_test(
        CrashModel,
        settings=settings(
            max_examples=500 if slow else 50,
            stateful_step_count=50 if slow else 30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
