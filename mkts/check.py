"""`mkts check`: verify a database root without changing it — file headers, slot arrays,
tick blob chains, the write-ahead log, and (when ondiskagg is configured) that every
aggregate bar equals a from-scratch aggregation of its base bucket.

Read-only and safe beside a running server (whose recent writes may then show as transient
findings). Reads the engine's files through the engine's own decoders; it never repairs.
Owns the walk over the root (its time zone, buckets, strays) and each bucket's header; the
year files are checkyear's, the log checkwal's, the aggregates checkagg's, file records
checkfiles'.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from mkts import engine
from mkts.checkagg import _check_aggregates
from mkts.checkfiles import check_records
from mkts.checkreport import Finding, Report, _rel
from mkts.checkwal import _check_wal
from mkts.checkyear import _check_overlay_header, _check_sealed_file, _check_year_file
from mkts.engine.catalog import DESTROY_INTENT, DESTROYING, TEMPLATE_NAME, read_header
from mkts.engine.filerecord import DATA_FILE, RECORD_NAME, read_record
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.rootmeta import ROOT_META, read_root_meta, writer_of
from mkts.engine.schema import Schema
from mkts.engine.timeutil import get_calendar
from mkts.plugins.progress import track
from mkts.wal.fs import FileSystem, OsFileSystem

__all__ = ["Finding", "Report", "check_root"]

_YEAR_FILE = re.compile(r"^(\d{4})\.bin\Z")
_SEALED_FILE = re.compile(r"^(\d{4})\.sealed\Z")
_OVERLAY_FILE = re.compile(r"^(\d{4})\.overlay\Z")


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
