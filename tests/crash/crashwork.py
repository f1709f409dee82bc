"""Self-describing crash workloads and their oracle, shared by the crash tests.

Every row written encodes (transaction id, position) in its columns, plus a checksum column,
so the checker can tell which transaction wrote any visible value and whether a row is torn.
`Workload` generates transactions deterministically from a seed; `Model` applies them in
memory; `read_state` reads a database back (rejecting torn rows) into the form `Model.state`
gives, and `match_prefix` says which prefix of the transactions the database holds.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BOUNDARY",
    "is_tick",
    "TICK_COLUMNS",
    "FIXED_COLUMNS",
    "create_buckets",
    "checksum",
    "Txn",
    "Workload",
    "Model",
    "State",
    "read_state",
    "match_prefix",
    "describe_diff",
    "ensure_tick_bucket",
]

BOUNDARY = 1_704_067_200  # 2024-01-01 00:00:00 UTC: rows straddle this year boundary
TICK_COLUMNS = {"Txn": "i8", "Pos": "i4", "Sum": "i8"}
FIXED_COLUMNS = {"Txn": "i8", "Pos": "i4", "Sum": "i8", "F": "f8"}
_TF = {"1H": 3600, "1D": 86400}
_TICK_SECONDS = (-7200, -3601, -1, 0, 1, 1799, 3599, 3600)
_TICK_NANOS = (0, 0, 0, 1, 500_000_000, 999_999_999)  # repeats: duplicate timestamps


def checksum(txn: Any, pos: Any) -> Any:
    """The Sum column: a function of (txn, pos) that a torn row cannot keep consistent."""
    return txn * 1_000_003 + pos * 7919 + 12345


def is_tick(key: str) -> bool:
    """Tick buckets are the ones whose attribute group is TICK (`<prefix>T/1H/TICK`)."""
    return key.endswith("/TICK")


def tf_seconds(key: str) -> int:
    return _TF[key.split("/")[1]]


Range = tuple[int | None, int | None]  # inclusive nanoseconds; None: open


@dataclass
class Txn:
    """One write_many() call: `rows[key]` is a list of (epoch, nanos, pos) in input order.

    With `deletes` ((key, start ns, end ns) removed first, fixed rows by label) or `updates`
    ({key: range}: that range removed, then the key's rows written) it is one
    `db.transaction()` instead."""

    tid: int
    rows: dict[str, list[tuple[int, int, int]]]
    deletes: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    updates: dict[str, Range] = field(default_factory=dict)

    def payload(self) -> dict[str, dict[str, np.ndarray]]:
        """The write_many() argument: a dict of columns per bucket key."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for key, rows in self.rows.items():
            epochs = np.array([r[0] for r in rows], dtype=np.int64)
            pos = np.array([r[2] for r in rows], dtype=np.int32)
            txn = np.full(len(rows), self.tid, dtype=np.int64)
            cols: dict[str, np.ndarray] = {"Epoch": epochs}
            if is_tick(key):
                cols["Nanoseconds"] = np.array([r[1] for r in rows], dtype=np.int32)
            cols["Txn"] = txn
            cols["Pos"] = pos
            cols["Sum"] = checksum(txn, pos.astype(np.int64))
            if not is_tick(key):
                cols["F"] = txn.astype(np.float64) + pos / 1024.0
            out[key] = cols
        return out

    def write(self, db: Any) -> int:
        """Odd transactions give fixed buckets' rows as structured arrays, so that the write
        fast path (engine/fastpath.py; db.write() of one bucket, write_many() otherwise) is
        crashed as often as the general path."""
        items: dict[str, Any] = dict(self.payload())
        if self.deletes or self.updates:
            have = set(db.list_keys())  # a delete from a bucket never written is an error
            with db.transaction() as tx:
                for key, lo, hi in self.deletes:
                    if key in have:
                        tx.delete(key, _ns(lo), _ns(hi))
                for key, cols in items.items():
                    if key in self.updates:
                        lo, hi = self.updates[key]
                        tx.update(key, cols, start=_ns(lo), end=_ns(hi))
                    else:
                        tx.write(key, cols)
            return int(tx.txn)
        if self.tid % 2:
            for key, cols in items.items():
                if not is_tick(key):
                    arr = np.zeros(len(cols["Epoch"]), dtype=[(n, a.dtype) for n, a in cols.items()])
                    for n, a in cols.items():
                        arr[n] = a
                    items[key] = arr
            if len(items) == 1:
                ((key, data),) = items.items()
                return int(db.write(key, data))
        return int(db.write_many(items))


def _ns(t: int | None) -> Any:
    return None if t is None else np.datetime64(t, "ns")


@dataclass
class Workload:
    """Transactions drawn from `seed`; ids count up from `first_id` (step `id_step`).

    `profile` shapes them: "mixed" (the default: 2-3 buckets incl. a new one now and then,
    rows on both sides of the year boundary, overwrites, ticks with duplicate timestamps),
    "append" (one bucket, increasing times), "multi" (several buckets, new buckets and new
    year files in most transactions), "overwrite" (a few slots rewritten over and over, across
    the year boundary), "ticks" (tick bucket, sometimes beside a fixed bucket), "corrections"
    (writes as "mixed" without new buckets, plus range deletes and updates of the fixed and
    tick buckets: ranges cutting tick intervals, open ends, whole years). `prefix` names
    the buckets (so concurrent writers can keep to their own); `stripe=(k, n)` restricts the
    shared bucket "SHARED/1D/BAR" to day slots congruent to k mod n."""

    seed: int
    first_id: int = 1
    id_step: int = 1
    profile: str = "mixed"
    prefix: str = ""
    known: list[str] = field(default_factory=list)  # new-bucket keys created so far
    stripe: tuple[int, int] | None = None
    _rng: random.Random = field(init=False, repr=False)
    _next: int = field(init=False, repr=False)
    _append_at: int = field(init=False, repr=False, default=-40)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._next = self.first_id

    def take(self, n: int) -> list[Txn]:
        return [self.next() for _ in range(n)]

    def next(self) -> Txn:
        tid = self._next
        self._next += self.id_step
        rows: dict[str, list[tuple[int, int, int]]] = {}
        r = self._rng
        p = self.prefix
        if self.profile == "append":
            n = r.randint(1, 4)
            rows[f"{p}A/1H/BAR"] = [(BOUNDARY + 3600 * (self._append_at + i), 0, i)
                                    for i in range(n)]
            self._append_at += n
        elif self.profile == "overwrite":
            for key in (f"{p}A/1H/BAR", f"{p}B/1D/BAR"):
                if r.random() < 0.75 or not rows:
                    rows[key] = self._fixed_rows(key, r.randint(1, 4), span=2)
        elif self.profile == "ticks":
            rows[f"{p}T/1H/TICK"] = self._tick_rows(r.randint(1, 6))
            if r.random() < 0.4:
                rows[f"{p}A/1H/BAR"] = self._fixed_rows(f"{p}A/1H/BAR", r.randint(1, 3), span=4)
        elif self.profile == "corrections":
            return self._correction(tid)
        else:
            multi = self.profile == "multi"
            if r.random() < 0.6:
                rows[f"{p}A/1H/BAR"] = self._fixed_rows(f"{p}A/1H/BAR", r.randint(1, 5), span=6)
            if r.random() < 0.5:
                rows[f"{p}B/1D/BAR"] = self._fixed_rows(f"{p}B/1D/BAR", r.randint(1, 4), span=5)
            if r.random() < (0.5 if multi else 0.06):
                key = f"{p}N{tid}/1D/BAR"
                self.known.append(key)
                rows[key] = self._fixed_rows(key, r.randint(1, 3), span=3)
            if self.known and r.random() < (0.5 if multi else 0.25):
                key = r.choice(self.known)
                rows.setdefault(key, []).extend(self._fixed_rows(key, r.randint(1, 3), span=3))
            if self.stripe is not None and r.random() < 0.4:
                rows["SHARED/1D/BAR"] = self._striped_rows(r.randint(1, 3))
            if not multi and r.random() < 0.35:
                rows[f"{p}T/1H/TICK"] = self._tick_rows(r.randint(1, 6))
            if not rows:
                rows[f"{p}A/1H/BAR"] = self._fixed_rows(f"{p}A/1H/BAR", 1, span=6)
        for key in rows:  # positions count within each bucket, in input order
            rows[key] = [(e, ns, i) for i, (e, ns, _) in enumerate(rows[key])]
        return Txn(tid, rows)

    def _correction(self, tid: int) -> Txn:
        r = self._rng
        p = self.prefix
        keys = (f"{p}A/1H/BAR", f"{p}B/1D/BAR", f"{p}T/1H/TICK")
        rows: dict[str, list[tuple[int, int, int]]] = {}
        for key in keys:
            if r.random() < 0.45:
                rows[key] = (self._tick_rows(r.randint(1, 6)) if is_tick(key)
                             else self._fixed_rows(key, r.randint(1, 4), span=5))
        deletes = [(key, *self._range(key)) for key in keys if r.random() < 0.3]
        # an update's open end means "to the data's last row", not "to the end of time":
        # give both ends
        far = 2 * 365 * 86400 * 1_000_000_000
        b = BOUNDARY * 1_000_000_000
        updates = {key: self._range(key) for key in rows if r.random() < 0.35}
        updates = {k: (b - far if lo is None else lo, b + far if hi is None else hi)
                   for k, (lo, hi) in updates.items()}
        if not rows and not deletes:
            deletes.append((keys[0], *self._range(keys[0])))
        rows = {k: [(e, ns, i) for i, (e, ns, _) in enumerate(v)] for k, v in rows.items()}
        return Txn(tid, rows, deletes, updates)

    def _range(self, key: str) -> Range:
        """A delete range around the boundary: tick times to the nanosecond (cutting
        intervals between duplicates), an open end now and then, or a whole year."""
        r = self._rng
        pick = r.random()
        year = 365 * 86400 * 1_000_000_000
        b = BOUNDARY * 1_000_000_000
        if pick < 0.1:
            return (b - year, b - 1)  # all of 2023: its year file goes
        if pick < 0.15:
            return (b, None) if r.random() < 0.5 else (None, b - 1)
        if is_tick(key):
            lo = b + r.choice(_TICK_SECONDS) * 1_000_000_000 + r.choice(_TICK_NANOS)
            hi = b + r.choice(_TICK_SECONDS) * 1_000_000_000 + r.choice(_TICK_NANOS)
            return (min(lo, hi), max(lo, hi))
        tf = tf_seconds(key)
        lo = BOUNDARY + tf * r.randrange(-5, 5) + r.randrange(tf)
        return (lo * 1_000_000_000, (lo + tf * r.randrange(0, 4)) * 1_000_000_000)

    def _fixed_rows(self, key: str, n: int, span: int) -> list[tuple[int, int, int]]:
        """`n` rows in the 2*span intervals around the boundary (an instant anywhere inside
        the interval); now and then the same interval twice in one call (the last wins)."""
        tf = tf_seconds(key)
        r = self._rng
        out = []
        for _ in range(n):
            j = r.randrange(-span, span)
            out.append((BOUNDARY + tf * j + r.randrange(tf), 0, 0))
        if r.random() < 0.15:
            out.append((out[0][0] // tf * tf, 0, 0))
        return out

    def _striped_rows(self, n: int) -> list[tuple[int, int, int]]:
        assert self.stripe is not None
        k, m = self.stripe
        r = self._rng
        return [(BOUNDARY + 86400 * (m * r.randrange(-3, 3) + k), 0, 0) for _ in range(n)]

    def _tick_rows(self, n: int) -> list[tuple[int, int, int]]:
        r = self._rng
        return [(BOUNDARY + r.choice(_TICK_SECONDS), r.choice(_TICK_NANOS), 0) for _ in range(n)]


@dataclass
class State:
    """What a database holds: fixed buckets as {label: (txn, pos)}, tick buckets as the list
    of (epoch ns, txn, pos) in read order. Buckets without rows are left out."""

    fixed: dict[str, dict[int, tuple[int, int]]]
    ticks: dict[str, list[tuple[int, int, int]]]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, State) and self.fixed == other.fixed
                and self.ticks == other.ticks)

    def restrict(self, keep_key: Callable[[str], bool],
                 keep_label: Callable[[str, int], bool] | None = None) -> State:
        """The part of the state in buckets `keep_key` accepts (and, in fixed buckets, at
        labels `keep_label(key, label)` accepts)."""
        fixed = {}
        for k, rows in self.fixed.items():
            if keep_key(k):
                kept = {t: v for t, v in rows.items() if keep_label is None or keep_label(k, t)}
                if kept:
                    fixed[k] = kept
        ticks = {k: v for k, v in self.ticks.items() if keep_key(k)}
        return State(fixed, ticks)


class Model:
    """The database as it should be after a sequence of transactions."""

    def __init__(self) -> None:
        self.fixed: dict[str, dict[int, tuple[int, int]]] = {}
        self.ticks: dict[str, list[tuple[int, int, int]]] = {}
        self.applied: list[int] = []  # txn ids, in commit order

    def copy(self) -> Model:
        return copy.deepcopy(self)

    def apply(self, txn: Txn) -> None:
        for key, lo, hi in [*txn.deletes, *((k, *v) for k, v in txn.updates.items())]:
            lo = -(1 << 62) if lo is None else lo
            hi = 1 << 62 if hi is None else hi
            if is_tick(key):
                self.ticks[key] = [t for t in self.ticks.get(key, []) if not lo <= t[0] <= hi]
            else:
                self.fixed[key] = {label: v for label, v in self.fixed.get(key, {}).items()
                                   if not lo <= label * 1_000_000_000 <= hi}
        for key, rows in txn.rows.items():
            if is_tick(key):
                self.ticks.setdefault(key, []).extend(
                    (e * 1_000_000_000 + ns, txn.tid, pos) for e, ns, pos in rows)
            else:
                tf = tf_seconds(key)
                bucket = self.fixed.setdefault(key, {})
                for e, _, pos in rows:  # the last row of an interval wins
                    bucket[e // tf * tf] = (txn.tid, pos)
        self.applied.append(txn.tid)

    def after(self, txns: Iterable[Txn]) -> Model:
        m = self.copy()
        for t in txns:
            m.apply(t)
        return m

    def state(self) -> State:
        # Ticks come back in time order, ties in write order: a stable sort of the log.
        ticks = {k: sorted(v, key=lambda row: row[0]) for k, v in self.ticks.items() if v}
        return State({k: dict(v) for k, v in self.fixed.items() if v}, ticks)


def ensure_tick_bucket(db: Any, prefix: str = "") -> None:
    """Create the tick bucket (a no-op when it exists): write_many() makes new buckets fixed."""
    db.create(f"{prefix}T/1H/TICK", TICK_COLUMNS, variable=True)


def create_buckets(db: Any, txns: Iterable[Txn]) -> None:
    """Create every bucket the transactions write to (the same schemas their first write
    would create), so that the transactions themselves create none."""
    for key in sorted({k for t in txns for k in t.rows}):
        db.create(key, TICK_COLUMNS if is_tick(key) else FIXED_COLUMNS, variable=is_tick(key))


def read_state(db: Any, keep: Callable[[str], bool] | None = None) -> State:
    """Read every bucket (that `keep` accepts); assert that no row is torn (all columns agree)
    and that rows come back in order."""
    fixed: dict[str, dict[int, tuple[int, int]]] = {}
    ticks: dict[str, list[tuple[int, int, int]]] = {}
    for key in db.list_keys():
        if keep is not None and not keep(key):
            continue
        r = db.read(key)
        if len(r) == 0:
            continue
        epoch = np.asarray(r["Epoch"], dtype=np.int64)
        txn = np.asarray(r["Txn"], dtype=np.int64)
        pos = np.asarray(r["Pos"], dtype=np.int64)
        good = np.asarray(r["Sum"], dtype=np.int64) == checksum(txn, pos)
        if is_tick(key):
            nanos = np.asarray(r["Nanoseconds"], dtype=np.int64)
            good &= (nanos >= 0) & (nanos < 1_000_000_000)
            ts = epoch * 1_000_000_000 + nanos
            assert bool((np.diff(ts) >= 0).all()), f"{key}: ticks are not in time order"
        else:
            good &= np.asarray(r["F"], dtype=np.float64) == txn + pos / 1024.0
            tf = tf_seconds(key)
            good &= epoch % tf == 0
            assert bool((np.diff(epoch) > 0).all()), f"{key}: labels are not strictly ascending"
        if not bool(good.all()):
            bad = int(np.flatnonzero(~good)[0])
            raise AssertionError(f"torn row in {key} at row {bad}: {r.array[bad]!r}")
        if is_tick(key):
            ticks[key] = list(zip(ts.tolist(), txn.tolist(), pos.tolist(), strict=True))
        else:
            fixed[key] = {int(e): (int(t), int(p))
                          for e, t, p in zip(epoch.tolist(), txn.tolist(), pos.tolist(),
                                             strict=True)}
    return State(fixed, ticks)


def match_prefix(observed: State, base: Model, pending: Sequence[Txn], lowest: int) -> int:
    """The k (lowest <= k <= len(pending)) for which `observed` equals `base` after the first
    k pending transactions; AssertionError naming the closest candidate if there is none."""
    model = base.after(pending[:lowest])
    candidates = [(lowest, model.state())]
    for k in range(lowest, len(pending)):
        model.apply(pending[k])
        candidates.append((k + 1, model.state()))
    for k, state in candidates:
        if observed == state:
            return k
    lines = [f"the database matches no prefix of {lowest}..{len(pending)} pending transactions "
             f"(ids {[t.tid for t in pending]}; at least {lowest} were acknowledged)"]
    for k, state in candidates:
        lines.append(f"  vs prefix {k}: {describe_diff(observed, state)}")
    raise AssertionError("\n".join(lines))


def describe_diff(observed: State, expected: State, limit: int = 4) -> str:
    out: list[str] = []
    for kind in ("fixed", "ticks"):
        got: dict[str, Any] = getattr(observed, kind)
        want: dict[str, Any] = getattr(expected, kind)
        for key in sorted(set(got) | set(want)):
            if got.get(key) == want.get(key):
                continue
            g, w = got.get(key), want.get(key)
            if isinstance(g, dict) and isinstance(w, dict):
                diff = {t: (g.get(t), w.get(t)) for t in sorted(set(g) | set(w))
                        if g.get(t) != w.get(t)}
                out.append(f"{key}: (got, want) {dict(list(diff.items())[:limit])}")
            else:
                out.append(f"{key}: got {str(g)[:200]} want {str(w)[:200]}")
    return "; ".join(out[:limit]) or "equal"
