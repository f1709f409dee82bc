"""The `mkts` argument parser: every subcommand, its options and help text, and the command
function it runs (`func`). The commands live in clidata, climaint and clisetup."""

from __future__ import annotations

import argparse

import mkts
from mkts.clibase import DEFAULT_CONFIG
from mkts.clidata import cmd_export, cmd_import, cmd_info, cmd_list, cmd_query, cmd_sql
from mkts.climaint import (
    cmd_alter,
    cmd_backup,
    cmd_check,
    cmd_compact,
    cmd_delete,
    cmd_destroy,
    cmd_rebuild,
    cmd_seal,
    cmd_wal,
)
from mkts.clisetup import cmd_bench, cmd_init, cmd_start


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mkts",
        description="mkts: an embedded tick database with a MarketStore-compatible server.",
        epilog="Commands that open a database take -c mkts.yml (default ./mkts.yml) or "
               "--root DIR. See docs/cli.md.")
    p.add_argument("--version", action="version", version=f"mkts {mkts.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    db_opts = argparse.ArgumentParser(add_help=False)
    g = db_opts.add_mutually_exclusive_group()
    g.add_argument("-c", "--config", metavar="PATH",
                   help=f"the mkts.yml to use (default ./{DEFAULT_CONFIG})")
    g.add_argument("--root", metavar="DIR", help="open this database root directly, without "
                   "mkts.yml (no plugins)")
    yes_opts = argparse.ArgumentParser(add_help=False)  # every command that deletes data
    yes_opts.add_argument("-y", "--yes", action="store_true", help="delete without asking "
                          "(needed when stdin is not a terminal)")
    prog_opts = argparse.ArgumentParser(add_help=False)
    pg = prog_opts.add_mutually_exclusive_group()
    pg.add_argument("--progress", dest="progress", action="store_true", default=None,
                    help="show a progress bar (default: when stderr is a terminal)")
    pg.add_argument("--no-progress", dest="progress", action="store_false")

    s = sub.add_parser("init", help="write a commented default mkts.yml",
                       description="Write the commented default configuration.")
    s.add_argument("-c", "--config", metavar="PATH", help=f"where to write it (default "
                   f"./{DEFAULT_CONFIG})")
    s.add_argument("--root-directory", metavar="DIR", help="set root_directory in the file")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("start", parents=[db_opts], help="run the server (/rpc, /ws, gRPC)",
                       description="Open the database (lock, replay, plugins, workers) and serve "
                       "MarketStore's JSON-RPC, streaming and (with grpc_listen_port) gRPC "
                       "protocols until SIGINT/SIGTERM.")
    s.add_argument("--host", help="listen on this address (overrides listen_host)")
    s.add_argument("--port", type=int, help="listen on this port (overrides listen_port; 0 = "
                   "any free port)")
    s.add_argument("--grpc-port", type=int, help="serve gRPC on this port (overrides "
                   "grpc_listen_port; 0 = any free port)")
    s.set_defaults(func=cmd_start)

    s = sub.add_parser("query", parents=[db_opts], help="print rows of buckets",
                       description="Print rows of the buckets matching a key pattern: "
                       "AAPL/1Min/OHLCV, AAPL,MSFT/1Min/OHLCV, AA*/1D/*, */1Min/OHLCV (README.md "
                       "'Key patterns'). Opens the database read-only, so it works beside a "
                       "running server.")
    s.add_argument("key", metavar="PATTERN")
    s.add_argument("--start", help="first time (epoch seconds or ISO-8601; without an offset "
                   "in the database's time zone), inclusive")
    s.add_argument("--end", help="last time, inclusive (a date alone: the whole day)")
    s.add_argument("--limit", type=int, help="at most N rows per bucket (the last N, unless "
                   "--first)")
    s.add_argument("--first", action="store_true", help="with --limit: the first N rows")
    s.add_argument("--columns", help="comma-separated columns to show (Epoch always)")
    s.add_argument("--csv", action="store_true", help="CSV output (times in UTC); for a "
                   "pattern other than one key: one table, Key, Epoch, then every bucket's "
                   "columns (empty where a bucket has none)")
    s.add_argument("--epoch", action="store_true", help="raw Epoch seconds (and Nanoseconds) "
                   "instead of ISO times")
    s.set_defaults(func=cmd_query)

    s = sub.add_parser("sql", parents=[db_opts], help="run an SQL SELECT over buckets",
                       description="Run one SQL SELECT with DuckDB (pip install 'mkts[sql]'); "
                       'a bucket key in double quotes is a table: SELECT * FROM '
                       '"AAPL/1Min/OHLCV" WHERE Epoch >= 1704067200. Opens the database '
                       "read-only, so it works beside a running server.")
    s.add_argument("statement", metavar="SQL")
    s.add_argument("--csv", action="store_true", help="CSV output (times in UTC)")
    s.add_argument("--epoch", action="store_true", help="raw Epoch seconds instead of ISO "
                   "times")
    s.set_defaults(func=cmd_sql)

    s = sub.add_parser("import", parents=[db_opts, prog_opts], help="load a CSV file",
                       description="Load FILE.csv (header row; a time column) into KEY, or "
                       "into one bucket per symbol (--symbol-column) or per key "
                       "(--key-column). Every row is validated first; bad rows are listed "
                       "with their line numbers and nothing is written.")
    s.add_argument("key", metavar="KEY", help="the bucket; '*/1Min/OHLCV' with "
                   "--symbol-column; left out (or '*/*/*') with --key-column")
    s.add_argument("file", metavar="FILE.csv", nargs="?")
    s.add_argument("--time-column", metavar="NAME", help="the time column (default: the first "
                   "of Epoch, time, timestamp, datetime, date, ts, any case; Date and Time "
                   "columns are combined)")
    s.add_argument("--time-format", metavar="FMT", help="strptime format of the times (default: "
                   "ISO-8601 or epoch numbers)")
    s.add_argument("--timezone", metavar="TZ", help="zone of times without an offset (default: "
                   "the database's)")
    s.add_argument("--epoch-unit", choices=["s", "ms", "us", "ns"], default="s",
                   help="unit of numeric times (default s)")
    s.add_argument("--dtype", "--types", dest="dtype", action="append",
                   metavar="COL=TYPE[,...]", help="column types for a new bucket, e.g. "
                   "Volume=f8,Venue=U8 (default: f8 for Open/High/Low/Close, i8 for integers, "
                   "f8 for other numbers, text as wide as its longest value); --types is an "
                   "alias")
    s.add_argument("--rename", action="append", metavar="OLD=NEW[,...]", help="rename columns "
                   "of the file, e.g. last=Close (Open, High, Low, Close, Volume and "
                   "Nanoseconds already match in any case)")
    s.add_argument("--skip", metavar="COL[,...]", help="columns of the file to leave out")
    s.add_argument("--delimiter", metavar="CHAR", help="field separator (default: detected "
                   "from the header: , ; tab or |)")
    s.add_argument("--symbol-column", metavar="NAME", help="the column naming each row's "
                   "symbol: KEY is '*/TIMEFRAME/TYPE' and each symbol gets its own bucket")
    s.add_argument("--key-column", metavar="NAME", help="the column holding each row's bucket "
                   "key (as in the CSV of `mkts query PATTERN --csv`); each bucket takes "
                   "its own columns")
    s.add_argument("--ticks", action="store_true", help="create a tick (variable) bucket: any "
                   "number of rows per interval, exact nanoseconds")
    s.add_argument("--replace", action="store_true", help="replace the rows each bucket holds "
                   "in the file's span (its first to its last time) instead of adding to "
                   "them: a corrected day of ticks without duplicates")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("list", parents=[db_opts], help="list buckets",
                       description="List bucket keys (or, with --symbols, symbols), all of them "
                       "or those matching a key pattern (README.md 'Key patterns').")
    s.add_argument("pattern", nargs="?", metavar="PATTERN", help="only keys matching this "
                   "pattern, e.g. '*/1Min/*' or 'AA*,MSFT/*/OHLCV' (default: every key)")
    lg = s.add_mutually_exclusive_group()
    lg.add_argument("--symbols", action="store_true", help="list symbols instead of keys")
    lg.add_argument("-l", "--long", action="store_true", help="one line per bucket: kind "
                    "(bars or ticks), first and last time (database time zone), rows, and "
                    "bytes on disk (allocated, apparent)")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", parents=[db_opts], help="describe a bucket",
                       description="Show a bucket's kind, columns, years and time range.")
    s.add_argument("key", metavar="KEY")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("destroy", parents=[db_opts, yes_opts], help="delete a bucket and its "
                       "data", description="Delete a bucket and all its data, durably, "
                       "together with the buckets the configured triggers maintain from it "
                       "(ondiskagg's aggregates of a base bucket). Asks for confirmation on a "
                       "terminal; --yes skips the question (and is required when stdin is not "
                       "a terminal).")
    s.add_argument("key", metavar="KEY")
    s.set_defaults(func=cmd_destroy)

    s = sub.add_parser("alter", parents=[db_opts, yes_opts], help="add, drop or rename a "
                       "column", description="Change a bucket's columns: `add NAME DTYPE "
                       "[--fill V]` (rows written before read V, default 0), `drop NAME`, "
                       "`rename OLD NEW`. One logged transaction; no data file is rewritten. "
                       "drop asks for confirmation on a terminal (--yes skips it).")
    s.add_argument("key", metavar="KEY")
    s.add_argument("op", choices=("add", "drop", "rename"))
    s.add_argument("names", nargs="+", metavar="NAME")
    s.add_argument("--fill", metavar="V", help="add: the value of the new column in rows "
                   "written before it (default 0; '' for strings)")
    s.set_defaults(func=cmd_alter)
    s = sub.add_parser("delete", parents=[db_opts, yes_opts], help="delete a range of rows",
                       description="Remove the rows of KEY with START <= time <= END (interval "
                       "labels for bars, exact times for ticks; both ends optional), as one "
                       "transaction; a year left without rows loses its file. The buckets "
                       "the configured triggers maintain from KEY are recomputed. Asks for "
                       "confirmation on a terminal; --yes skips the question (and is required "
                       "when stdin is not a terminal).")
    s.add_argument("key", metavar="KEY")
    s.add_argument("--start", help="first time (epoch seconds or ISO-8601; without an offset "
                   "in the database's time zone), inclusive; default: the first row")
    s.add_argument("--end", help="last time, inclusive (a date alone: the whole day); "
                   "default: the last row")
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("check", parents=[db_opts, prog_opts], help="verify files, log and "
                       "aggregates", description="Verify headers, slot arrays, tick blobs, the "
                       "write-ahead log and (with ondiskagg configured) the aggregates. "
                       "Read-only. Exit status 1 when a problem is found.")
    s.add_argument("--no-aggregates", action="store_true", help="skip comparing aggregates")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("backup", help="copy a database consistently while it is written",
                       description="Copy the database at ROOT into the directory DEST while "
                       "writers keep writing: the copy holds the database as of one "
                       "transaction (printed) and opens as a root of its own. A later backup "
                       "into the same DEST copies only the files that changed; an interrupted "
                       "one leaves DEST as it was. See docs/backup.md.")
    s.add_argument("root_dir", metavar="ROOT", help="the database root")
    s.add_argument("dest", metavar="DEST", help="the backup directory (new, empty, or an "
                   "earlier backup)")
    s.set_defaults(func=cmd_backup)

    s = sub.add_parser("wal", parents=[db_opts], help="write-ahead log tools",
                       description="Write-ahead log tools.")
    wsub = s.add_subparsers(dest="wal_command", metavar="SUBCOMMAND")
    w = wsub.add_parser("inspect", parents=[db_opts], help="print segments and records",
                        description="Print the log's segments and records and say where it "
                        "ends (python -m mkts.wal.inspect). Exit 1 on corruption.")
    w.add_argument("path", nargs="?", metavar="PATH", help="a segment or log directory "
                   "(default: the root's wal/)")
    s.set_defaults(func=cmd_wal)

    s = sub.add_parser("compact", parents=[db_opts], help="reclaim space in a tick bucket",
                       description="Rewrite a tick bucket's files without garbage.")
    s.add_argument("key", metavar="KEY")
    s.set_defaults(func=cmd_compact)

    s = sub.add_parser("seal", parents=[db_opts], help="seal closed years (compressed, "
                       "immutable, checksummed)",
                       description="Rewrite closed years as sealed files (docs/format.md "
                       "\"The three states of a year\"): every year before the current one "
                       "of every bucket, or of KEY, or only --year.")
    s.add_argument("key", nargs="?", metavar="KEY")
    s.add_argument("--year", type=int, default=None, help="seal this year (the current one "
                   "too)")
    s.set_defaults(func=cmd_seal)

    s = sub.add_parser("rebuild-aggregates", parents=[db_opts, prog_opts],
                       help="recompute ondiskagg outputs from scratch",
                       description="Recompute every destination of the ondiskagg triggers in "
                       "mkts.yml from their base buckets.")
    s.add_argument("--on", metavar="PATTERN", help="only the trigger whose `on:` is this "
                   "pattern (as written in mkts.yml)")
    s.set_defaults(func=cmd_rebuild)

    s = sub.add_parser("export", parents=[db_opts, prog_opts], help="write buckets as Parquet",
                       description="Write buckets matching --pattern to DEST as a Hive-"
                       "partitioned Parquet dataset (symbol=/timeframe=/attrgroup=/year=, zstd). "
                       "Re-running replaces exactly the partitions it writes, each atomically. "
                       "Opens the database read-only: the root of -c mkts.yml (default "
                       "./mkts.yml), of --root DIR, or ROOT. See docs/scale.md.")
    s.add_argument("root_dir", nargs="?", metavar="ROOT", help="the database root directory "
                   "(instead of -c or --root)")
    s.add_argument("dest", metavar="DEST", help="the dataset directory (created if missing)")
    s.add_argument("--pattern", default="*/*/*", metavar="PATTERN",
                   help="buckets to export, a key pattern (README.md 'Key patterns'; default "
                   "*/*/*)")
    s.add_argument("--start", help="first time (epoch seconds or ISO-8601; without an offset "
                   "in the database's time zone), inclusive")
    s.add_argument("--end", help="last time, inclusive (a date alone: the whole day)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("bench", help="run the benchmark comparison",
                       description="Run benchmarks/compare.py with the arguments that follow "
                       "(e.g. mkts bench --quick; mkts bench -- --help for its options).")
    s.add_argument("bench_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_bench)
    return p
