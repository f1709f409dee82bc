"""A server out of file descriptors sheds load instead of spinning: accept() is retried with
a backoff and logged once per episode, /heartbeat answers again once descriptors are free,
and a stop after the handle failed does not claim a clean stop."""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from server.serverproc import ServerProcess, write_config

from mkts import config as mkts_config
from mkts import engine, server, wiring

NOFILE = 128
EPISODE = "cannot accept connections"


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for(what: str, check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_out_of_descriptors_backs_off_logs_once_and_recovers(tmp_path: Path) -> None:
    srv = ServerProcess(write_config(tmp_path, triggers=[]), preexec_fn=_limit).wait_ready()
    clients: list[socket.socket] = []
    try:
        # More connections than the server has descriptors: it accepts until EMFILE, the
        # rest wait in its listen backlog.
        for _ in range(NOFILE + 40):
            clients.append(socket.create_connection((srv.host, srv.port), timeout=10))
        _wait_for("the episode's log line", lambda: EPISODE in srv.stderr())
        cpu0, size0 = _cpu_s(srv.proc.pid), len(srv.stderr())
        time.sleep(2.0)  # an observation window: asyncio's own loop logs and spins here
        cpu = _cpu_s(srv.proc.pid) - cpu0
        log = srv.stderr()
        assert log.count(EPISODE) == 1, log[-3000:]
        assert "out of system resource" not in log
        assert len(log) - size0 < 2000, log[-3000:]  # nothing logged per attempt
        assert cpu < 1.0, f"the server used {cpu:.2f} s of CPU in 2 s while out of descriptors"

        for c in clients:
            c.close()
        clients.clear()

        def answers() -> bool:
            try:
                return requests.get(srv.url + "/heartbeat", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        _wait_for("/heartbeat after descriptors are free", answers)
        assert "accepting connections again" in srv.stderr()
    finally:
        for c in clients:
            c.close()
        rc = srv.stop()
    assert rc == 0, srv.stderr()[-3000:]
    assert "stopped cleanly" in srv.stderr()


def test_stop_after_the_handle_failed_is_not_a_clean_stop(tmp_path: Path, monkeypatch: Any,
                                                          caplog: Any) -> None:
    cfg = mkts_config.load(write_config(tmp_path, triggers=[]))
    db = engine.open(cfg.root_directory)
    db.write("AAPL/1Min/OHLCV", {"Epoch": [1_704_187_800], "Close": [1.0]})
    db._pipeline.fail(OSError(5, "Input/output error"))  # type: ignore[union-attr]

    async def served(*args: Any) -> int:  # the server ran and was stopped by a signal
        return 0

    monkeypatch.setattr(wiring, "open_configured", lambda config, **options: db)
    monkeypatch.setattr(server, "_main", served)
    with caplog.at_level(logging.INFO, logger="mkts.server"):
        status = server.serve(cfg, port=0)
    assert status != 0
    assert "stopped cleanly" not in caplog.text
    assert "stopped after a failure" in caplog.text and "Input/output error" in caplog.text
