"""mkts: an embedded tick database for Python. One import name; everything a user needs is
reachable from here.

    import mkts
    with mkts.open("data") as db:                  # a directory: the database root
        db.write("AAPL/1Min/OHLCV", bars)
        r = db.read("AAPL/1Min/OHLCV", start="2024-01-02", end="2024-01-03")
    with mkts.open("mkts.yml") as db:              # a config: plugins loaded, workers running
        db.write("AAPL/1Min/OHLCV", bars)
        db.wait_for_triggers()                     # the aggregates are up to date

Layers (imports point downward only): `mkts` (config, CLI, server) → `mkts.plugins`
(contracts, loader, bundled plugins) → `mkts.engine` (the database) → `mkts.wal` (the log).
See docs/design.md.
"""

from mkts.app import open
from mkts.config import Config, ConfigError
from mkts.dask_io import read_dask
from mkts.engine import (
    BucketExistsError,
    BucketKey,
    BucketNotFoundError,
    Calendar,
    ClosedError,
    CorruptFileError,
    CorruptWALError,
    Database,
    FunctionError,
    InvalidInputError,
    InvalidKeyError,
    KeyPattern,
    LockedError,
    MktsError,
    ReadOnlyError,
    Records,
    Result,
    RootNotFoundError,
    SchemaError,
    SqlError,
    StoreFailedError,
    Subscription,
    Timeframe,
    UnknownColumnError,
    UnsupportedFormatError,
    WriteEvent,
    get_calendar,
    parse_key,
    parse_pattern,
    parse_timeframe,
    to_epoch_ns,
)
from mkts.export import export_parquet
from mkts.plugins.base import BgWorker, Function, FunctionArgs, FunctionContext, Trigger
from mkts.plugins.errors import PluginError

__all__ = [
    "open",
    "Database",
    "Result",
    "Config",
    "ConfigError",
    "read_dask",
    "export_parquet",
    # plugin contracts
    "Trigger",
    "BgWorker",
    "Function",
    "FunctionArgs",
    "FunctionContext",
    "Records",
    "WriteEvent",
    "Subscription",
    # keys, patterns, timeframes, time
    "BucketKey",
    "parse_key",
    "KeyPattern",
    "parse_pattern",
    "Timeframe",
    "parse_timeframe",
    "Calendar",
    "get_calendar",
    "to_epoch_ns",
    # errors
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
    "PluginError",
]
__version__ = "0.1.0"
