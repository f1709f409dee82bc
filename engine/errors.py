"""Every error the engine raises on purpose, rooted at `MktsError`.

Each class also subclasses the builtin that fits, so callers may catch either:
a missing bucket is a `KeyError`, bad input a `ValueError`, a read-only handle a `PermissionError`.
"""

from __future__ import annotations

from mkts.wal.errors import CorruptWALError, MktsError, UnsupportedFormatError, WalError

__all__ = [
    "MktsError",
    "InvalidInputError",
    "InvalidKeyError",
    "SchemaError",
    "UnknownColumnError",
    "FunctionError",
    "BucketNotFoundError",
    "BucketExistsError",
    "RootNotFoundError",
    "ReadOnlyError",
    "LockedError",
    "StoreFailedError",
    "ClosedError",
    "CorruptFileError",
    "SqlError",
    "CorruptWALError",
    "UnsupportedFormatError",
    "WalError",
]


class InvalidInputError(MktsError, ValueError):
    """The data or an argument is not acceptable; nothing was written."""


class InvalidKeyError(InvalidInputError):
    """A bucket key or pattern is malformed."""


class SchemaError(InvalidInputError):
    """Columns do not match the bucket's schema, or a type cannot be cast safely."""


class UnknownColumnError(SchemaError, KeyError):
    """A column name that the bucket or result does not have (also a KeyError, like a dict)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FunctionError(InvalidInputError):
    """A query function call that cannot run: unparseable, unknown, badly bound, or given
    input it cannot use. The message is MarketStore's text where MarketStore has one."""


class BucketNotFoundError(MktsError, KeyError):
    """No bucket with this key."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message reads better plain
        return str(self.args[0]) if self.args else ""


class RootNotFoundError(InvalidInputError, FileNotFoundError):
    """The database root directory does not exist and was not to be created (a read-only
    open, or `create=False`): usually a mistyped path."""


class BucketExistsError(MktsError, ValueError):
    """create() of a bucket that already exists with a different definition."""


class ReadOnlyError(MktsError, PermissionError):
    """A write was attempted through a read-only handle."""


class LockedError(MktsError, BlockingIOError):
    """Another writer holds the root's lock."""


class StoreFailedError(MktsError, OSError):
    """An I/O error made this handle stop accepting writes; close and reopen to recover."""


class ClosedError(MktsError, ValueError):
    """The database handle is closed."""


class CorruptFileError(MktsError, OSError):
    """A data file is damaged (bad header checksum, misplaced record, damaged blob)."""


class SqlError(InvalidInputError):
    """An SQL statement that cannot be parsed or run (db.sql, `mkts sql`, SQL over the
    server); the message names the statement and the construct or DuckDB's reason."""
