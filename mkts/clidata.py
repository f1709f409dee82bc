"""The `mkts` commands that read or load data: query, sql, import, list, info, export.
Each takes the parsed arguments and returns the exit status; parsing is cliparser's."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

from mkts.clibase import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    _columns_arg,
    _pairs,
    _say,
    _Target,
    _time_arg,
    _want_progress,
)
from mkts.cliprint import _format_times, _print_aligned, _write_csv, _write_table


def cmd_query(args: argparse.Namespace) -> int:
    from mkts import engine

    target = _Target(args)
    start, end = _time_arg(args.start, "start"), _time_arg(args.end, "end")
    if args.limit is not None and args.limit < 0:
        raise CliError("--limit must not be negative")
    with target.open_readonly() as db:
        results = db.query(args.key, start, end, limit=args.limit,
                           limit_from_start=args.first, columns=_columns_arg(args.columns))
        if not results:
            raise CliError(f"no bucket matches {args.key}") from None
        for missing in _unmatched(args.key, db.list_keys()):
            _say("query", missing)
        ranged = " in the range" if start is not None or end is not None else ""
        for key, r in results.items():
            if not len(r):
                _say("query", f"{key}: no rows{ranged}")
        out = sys.stdout
        if args.csv:
            # several buckets possible: one long table with a Key column (docs/cli.md)
            keyed = not engine.parse_pattern(args.key).exact
            _write_csv(out, results, args.epoch, keyed)
        else:
            for i, (key, r) in enumerate(results.items()):
                if len(results) > 1:
                    print(("\n" if i else "") + f"{key} ({len(r)} rows)", file=out)
                _write_table(out, r, db.timezone, args.epoch)
    return EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    target = _Target(args)
    with target.open_readonly() as db:
        try:
            r = db.sql(args.statement)
        except ImportError as exc:
            raise CliError(str(exc)) from None
        if not len(r):
            _say("sql", "no rows")
        # Epoch (int64 seconds) prints as a time unless --epoch; other columns as they are
        timed = not args.epoch and "Epoch" in r.columns and r["Epoch"].dtype.kind in "iu"
        if args.csv:
            _write_csv(sys.stdout, {"SQL": r}, not timed, keyed=False)
        else:
            _write_table(sys.stdout, r, db.timezone, not timed)
    return EXIT_OK


def _unmatched(pattern: str, keys: list[str], most: int = 1000) -> list[str]:
    """What to say about each part of `pattern` (one alternative per key part: a key, or a
    pattern with globs) that matches none of `keys`."""
    import itertools

    from mkts import engine

    alternatives = [[a.strip(" ") for a in part.split(",")] for part in pattern.split("/")]
    if len(alternatives) != 3 or len(alternatives[0]) * len(alternatives[1]) * len(
            alternatives[2]) > most:
        return []
    out = []
    for combo in itertools.product(*alternatives):
        sub = engine.parse_pattern("/".join(combo))
        if not sub.select(keys):
            out.append(f"bucket {sub} does not exist" if sub.exact else f"no bucket matches {sub}")
    return out


def cmd_import(args: argparse.Namespace) -> int:
    from mkts.csvimport import CsvProblem, import_csv
    from mkts.wire import WireError, parse_wire_type

    key, file = args.key, args.file
    if file is None:  # `mkts import --key-column Key FILE.csv`: the one positional is the file
        key, file = None, key
    if key is None and args.key_column is None:
        raise CliError("give KEY and FILE.csv (or FILE.csv with --key-column)", EXIT_USAGE)
    types: dict[str, Any] = {}
    for name, t in _pairs(args.dtype, "--dtype", "Close=f4"):
        try:
            types[name] = parse_wire_type(t)
        except WireError as exc:
            raise CliError(f"--dtype {name}={t}: {exc}") from None
    rename = dict(_pairs(args.rename, "--rename", "open_price=Open"))
    target = _Target(args)
    if not os.path.isfile(file):
        raise CliError(f"{file}: no such file")
    progress = _want_progress(args)
    with target.open_writable() as db:
        try:
            res = import_csv(db, key, file, variable=True if args.ticks else None,
                             time_column=args.time_column, time_format=args.time_format,
                             timezone=args.timezone, epoch_unit=args.epoch_unit,
                             types=types or None, skip=tuple(_columns_arg(args.skip) or ()),
                             rename=rename, delimiter=args.delimiter,
                             symbol_column=args.symbol_column, key_column=args.key_column,
                             progress=progress, replace=args.replace)
        except CsvProblem as exc:
            for line in exc.problems:
                print(f"{file}: {line}", file=sys.stderr)
            if exc.bad_rows > len(exc.problems):
                print(f"{file}: ... and {exc.bad_rows - len(exc.problems)} more bad rows",
                      file=sys.stderr)
            raise CliError(exc.summary) from None
        db.wait_for_triggers()
    how = "one transaction" if res.transactions == 1 else f"{res.transactions} transactions"
    for line in _import_summary(res, key, how):
        print(line)
    return EXIT_OK


def _import_summary(res: Any, key: str | None, how: str) -> list[str]:
    def dups(b: Any) -> str:
        d = b.duplicates
        return "" if not d else (f", {b.intervals} interval{'s' if b.intervals != 1 else ''} "
                                 f"written, {d} duplicate interval{'s' if d != 1 else ''}: "
                                 "last wins")

    def new(b: Any) -> str:
        return " (new bucket: " + ", ".join(f"{c} {t}" for c, t in b.columns.items()) + ")" \
            if b.created and b.columns else ""

    if len(res.buckets) <= 1 and key is not None and "*" not in key:
        if not res.buckets:
            return [f"imported 0 rows into {key}"]
        b = res.buckets[0]
        verb = f"read {b.rows} rows" if b.duplicates else f"imported {b.rows} rows"
        return [f"{verb} into {key} in {how}{dups(b)}{new(b)}"]
    nb = len(res.buckets)
    made = sum(b.created for b in res.buckets)
    lines = [f"imported {res.rows} rows into {nb} bucket{'s' if nb != 1 else ''}"
             f"{f' ({made} new)' if made else ''} in {how}"]
    for b in res.buckets:
        lines.append(f"  {b.key}: read {b.rows} rows{dups(b)}{new(b)}")
    return lines


def cmd_list(args: argparse.Namespace) -> int:
    from mkts import engine

    with _Target(args).open_readonly() as db:
        keys = db.list_keys()
        if args.pattern is not None:
            keys = engine.parse_pattern(args.pattern).select(keys)
        if args.long:
            if not keys:
                return EXIT_OK
            _print_aligned(sys.stdout, ["KEY", "KIND", "FIRST", "LAST", "ROWS", "ALLOCATED",
                                        "APPARENT"], [_long_row(db, k) for k in keys], left=4)
            return EXIT_OK
        names = sorted({k.split("/", 1)[0] for k in keys}) if args.symbols else keys
        for name in names:
            print(name)
    return EXIT_OK


def _long_row(db: Any, key: str) -> list[str]:
    """`mkts list --long`: kind, first and last time (database zone), rows, and the bytes
    of the bucket's files on disk, allocated (year files are sparse) and apparent."""
    info = db.info(key)
    times = ["-", "-"]
    for i, r in enumerate((db.read(key, limit=1, limit_from_start=True), db.read(key, limit=1))):
        if len(r):
            nanos = np.asarray(r["Nanoseconds"]) if r.ticks else None
            times[i] = _format_times(np.asarray(r["Epoch"]), nanos, db.timezone)[0]
    allocated = apparent = 0
    with os.scandir(os.path.join(db.root, *key.split("/"))) as entries:
        for e in entries:
            if e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                allocated += st.st_blocks * 512
                apparent += st.st_size
    kind = "ticks" if info["kind"] == "variable" else "bars"
    return [key, kind, *times, str(info["rows"]), str(allocated), str(apparent)]


def cmd_info(args: argparse.Namespace) -> int:
    with _Target(args).open_readonly() as db:
        info = db.info(args.key)
        first = db.read(args.key, limit=1, limit_from_start=True)
        last = db.read(args.key, limit=1)
        print(f"key:        {info['key']}")
        print(f"kind:       {info['kind']}" + (" (ticks)" if info["kind"] == "variable" else ""))
        print(f"timeframe:  {info['timeframe']}")
        print("columns:    " + ", ".join(f"{c} {t}" for c, t in info["columns"].items()))
        print("years:      " + (", ".join(f"{y} (sealed)" if y in info["sealed"] else str(y)
                                           for y in info["years"]) or "none"))
        if len(first):
            nf = np.asarray(first["Nanoseconds"]) if first.ticks else None
            nl = np.asarray(last["Nanoseconds"]) if last.ticks else None
            print(f"first:      {_format_times(np.asarray(first['Epoch']), nf, db.timezone)[0]}")
            print(f"last:       {_format_times(np.asarray(last['Epoch']), nl, db.timezone)[0]}")
        else:
            print("first:      (empty)")
        print(f"rows:       {info['rows']}")
        if "live_bytes" in info:  # tick buckets
            print(f"bytes:      {info['live_bytes']} live, {info['garbage_bytes']} reclaimable "
                  "by `mkts compact`")
        print(f"timezone:   {db.timezone}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    if args.root_dir is not None:  # `mkts export ROOT DEST`, as before -c/--root existed
        if args.root is not None or args.config is not None:
            raise CliError("give the database once: `mkts export ROOT DEST` or `mkts export "
                           "-c mkts.yml DEST` (or --root DIR DEST)", EXIT_USAGE)
        root = os.path.abspath(args.root_dir)
    else:
        root = _Target(args).root
    if not os.path.isdir(root):
        raise CliError(f"database root {root} does not exist")
    start, end = _time_arg(args.start, "start"), _time_arg(args.end, "end")
    try:
        from mkts.export import export_parquet

        res = export_parquet(root, args.dest, pattern=args.pattern, start=start, end=end,
                             progress=_want_progress(args))
    except ImportError as exc:
        raise CliError(str(exc)) from None
    rate = res.rows / res.seconds if res.seconds > 0 else 0.0
    print(f"exported {res.rows} rows in {res.partitions} partition(s), {res.bytes} bytes, to "
          f"{os.path.abspath(args.dest)} in {res.seconds:.1f} s ({rate:,.0f} rows/s)")
    if res.partial:
        print(f"note: the range cuts the year of {res.partial} partition(s); they hold only "
              "the rows in range (export whole years to refresh a partition)")
    return EXIT_OK
