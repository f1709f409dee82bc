"""CRC-32C (Castagnoli), the checksum of WAL records and file headers.

Hardware-accelerated through the `crc32c` package; see docs/wal.md §1.
"""

from __future__ import annotations

import crc32c as _crc32c

__all__ = ["crc32c"]


def _crc(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C of `data`, continuing from `value` (0 to start). crc32c(b"123456789") == 0xE3069283."""
    return int(_crc32c.crc32c(data, value))


# The package's own function (it returns an int) when it behaves as documented: no Python
# call layer on the hot path of every log record.
crc32c = _crc32c.crc32c if _crc32c.crc32c(b"123456789") == 0xE3069283 else _crc
