"""The `mkts` commands that maintain a database: destroy, alter, delete, compact, seal,
check, backup, wal inspect, rebuild-aggregates. Each deleting one asks first
(`confirm_deletion`); each returns the exit status."""

from __future__ import annotations

import argparse
import os
import sys

from mkts.clibase import (
    DEFAULT_CONFIG,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    _Target,
    _time_arg,
    _want_progress,
    confirm_deletion,
)


def cmd_destroy(args: argparse.Namespace) -> int:
    target = _Target(args)
    if not getattr(args, "yes", False):
        with target.open_readonly() as db:  # a missing bucket is an error, not a question
            info = db.info(args.key)
        years = info["years"]
        span = (f" in {years[0]}" if len(years) == 1 else
                f" in {years[0]}-{years[-1]}" if years else "")
        confirm_deletion(f"bucket {info['key']} and all its data ({info['rows']} rows{span})",
                         args)
    with target.open_writable() as db:
        gone = db.destroy(args.key)
    also = f" and the buckets its triggers maintain: {', '.join(gone[1:])}" if gone[1:] else ""
    print(f"destroyed {args.key}{also}")
    return EXIT_OK


def cmd_alter(args: argparse.Namespace) -> int:
    """`mkts alter KEY add NAME DTYPE [--fill V] | drop NAME | rename OLD NEW`."""
    target = _Target(args)
    op, names = args.op, list(args.names)
    want = {"add": 2, "drop": 1, "rename": 2}[op]
    usage = {"add": "add NAME DTYPE [--fill V]", "drop": "drop NAME", "rename": "rename OLD NEW"}
    if len(names) != want or (args.fill is not None and op != "add"):
        raise CliError(f"mkts alter KEY {usage[op]}", EXIT_USAGE)
    if op == "drop":
        with target.open_readonly() as db:  # an unknown column is an error, not a question
            cols = db.info(args.key)["columns"]
        if names[0] not in cols:
            raise CliError(f"{args.key} has no column {names[0]!r}; it has "
                           f"{', '.join(c for c in cols if c not in ('Epoch', 'Nanoseconds'))}")
        confirm_deletion(f"column {names[0]} of {args.key} (its values in every year)", args)
    with target.open_writable() as db:
        if op == "add":
            db.add_column(args.key, names[0], names[1], _fill_arg(args.fill))
            print(f"{args.key}: added column {names[0]} ({names[1]})")
        elif op == "drop":
            db.drop_column(args.key, names[0])
            print(f"{args.key}: dropped column {names[0]}")
        else:
            db.rename_column(args.key, names[0], names[1])
            print(f"{args.key}: renamed column {names[0]} to {names[1]}")
        cols = db.info(args.key)["columns"]
    print(f"columns:    {', '.join(f'{n} {t}' for n, t in cols.items())}")
    return EXIT_OK


def _fill_arg(text: str | None) -> int | float | str:
    """--fill as given: an integer, else a number, else the text itself."""
    if text is None:
        return 0
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def cmd_delete(args: argparse.Namespace) -> int:
    target = _Target(args)
    start, end = _time_arg(args.start, "start"), _time_arg(args.end, "end")
    span = f"from {args.start or 'the first row'} to {args.end or 'the last row'}"
    if not getattr(args, "yes", False):
        with target.open_readonly() as db:  # a missing bucket is an error, not a question
            info = db.info(args.key)
        confirm_deletion(f"the rows of {info['key']} {span}", args)
    with target.open_writable() as db:
        n = db.delete(args.key, start, end)
        db.wait_for_triggers()
    print(f"deleted {n} row{'s' if n != 1 else ''} of {args.key} {span}")
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    with _Target(args).open_writable() as db:
        res = db.compact(args.key)
    before, after = res["before"], res["after"]
    if before == after == 0:
        print(f"{args.key}: nothing to compact (fixed buckets hold no garbage)")
    elif before == after:
        print(f"{args.key}: already compact ({after} bytes of tick data)")
    else:
        print(f"compacted {args.key}: data {before} -> {after} bytes "
              f"({before - after} reclaimed)")
    return EXIT_OK


def cmd_seal(args: argparse.Namespace) -> int:
    with _Target(args).open_writable() as db:
        done = db.seal(args.key, args.year)
    if not done:
        print("nothing to seal (no live closed year" + (f" {args.year}" if args.year else "")
              + (f" in {args.key}" if args.key else "") + ")")
    for item in done:
        print(f"sealed {item}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from mkts import wiring
    from mkts.check import check_root
    from mkts.plugins.errors import PluginError

    target = _Target(args)
    try:
        specs = [] if args.no_aggregates else wiring.aggregation_specs(target.config)
    except PluginError as exc:
        raise CliError(f"{exc}; fix it in mkts.yml, or pass --no-aggregates to check "
                       "without aggregates") from None
    report = check_root(target.root, aggregates=specs, progress=_want_progress(args))
    for f in report.findings:
        print(f, file=sys.stdout if f.severity == "note" else sys.stderr)
    agg = f", {report.aggregates_checked} aggregate(s)" if specs else ""
    summary = (f"checked {report.buckets} bucket(s), {report.files} year file(s), "
               f"{report.records} record slot(s), {report.wal_pending} log transaction(s){agg}")
    if report.in_use_by:
        summary += f"; the database is in use by pid {report.in_use_by}"
    errors = len(report.errors)
    if errors:
        print(f"{summary}: {errors} problem(s) found", file=sys.stderr)
        return EXIT_FAIL
    print(f"{summary}: ok")
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    from mkts.engine.backup import backup_root
    from mkts.engine.rootmeta import writer_of
    from mkts.wal.fs import OsFileSystem

    root = os.path.abspath(args.root_dir)
    holder = writer_of(OsFileSystem(), root) if os.path.isdir(root) else None
    if holder is not None:
        print(f"{root} is open in pid {holder}: copying while it writes")
    result = backup_root(root, args.dest)
    print(result.summary())
    print(f"restore: open {result.dest} as a database root (or copy it back as a whole)")
    return EXIT_OK


def cmd_wal(args: argparse.Namespace) -> int:
    if args.wal_command != "inspect":
        raise CliError("usage: mkts wal inspect [PATH]", EXIT_USAGE)
    from mkts.wal import inspect as wal_inspect

    if args.path is None:
        root = _Target(args).root
        if not os.path.isdir(root):
            from mkts.engine import RootNotFoundError

            raise RootNotFoundError(f"database root {root} does not exist; check the path")
    path = args.path or os.path.join(_Target(args).root, "wal")
    if not os.path.exists(path):
        raise CliError(f"{path}: no such write-ahead log directory or segment")
    return int(wal_inspect.main([path]))


def cmd_rebuild(args: argparse.Namespace) -> int:
    from mkts import wiring

    target = _Target(args)
    specs = wiring.aggregation_specs(target.config)
    if args.on:
        specs = [s for s in specs if s.on == args.on]
    if not specs:
        where = "--root has no mkts.yml" if target.config is None else \
            f"{target.config_path or DEFAULT_CONFIG} configures no ondiskagg trigger" + \
            (f" on {args.on!r}" if args.on else "")
        raise CliError(f"nothing to rebuild: {where}")
    total = 0
    with target.open_writable() as db:
        for spec in specs:
            n = wiring.rebuild_aggregates(db, spec, progress=_want_progress(args))
            print(f"rebuilt {', '.join(spec.destinations)} from {spec.on}: {n} bars")
            total += n
        db.wait_for_triggers()
    return EXIT_OK
