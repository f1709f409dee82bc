"""Tick blocks end to end: the vectorised read and plan paths (engine/tickread.py,
engine/ticks.py) against a numpy model, on the shapes that exercise each path: bulk writes cut
into several blocks, scattered appends that merge or chain intervals across shared blocks,
heads so fragmented that reads gather row by row, and limits whose edge intervals fall
partly outside the range.

The model: every written (time ns, sequence) pair; the expected rows are those pairs sorted by
time, ties by sequence (write order).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine.keys import parse_key
from mkts.engine.tickblock import BLOCK_TARGET
from mkts.engine.tickread import _MAX_RUNS

NS = 1_000_000_000
KEY = "AAPL/1Sec/TRADE"
T0 = 1_709_560_800 * NS  # 2024-03-04 14:00 UTC


class Model:
    def __init__(self) -> None:
        self.t: list[np.ndarray] = []
        self.seq = 0

    def add(self, t: np.ndarray) -> dict[str, Any]:
        t = np.asarray(t, dtype=np.int64)
        s = np.arange(self.seq, self.seq + len(t), dtype=np.int64)
        self.seq += len(t)
        self.t.append(np.stack([t, s]))
        return {"Epoch": t // NS, "Nanoseconds": (t % NS).astype(np.int32), "Seq": s,
                "Price": s.astype(np.float64) * 0.5}

    def select(self, start: int | None = None, end: int | None = None,
               limit: int | None = None, from_start: bool = False) -> tuple[np.ndarray, ...]:
        t, s = np.concatenate(self.t, axis=1)
        order = np.lexsort((s, t))
        t, s = t[order], s[order]
        keep = np.ones(len(t), dtype=bool)
        if start is not None:
            keep &= t >= start
        if end is not None:
            keep &= t <= end
        t, s = t[keep], s[keep]
        if limit is not None:
            cut = max(0, len(t) - limit)
            t, s = (t[:limit], s[:limit]) if from_start else (t[cut:], s[cut:])
        return t, s


def check(r: engine.Result, want: tuple[np.ndarray, ...]) -> None:
    t, s = want
    got = np.asarray(r["Epoch"], dtype=np.int64) * NS + np.asarray(r["Nanoseconds"], np.int64)
    assert np.array_equal(got, t)
    assert np.array_equal(r["Seq"], s)
    assert np.array_equal(r["Price"], s * 0.5)


def dt64(t: int) -> np.datetime64:
    return np.datetime64(t, "ns")


@pytest.fixture
def db(root: str) -> Iterator[engine.Database]:
    """The subject is the live tick format: no write is a bulk load (docs/format.md)."""
    with engine.open(root, sync="off", bulk_load_rows=0) as d:
        yield d


def slots_of(db: engine.Database, year: int = 2024) -> np.ndarray:
    f = db.catalog.year_file(db.catalog.get(parse_key(KEY)), year)
    assert f is not None
    return np.array(f.slots[f.occupied()])


def test_a_bulk_write_is_cut_into_blocks_between_intervals(db: engine.Database) -> None:
    m = Model()
    rng = np.random.default_rng(1)
    t = T0 + np.sort(rng.integers(0, 3_600 * NS, 150_000))
    t[1000:1010] = t[1000]  # ties inside one write keep input order
    db.write(KEY, m.add(t), variable=True)
    recs = slots_of(db)
    heads = np.unique(recs["head"])
    assert len(heads) >= 150_000 * 20 // BLOCK_TARGET  # several blocks, ~BLOCK_TARGET each
    assert (recs["nblobs"] == 1).all()
    info = db.info(KEY)
    assert info["garbage_bytes"] == 0 and info["rows"] == 150_000
    check(db.read(KEY), m.select())
    mid = int(t[77_777]) + 1
    check(db.read(KEY, dt64(mid), dt64(mid + 17 * NS)), m.select(mid, mid + 17 * NS))


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_scattered_appends_into_shared_blocks_read_like_the_model(root: str, seed: int) -> None:
    """Bulk batches, then many small writes into random existing intervals (some earlier than
    everything there, some tied with existing times): chains of several blocks whose older
    pieces sit in blocks shared with other intervals."""
    rng = np.random.default_rng(seed)
    m = Model()
    with engine.open(root, sync="off", bulk_load_rows=0) as db:
        for _ in range(4):
            t = T0 + rng.integers(0, 600 * NS, 5_000)  # unsorted input
            db.write(KEY, m.add(t), variable=True)
        for i in range(150):
            n = int(rng.integers(1, 40))
            secs = rng.integers(0, 600, n)
            t = T0 + secs * NS + rng.integers(0, NS, n)
            if i % 5 == 0:  # a tie with a time already written
                t[0] = int(np.concatenate(m.t, axis=1)[0][rng.integers(0, m.seq)])
            db.write(KEY, m.add(t))
        recs = slots_of(db)
        assert int(recs["nblobs"].max()) >= 3  # chains of several blocks
        assert len(np.unique(recs["head"])) > 50  # heads in many blocks, not in slot order
        assert not (np.diff(recs["head"]) >= 0).all()
        check(db.read(KEY), m.select())
        for _ in range(25):
            a = T0 + int(rng.integers(-NS, 601 * NS))
            b = a + int(rng.integers(0, 120 * NS))
            check(db.read(KEY, dt64(a), dt64(b)), m.select(a, b))
            lim = int(rng.integers(1, 3_000))
            check(db.read(KEY, dt64(a), dt64(b), limit=lim), m.select(a, b, lim))
            check(db.read(KEY, dt64(a), dt64(b), limit=lim, limit_from_start=True),
                  m.select(a, b, lim, True))
        info = db.info(KEY)
        assert info["rows"] == m.seq and info["garbage_bytes"] > 0
        db.compact(KEY)
        assert db.info(KEY)["garbage_bytes"] == 0
        assert (slots_of(db)["nblobs"] == 1).all()
        check(db.read(KEY), m.select())
    with engine.open(root) as db:
        check(db.read(KEY), m.select())


@pytest.mark.parametrize("merge", [True, False], ids=["merged heads", "chained heads"])
def test_fragmented_heads_read_like_the_model(db: engine.Database, merge: bool) -> None:
    """Every other interval rewritten by a later write: heads alternate between two blocks, so
    a read copies more runs than _MAX_RUNS and gathers rows instead; without merges the
    rewritten intervals also have chains of two blocks to interleave by time."""
    m = Model()
    n = 3 * _MAX_RUNS
    secs = np.arange(n, dtype=np.int64)
    first = 1 if merge else 3  # 2 new rows merge a 1-row piece, not a 3-row one
    db.write(KEY, m.add(np.repeat(T0 + secs * NS, first) + np.tile(np.arange(first) * 7, n)),
             variable=True)
    odd = secs[1::2]
    db.write(KEY, m.add(np.repeat(T0 + odd * NS, 2) + np.tile([3, 7], len(odd))))
    recs = slots_of(db)
    assert len(recs) == n
    assert int((recs["head"][1:] != recs["head"][:-1]).sum()) > _MAX_RUNS
    assert recs["nblobs"][1::2].tolist() == [1 if merge else 2] * len(odd)
    check(db.read(KEY), m.select())
    a, b = T0 + 5 * NS + 5, T0 + 600 * NS + 3
    check(db.read(KEY, dt64(a), dt64(b)), m.select(a, b))
    check(db.read(KEY, dt64(a), dt64(b), limit=500), m.select(a, b, 500))


def test_limits_widen_past_edge_intervals_outside_the_range(db: engine.Database) -> None:
    """The intervals a limit needs are chosen by their row counts; when the range cuts the edge
    intervals, the read takes more intervals until the limit is met."""
    m = Model()
    busy = T0 + np.arange(1_000, dtype=np.int64) * 1_000_000  # 1000 rows in the first second
    rest = T0 + np.arange(1, 50, dtype=np.int64) * NS + 5  # one row in each later second
    tail = T0 + 50 * NS + np.arange(1_000, dtype=np.int64) * 1_000_000  # 1000 in second 50
    db.write(KEY, m.add(np.concatenate([busy, rest, tail])), variable=True)
    a = T0 + 999_000_000  # only the last row of the busy first second is inside
    check(db.read(KEY, dt64(a), limit=30, limit_from_start=True), m.select(a, None, 30, True))
    b = T0 + 50 * NS  # only the first row of the busy last second is inside
    check(db.read(KEY, end=dt64(b), limit=30), m.select(None, b, 30))
    check(db.read(KEY, dt64(a), dt64(b), limit=10_000), m.select(a, b, 10_000))
    check(db.read(KEY, dt64(a + 1), dt64(a + 2), limit=5), m.select(a + 1, a + 2, 5))


def test_check_reads_shared_blocks_once_and_names_each_damaged_slot(root: str) -> None:
    """`mkts check` (mkts.check.check_root) passes a healthy tick file and, with one shared
    block damaged, reports the slots whose chains reach it, not the others."""
    from mkts.check import check_root

    m = Model()
    with engine.open(root, sync="off", bulk_load_rows=0) as db:
        db.write(KEY, m.add(T0 + np.arange(2_000, dtype=np.int64) * 50_000_000), variable=True)
        db.write(KEY, m.add(T0 + 500 * NS + np.arange(3, dtype=np.int64)))
        f = db.catalog.year_file(db.catalog.get(parse_key(KEY)), 2024)
        assert f is not None
        path = f.path
        recs = slots_of(db)
    assert check_root(root).errors == []
    heads = recs["head"]
    lone = int(heads[-1])  # the second write's block: only the interval at T0 + 500 s
    assert int((heads == lone).sum()) == 1
    shared = int(heads[0])
    victims = int((heads == shared).sum())
    assert victims > 5
    nbytes = int(recs["head_bytes"][0])
    with open(path, "r+b") as fh:
        fh.seek(shared + 28 + (nbytes - 28) // 2)
        b = fh.read(1)
        fh.seek(shared + 28 + (nbytes - 28) // 2)
        fh.write(bytes([b[0] ^ 0xFF]))
    errors = check_root(root).errors
    assert len(errors) == 5 + 1  # five listed, then a count of the rest
    assert all("fails its checksum" in e.message for e in errors[:5])
    first = int(recs["_slot"][0]) - 1
    assert f"slot {first})" in errors[0].message
    assert f"{victims - 5} more damaged tick slot(s)" in errors[5].message
