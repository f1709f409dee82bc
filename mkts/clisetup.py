"""The `mkts` commands that set up and run: init (write the default mkts.yml), start (serve
the database: mkts.server) and bench (the benchmark runner of a source checkout)."""

from __future__ import annotations

import argparse
import importlib.resources
import os
import subprocess
import sys

import mkts
from mkts.clibase import DEFAULT_CONFIG, EXIT_OK, CliError, _lock_text, _setup_logging, _Target


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
