"""The write-ahead log: segment files of checksummed, consecutively numbered records.

Knows nothing about buckets; the engine encodes and decodes payloads. Format: docs/wal.md.
"""

from __future__ import annotations

from mkts.wal.errors import CorruptWALError, MktsError, UnsupportedFormatError, WalError
from mkts.wal.format import MAX_PAYLOAD, RT_DATA
from mkts.wal.fs import FileSystem, OsFileSystem
from mkts.wal.log import Record, WriteAheadLog

__all__ = [
    "WriteAheadLog",
    "Record",
    "RT_DATA",
    "MAX_PAYLOAD",
    "FileSystem",
    "OsFileSystem",
    "MktsError",
    "WalError",
    "CorruptWALError",
    "UnsupportedFormatError",
]
