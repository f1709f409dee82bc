"""mkts storage engine: the embedded database API.

    from mkts import engine
    with engine.open("data") as db:
        db.write("AAPL/1Min/OHLCV", bars)
        r = db.read("AAPL/1Min/OHLCV", "2024-01-02", "2024-01-03")
"""

from mkts.engine.contracts import BgWorker, Trigger
from mkts.engine.database import Database, WriteEvent
from mkts.engine.database import open_database as open
from mkts.engine.dispatch import Records, Subscription
from mkts.engine.errors import (
    BucketExistsError,
    BucketNotFoundError,
    ClosedError,
    CorruptFileError,
    CorruptWALError,
    FunctionError,
    InvalidInputError,
    InvalidKeyError,
    LockedError,
    MktsError,
    ReadOnlyError,
    RootNotFoundError,
    SchemaError,
    SqlError,
    StoreFailedError,
    UnknownColumnError,
    UnsupportedFormatError,
)
from mkts.engine.functions import Function, FunctionArgs, FunctionContext
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.patterns import KeyPattern, parse_pattern
from mkts.engine.result import Result
from mkts.engine.timeframes import Timeframe, parse_timeframe
from mkts.engine.timeutil import NS, Calendar, get_calendar, parse_time_text, to_epoch_ns

__all__ = [
    "open",
    "Database",
    "Result",
    "WriteEvent",
    "Records",
    "KeyPattern",
    "parse_pattern",
    "Subscription",
    "Trigger",
    "BgWorker",
    "Function",
    "FunctionArgs",
    "FunctionContext",
    "BucketKey",
    "parse_key",
    "Timeframe",
    "parse_timeframe",
    "Calendar",
    "get_calendar",
    "to_epoch_ns",
    "parse_time_text",
    "NS",
    "MktsError",
    "InvalidInputError",
    "InvalidKeyError",
    "SchemaError",
    "UnknownColumnError",
    "FunctionError",
    "BucketNotFoundError",
    "BucketExistsError",
    "ReadOnlyError",
    "RootNotFoundError",
    "LockedError",
    "StoreFailedError",
    "ClosedError",
    "CorruptFileError",
    "SqlError",
    "CorruptWALError",
    "UnsupportedFormatError",
]
