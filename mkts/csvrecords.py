"""CSV import, the records: turning validated columns into what `Database.write` takes
(Epoch as datetime64[ns], Nanoseconds folded in), one type per column across new buckets,
and the per-bucket results (`BucketResult`, `ImportResult`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.csvvalues import CsvData, CsvProblem
from mkts.engine.timeutil import NS


@dataclass
class BucketResult:
    """What one bucket got: rows read, and for bar buckets the distinct intervals written
    (rows - intervals rows repeated an interval; the last of them wins)."""

    key: str
    rows: int
    created: bool
    intervals: int | None = None
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return 0 if self.intervals is None else self.rows - self.intervals


@dataclass
class ImportResult:
    rows: int
    transactions: int
    created: bool
    columns: dict[str, str] = field(default_factory=dict)
    buckets: list[BucketResult] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(b.duplicates for b in self.buckets)


def _existing(db: Any, key: str) -> dict[str, Any] | None:
    from mkts import engine

    try:
        info: dict[str, Any] = db.info(key)
    except engine.BucketNotFoundError:
        return None
    return info


def _value_types(info: dict[str, Any]) -> dict[str, Any]:
    cols = dict(info["columns"])
    cols.pop("Epoch", None)
    cols.pop("Nanoseconds", None)
    return cols


def _records(path: str, key: str, data: CsvData, variable: bool | None,
             created: bool) -> tuple[dict[str, np.ndarray], bool]:
    """The columns to write (Epoch as datetime64[ns], Nanoseconds folded in) and whether
    the bucket is a tick bucket."""
    epoch_ns = data.epoch_ns
    nanos = data.columns.pop("Nanoseconds", None)
    if nanos is not None:
        if variable is False or (variable is None and not created):
            raise CsvProblem(f"{path} has a Nanoseconds column; import tick data with "
                             "--ticks" if created else f"{path} has a Nanoseconds column "
                             f"but {key} is a bar bucket")
        if len(nanos) and (int(nanos.min()) < 0 or int(nanos.max()) >= NS):
            raise CsvProblem("column 'Nanoseconds' must hold 0..999999999")
        # The time gives the second, Nanoseconds the rest; a time that already carries the
        # same fraction (`mkts query --csv` prints both) is the same instant.
        fraction = epoch_ns % NS
        nanos = nanos.astype(np.int64)
        clash = (fraction != 0) & (fraction != nanos)
        if clash.any():
            raise CsvProblem(f"{path}: the fraction of a second of a time and its "
                             f"Nanoseconds column disagree ({int(fraction[clash][0])} ns vs "
                             f"{int(nanos[clash][0])})" + (f" for {key}" if key else ""))
        epoch_ns = epoch_ns - fraction + nanos
        variable = True
    if not data.columns:
        raise CsvProblem(f"{path} has no value columns besides {data.time_column!r}"
                         + (f" for {key}" if key else ""))
    cols: dict[str, np.ndarray] = {"Epoch": epoch_ns.view("datetime64[ns]")}
    cols.update(data.columns)
    return cols, bool(variable)


def _intervals(db: Any, key: str, epoch_ns: np.ndarray) -> int:
    from mkts.engine.keys import parse_key

    if not len(epoch_ns):
        return 0
    years, slots = db.calendar.slots(epoch_ns // NS, parse_key(key).tf)
    return len(set(zip(years.tolist(), slots.tolist(), strict=True)))


def _shown(data: Mapping[str, np.ndarray]) -> dict[str, str]:
    return {c: np.dtype(a.dtype).str.lstrip("<|") for c, a in data.items() if c != "Epoch"}


def _span(cols: Mapping[str, np.ndarray]) -> tuple[np.datetime64, np.datetime64]:
    """The first and last time of the rows (nanoseconds, ticks' Nanoseconds included)."""
    epochs = cols["Epoch"]
    if epochs.dtype.kind == "M":
        t = epochs.astype("datetime64[ns]").view(np.int64)
    else:
        t = epochs.astype(np.int64) * 1_000_000_000
    if "Nanoseconds" in cols:
        t = t + cols["Nanoseconds"].astype(np.int64)
    return np.datetime64(int(t.min()), "ns"), np.datetime64(int(t.max()), "ns")


def _same_types(new: list[CsvData]) -> None:
    """A column inferred as integers for one new bucket and as floats for another is f8 in
    both; a text column is as wide in all of them as its longest value anywhere."""
    names = {c for d in new for c in d.columns}
    for c in names:
        arrays = [d.columns[c] for d in new if c in d.columns]
        kinds = {a.dtype.kind for a in arrays}
        if kinds == {"i", "f"}:
            target = np.dtype(np.float64)
        elif kinds == {"U"}:
            target = max((a.dtype for a in arrays), key=lambda dt: dt.itemsize)
        else:
            continue
        for d in new:
            if c in d.columns and d.columns[c].dtype.kind in "iU":
                d.columns[c] = d.columns[c].astype(target)
