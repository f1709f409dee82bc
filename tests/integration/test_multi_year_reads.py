"""Reads across several year files (engine/join.py): the rows of every year, joined into one
result, must be exactly the rows an oracle built from what was written says, for fixed and
tick buckets, any range (whole years, cut at both ends), limits from either end, and
projections; the structured array and the columns must agree."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine import query

NS = 1_000_000_000
JAN1 = {2022: 1_640_995_200, 2023: 1_672_531_200, 2024: 1_704_067_200, 2025: 1_735_689_600}
BARS = "M/1Min/X"
DAILY = "M/1D/X"
TICKS = "M/1Min/T"


def _bars(epochs: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"Epoch": epochs.astype(np.int64), "F4": rng.normal(size=len(epochs)).astype("f4"),
            "I8": rng.integers(-10**12, 10**12, len(epochs))}


def _bar_epochs(step: int) -> np.ndarray:
    """Rows in 2022, 2023 and 2024 (2023 thinly, 2024 densely), none in between."""
    rng = np.random.default_rng(step)
    parts = []
    for year, n in ((2022, 3000), (2023, 40), (2024, 9000)):
        span = (JAN1[year + 1] - JAN1[year]) // step
        parts.append(JAN1[year] + step * np.sort(rng.choice(span, min(n, span), replace=False)))
    return np.concatenate(parts)


def _tick_times() -> np.ndarray:
    """Exact times in ns around both year ends, written out of order, ties included."""
    rng = np.random.default_rng(5)
    parts = []
    for year in (2023, 2024, 2025):
        t0 = JAN1[year] * NS
        parts.append(t0 + rng.integers(-3 * 3600 * NS, 3 * 3600 * NS, 3000))
    t = np.sort(np.concatenate(parts))
    return np.concatenate([t, t[::97]])  # some ties


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = str(tmp_path_factory.mktemp("multi") / "db")
    expected: dict[str, Any] = {}
    with engine.open(root) as db:
        for key, step in ((BARS, 60), (DAILY, 86_400)):
            ep = _bar_epochs(step)
            data = _bars(ep, step)
            for part in np.array_split(np.random.default_rng(1).permutation(len(ep)), 4):
                db.write(key, {k: v[np.sort(part)] for k, v in data.items()})
            expected[key] = data
        t = _tick_times()
        seq = np.arange(len(t))
        db.write(TICKS, {"Epoch": t // NS, "Nanoseconds": (t % NS).astype(np.int32),
                         "Seq": seq}, variable=True)
        order = np.argsort(t, kind="stable")  # ties keep write order
        expected[TICKS] = {"Time": t[order], "Seq": seq[order]}
    return {"root": root, "expected": expected}


def _want(expected: dict[str, Any], key: str, start: int | None, end: int | None,
          limit: int | None, from_start: bool) -> dict[str, np.ndarray]:
    """The oracle: rows in range (fixed: by interval label; ticks: to the nanosecond)."""
    e = expected[key]
    if key == TICKS:
        t = e["Time"]
        keep = np.ones(len(t), bool)
        if start is not None:
            keep &= t >= start * NS
        if end is not None:
            keep &= t <= end * NS + NS - 1
        idx = np.nonzero(keep)[0]
    else:
        step = 60 if key == BARS else 86_400
        ep = e["Epoch"]
        keep = np.ones(len(ep), bool)
        if start is not None:
            keep &= ep >= start - start % step
        if end is not None:
            keep &= ep <= end
        idx = np.nonzero(keep)[0]
    if limit is not None:
        idx = idx[:limit] if from_start else idx[max(0, len(idx) - limit):]
    if key == TICKS:
        t = e["Time"][idx]
        return {"Epoch": t // NS, "Nanoseconds": t % NS, "Seq": e["Seq"][idx]}
    return {k: v[idx] for k, v in e.items()}


RANGES = [
    pytest.param(None, None, id="everything"),
    pytest.param(JAN1[2023], JAN1[2025] - 1, id="two whole years"),
    pytest.param(JAN1[2022] + 5 * 86_400 + 30, JAN1[2024] + 40 * 86_400 + 17, id="cut both ends"),
    pytest.param(JAN1[2024] - 2 * 3600, JAN1[2024] + 2 * 3600, id="around a new year"),
    pytest.param(JAN1[2023] + 3600, None, id="open end"),
]
LIMITS = [pytest.param(None, False, id="no limit"), pytest.param(100, False, id="last 100"),
          pytest.param(3050, False, id="last 3050"), pytest.param(3050, True, id="first 3050"),
          pytest.param(7, True, id="first 7")]


@pytest.mark.parametrize("start,end", RANGES)
@pytest.mark.parametrize("limit,from_start", LIMITS)
@pytest.mark.parametrize("key", [BARS, DAILY, TICKS])
@pytest.mark.parametrize("small_rows", [0, query.SMALL_ROWS, 1 << 30],
                         ids=["epochs apart", "default", "epochs in rows"])
def test_a_read_across_years_equals_the_oracle(filled: dict[str, Any], key: str,
                                               start: int | None, end: int | None,
                                               limit: int | None, from_start: bool,
                                               small_rows: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query, "SMALL_ROWS", small_rows)
    want = _want(filled["expected"], key, start, end, limit, from_start)
    with engine.open(filled["root"], readonly=True) as db:
        r = db.read(key, start, end, limit=limit, limit_from_start=from_start)
        arr = r.array
        assert len(r) == len(want["Epoch"])
        for name, values in want.items():
            assert r[name].tolist() == values.tolist(), name
            assert arr[name].tolist() == values.tolist(), name
        assert not arr.flags.writeable


@pytest.mark.parametrize("key,columns", [(BARS, ["I8"]), (BARS, ["I8", "F4"]),
                                         (DAILY, ["F4"]), (TICKS, ["Seq"])])
@pytest.mark.parametrize("handle", ["writer", "readonly"])
def test_a_projection_across_years_keeps_only_its_columns(filled: dict[str, Any], key: str,
                                                          columns: list[str], handle: str
                                                          ) -> None:
    want = _want(filled["expected"], key, None, None, None, False)
    with engine.open(filled["root"], readonly=handle == "readonly") as db:
        r = db.read(key, columns=columns)
        tail = ["Nanoseconds"] if key == TICKS else []
        assert r.columns == ["Epoch", *columns, *tail]
        assert r.array.dtype.names == tuple(r.columns)
        for name in r.columns:
            assert r[name].tolist() == want[name].tolist(), name


def test_years_without_rows_in_range_add_nothing(filled: dict[str, Any]) -> None:
    """A range from the last row of 2022 to the first of 2024 crosses 2023's few rows: the
    result is exactly those rows and the two ends, in order."""
    ep = filled["expected"][BARS]["Epoch"]
    last22 = int(ep[ep < JAN1[2023]][-1])
    first24 = int(ep[ep >= JAN1[2024]][0])
    with engine.open(filled["root"], readonly=True) as db:
        got = db.read(BARS, last22, first24)["Epoch"].tolist()
    assert got == ep[(ep >= last22) & (ep <= first24)].tolist()
    assert len(got) == 42  # 40 rows of 2023 and the two ends
