"""`mkts check`'s look at each bucket's data files against its file record (`bucket.files`,
docs/format.md "File record"): a file that is gone, a closed year whose size or checksum
changed. The rest of the check is mkts/check.py's (and its check* modules).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mkts.engine.filerecord import DATA_FILE, RECORD_NAME, file_crc
from mkts.wal.fs import OsFileSystem

if TYPE_CHECKING:
    from mkts.checkreport import Report

__all__ = ["check_records"]


def check_records(fs: OsFileSystem, root: str, report: Report) -> None:
    """Every bucket's data files against its file record (engine/filerecord.py): a file the
    record names must exist, and a closed one must have its recorded size and checksum. A
    file that a transaction not yet checkpointed writes is only noted (replay rewrites it);
    a file whose damage the detailed checks already named gets no checksum finding."""
    damaged = {f.where for f in report.errors}  # files the detailed checks found damaged
    for key, (path, record) in sorted(report.file_records.items()):
        on_disk = {n for n in os.listdir(path) if DATA_FILE.match(n)}
        if record is None:
            if on_disk:
                report.note(key, f"has no {RECORD_NAME} (written by an older mkts, or not "
                                 "checkpointed yet): lost year files cannot be told; the next "
                                 "checkpoint that writes the bucket records them")
            continue
        for name, entry in sorted(record.items()):
            where = os.path.relpath(os.path.join(path, name), root)
            pending = (key, int(name[:4])) in report.pending
            problem: str | None = None
            if name not in on_disk:
                problem = (f"is missing: the bucket's {RECORD_NAME} says it exists, so its "
                           "rows are lost; restore the file from a backup")
            elif entry.size is not None and where not in damaged:  # named once is enough
                try:
                    size, crc = file_crc(fs, os.path.join(path, name))
                except OSError as exc:
                    problem = f"cannot be read to verify its checksum: {exc}"
                else:
                    if size != entry.size:
                        problem = (f"is {size} bytes; the record says {entry.size} (a closed "
                                   "year does not change): damaged or truncated, restore it "
                                   "from a backup")
                    elif crc != entry.crc32c:
                        problem = (f"fails its checksum (CRC-32C {crc:#010x}, recorded "
                                   f"{entry.crc32c:#010x}): damaged, restore it from a backup")
            if problem is None:
                continue
            if pending:
                report.note(where, f"{problem.split(':')[0]}, but a transaction in the log "
                                   "writes it: the next writable open replays it")
            else:
                report.error(where, problem)
