"""What every `mkts` command shares: CliError and the exit codes, finding and opening the
database (-c mkts.yml or --root), argument conversions, the deletion prompt, and the one-line
message on stderr. The commands are in clidata, climaint and clisetup; printing in cliprint.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

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


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mkts").setLevel(level.upper())


def _say(command: str | None, message: str) -> None:
    text = " ".join(message.split())  # one line, always
    print(f"mkts {command}: {text}" if command else f"mkts: {text}", file=sys.stderr)
