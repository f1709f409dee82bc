"""Column changes against an in-memory model: a hypothesis state machine writes rows into a
fixed and a tick bucket across year boundaries, adds, drops and renames columns, writes with
the new columns (migrating year files), checkpoints and reopens; after every step each
bucket reads exactly as the model says.

The model: per bucket, the current columns as [(name, fill)] and the rows as
{row id: {column id: value}}; a column's values live under its id, so a rename moves
nothing and a dropped id is never read again.
"""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from mkts import engine

FIXED, TICKS = "A/1H/X", "B/1H/T"
YEAR_ENDS = [1_704_067_200, 1_735_689_600]  # 2024-01-01, 2025-01-01 (UTC)
times = st.builds(lambda a, h: a + 3600 * h, st.sampled_from(YEAR_ENDS), st.integers(-6, 5))
values = st.integers(-1000, 1000)
names = st.sampled_from(["P", "Q", "R", "S", "T"])


class ColumnMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="mkts-columns-")
        self.root = self.dir + "/db"
        self.db = engine.open(self.root)
        self.next_id = 2
        # key -> [(name, column id, fill)]; rows: fixed {epoch: {id: v}}, ticks [(ns, {id: v})]
        self.cols: dict[str, list[tuple[str, int, int]]] = {FIXED: [("V", 1, 0)],
                                                            TICKS: [("V", 1, 0)]}
        self.fixed: dict[int, dict[int, int]] = {}
        self.ticks: list[tuple[int, dict[int, int]]] = []
        self.db.create(FIXED, {"V": "i8"})
        self.db.create(TICKS, {"V": "i8"}, variable=True)

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _data(self, key: str, epochs: list[int], vals: list[int]) -> dict[str, np.ndarray]:
        data: dict[str, np.ndarray] = {"Epoch": np.array(epochs, dtype=np.int64)}
        for i, (name, _, _) in enumerate(self.cols[key]):
            data[name] = np.array([v + 7 * i for v in vals], dtype=np.int64)
        return data

    @rule(key=st.sampled_from([FIXED, TICKS]), rows=st.lists(st.tuples(times, values),
                                                             min_size=1, max_size=6))
    def write(self, key: str, rows: list[tuple[int, int]]) -> None:
        epochs, vals = [t for t, _ in rows], [v for _, v in rows]
        data = self._data(key, epochs, vals)
        if key == TICKS:
            data["Nanoseconds"] = np.arange(len(rows), dtype=np.int32)
        self.db.write(key, data)
        for j, (t, v) in enumerate(rows):
            row = {cid: v + 7 * i for i, (_, cid, _) in enumerate(self.cols[key])}
            if key == FIXED:
                self.fixed[t] = row
            else:
                self.ticks.append((t * 10**9 + j, row))

    @rule(key=st.sampled_from([FIXED, TICKS]), name=names, fill=values)
    def add(self, key: str, name: str, fill: int) -> None:
        if any(n == name for n, _, _ in self.cols[key]):
            return
        self.db.add_column(key, name, "i8", fill=fill)
        self.cols[key].append((name, self.next_id, fill))
        self.next_id += 1

    @rule(key=st.sampled_from([FIXED, TICKS]), which=st.integers(0, 5))
    def drop(self, key: str, which: int) -> None:
        cols = self.cols[key]
        if len(cols) < 2:
            return
        name = cols[which % len(cols)][0]
        self.db.drop_column(key, name)
        self.cols[key] = [c for c in cols if c[0] != name]

    @rule(key=st.sampled_from([FIXED, TICKS]), which=st.integers(0, 5), new=names)
    def rename(self, key: str, which: int, new: str) -> None:
        cols = self.cols[key]
        old = cols[which % len(cols)][0]
        if any(n == new for n, _, _ in cols):
            return
        self.db.rename_column(key, old, new)
        self.cols[key] = [(new if n == old else n, cid, f) for n, cid, f in cols]

    @rule()
    def checkpoint(self) -> None:
        self.db.checkpoint()

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = engine.open(self.root)

    def _expected(self, key: str) -> dict[str, list[int]]:
        cols = self.cols[key]
        if key == FIXED:
            items = sorted(self.fixed.items())
            out = {"Epoch": [t for t, _ in items]}
        else:
            items = sorted(self.ticks, key=lambda r: r[0])  # stable: ties in write order
            out = {"Epoch": [ns // 10**9 for ns, _ in items]}
        for name, cid, fill in cols:
            out[name] = [row.get(cid, fill) for _, row in items]
        return out

    @invariant()
    def reads_match_the_model(self) -> None:
        for key in (FIXED, TICKS):
            r = self.db.read(key)
            got = {c: np.asarray(r[c]).tolist() for c in r.columns if c != "Nanoseconds"}
            assert got == self._expected(key), key


def test_column_changes_match_the_model() -> None:
    run_state_machine_as_test(ColumnMachine, settings=settings(
        max_examples=20, stateful_step_count=14, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
