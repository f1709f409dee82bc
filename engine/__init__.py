"""mkts storage engine: the embedded database API.

    import engine
    with engine.open("data") as db:
        db.write("AAPL/1Min/OHLCV", bars)
        r = db.read("AAPL/1Min/OHLCV", "2024-01-02", "2024-01-03")
"""

from engine.database import Database, WriteEvent
from engine.database import open_database as open
from engine.errors import (
    BucketExistsError,
    BucketNotFoundError,
    ClosedError,
    CorruptFileError,
    CorruptWALError,
    InvalidInputError,
    InvalidKeyError,
    LockedError,
    MktsError,
    ReadOnlyError,
    SchemaError,
    StoreFailedError,
    UnsupportedFormatError,
)
from engine.result import Result

__all__ = [
    "open",
    "Database",
    "Result",
    "WriteEvent",
    "MktsError",
    "InvalidInputError",
    "InvalidKeyError",
    "SchemaError",
    "BucketNotFoundError",
    "BucketExistsError",
    "ReadOnlyError",
    "LockedError",
    "StoreFailedError",
    "ClosedError",
    "CorruptFileError",
    "CorruptWALError",
    "UnsupportedFormatError",
]
