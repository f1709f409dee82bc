"""What `WriteAheadLog.open` does with the segments it finds (docs/wal.md §5, the recovery table).

First everything is read and judged without touching the disk; then, unless read-only, the
torn tail is truncated, leftovers of interrupted creations and checkpoints are deleted, and in
point-in-time mode the damaged files are set aside. Appending is wal/log.py's job.
"""

from __future__ import annotations

import logging
import os.path
from typing import Literal, NamedTuple, get_args

from mkts.wal.errors import CorruptWALError, UnsupportedFormatError
from mkts.wal.format import (
    HEADER_SIZE,
    HIGHEST_NAME,
    HeaderProblem,
    SegmentHeader,
    decode_highest,
    encode_highest,
    parse_segment_name,
    segment_name,
)
from mkts.wal.fs import FileSystem
from mkts.wal.scan import SegmentScan, read_header, scan_segment

__all__ = ["RecoveryMode", "RECOVERY_MODES", "DEFAULT_RECOVERY", "DAMAGED_DIR", "Recovered",
           "recover", "make_dirs", "write_highest"]

RecoveryMode = Literal["tolerate_torn_tail", "point_in_time"]
RECOVERY_MODES: tuple[str, ...] = get_args(RecoveryMode)
DEFAULT_RECOVERY: RecoveryMode = "tolerate_torn_tail"
DAMAGED_DIR = "damaged"
_COPY_CHUNK = 4 << 20

log = logging.getLogger("mkts.wal")


class Recovered(NamedTuple):
    kept: list[SegmentScan]  # the live segments, each with its valid prefix, in log order
    last_txn: int  # the last valid txn of the log (see docs/wal.md §5 step 7)
    next_sequence: int  # higher than every segment sequence ever seen in the directory


class _Found(NamedTuple):
    sequence: int
    path: str
    size: int
    header: SegmentHeader | None
    problem: str  # why the header is not valid ("" when it is)


class _Problem(NamedTuple):
    position: int  # index into the live segments
    offset: int
    message: str


def make_dirs(fs: FileSystem, directory: str) -> None:
    """Create `directory` and its missing parents durably (each parent fsynced after a mkdir)."""
    missing: list[str] = []
    path = os.path.abspath(directory)
    while not fs.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        fs.mkdir(path)
        fs.fsync_dir(os.path.dirname(path))


def _read_segments(fs: FileSystem, directory: str) -> list[_Found]:
    found: list[_Found] = []
    names = []
    for name in fs.listdir(directory):
        seq = parse_segment_name(name)
        if seq is not None:
            names.append((seq, name))
    for seq, name in sorted(names):
        path = os.path.join(directory, name)
        file = fs.open(path)
        try:
            size = file.size()
            try:
                header: SegmentHeader | None = read_header(file, size)
                problem = ""
            except HeaderProblem as exc:
                if exc.unsupported_version is not None:
                    raise UnsupportedFormatError(
                        f"{path}: {exc.reason}. Open this log with the mkts version that "
                        "wrote it; nothing was modified."
                    ) from None
                header, problem = None, exc.reason
        finally:
            file.close()
        if header is not None and header.sequence != seq:
            problem = f"header says sequence {header.sequence}, name says {seq}"
            header = None
        found.append(_Found(seq, path, size, header, problem))
    return found


def _check_live(fs: FileSystem, live: list[_Found]) -> tuple[list[SegmentScan], _Problem | None]:
    """Scan the live segments in order; stop at the first problem (docs/wal.md §5 step 4)."""
    scans: list[SegmentScan] = []
    prev: SegmentScan | None = None
    for k, seg in enumerate(live):
        if seg.header is None:
            return scans, _Problem(k, 0, f"damaged segment header: {seg.problem}")
        if prev is None and not seg.header.is_base:
            return scans, _Problem(
                k,
                0,
                "the oldest segment is not the start of the log (flag BASE is not set): "
                "the segments before it are missing",
            )
        if prev is not None:
            if seg.sequence != prev.header.sequence + 1:
                return scans, _Problem(
                    k, 0, f"segment {prev.header.sequence + 1} is missing before this one"
                )
            if seg.header.first_txn != prev.last_txn + 1:
                return scans, _Problem(
                    k,
                    0,
                    f"txn gap: this segment starts at txn {seg.header.first_txn} but the "
                    f"log before it ends at txn {prev.last_txn}",
                )
        is_last = k == len(live) - 1
        file = fs.open(seg.path)
        try:
            scan = scan_segment(file, seg.size, seg.header, search_after_bad=is_last)
        finally:
            file.close()
        scans.append(scan)
        bad = scan.bad
        if bad is not None:
            if not is_last:
                return scans, _Problem(
                    k,
                    bad.offset,
                    f"bad record at offset {bad.offset} ({bad.reason}) and later segments follow",
                )
            if bad.later_valid is not None:
                return scans, _Problem(
                    k,
                    bad.offset,
                    f"bad record at offset {bad.offset} ({bad.reason}) followed "
                    f"by a valid record at offset {bad.later_valid}",
                )
        prev = scan
    return scans, None


def recover(fs: FileSystem, directory: str, *, mode: str, readonly: bool) -> Recovered:
    """Judge and repair the log in `directory`; see docs/wal.md §5 for every case."""
    if mode not in RECOVERY_MODES:
        raise ValueError(f"recovery must be one of {', '.join(RECOVERY_MODES)}, not {mode!r}")
    if not fs.isdir(directory):
        if readonly:
            return Recovered([], 0, 1)
        make_dirs(fs, directory)
    found = _read_segments(fs, directory)
    next_sequence = max((f.sequence for f in found), default=0) + 1
    highest, rewrite_highest = _check_highest(fs, directory, found, mode)

    torn_creation: _Found | None = None
    if (found and found[-1].header is None and found[-1].size <= HEADER_SIZE
            and found[-1].sequence > highest):
        torn_creation = found.pop()
    base = 0
    for i, seg in enumerate(found):
        if seg.header is not None and seg.header.is_base:
            base = i
    stale, live = found[:base], found[base:]

    scans, problem = _check_live(fs, live)
    if problem is not None and mode != "point_in_time":
        seg = live[problem.position]
        raise CorruptWALError(
            f"write-ahead log is corrupt: {seg.path} at byte {problem.offset}: {problem.message}. "
            "Records after this point would be lost; nothing was modified. To keep only the "
            "valid prefix (the damaged files are kept in damaged/), open with "
            "recovery='point_in_time'.",
            segment=seg.path,
            offset=problem.offset,
        )

    kept = scans
    if problem is not None:
        kept = scans[: problem.position]
        cut = problem.offset > 0
        if cut:
            kept.append(scans[problem.position])
        seg = live[problem.position]
        if not readonly:
            _set_aside(fs, directory, live, problem, scans[problem.position] if cut else None)
        log.warning(
            "write-ahead log %s: point-in-time recovery stopped at %s byte %d (%s); "
            "%s the damaged files %s in %s",
            directory,
            seg.path,
            problem.offset,
            problem.message,
            "read-only, so" if readonly else "kept the valid prefix,",
            "are left in place" if readonly else "are kept",
            os.path.join(directory, DAMAGED_DIR),
        )
    elif kept and kept[-1].bad is not None:
        tail = kept[-1]
        assert tail.bad is not None
        log.info(
            "write-ahead log %s: torn tail at byte %d (%s): %d bytes %s",
            tail.path,
            tail.valid_end,
            tail.bad.reason,
            tail.size - tail.valid_end,
            "ignored (read-only)" if readonly else "truncated",
        )
        if not readonly:
            _truncate(fs, tail.path, tail.valid_end)

    if not readonly:
        removed = False
        if torn_creation is not None:
            log.info(
                "write-ahead log %s: removing %s, a segment whose creation never completed",
                directory,
                torn_creation.path,
            )
            fs.unlink(torn_creation.path)
            removed = True
        for seg in stale:  # oldest first: what is left is always a suffix of the old log
            fs.unlink(seg.path)
            removed = True
        if removed:
            fs.fsync_dir(directory)
        if fs.exists(os.path.join(directory, HIGHEST_NAME + ".tmp")):
            fs.unlink(os.path.join(directory, HIGHEST_NAME + ".tmp"))
        if rewrite_highest or problem is not None:
            write_highest(fs, directory, max((s.header.sequence for s in kept), default=0))

    if kept:
        last_txn = kept[-1].last_txn
    else:
        last_txn = max((f.header.first_txn - 1 for f in found if f.header is not None), default=0)
    return Recovered(kept, last_txn, next_sequence)


def _check_highest(fs: FileSystem, directory: str, found: list[_Found],
                   mode: str) -> tuple[int, bool]:
    """(the highest segment sequence ever created, whether `HIGHEST` must be written again).

    The newest segment named by `HIGHEST` must still be there: losing it whole (deleted, or
    its directory entry lost) would otherwise lose its acknowledged records silently
    (docs/wal.md §5). A log without the file (written before it existed) gets one."""
    path = os.path.join(directory, HIGHEST_NAME)
    newest = max((f.sequence for f in found), default=0)
    if not fs.exists(path):
        return 0, bool(found)
    file = fs.open(path)
    try:
        data = file.pread(64, 0)
    finally:
        file.close()
    try:
        highest = decode_highest(data)
    except HeaderProblem as exc:
        if mode == "point_in_time":
            log.warning("write-ahead log %s: %s is damaged (%s); written again from the "
                        "segments found", directory, path, exc.reason)
            return 0, True
        raise CorruptWALError(
            f"write-ahead log is corrupt: {path} is damaged ({exc.reason}); it names the newest "
            "segment ever created, so a lost last segment cannot be told apart. Nothing was "
            "modified. If no segment is missing, delete it (it is written again), or open with "
            "recovery='point_in_time'.",
            segment=path, offset=0) from None
    if highest <= newest:
        return highest, False
    missing = os.path.join(directory, segment_name(highest))
    if mode == "point_in_time":
        log.warning("write-ahead log %s: segment %s is missing (created, then lost); "
                    "point-in-time recovery continues without its records", directory, missing)
        return highest, True
    have = f"the newest segment found is {newest}" if found else "no segment is left"
    raise CorruptWALError(
        f"write-ahead log is corrupt: segment {missing} is missing ({have}, but segment "
        f"{highest} was created): the transactions it held would be lost. Nothing was modified. "
        "Restore the file from a backup; to go on without its records, open with "
        "recovery='point_in_time'.",
        segment=missing, offset=0)


def write_highest(fs: FileSystem, directory: str, sequence: int) -> None:
    """Record durably that segments up to `sequence` exist (temporary file, fsync, rename,
    fsync of the directory)."""
    path = os.path.join(directory, HIGHEST_NAME)
    tmp = path + ".tmp"
    if fs.exists(tmp):
        fs.unlink(tmp)
    file = fs.open(tmp, write=True, create=True)
    try:
        file.pwrite(encode_highest(sequence), 0)
        file.sync()
    finally:
        file.close()
    fs.replace(tmp, path)
    fs.fsync_dir(directory)


def _truncate(fs: FileSystem, path: str, size: int) -> None:
    file = fs.open(path, write=True)
    try:
        file.truncate(size)
        file.sync()
    finally:
        file.close()


def _free_name(fs: FileSystem, directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    n = 0
    while fs.exists(path):
        n += 1
        path = os.path.join(directory, f"{name}.{n}")
    return path


def _copy(fs: FileSystem, src: str, dst: str) -> None:
    source = fs.open(src)
    try:
        target = fs.open(dst, write=True, create=True)
        try:
            offset = 0
            while True:
                data = source.pread(_COPY_CHUNK, offset)
                if not data:
                    break
                target.pwrite(data, offset)
                offset += len(data)
            target.sync()
        finally:
            target.close()
    finally:
        source.close()


def _set_aside(
    fs: FileSystem,
    directory: str,
    live: list[_Found],
    problem: _Problem,
    damaged: SegmentScan | None,
) -> None:
    """Point-in-time recovery: keep the damaged bytes in damaged/, cut the log at the problem.

    The copy and the moves are durable before the damaged segment is truncated, so a crash in
    between loses nothing (the next open finds the same problem and sets it aside again)."""
    target_dir = os.path.join(directory, DAMAGED_DIR)
    if not fs.isdir(target_dir):
        fs.mkdir(target_dir)
        fs.fsync_dir(directory)
    first_moved = problem.position
    if damaged is not None:
        name = os.path.basename(damaged.path)
        _copy(fs, damaged.path, _free_name(fs, target_dir, name))
        first_moved += 1
    for seg in live[first_moved:]:
        fs.replace(seg.path, _free_name(fs, target_dir, os.path.basename(seg.path)))
    fs.fsync_dir(target_dir)
    fs.fsync_dir(directory)
    if damaged is not None:
        _truncate(fs, damaged.path, damaged.valid_end)
