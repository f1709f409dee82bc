"""The two physical records of a range delete: clear a run of slots (WAL op 3) and drop a
year file (WAL op 5), as planned, logged, applied and published (docs/wal.md §10).

Owns only the types; planning is engine/corrections.py and engine/deleteplan.py, the bytes
engine/journal.py, the apply engine/writeapply.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mkts.engine.keys import BucketKey

__all__ = ["ClearWrite", "DropYear", "CLEAR_ZERO", "CLEAR_TOMBSTONE", "FILE_BIN",
           "FILE_SEALED", "FILE_OVERLAY", "FILE_ALL"]

# docs/wal.md §10 op 3 `mode`: 0 zeroes the records of a live year file; 1 writes tombstones
# into the overlay of a sealed year (docs/format.md "Deletes and updates").
CLEAR_ZERO = 0
CLEAR_TOMBSTONE = 1
# docs/wal.md §10 op 5 `files`: which files of the year to remove (a live year: FILE_BIN; a
# sealed one: FILE_SEALED | FILE_OVERLAY).
FILE_BIN = 1
FILE_SEALED = 2
FILE_OVERLAY = 4
FILE_ALL = FILE_BIN | FILE_SEALED | FILE_OVERLAY


@dataclass
class ClearWrite:
    """Clear the occupied slots `first`..`last` (inclusive; none when last < first) of one
    year file. `start_ns`..`end_ns` (inclusive) is the time range the delete removed from
    this year file (what triggers are told): every row in it is gone once the transaction
    is applied, those of intervals a tick delete cut included."""

    key: BucketKey
    year: int
    first: int
    last: int
    start_ns: int
    end_ns: int
    record_size: int
    mode: int = CLEAR_ZERO
    removed_rows: int = 0  # known when planned; 0 for a replayed record
    token: Any = None  # the tick planner's pending zeros (engine/ticks.py `clear`)

    @property
    def nbytes(self) -> int:
        return 64


@dataclass
class DropYear:
    """Remove the files `files` (FILE_* bits) of one year of a bucket. `start_ns`..`end_ns`
    is the time range the delete removed (the year held no rows outside it), what triggers
    are told."""

    key: BucketKey
    year: int
    start_ns: int
    end_ns: int
    files: int = FILE_BIN
    removed_rows: int = 0

    @property
    def nbytes(self) -> int:
        return 32
