"""CRC-32C (Castagnoli), the checksum of WAL records and file headers.

Hardware-accelerated through the `crc32c` package; see docs/wal.md "Checksums".
"""

from __future__ import annotations

import crc32c as _crc32c

__all__ = ["crc32c"]


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C of `data`, continuing from `value` (0 to start). crc32c(b"123456789") == 0xE3069283."""
    return int(_crc32c.crc32c(data, value))
