"""The `mkts` command: init, start, query, import, list, info, destroy, delete, check,
wal inspect, compact, seal, rebuild-aggregates, export, bench. See docs/cli.md.

Owns the entry point `main`: parse (cliparser), run the command (clidata, climaint,
clisetup), and turn every failure into one line on stderr (`mkts <command>: <what went
wrong>`) and a non-zero exit status; `MKTS_DEBUG=1` adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from mkts.clibase import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CliError, _say
from mkts.cliparser import build_parser
from mkts.clisetup import cmd_bench

__all__ = ["main", "build_parser"]


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


if __name__ == "__main__":
    sys.exit(main())
