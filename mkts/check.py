"""`mkts check`: verify a database root without changing it — file headers, slot arrays,
tick blob chains, the write-ahead log, and (when ondiskagg is configured) that every
aggregate bar equals a from-scratch aggregation of its base bucket.

Read-only and safe beside a running server (whose recent writes may then show as transient
findings). Reads the engine's files through the engine's own decoders; it never repairs.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts import engine
from mkts.checkfiles import check_records
from mkts.engine.catalog import DESTROY_INTENT, DESTROYING, TEMPLATE_NAME, read_header
from mkts.engine.columns import SchemaWrite
from mkts.engine.filerecord import DATA_FILE, RECORD_NAME, FileEntry, read_record
from mkts.engine.header import same_schema
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.rootmeta import ROOT_META, read_root_meta, writer_of
from mkts.engine.schema import SLOT_FIELD, VARIABLE, Schema
from mkts.engine.sealing import open_sealed
from mkts.engine.slotcheck import bad_checks
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.timeutil import NS, get_calendar
from mkts.engine.yearfile import YearFile
from mkts.plugins.progress import track
from mkts.wal.fs import FileSystem, OsFileSystem

__all__ = ["Finding", "Report", "check_root"]

_YEAR_FILE = re.compile(r"^(\d{4})\.bin\Z")
_SEALED_FILE = re.compile(r"^(\d{4})\.sealed\Z")
_OVERLAY_FILE = re.compile(r"^(\d{4})\.overlay\Z")
MAX_PER_KIND = 5  # findings of one kind listed per file before they are only counted


@dataclass
class Finding:
    """One problem (`error`) or remark (`note`) about a path under the root."""

    severity: str  # "error" | "note"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class Report:
    root: str
    findings: list[Finding] = field(default_factory=list)
    buckets: int = 0
    files: int = 0
    records: int = 0
    wal_pending: int = 0
    aggregates_checked: int = 0
    in_use_by: str | None = None
    # (bucket key, year) of every file a transaction not yet checkpointed writes
    pending: set[tuple[str, int]] = field(default_factory=set)
    # bucket key -> (bucket directory, its file record) for the record check
    file_records: dict[str, tuple[str, dict[str, FileEntry] | None]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding("error", where, message))

    def note(self, where: str, message: str) -> None:
        self.findings.append(Finding("note", where, message))


def check_root(root: str, *, aggregates: Sequence[Any] = (),
               progress: bool = False) -> Report:
    """Check everything under `root`; `aggregates` are `mkts.wiring.AggregationSpec`s.
    `progress` shows a bar over the buckets."""
    report = Report(os.path.abspath(root))
    root = report.root
    if not os.path.isdir(root):
        raise engine.InvalidInputError(f"database root {root} does not exist")
    fs = OsFileSystem()
    report.in_use_by = writer_of(fs, root)
    tz = _root_timezone(fs, root, report)
    if tz is None:
        return report
    calendar = get_calendar(tz)
    schemas: dict[BucketKey, Schema] = {}
    buckets = list(_bucket_dirs(root))
    for key_text, path in track(buckets, len(buckets), "checking buckets", unit="bucket",
                                enabled=progress):
        schema = _check_bucket(fs, root, key_text, path, calendar, tz, report)
        if schema is not None:
            schemas[parse_key(key_text)] = schema
    _check_strays(root, report)
    _check_wal(fs, root, schemas, report)
    check_records(fs, root, report)
    if aggregates:
        _check_aggregates(root, aggregates, schemas, report)
    return report


def _rel(root: str, path: str) -> str:
    return os.path.relpath(path, root)


def _root_timezone(fs: FileSystem, root: str, report: Report) -> str | None:
    """The root's time zone from `mkts.root` (engine.rootmeta: format version checked)."""
    try:
        meta = read_root_meta(fs, root)
        if meta is not None:
            get_calendar(meta.timezone)
            return meta.timezone
    except (OSError, engine.MktsError) as exc:
        report.error(ROOT_META, f"cannot be read ({exc}); nothing else can be checked")
        return None
    if any(True for _ in _bucket_dirs(root)):
        zones = sorted(_bucket_zones(root))
        report.error(ROOT_META, f"is missing, but the root holds buckets whose headers say "
                                f"time zone {' and '.join(map(repr, zones))}; mkts refuses "
                                "to open it. Repair: open it once with timezone="
                                f"{zones[0] if zones else 'ZONE'!r} (mkts.yml: timezone), "
                                f"which writes {ROOT_META} again")
    else:
        report.note(ROOT_META, "missing: this root has never been opened for writing")
    return None


def _bucket_zones(root: str) -> set[str]:
    zones = set()
    fs = OsFileSystem()
    for _, path in _bucket_dirs(root):
        try:
            zones.add(read_header(fs, os.path.join(path, TEMPLATE_NAME)).timezone)
        except engine.MktsError:
            continue  # reported when the bucket is checked
    return zones


def _check_strays(root: str, report: Report) -> None:
    """What lies under the bucket directories but is no bucket: destroys a crash interrupted
    (finished at the next writable open) and orphans (year files without a bucket header,
    which mkts does not see and never removes)."""
    intent = os.path.join(root, DESTROY_INTENT)
    if os.path.isfile(intent):
        with open(intent, encoding="utf-8", errors="replace") as fh:
            keys = ", ".join(line.strip() for line in fh if line.strip())
        report.note(DESTROY_INTENT, f"a destroy of {keys} was interrupted; the next writable "
                                    "open finishes it")
    for sym, tf, attr, ap in _third_level(root):
        if attr.startswith(".") and attr.endswith(DESTROYING):
            key = f"{sym}/{tf}/{attr[1 : -len(DESTROYING)]}"
            report.note(_rel(root, ap), f"the destroy of bucket {key} was interrupted; "
                                        "the next writable open finishes it")
        elif os.path.isdir(ap) and not os.path.exists(os.path.join(ap, TEMPLATE_NAME)):
            names = os.listdir(ap)
            years = [n for n in names if DATA_FILE.match(n)]
            if years:
                report.error(_rel(root, ap), f"orphan: {len(years)} year file(s) but no "
                                             f"{TEMPLATE_NAME}, so mkts does not see them (a "
                                             "destroy of an older mkts cut short?); restore "
                                             "the bucket header or delete the directory")
            elif RECORD_NAME in names:
                report.error(_rel(root, ap), f"the bucket header {TEMPLATE_NAME} is missing "
                                             f"(its {RECORD_NAME} remains), so mkts does not "
                                             "see this bucket; restore it from a backup")


def _third_level(root: str) -> Iterable[tuple[str, str, str, str]]:
    """(symbol, timeframe, attrgroup, path) of every entry two directories below the root
    (where buckets live), in sorted order; the log directory is skipped."""
    for sym in sorted(os.listdir(root)):
        sp = os.path.join(root, sym)
        if sym == "wal" or not os.path.isdir(sp):
            continue
        for tf in sorted(os.listdir(sp)):
            tp = os.path.join(sp, tf)
            if os.path.isdir(tp):
                for attr in sorted(os.listdir(tp)):
                    yield sym, tf, attr, os.path.join(tp, attr)


def _bucket_dirs(root: str) -> Iterable[tuple[str, str]]:
    for sym, tf, attr, ap in _third_level(root):
        if os.path.isdir(ap) and os.path.exists(os.path.join(ap, TEMPLATE_NAME)):
            yield f"{sym}/{tf}/{attr}", ap


def _check_bucket(fs: OsFileSystem, root: str, key_text: str, path: str, calendar: Any, tz: str,
                  report: Report) -> Schema | None:
    try:
        parse_key(key_text)
    except engine.InvalidKeyError as exc:
        report.note(_rel(root, path), f"not a bucket mkts uses ({exc}); ignored")
        return None
    report.buckets += 1
    try:
        template = read_header(fs, os.path.join(path, TEMPLATE_NAME))
    except engine.MktsError as exc:
        report.error(key_text, f"bucket header: {exc}")
        return None
    schema = template.schema
    if template.timezone != tz:
        report.error(key_text, f"bucket header says time zone {template.timezone!r}, the root "
                               f"says {tz!r}; mkts refuses to open it. If the buckets are "
                               f"right, delete {ROOT_META} and open once with timezone="
                               f"{template.timezone!r}")
    try:
        report.file_records[key_text] = (path, read_record(fs, path))
    except engine.MktsError as exc:
        report.error(_rel(root, os.path.join(path, RECORD_NAME)), str(exc).replace(
            os.path.join(path, RECORD_NAME) + " ", ""))
    for name in sorted(os.listdir(path)):
        m = _YEAR_FILE.match(name)
        fpath = os.path.join(path, name)
        if m:
            report.files += 1
            _check_year_file(fs, root, key_text, fpath, int(m.group(1)), schema, calendar, tz,
                             report, template.columns.version)
        elif (ms := _SEALED_FILE.match(name)) is not None:
            report.files += 1
            _check_sealed_file(fs, root, fpath, int(ms.group(1)), schema, report,
                               template.columns.version)
        elif _OVERLAY_FILE.match(name) is not None:
            report.files += 1
            _check_overlay_header(fs, root, fpath, report)
        elif name.endswith(".tmp"):
            report.note(_rel(root, fpath), "left over from an interrupted write; removed at "
                                           "the next writable open")
    return schema


def _check_sealed_file(fs: OsFileSystem, root: str, path: str, year: int, schema: Schema,
                       report: Report, version: int = 1) -> None:
    """A sealed year: header and footer, then every chunk's CRC-32C and decoding; each
    damaged chunk is reported with its column and row group (docs/format.md "Sealed file
    (`MKTSSEAL`, version 1)")."""
    where = _rel(root, path)
    try:
        r = open_sealed(fs, path)
    except engine.MktsError as exc:
        report.error(where, str(exc).replace(path + ": ", ""))
        return
    if r.meta.year != year or r.meta.schema_version > version or (
            r.meta.schema_version == version and not same_schema(r.meta.schema, schema)):
        report.error(where, f"header says year {r.meta.year} / columns that differ from the "
                            "bucket's")
        return
    report.records += r.rows
    for msg in r.verify():
        report.error(where, msg.replace(path + ": ", ""))


def _check_overlay_header(fs: OsFileSystem, root: str, path: str, report: Report) -> None:
    """An overlay of a sealed year: its header (the overlay's slots, which may hold
    tombstones, are checked by the reads that merge them)."""
    try:
        YearFile.open(fs, path, writable=False).close()
    except engine.MktsError as exc:
        report.error(_rel(root, path), str(exc).replace(path + ": ", ""))


def _check_year_file(fs: OsFileSystem, root: str, key: str, path: str, year: int,
                     schema: Schema, calendar: Any, tz: str, report: Report,
                     version: int = 1) -> None:
    """`version`: the bucket's schema version; a file of an older one (written before a
    column change, docs/format.md "Column changes") is checked in its own columns."""
    where = _rel(root, path)
    try:
        f = YearFile.open(fs, path, writable=False)
    except engine.MktsError as exc:
        report.error(where, str(exc).replace(path + ": ", ""))
        return
    try:
        h = f.header
        problems = []
        if h.year != year:
            problems.append(f"header says year {h.year}")
        if h.columns.version < version and h.schema.kind == schema.kind \
                and h.schema.timeframe == schema.timeframe:
            schema = h.schema  # read through the translation; its own blocks and slots
        elif h.columns.version != version or not same_schema(h.schema, schema):
            problems.append("header columns or kind differ from the bucket's")
        if h.timezone != tz:
            problems.append(f"header time zone {h.timezone!r} differs from the root's {tz!r}")
        if h.nslots != calendar.nslots(year, schema.timeframe):
            problems.append(f"header has {h.nslots} slots; {year} has "
                            f"{calendar.nslots(year, schema.timeframe)} {schema.timeframe} "
                            "intervals")
        if h.year_start != calendar.year_start(year):
            problems.append("header year start does not match the calendar")
        for p in problems:
            report.error(where, p)
        if problems:
            return
        occupied, bad = _occupied_slots(f)
        report.records += len(occupied)
        if len(bad):
            report.error(where, f"{len(bad)} slot(s) hold a record whose slot number does not "
                                f"match its position (first: slot {int(bad[0])})")
        if schema.kind == VARIABLE:
            _check_ticks(f, schema, occupied, where, report)
    finally:
        f.close()


def _occupied_slots(f: YearFile) -> tuple[np.ndarray, np.ndarray]:
    """(occupied slots, slots whose stored number is wrong). Only the file's data extents are
    read: a sparse year file costs time for its data, not for its holes."""
    h = f.header
    rs = h.record_size
    slots = f.slots
    found: list[np.ndarray] = []
    wrong: list[np.ndarray] = []
    for a, b in _data_extents(f.path, h.header_size, h.header_size + h.nslots * rs):
        lo = (a - h.header_size) // rs
        hi = min(h.nslots, -(-(b - h.header_size) // rs))
        stored = np.asarray(slots[SLOT_FIELD][lo:hi])
        occ = np.flatnonzero(stored)
        found.append(occ + lo)
        wrong.append(occ[stored[occ] != occ + lo + 1] + lo)
        # A record whose slot word reads 0 (empty) but whose other bytes do not: damage that
        # hides a row (reads see an empty slot).
        empty = np.flatnonzero(stored == 0)
        if len(empty):
            ghost = empty[np.asarray(f.words[lo:hi][empty, 1:]).any(axis=1)]
            wrong.append(ghost + lo)
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(found), np.concatenate(wrong)


def _data_extents(path: str, start: int, end: int) -> list[tuple[int, int]]:
    """Byte ranges within [start, end) that hold data (SEEK_DATA/SEEK_HOLE); the whole range
    where the filesystem cannot tell."""
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        return [(start, end)]
    out: list[tuple[int, int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = start
        while pos < end:
            try:
                d = os.lseek(fd, pos, seek_data)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos
                    break
                return [(start, end)]
            if d >= end:
                break
            hole = os.lseek(fd, d, seek_hole)
            out.append((d, min(hole, end)))
            pos = hole
    finally:
        os.close(fd)
    return out


def _check_ticks(f: YearFile, schema: Schema, occupied: np.ndarray, where: str,
                 report: Report) -> None:
    """Every occupied tick slot: its chain decodes (checksums, sizes, row counts) and holds
    only times inside its interval. Slots are read together, a million rows at a time (a
    block holds many intervals: reading them one by one would decode it again for each);
    a chunk that fails is read slot by slot to name every damaged slot."""
    size = f.size()
    tf_ns = schema.timeframe.seconds * NS
    recs = np.array(f.slots[occupied])
    src = BlockSource(f, schema, f.path)
    bad_slots: list[tuple[int, str]] = []
    if f.header.slot_checks:
        for i in bad_checks(recs).tolist():
            bad_slots.append((int(occupied[i]), f"tick slot {int(occupied[i])} fails its "
                                                "checksum; the slot record is damaged"))

    def check(idx: np.ndarray, rr: np.ndarray) -> None:
        head = rr["head"].astype(np.int64)
        out = (head < f.data_start) | (head + rr["head_bytes"].astype(np.int64) > size)
        if bool(out.any()):
            i = int(np.flatnonzero(out)[0])
            raise engine.CorruptFileError(
                f"slot {int(idx[i])} points at bytes {int(head[i])}.."
                f"{int(head[i]) + int(rr['head_bytes'][i])}, outside the data region "
                f"{f.data_start}..{size}")
        _, ns = read_rows(src, idx, rr, schema.row_dtype)
        outside = (ns < 0) | (ns >= tf_ns)
        if bool(outside.any()):
            row = int(np.flatnonzero(outside)[0])
            i = int(np.searchsorted(np.cumsum(rr["nrows"].astype(np.int64)), row, "right"))
            raise engine.CorruptFileError(f"slot {int(idx[i])} holds a tick outside its interval")

    cum = np.cumsum(recs["nrows"].astype(np.int64)) - recs["nrows"].astype(np.int64)
    chunk = cum // 1_000_000
    cuts = np.concatenate(([0], np.flatnonzero(chunk[1:] != chunk[:-1]) + 1, [len(recs)]))
    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        if a == b:
            continue
        try:
            check(occupied[a:b], recs[a:b])
        except engine.MktsError:
            for i in range(a, b):
                try:
                    check(occupied[i : i + 1], recs[i : i + 1])
                except engine.MktsError as exc:
                    bad_slots.append((int(occupied[i]), str(exc).replace(f.path + ": ", "")))
        src.cache.clear()
    for _, msg in bad_slots[:MAX_PER_KIND]:
        report.error(where, msg)
    if len(bad_slots) > MAX_PER_KIND:
        report.error(where, f"... and {len(bad_slots) - MAX_PER_KIND} more damaged tick slot(s)")


def _check_wal(fs: OsFileSystem, root: str, schemas: dict[BucketKey, Schema],
               report: Report) -> None:
    from mkts.engine import journal
    from mkts.wal import WriteAheadLog

    wal_dir = os.path.join(root, "wal")
    if not os.path.isdir(wal_dir):
        report.note("wal", "no write-ahead log (this root has never been written)")
        return

    def schema_of(key: BucketKey) -> Schema:
        return schemas[key]

    try:
        log = WriteAheadLog.open(wal_dir, fs, readonly=True)
    except engine.MktsError as exc:
        report.error("wal", str(exc))
        return
    try:
        shown = 0
        for rec in log.records():
            report.wal_pending += 1
            try:
                ops = journal.decode(rec.payload, schema_of,
                                     f"txn {rec.txn} in {os.path.basename(rec.segment)} at "
                                     f"offset {rec.offset}")
                for op in ops:  # a column change: later records use the new schema
                    if isinstance(op, SchemaWrite):
                        schemas[op.key] = op.schema
                report.pending.update((str(w.key), int(y)) for w in ops
                                      if (y := getattr(w, "year", None)) is not None)
            except engine.MktsError as exc:
                if shown < MAX_PER_KIND:
                    shown += 1
                    report.error("wal", str(exc))
    except engine.MktsError as exc:
        report.error("wal", str(exc))
    finally:
        log.close()
    if report.wal_pending:
        if report.in_use_by:
            report.note("wal", f"{report.wal_pending} transaction(s) since the last checkpoint "
                               f"(normal: the database is open in pid {report.in_use_by})")
        else:
            report.note("wal", f"{report.wal_pending} transaction(s) were not checkpointed (the "
                               "last process did not close cleanly); they are replayed, with "
                               "their triggers, at the next writable open")


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
