"""`python -m mkts.wal.inspect <segment-or-dir>`: print a log's segments and records, and say where
it ends (cleanly, torn tail, or corrupt at an offset). Read-only; layout in docs/wal.md.

Exit status: 0 clean or torn tail, 1 corruption, 2 unreadable (missing path, unknown version).
"""

from __future__ import annotations

import argparse
import os.path
import sys
from collections.abc import Sequence
from typing import TextIO

from mkts.wal.errors import CorruptWALError, UnsupportedFormatError
from mkts.wal.format import (
    FLAG_BASE,
    HEADER_SIZE,
    RECORD_HEADER_SIZE,
    HeaderProblem,
    parse_segment_name,
    unpack_record_header,
)
from mkts.wal.fs import FileSystem, OsFileSystem
from mkts.wal.recovery import DEFAULT_RECOVERY, recover
from mkts.wal.scan import SegmentReader, read_header, scan_segment

__all__ = ["main", "inspect_segment"]

CLEAN, TORN, CORRUPT = "clean", "torn", "corrupt"


def _flags(flags: int) -> str:
    return "BASE" if flags & FLAG_BASE else "-"


def inspect_segment(fs: FileSystem, path: str, out: TextIO) -> str:
    """Print one segment; return CLEAN, TORN or CORRUPT judged on this segment alone."""
    file = fs.open(path)
    try:
        size = file.size()
        out.write(f"segment {path} ({size} bytes)\n")
        try:
            header = read_header(file, size)
        except HeaderProblem as exc:
            if exc.unsupported_version is not None:
                raise UnsupportedFormatError(f"{path}: {exc.reason}") from None
            out.write(f"  header: BAD ({exc.reason})\n")
            if size <= HEADER_SIZE:
                out.write("  end: torn: the segment's creation never completed (no records)\n")
                return TORN
            out.write("  end: corrupt at offset 0 (damaged segment header)\n")
            return CORRUPT
        out.write(
            f"  header: version {header.version}, sequence {header.sequence}, "
            f"first_txn {header.first_txn}, flags {_flags(header.flags)}, "
            f"salt {header.salt:#010x}, crc ok\n"
        )
        if parse_segment_name(os.path.basename(path)) not in (None, header.sequence):
            out.write("  warning: the file name does not match the header's sequence\n")
        scan = scan_segment(file, size, header, search_after_bad=True)
        out.write(f"  {'offset':>12} {'txn':>12} {'type':>4} {'size':>12}  checksum\n")
        reader = SegmentReader(file, size)
        off = HEADER_SIZE
        while off < scan.valid_end:
            _, length, txn, rtype, _ = unpack_record_header(reader.view(off, RECORD_HEADER_SIZE), 0)
            out.write(f"  {off:>12} {txn:>12} {rtype:>4} {length:>12}  ok\n")
            off += RECORD_HEADER_SIZE + length
        bad = scan.bad
        if bad is None:
            out.write(f"  end: clean ({scan.n_records} records, last txn {scan.last_txn})\n")
            return CLEAN
        if size - bad.offset >= RECORD_HEADER_SIZE:
            _, length, txn, rtype, _ = unpack_record_header(
                reader.view(bad.offset, RECORD_HEADER_SIZE), 0
            )
            out.write(f"  {bad.offset:>12} {txn:>12} {rtype:>4} {length:>12}  BAD ({bad.reason})\n")
        else:
            out.write(f"  {bad.offset:>12} {'?':>12} {'?':>4} {'?':>12}  BAD ({bad.reason})\n")
        if bad.later_valid is not None:
            out.write(
                f"  end: corrupt at offset {bad.offset} ({bad.reason}; a valid record "
                f"follows at offset {bad.later_valid})\n"
            )
            return CORRUPT
        out.write(
            f"  end: torn tail at offset {bad.offset} ({bad.reason}; "
            f"{size - bad.offset} bytes after the last valid record)\n"
        )
        return TORN
    finally:
        file.close()


def _inspect_dir(fs: FileSystem, directory: str, out: TextIO) -> str:
    names = sorted(n for n in fs.listdir(directory) if parse_segment_name(n) is not None)
    for name in names:
        inspect_segment(fs, os.path.join(directory, name), out)
    try:
        found = recover(fs, directory, mode=DEFAULT_RECOVERY, readonly=True)
    except CorruptWALError as exc:
        out.write(f"log: corrupt at {exc.segment} offset {exc.offset}: {exc}\n")
        return CORRUPT
    first = found.kept[0].header.first_txn if found.kept else found.last_txn + 1
    if first > found.last_txn:  # every transaction so far was checkpointed away
        txns = (f"no transactions after txn {found.last_txn}" if found.last_txn
                else "no transactions")
    else:
        txns = f"txns {first}..{found.last_txn}"
    summary = f"{len(found.kept)} live segments, {txns}"
    if found.kept and found.kept[-1].bad is not None:
        tail = found.kept[-1]
        out.write(f"log: torn tail in {tail.path} at offset {tail.valid_end} ({summary})\n")
        return TORN
    out.write(f"log: clean ({summary})\n")
    return CLEAN


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, fs: FileSystem | None = None
) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mkts.wal.inspect",
        description="Print the segments and records of a write-ahead log (read-only).",
    )
    parser.add_argument("path", help="a segment file (*.wal) or a log directory")
    args = parser.parse_args(argv)
    out = out if out is not None else sys.stdout
    fs = fs if fs is not None else OsFileSystem()
    try:
        if fs.isdir(args.path):
            verdict = _inspect_dir(fs, args.path, out)
        elif fs.exists(args.path):
            verdict = inspect_segment(fs, args.path, out)
        else:
            print(f"error: {args.path}: no such file or directory", file=sys.stderr)
            return 2
    except UnsupportedFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (CorruptWALError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if verdict == CORRUPT else 0


if __name__ == "__main__":
    sys.exit(main())
