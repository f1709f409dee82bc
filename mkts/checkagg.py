"""`mkts check` of the aggregates ondiskagg keeps: every destination bar equals a
from-scratch aggregation of its base bucket (plugins/aggfuncs.py), year by year.
Read-only; `mkts rebuild-aggregates` repairs what it finds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mkts import engine
from mkts.checkreport import Report
from mkts.engine.keys import BucketKey
from mkts.engine.schema import Schema


def _check_aggregates(root: str, specs: Sequence[Any], schemas: dict[BucketKey, Schema],
                      report: Report) -> None:
    from mkts.plugins import aggfuncs

    try:
        db = engine.open(root, readonly=True)
    except engine.MktsError as exc:
        report.error("aggregates", f"cannot open the database to compare them: {exc}")
        return
    try:
        for spec in specs:
            pattern = engine.parse_pattern(spec.on)
            session = None
            if spec.filter:
                try:
                    session = aggfuncs.session_filter(spec.filter)
                except (ValueError, ImportError) as exc:
                    report.error("aggregates", f"filter {spec.filter!r}: {exc}")
                    continue
            dests = [aggfuncs.as_timeframe(d) for d in spec.destinations]
            for key, schema in sorted(schemas.items()):
                if not pattern.matches(key):
                    continue
                names = schema.names
                kind = aggfuncs.base_kind(names)
                if kind is None:
                    continue
                if kind == aggfuncs.BARS and any(d.name == key.timeframe for d in dests):
                    continue  # an output of this very trigger
                base = schema.timeframe.seconds
                attr = key.attrgroup if kind == aggfuncs.BARS else "OHLCV"
                for d in dests:
                    fits = d.seconds % base == 0 and (
                        d.seconds > base or (kind == aggfuncs.TICKS and d.seconds == base))
                    if not fits:
                        continue
                    out = f"{key.symbol}/{d.name}/{attr}"
                    _compare_aggregate(db, str(key), out, names, kind, d,
                                       session if d.is_daily else None, report)
    finally:
        db.close()


def _compare_aggregate(db: Any, base_key: str, out_key: str, names: list[str], kind: str,
                       dest: Any, session: Any, report: Report) -> None:
    from mkts.plugins import aggfuncs

    report.aggregates_checked += 1
    cols = list(aggfuncs.OHLC) if kind == aggfuncs.BARS else ["Price"]
    cols += [c for c in (("Volume",) if kind == aggfuncs.BARS else ("Size",)) if c in names]
    try:
        stored_all = db.read(out_key)
    except engine.BucketNotFoundError:
        stored_all = None
    info = db.info(base_key)
    missing = extra = differ = 0
    first: str | None = None
    cal = db.calendar
    years = sorted(set(info["years"]) | set(db.info(out_key)["years"] if stored_all is not None
                                            else ()))
    for year in years:
        lo, hi = cal.year_start(year), cal.year_start(year + 1)
        # to `hi` (not `hi - 1`): a tick in the year's last second (23:59:59.5) is in range;
        # rows at `hi` itself are the next year's and are dropped just below
        base = db.read(base_key, lo, hi, columns=cols)
        rows = {c: np.asarray(base[c]) for c in base.columns}
        sel = (rows["Epoch"] >= lo) & (rows["Epoch"] < hi)
        rows = {c: v[sel] for c, v in rows.items()}
        expected = aggfuncs.aggregate(rows, cal, dest, session=session)
        if stored_all is None:
            missing += len(expected["Epoch"])
            continue
        stored = db.read(out_key, lo, hi - 1)
        s_epoch = np.asarray(stored["Epoch"])
        keep = (s_epoch >= lo) & (s_epoch < hi)
        s_epoch = s_epoch[keep]
        e_epoch = np.asarray(expected["Epoch"])
        common, ei, si = np.intersect1d(e_epoch, s_epoch, return_indices=True)
        missing += len(e_epoch) - len(common)
        extra += len(s_epoch) - len(common)
        bad = np.zeros(len(common), dtype=bool)
        for c in expected:
            if c == "Epoch" or c not in stored.columns:
                continue
            want = np.asarray(expected[c])[ei].astype(np.float64)
            have = np.asarray(stored[c])[keep][si].astype(np.float64)
            bad |= ~np.isclose(have, want, rtol=1e-6, atol=0.0, equal_nan=True)
        differ += int(bad.sum())
        if first is None:
            cand = []
            if bad.any():
                cand.append(int(common[np.argmax(bad)]))
            if len(e_epoch) > len(common):
                cand.append(int(np.setdiff1d(e_epoch, s_epoch)[0]))
            if len(s_epoch) > len(common):
                cand.append(int(np.setdiff1d(s_epoch, e_epoch)[0]))
            if cand:
                first = str(np.datetime64(min(cand), "s")) + "Z"
    if missing or extra or differ:
        parts = []
        if missing:
            parts.append(f"{missing} bar(s) missing")
        if differ:
            parts.append(f"{differ} bar(s) differ")
        if extra:
            parts.append(f"{extra} bar(s) without base rows")
        report.error(out_key, f"does not match an aggregation of {base_key}: "
                              f"{', '.join(parts)} (first at {first}); run `mkts "
                              "rebuild-aggregates` to recompute")
