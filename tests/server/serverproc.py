"""Helpers to run a real `mkts start` subprocess on a free loopback port, with a temporary
root and mkts.yml (used by conftest.py and the lifecycle tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"listening on http://([\d.]+):(\d+)")
GRPC_READY = re.compile(r"serving gRPC on ([\d.]+):(\d+)")
START_TIMEOUT_S = 30.0

DEFAULT_TRIGGERS = [
    {"module": "ondiskagg.so", "on": "*/1Min/OHLCV",
     "config": {"destinations": ["5Min", "1H", "1D"]}},
    {"module": "stream.so", "on": "*/*/*"},
]


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("MKTS_DEBUG", None)
    return env


def write_config(directory: Path, name: str = "mkts.yml", **settings: Any) -> Path:
    cfg: dict[str, Any] = {"root_directory": str(directory / "db"), "log_level": "info",
                           "triggers": DEFAULT_TRIGGERS, "wal": {"sync": "always"}}
    cfg.update(settings)
    path = directory / name
    path.write_text(yaml.safe_dump(cfg))
    return path


class ServerProcess:
    """One `mkts start` subprocess; its output goes to files beside its config."""

    def __init__(self, config: Path, port: int = 0, extra: tuple[str, ...] = (),
                 preexec_fn: Callable[[], None] | None = None) -> None:
        self.config = config
        self.out_path = config.with_suffix(".out")
        self.err_path = config.with_suffix(".err")
        self._out = open(self.out_path, "wb")  # noqa: SIM115 - closed in wait()
        self._err = open(self.err_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mkts.cli", "start", "-c", str(config), "--port", str(port),
             *extra], stdout=self._out, stderr=self._err, cwd=str(config.parent),
            env=server_env(), preexec_fn=preexec_fn)
        self.host = ""
        self.port = 0
        self.grpc_port: int | None = None

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.out_path.read_text(errors="replace")
            m = READY.search(out)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                g = GRPC_READY.search(out)  # printed before the ready line
                self.grpc_port = int(g.group(2)) if g else None
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"mkts start exited with {self.proc.returncode}:\n"
                                     f"{self.stderr()}")
            time.sleep(0.05)  # poll interval; bounded by the deadline above
        self.proc.kill()
        raise AssertionError(f"mkts start did not get ready in {timeout} s:\n{self.stderr()}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def rpc_url(self) -> str:
        return self.url + "/rpc"

    @property
    def metrics_url(self) -> str:
        return self.url + "/metrics"

    @property
    def grpc_target(self) -> str:
        assert self.grpc_port is not None, "this server was started without gRPC"
        return f"{self.host}:{self.grpc_port}"

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"mkts start did not stop in {timeout} s:\n{self.stderr()}") \
                from None
        finally:
            self._out.close()
            self._err.close()
        return rc


def start_server(directory: Path, *, grpc: bool = False, **settings: Any) -> ServerProcess:
    """A ready server of a config with `settings`; with `grpc`, gRPC on a free port too."""
    extra = ("--grpc-port", "0") if grpc else ()
    return ServerProcess(write_config(directory, **settings), extra=extra).wait_ready()
