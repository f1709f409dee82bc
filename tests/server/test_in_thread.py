"""`mkts.server.run_in_thread`: the programmatic way to serve a database (demos, notebooks),
including `/ws` fed by `db.subscribe` when no stream trigger is configured, and gRPC next to
pymarketstore in the same process."""

from __future__ import annotations

from pathlib import Path
from urllib.request import urlopen

import msgpack
import numpy as np
import pytest
import yaml

from mkts import engine
from mkts.server import run_in_thread

pymkts = pytest.importorskip("pymarketstore")
websocket = pytest.importorskip("websocket")

T0 = 1_704_187_800


def test_serving_an_open_database_leaves_it_open(tmp_path: Path) -> None:
    db = engine.open(tmp_path / "db")
    try:
        with run_in_thread(db) as srv:
            client = pymkts.Client(srv.rpc_url)
            ws = websocket.WebSocket()
            ws.connect(srv.ws_url, timeout=10)
            try:
                ws.send(msgpack.dumps({"streams": ["*/1Min/*"]}),
                        opcode=websocket.ABNF.OPCODE_BINARY)
                assert msgpack.loads(ws.recv()) == {"streams": ["*/1Min/*"]}
                rows = np.array([(T0, 1.5)], dtype=[("Epoch", "i8"), ("V", "f8")])
                assert client.write(rows, "TH/1Min/X") == {"responses": None}
                assert msgpack.loads(ws.recv()) == {"key": "TH/1Min/X",
                                                    "data": {"Epoch": T0, "V": 1.5}}
            finally:
                ws.close()
        assert db.read("TH/1Min/X")["V"].tolist() == [1.5]  # still open after stop()
    finally:
        db.close()


def test_serving_a_config_opens_and_closes_the_database(tmp_path: Path) -> None:
    cfg = tmp_path / "mkts.yml"
    cfg.write_text(yaml.safe_dump({"root_directory": "db", "triggers": [
        {"module": "ondiskagg.so", "on": "*/1Min/OHLCV", "config": {"destinations": ["5Min"]}}]}))
    with run_in_thread(str(cfg)) as srv:
        assert srv.port > 0 and srv.host == "127.0.0.1"
        assert pymkts.Client(srv.rpc_url).server_version() == "mkts-0.1.0"
        assert srv.db is not None and len(srv.db.triggers) == 1
    with engine.open(tmp_path / "db"):  # the lock was released
        pass


def test_a_busy_port_is_an_os_error_before_the_root_is_created(tmp_path: Path) -> None:
    import socket

    cfg = tmp_path / "mkts.yml"
    cfg.write_text(yaml.safe_dump({"root_directory": str(tmp_path / "db")}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: .*another "
                           f"process uses port {port}"):
            run_in_thread(cfg, port=port)
    assert not (tmp_path / "db").exists()


def test_grpc_in_a_thread_beside_pymarketstore_in_one_process(tmp_path: Path) -> None:
    # pymarketstore's generated messages and mkts' share names (package `proto`): both load
    cfg = tmp_path / "mkts.yml"
    cfg.write_text(yaml.safe_dump({"root_directory": "db"}))
    with run_in_thread(str(cfg), grpc_port=0) as srv:
        client = pymkts.Client(srv.grpc_target, grpc=True)
        rows = np.array([(T0, 1.5), (T0 + 60, 2.5)], dtype=[("Epoch", "i8"), ("V", "f8")])
        assert list(client.write(rows, "GT/1Min/X").responses) == []
        assert client.query(pymkts.Params("GT", "1Min", "X")).first().array["V"].tolist() == \
            [1.5, 2.5]
        assert srv.metrics is not None
        text = urlopen(srv.metrics_url, timeout=10).read().decode()
        assert 'mkts_rows_written_total{transport="grpc"} 2.0' in text
    with engine.open(tmp_path / "db") as db:  # stopped and closed: the lock was released
        assert db.read("GT/1Min/X")["V"].tolist() == [1.5, 2.5]


def test_grpc_target_without_grpc_says_how_to_get_it(tmp_path: Path) -> None:
    with engine.open(tmp_path / "db") as db, run_in_thread(db) as srv, \
            pytest.raises(RuntimeError, match="pass grpc_port= to run_in_thread"):
        srv.grpc_target  # noqa: B018
