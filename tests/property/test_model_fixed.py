"""The database against an in-memory model: a hypothesis state machine writes random rows
(year boundaries, overwrites, duplicates within a call) into fixed buckets, reads random
ranges with random limits and projections, queries across buckets, seals years, closes and
reopens.

The model is a dict {bucket key: {label epoch: (V, N)}}; labels are computed here for the
UTC database (t // tf * tf), independently of the engine's calendar.
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
    precondition,
    rule,
    run_state_machine_as_test,
)

from mkts import engine

TIMEFRAMES = {"A/1Min/X": 60, "B/1H/X": 3600}
KEYS = list(TIMEFRAMES)
# Interesting instants: year boundaries (2023 -> 2024 -> 2025), a leap day, an ordinary day.
ANCHORS = [1_704_067_200, 1_735_689_600, 1_709_164_800, 1_717_243_200]
PATTERNS = ["A,B/*/X", "B,A/*/X", "*/*/X", "*/1Min/X", "A/1H/X", "B,Z/*/X", "A/1Min/*"]

times = st.builds(
    lambda anchor, minutes, seconds: anchor + 60 * minutes + seconds,
    st.sampled_from(ANCHORS), st.integers(-180, 180), st.integers(0, 59),
)
values = st.integers(-1_000_000, 1_000_000)
row_lists = st.lists(st.tuples(times, values), min_size=1, max_size=25)
projections = st.one_of(st.none(), st.sampled_from([["V"], ["N"], ["N", "V"], ["V", "N"]]))
limits = st.one_of(st.none(), st.integers(0, 12))


def _expected_labels(model: dict[int, tuple[int, int]], tf: int, start: int | None,
                     end: int | None, limit: int | None, from_start: bool) -> list[int]:
    if start is not None and end is not None and start > end:
        return []  # an empty range, even when both ends fall in one interval
    labels = sorted(model)
    if start is not None:
        labels = [t for t in labels if t >= start // tf * tf]
    if end is not None:
        labels = [t for t in labels if t <= end]
    if limit is not None:
        labels = labels[:limit] if from_start else labels[max(0, len(labels) - limit) :]
    return labels


def _pattern_keys(pattern: str, existing: set[str]) -> list[str]:
    sym, tf, attr = pattern.split("/")
    found = [k for k in existing
             if (sym == "*" or k.split("/")[0] in sym.split(","))
             and tf in ("*", k.split("/")[1]) and attr in ("*", k.split("/")[2])]
    if sym == "*":
        return sorted(found, key=lambda k: tuple(k.split("/")))
    order = sym.split(",")
    return sorted(found, key=lambda k: (order.index(k.split("/")[0]), k.split("/")[1]))


class FixedBucketModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="mkts-model-")
        self.root = self.dir + "/db"
        self.sync = "always"
        self.db: engine.Database | None = None
        self.model: dict[str, dict[int, tuple[int, int]]] = {}

    def teardown(self) -> None:
        try:
            if self.db is not None:
                self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(sync=st.sampled_from(["always", "interval", "off"]))
    def open_empty(self, sync: str) -> None:
        # Durability is tested elsewhere; the sync mode must not change what reads return.
        self.sync = sync
        self.db = engine.open(self.root, sync=sync)
        assert self.db.list_keys() == []

    # -- writes ----------------------------------------------------------------------------
    @rule(key=st.sampled_from(KEYS), rows=row_lists, wide_ints=st.booleans(),
          as_datetime=st.booleans())
    def write(self, key: str, rows: list[tuple[int, int]], wide_ints: bool,
              as_datetime: bool) -> None:
        epochs = np.array([t for t, _ in rows], dtype=np.int64)
        v = np.array([x for _, x in rows], dtype=np.int64)
        data: dict[str, Any] = {
            "Epoch": epochs.astype("M8[s]") if as_datetime else epochs,
            "V": v.astype("f8"),
            # The bucket stores N as i4; i8 input whose values fit is cast.
            "N": (-v).astype("i8" if wide_ints and key in self.model else "i4"),
        }
        self.db.write(key, data)
        tf = TIMEFRAMES[key]
        bucket = self.model.setdefault(key, {})
        for t, x in rows:  # the last row of an interval wins
            bucket[t // tf * tf] = (x, -x)

    @precondition(lambda self: bool(self.model))
    @rule(key=st.sampled_from(KEYS))
    def write_nothing(self, key: str) -> None:
        if key in self.model:
            self.db.write(key, {"Epoch": np.zeros(0, np.int64), "V": np.zeros(0),
                                "N": np.zeros(0, "i4")})

    @precondition(lambda self: bool(self.model))
    @rule(key=st.sampled_from(KEYS), t=times)
    def rejected_write_changes_nothing(self, key: str, t: int) -> None:
        if key not in self.model:
            return
        with pytest.raises(engine.SchemaError):
            self.db.write(key, {"Epoch": [t], "V": [1.0], "N": np.array([2**40], "i8")})

    # -- reads -----------------------------------------------------------------------------
    @rule(key=st.sampled_from(KEYS), start=st.one_of(st.none(), times),
          end=st.one_of(st.none(), times), limit=limits, from_start=st.booleans(),
          columns=projections, iso=st.booleans())
    def read(self, key: str, start: int | None, end: int | None, limit: int | None,
             from_start: bool, columns: list[str] | None, iso: bool) -> None:
        if key not in self.model:
            with pytest.raises(engine.BucketNotFoundError):
                self.db.read(key)
            return
        s: Any = start
        e: Any = end
        if iso:  # the same instants as datetime64 and ISO strings
            s = None if start is None else np.datetime64(start, "s")
            e = None if end is None else str(np.datetime64(end, "s")) + "Z"
        r = self.db.read(key, s, e, limit=limit, limit_from_start=from_start, columns=columns)
        self._check(r, key, start, end, limit, from_start, columns)

    @precondition(lambda self: bool(self.model))
    @rule(pattern=st.sampled_from(PATTERNS), start=st.one_of(st.none(), times),
          end=st.one_of(st.none(), times), limit=limits, from_start=st.booleans(),
          columns=projections)
    def query(self, pattern: str, start: int | None, end: int | None, limit: int | None,
              from_start: bool, columns: list[str] | None) -> None:
        rs = self.db.query(pattern, start, end, limit=limit, limit_from_start=from_start,
                           columns=columns)
        assert list(rs) == _pattern_keys(pattern, set(self.model))
        for key, r in rs.items():
            self._check(r, key, start, end, limit, from_start, columns)

    def _check(self, r: engine.Result, key: str, start: int | None, end: int | None,
               limit: int | None, from_start: bool, columns: list[str] | None) -> None:
        model = self.model[key]
        labels = _expected_labels(model, TIMEFRAMES[key], start, end, limit, from_start)
        assert r.key == key
        assert r.columns == ["Epoch", *(columns or ["V", "N"])]
        assert r["Epoch"].tolist() == labels
        if "V" in r.columns:
            assert r["V"].tolist() == [float(model[t][0]) for t in labels]
        if "N" in r.columns:
            assert r["N"].tolist() == [model[t][1] for t in labels]

    @precondition(lambda self: bool(self.model))
    @rule(key=st.sampled_from(KEYS), which=st.integers(0, 3))
    def seal(self, key: str, which: int) -> None:
        """Seal one year of a bucket (docs/format.md "The three states of a year"): later
        reads, writes and reopens must go on matching the model."""
        if key not in self.model:
            return
        years = self.db.info(key)["years"]
        self.db.seal(key, years[which % len(years)])

    # -- lifecycle -------------------------------------------------------------------------
    @rule()
    def close_and_reopen(self) -> None:
        self.db.close()
        self.db = engine.open(self.root, sync=self.sync)
        for key, model in self.model.items():
            r = self.db.read(key)
            assert r["Epoch"].tolist() == sorted(model)

    @invariant()
    def catalog_matches(self) -> None:
        assert self.db.list_keys() == sorted(self.model)
        for key, model in self.model.items():
            years = {int(np.datetime64(t, "s").astype("M8[Y]").astype(int)) + 1970 for t in model}
            assert self.db.info(key)["years"] == sorted(years)


def test_database_matches_the_model(request: pytest.FixtureRequest) -> None:
    slow = bool(request.config.getoption("--run-slow"))
    run_state_machine_as_test(
        FixedBucketModel,
        settings=settings(
            max_examples=500 if slow else 50,
            stateful_step_count=60 if slow else 30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
