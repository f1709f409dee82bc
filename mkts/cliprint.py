"""How `mkts` commands print rows: times in the database zone (ISO-8601 with the offset),
aligned tables and CSV. No database access; the commands hand it query results."""

from __future__ import annotations

import csv
import datetime as _dt
import zoneinfo
from typing import Any, Literal

import numpy as np

from mkts.engine.timeutil import NS
from mkts.engine.uniq import unique_inverse


def _format_times(epoch: np.ndarray, nanos: np.ndarray | None, tz: str) -> list[str]:
    """ISO-8601 times in `tz`, with the offset (Z for UTC); nanoseconds when present."""
    ns = epoch.astype(np.int64) * NS
    if nanos is not None:
        ns = ns + nanos.astype(np.int64)
    unit: Literal["ns", "s"] = "ns" if nanos is not None else "s"
    if tz == "UTC":
        utc: Any = ns.view("datetime64[ns]")
        return [s + "Z" for s in np.datetime_as_string(utc, unit=unit)]
    zone = zoneinfo.ZoneInfo(tz)
    hours = epoch.astype(np.int64) // 3600
    uniq, inverse = unique_inverse(hours)
    offs = []
    for h in uniq.tolist():
        off = _dt.datetime.fromtimestamp(h * 3600, tz=zone).utcoffset()
        offs.append(int(off.total_seconds()) if off is not None else 0)
    off_arr = np.array(offs, dtype=np.int64)[inverse] if len(uniq) else np.zeros(0, np.int64)
    local: Any = (ns + off_arr * NS).view("datetime64[ns]")
    texts = np.datetime_as_string(local, unit=unit)
    return [f"{t}{_offset(int(o))}" for t, o in zip(texts, off_arr, strict=True)]


def _offset(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _rows(r: Any, tz: str, raw_epoch: bool) -> tuple[list[str], list[list[str]]]:
    cols = r.columns
    nanos = np.asarray(r["Nanoseconds"]) if r.ticks else None
    names = list(cols) if raw_epoch else ["Epoch"] + [
        c for c in cols if c != "Epoch" and not (c == "Nanoseconds" and r.ticks)]
    # numpy scalars print their shortest round-trip form for their own width (f4 185.3, not
    # the float64 185.3000030517578)
    texts = [[str(v) for v in np.asarray(r[c])] for c in names]
    if not raw_epoch:
        texts[0] = _format_times(np.asarray(r["Epoch"]), nanos, tz)
    return names, [list(row) for row in zip(*texts, strict=True)]


def _write_table(out: Any, r: Any, tz: str, raw_epoch: bool) -> None:
    header, rows = _rows(r, tz, raw_epoch)
    _print_aligned(out, header, rows, left=1)


def _print_aligned(out: Any, header: list[str], rows: list[list[str]], left: int) -> None:
    """A header and rows in columns two spaces apart: the first `left` columns aligned left,
    the rest right."""
    widths = [len(h) for h in header]
    for row in rows:
        for j, cell in enumerate(row):
            widths[j] = max(widths[j], len(cell))
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) if j < left else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip(),
              file=out)


def _write_csv(out: Any, results: dict[str, Any], raw_epoch: bool, keyed: bool) -> None:
    """One CSV table, times in UTC: with `keyed`, a `Key` column first, then `Epoch`, then
    the union of the buckets' other columns in first-seen order, each value under its own
    name and empty where a bucket lacks the column (what `mkts import --key-column Key`
    reads back). A tick bucket's rows also carry their `Nanoseconds` (the time text holds
    the same fraction), so the importer knows them for ticks."""
    tables = []
    for key, r in results.items():
        names, rows = _rows(r, "UTC", raw_epoch)
        if keyed and r.ticks and "Nanoseconds" not in names:
            names = [*names, "Nanoseconds"]
            rows = [[*row, str(ns)] for row, ns in zip(rows, np.asarray(r["Nanoseconds"]),
                                                       strict=True)]
        tables.append((key, names, rows))
    header: list[str] = []
    for table in tables:
        header += [n for n in table[1] if n not in header]
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["Key", *header] if keyed else header)
    for key, names, rows in tables:
        where = [header.index(n) for n in names]
        for row in rows:
            cells = [""] * len(header)
            for j, cell in zip(where, row, strict=True):
                cells[j] = cell
            w.writerow([key, *cells] if keyed else cells)
