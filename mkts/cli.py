"""The `mkts` command: init, start, query, import, list, info, destroy, delete, check,
wal inspect, compact, seal, rebuild-aggregates, export, bench. See docs/cli.md.

Owns argument parsing, opening the database the right way for each command, and printing.
Every failure is one line on stderr (`mkts <command>: <what went wrong>`) and a non-zero exit
status; `MKTS_DEBUG=1` adds the traceback.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import importlib.resources
import logging
import os
import subprocess
import sys
import traceback
import zoneinfo
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

import mkts
from mkts.engine.timeutil import NS
from mkts.engine.uniq import unique_inverse

__all__ = ["main", "build_parser"]

DEFAULT_CONFIG = "mkts.yml"
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure to report as one line; `status` is the exit code."""

    def __init__(self, message: str, status: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.status = status


# -- opening the database ------------------------------------------------------------------
class _Target:
    """Where a command's database is: a config file (plugins apply) or a bare root."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.root_arg: str | None = getattr(args, "root", None)
        self.config_path: str | None = getattr(args, "config", None)
        self._config: Any = None

    @property
    def config(self) -> Any:
        """The loaded mkts.yml, or None with --root."""
        if self.root_arg is not None:
            return None
        if self._config is None:
            from mkts import wiring

            path = self.config_path or DEFAULT_CONFIG
            if not os.path.exists(path):
                hint = "run `mkts init` to create one, " if self.config_path is None else ""
                raise CliError(f"{path} not found; {hint}pass -c PATH or --root DIR")
            try:
                self._config = wiring.load_config(path)
            except wiring.ConfigProblem as exc:
                raise CliError(str(exc)) from None
        return self._config

    @property
    def root(self) -> str:
        if self.root_arg is not None:
            return os.path.abspath(self.root_arg)
        return str(self.config.root_directory)

    def open_readonly(self) -> Any:
        """For commands that only read: no lock, so they work beside a running server."""
        from mkts import engine

        return engine.open(self.root, readonly=True)  # a missing root: RootNotFoundError

    def open_writable(self) -> Any:
        """For commands that write: the lock, replay, and the configured triggers (so that
        aggregates stay up to date), but no background workers."""
        from mkts import engine

        try:
            if self.config is None:
                return engine.open(self.root)
            from mkts.app import load_plugins

            cfg = self.config
            logging.getLogger("mkts").setLevel(cfg.log_level.upper())
            triggers, _workers = load_plugins(cfg)
            return engine.open(cfg.root_directory, triggers=triggers, **cfg.engine_options())
        except engine.LockedError as exc:
            raise CliError(f"{_lock_text(exc)}; is `mkts start` running on it? Stop it first, "
                           "or send the change through the server") from None


def _lock_text(exc: Exception) -> str:
    """The engine's "root ... is in use by pid N" without its advice for API users."""
    return str(exc).split(";")[0]


# -- small helpers -------------------------------------------------------------------------
def _time_arg(text: str | None, what: str) -> Any:
    """--start / --end: epoch seconds, or an ISO-8601 time checked here and handed to the
    database as text, which reads it in its own zone when it has no offset (a date-only end
    is its whole day: `engine.to_epoch_ns`)."""
    if text is None:
        return None
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        pass
    from mkts.engine.timeutil import to_epoch_ns

    try:
        to_epoch_ns(s, f"--{what}")
    except ValueError:
        raise CliError(f"--{what} {text!r} is not a time; give epoch seconds or ISO-8601 "
                       "like 2024-01-02T09:30:00Z") from None
    return s


def _columns_arg(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [c.strip() for c in text.split(",") if c.strip()]


def _format_times(epoch: np.ndarray, nanos: np.ndarray | None, tz: str) -> list[str]:
    """ISO-8601 times in `tz`, with the offset (Z for UTC); nanoseconds when present."""
    ns = epoch.astype(np.int64) * NS
    if nanos is not None:
        ns = ns + nanos.astype(np.int64)
    unit: Literal["ns", "s"] = "ns" if nanos is not None else "s"
    if tz == "UTC":
        utc: Any = ns.view("datetime64[ns]")
        return [s + "Z" for s in np.datetime_as_string(utc, unit=unit)]
    zone = zoneinfo.ZoneInfo(tz)
    hours = epoch.astype(np.int64) // 3600
    uniq, inverse = unique_inverse(hours)
    offs = []
    for h in uniq.tolist():
        off = _dt.datetime.fromtimestamp(h * 3600, tz=zone).utcoffset()
        offs.append(int(off.total_seconds()) if off is not None else 0)
    off_arr = np.array(offs, dtype=np.int64)[inverse] if len(uniq) else np.zeros(0, np.int64)
    local: Any = (ns + off_arr * NS).view("datetime64[ns]")
    texts = np.datetime_as_string(local, unit=unit)
    return [f"{t}{_offset(int(o))}" for t, o in zip(texts, off_arr, strict=True)]


def _offset(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def confirm_deletion(what: str, args: argparse.Namespace) -> None:
    """Ask on the terminal before a command deletes data; every deleting command calls this
    (and takes `--yes` from the `yes_opts` parent parser). `what` completes "delete ...?".
    Returns when confirmed (or with --yes); otherwise raises CliError, and nothing is deleted.
    Not on a terminal (a script, a pipe) it never waits for an answer: --yes is required."""
    if getattr(args, "yes", False):
        return
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        raise CliError(f"refusing to delete {what} without confirmation: stdin is not a "
                       "terminal; pass --yes to delete without asking")
    print(f"delete {what}? This cannot be undone. [y/N] ", end="", file=sys.stderr,
          flush=True)
    answer = stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        if not answer.endswith("\n"):
            print(file=sys.stderr)  # end the prompt's line (Ctrl-D)
        raise CliError("not confirmed; nothing was deleted")


def _want_progress(args: argparse.Namespace) -> bool:
    choice = getattr(args, "progress", None)
    return sys.stderr.isatty() if choice is None else bool(choice)


# -- commands ------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    path = args.config or DEFAULT_CONFIG
    if os.path.exists(path) and not args.force:
        raise CliError(f"{path} already exists; pass --force to overwrite it")
    text = _default_config_text()
    if args.root_directory:
        lines = text.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.startswith("root_directory:"):
                lines[i] = f"root_directory: {args.root_directory}\n"
                break
        text = "".join(lines)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}; edit it, then run `mkts start -c {path}`")
    return EXIT_OK


def _default_config_text() -> str:
    """The commented default mkts.yml: packaged with mkts when installed from a wheel
    (mkts/mkts.yml), else the repository's own mkts.yml next to the package."""
    try:
        res = importlib.resources.files("mkts").joinpath("mkts.yml")
        if res.is_file():
            return res.read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError):
        pass
    repo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(mkts.__file__))),
                        "mkts.yml")
    try:
        with open(repo, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        raise CliError("the default mkts.yml is not part of this installation; copy it "
                       "from the mkts repository") from None


def cmd_start(args: argparse.Namespace) -> int:
    from mkts import server

    target = _Target(args)
    if target.config is None:
        from mkts import config as _config

        cfg = _config.from_dict({"root_directory": target.root})
    else:
        cfg = target.config
    _setup_logging(cfg.log_level)
    from mkts import engine

    try:
        return server.serve(cfg, host=args.host, port=args.port, grpc_port=args.grpc_port)
    except engine.LockedError as exc:
        raise CliError(f"{_lock_text(exc)}; another mkts server or writing command holds "
                       "it") from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mkts").setLevel(level.upper())


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


def _rows(r: Any, tz: str, raw_epoch: bool) -> tuple[list[str], list[list[str]]]:
    cols = r.columns
    nanos = np.asarray(r["Nanoseconds"]) if r.ticks else None
    names = list(cols) if raw_epoch else ["Epoch"] + [
        c for c in cols if c != "Epoch" and not (c == "Nanoseconds" and r.ticks)]
    # numpy scalars print their shortest round-trip form for their own width (f4 185.3, not
    # the float64 185.3000030517578)
    texts = [[str(v) for v in np.asarray(r[c])] for c in names]
    if not raw_epoch:
        texts[0] = _format_times(np.asarray(r["Epoch"]), nanos, tz)
    return names, [list(row) for row in zip(*texts, strict=True)]


def _write_table(out: Any, r: Any, tz: str, raw_epoch: bool) -> None:
    header, rows = _rows(r, tz, raw_epoch)
    _print_aligned(out, header, rows, left=1)


def _print_aligned(out: Any, header: list[str], rows: list[list[str]], left: int) -> None:
    """A header and rows in columns two spaces apart: the first `left` columns aligned left,
    the rest right."""
    widths = [len(h) for h in header]
    for row in rows:
        for j, cell in enumerate(row):
            widths[j] = max(widths[j], len(cell))
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) if j < left else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip(),
              file=out)


def _write_csv(out: Any, results: dict[str, Any], raw_epoch: bool, keyed: bool) -> None:
    """One CSV table, times in UTC: with `keyed`, a `Key` column first, then `Epoch`, then
    the union of the buckets' other columns in first-seen order, each value under its own
    name and empty where a bucket lacks the column (what `mkts import --key-column Key`
    reads back). A tick bucket's rows also carry their `Nanoseconds` (the time text holds
    the same fraction), so the importer knows them for ticks."""
    tables = []
    for key, r in results.items():
        names, rows = _rows(r, "UTC", raw_epoch)
        if keyed and r.ticks and "Nanoseconds" not in names:
            names = [*names, "Nanoseconds"]
            rows = [[*row, str(ns)] for row, ns in zip(rows, np.asarray(r["Nanoseconds"]),
                                                       strict=True)]
        tables.append((key, names, rows))
    header: list[str] = []
    for table in tables:
        header += [n for n in table[1] if n not in header]
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["Key", *header] if keyed else header)
    for key, names, rows in tables:
        where = [header.index(n) for n in names]
        for row in rows:
            cells = [""] * len(header)
            for j, cell in zip(where, row, strict=True):
                cells[j] = cell
            w.writerow([key, *cells] if keyed else cells)


def _pairs(items: Sequence[str] | None, option: str, example: str) -> list[tuple[str, str]]:
    """NAME=VALUE[,...] options (repeatable) as (name, value) pairs."""
    out = []
    for item in items or ():
        for part in item.split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise CliError(f"{option} {part!r}: write NAME=VALUE, e.g. {example}")
            out.append((name.strip(), value.strip()))
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


def cmd_bench(args: argparse.Namespace) -> int:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(mkts.__file__)))
    if not os.path.exists(os.path.join(repo, "benchmarks", "compare.py")):
        raise CliError("the benchmark runner (benchmarks/compare.py) is not part of this "
                       "installation; run `mkts bench` from a source checkout")
    rest = list(args.bench_args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    # in the caller's directory, so that relative paths (--out, --workdir, --render) mean what
    # they say; -P: the runner is found on PYTHONPATH, never shadowed by ./benchmarks
    return subprocess.call([sys.executable, "-P", "-m", "benchmarks.compare", *rest], env=env)


# -- the parser ----------------------------------------------------------------------------
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"] and argv[1:] not in (["-h"], ["--help"]):
        # everything after `bench` belongs to the benchmark runner, options included
        args = argparse.Namespace(command="bench", func=cmd_bench, bench_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    name = args.command
    try:
        return int(args.func(args))
    except CliError as exc:
        _say(name, str(exc))
        return exc.status
    except KeyboardInterrupt:
        _say(name, "interrupted")
        return 130
    except BrokenPipeError:  # `mkts query ... | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:
        _say(name, _describe(exc))
        if os.environ.get("MKTS_DEBUG"):
            traceback.print_exc()
        return EXIT_FAIL


def _describe(exc: Exception) -> str:
    from mkts import engine

    if isinstance(exc, engine.MktsError):
        return str(exc)
    try:
        from mkts.plugins.errors import PluginError

        if isinstance(exc, PluginError):
            return str(exc)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return f"unexpected error ({type(exc).__name__}: {exc}); set MKTS_DEBUG=1 for details"


def _say(command: str | None, message: str) -> None:
    text = " ".join(message.split())  # one line, always
    print(f"mkts {command}: {text}" if command else f"mkts: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
