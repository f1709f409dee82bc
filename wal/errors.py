"""Errors of the log, and the root of every mkts error (`MktsError`).

The root lives here because wal/ is the lowest package; engine/errors.py re-exports it.
"""

from __future__ import annotations

__all__ = ["MktsError", "WalError", "CorruptWALError", "UnsupportedFormatError"]


class MktsError(Exception):
    """Base class of every error mkts raises on purpose."""


class WalError(MktsError):
    """The write-ahead log cannot be used."""


class CorruptWALError(WalError):
    """A log record is damaged and valid records follow it: acknowledged data would be lost.

    Attributes `segment` (file path) and `offset` (byte offset of the bad record)."""

    def __init__(self, message: str, *, segment: str = "", offset: int = -1) -> None:
        super().__init__(message)
        self.segment = segment
        self.offset = offset


class UnsupportedFormatError(MktsError):
    """A file was written by a format version this build cannot read."""
