"""`mkts check` of a bucket's year files: a live year file (its header against the bucket
and the calendar, then its slots and, for ticks, their blob chains), a sealed year (every
chunk's checksum and decoding) and an overlay's header. Read-only; it never repairs."""

from __future__ import annotations

import errno
import os
from typing import Any

import numpy as np

from mkts import engine
from mkts.checkreport import MAX_PER_KIND, Report, _rel
from mkts.engine.header import same_schema
from mkts.engine.schema import SLOT_FIELD, VARIABLE, Schema
from mkts.engine.sealing import open_sealed
from mkts.engine.slotcheck import bad_checks
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.timeutil import NS
from mkts.engine.yearfile import YearFile
from mkts.wal.fs import OsFileSystem


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
