"""Starting and stopping `mkts start`: a clean SIGTERM/SIGINT exits 0 with the data intact
after a restart, and startup failures are one clear line and a non-zero exit."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from server.serverproc import REPO, ServerProcess, server_env, start_server, write_config

pymkts = pytest.importorskip("pymarketstore")

T0 = 1_704_187_800


def rows(n: int) -> np.ndarray:
    a = np.zeros(n, dtype=[("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"),
                           ("Close", "f4"), ("Volume", "i8")])
    a["Epoch"] = T0 + 60 * np.arange(n)
    for c in ("Open", "High", "Low", "Close"):
        a[c] = np.arange(n)
    a["Volume"] = 1
    return a


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkts.cli", *args], capture_output=True,
                          text=True, env=server_env(), cwd=str(REPO), timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_exits_zero_and_data_survives_a_restart(tmp_path: Path, sig: int) -> None:
    srv = start_server(tmp_path)
    client = pymkts.Client(srv.rpc_url)
    assert client.write(rows(20), "KEEP/1Min/OHLCV") == {"responses": None}
    ticks = np.array([(T0, 1.5, 3, 42)], dtype=[("Epoch", "i8"), ("Price", "f8"),
                                                 ("Size", "i8"), ("Nanoseconds", "i4")])
    assert client.write(ticks, "KEEP/1Min/TICK", isvariablelength=True) == {"responses": None}
    assert srv.stop(sig) == 0
    err = srv.stderr()
    assert "stopped cleanly" in err and "Traceback" not in err
    # closed cleanly: checkpointed, nothing left to replay, aggregates consistent
    check = run_cli("check", "-c", str(srv.config))
    assert check.returncode == 0, check.stderr
    assert "0 log transaction(s)" in check.stdout

    again = ServerProcess(srv.config).wait_ready()
    try:
        c2 = pymkts.Client(again.rpc_url)
        arr = c2.query(pymkts.Params("KEEP", "1Min", "OHLCV")).first().array
        assert np.array_equal(arr, rows(20))
        agg = c2.query(pymkts.Params("KEEP", "5Min", "OHLCV")).first().array
        assert len(agg) == 4
        tick = c2.query(pymkts.Params("KEEP", "1Min", "TICK")).first().array
        assert tick["Nanoseconds"].tolist() == [42]
    finally:
        assert again.stop() == 0


def test_a_second_server_on_the_same_root_is_refused(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        other = write_config(tmp_path, name="other.yml")
        res = subprocess.run([sys.executable, "-m", "mkts.cli", "start", "-c", str(other),
                              "--port", "0"], capture_output=True, text=True, env=server_env(),
                             timeout=60)
        assert res.returncode != 0
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("mkts start:")]
        assert len(lines) == 1 and "in use by pid" in lines[0], res.stderr
        assert "Traceback" not in res.stderr
    finally:
        assert srv.stop() == 0


def test_a_busy_port_is_one_line_and_the_database_is_released(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path)
        proc = ServerProcess(cfg, port=port)
        rc = proc.wait(30)
    assert rc == 1
    err = proc.stderr()
    assert f"mkts start: cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
    # the lock was released: the root opens again
    srv = start_server(tmp_path)
    assert srv.stop() == 0


@pytest.mark.parametrize("how", ["root", "config"])
def test_a_failed_start_creates_nothing(tmp_path: Path, how: str) -> None:
    """A busy port is found before the database is opened: the root is not created (no
    LOCK, mkts.root or wal/), and the one line says which port and what to do."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        if how == "root":
            root = tmp_path / "db2"
            res = run_cli("start", "--root", str(root), "--port", str(port))
        else:
            root = tmp_path / "db"
            res = run_cli("start", "-c", str(write_config(tmp_path)), "--port", str(port))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert res.stderr.startswith(f"mkts start: cannot listen on 127.0.0.1:{port}: Address "
                                 "already in use"), res.stderr
    assert f"port {port}" in res.stderr and "--port" in res.stderr, res.stderr
    assert not root.exists(), sorted(p.name for p in root.iterdir())
    assert res.stdout == ""


def test_a_plugin_that_cannot_be_loaded_creates_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, triggers=[{"module": "no_such_plugin.so", "on": "*/*/*"}])
    res = run_cli("start", "-c", str(cfg), "--port", "0")
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "no_such_plugin" in res.stderr
    assert not (tmp_path / "db").exists()


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yml"
    cfg.write_text("root_directory: x\nlisten_prot: 1\n")
    res = run_cli("start", "-c", str(cfg))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "listen_prot" in res.stderr and "did you mean listen_port" in res.stderr


def test_listen_address_comes_from_the_config(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path, listen_port=port, listen_host="127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-m", "mkts.cli", "start", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=server_env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line
        assert pymkts.Client(f"http://127.0.0.1:{port}/rpc").server_version() == "mkts-0.1.0"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_stopping_closes_websocket_clients(tmp_path: Path) -> None:
    import time

    import msgpack
    import websocket

    srv = start_server(tmp_path)
    ws = websocket.WebSocket()
    ws.connect(f"ws://{srv.host}:{srv.port}/ws", timeout=10)
    try:
        ws.send(msgpack.dumps({"streams": ["*/*/*"]}), opcode=websocket.ABNF.OPCODE_BINARY)
        ws.recv()
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        opcode, frame = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame[:2], "big") == 1001  # going away
        assert srv.wait(30) == 0
        assert time.monotonic() - started < 5
    finally:
        ws.shutdown()  # the server already closed the connection; just drop the socket
