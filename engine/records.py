"""`Records`: what a trigger's `fire` receives, the records one transaction wrote into one year
file (or the range it removed), merged across transactions for a coalescing trigger.
Decoding events into them is engine/events.py's; firing them, engine/dispatch.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mkts.engine.keys import BucketKey

__all__ = ["Records"]


class Records:
    """The records one transaction wrote into one year file, as handed to `fire`.

    `slots` (slot index of each record), `rows` (the stored records), `epochs` (each row's
    time in epoch seconds), `columns()` ({name: array} with Epoch first), `txn`, `replayed`.
    `removed`: None, or (start_ns, end_ns) when a range delete or update removed every row
    of this year file whose time (interval label for fixed buckets) lies in that inclusive
    range of nanoseconds; such records carry no rows, and are never merged with others.
    """

    __slots__ = ("key", "year", "txn", "replayed", "slots", "rows", "epochs", "nanos", "_names",
                 "removed")

    def __init__(self, key: BucketKey, year: int, txn: int, replayed: bool, slots: np.ndarray,
                 rows: np.ndarray, epochs: np.ndarray, names: Sequence[str],
                 nanos: np.ndarray | None = None,
                 removed: tuple[int, int] | None = None) -> None:
        self.removed = removed
        self.key = key
        self.year = year
        self.txn = txn
        self.replayed = replayed
        self.slots = slots
        self.rows = rows
        self.epochs = epochs
        self.nanos = nanos
        self._names = list(names)

    @property
    def key_path(self) -> str:
        return f"{self.key}/{self.year}.bin"

    def columns(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"Epoch": self.epochs}
        for n in self._names:
            out[n] = self.rows[n]
        if self.nanos is not None:
            out["Nanoseconds"] = self.nanos
        return out

    def __len__(self) -> int:
        return len(self.slots)

    @staticmethod
    def merge(parts: Sequence[Records]) -> list[Records]:
        """Join the records of consecutive transactions per year file (and replayed flag
        and row type), in write order; `txn` is the last transaction's. Files appear in
        the order of their first records."""
        groups: dict[tuple[Any, ...], list[Records]] = {}
        for r in parts:
            removal = None if r.removed is None else id(r)  # removals stay apart
            groups.setdefault((r.key, r.year, r.replayed, r.rows.dtype, removal), []).append(r)
        out = []
        for g in groups.values():
            if len(g) == 1:
                out.append(g[0])
                continue
            last = g[-1]
            nanos = None if last.nanos is None else np.concatenate([r.nanos for r in g])
            out.append(Records(last.key, last.year, last.txn, last.replayed,
                               np.concatenate([r.slots for r in g]),
                               np.concatenate([r.rows for r in g]),
                               np.concatenate([r.epochs for r in g]), last._names, nanos))
        return out

    def __repr__(self) -> str:
        rm = "" if self.removed is None else f" removed={self.removed}"
        return (f"<Records {self.key_path} txn={self.txn} n={len(self)} "
                f"replayed={self.replayed}{rm}>")
