"""gRPC-only behaviour of `mkts start` (docs/server.md "gRPC"): how errors are reported
(status UNKNOWN with the message for Query and ListSymbols, per-item `error` strings for
Create/Write/Destroy), proto3 defaults, the request limits shared with /rpc, startup and a
clean stop. The methods themselves are tested over both transports in test_pymarketstore.py."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from server.serverproc import REPO, ServerProcess, server_env, start_server, write_config

from mkts.proto import marketstore_pb2 as pb
from mkts.proto import marketstore_pb2_grpc as pb_grpc

pymkts = pytest.importorskip("pymarketstore")

T0 = 1_704_187_800
BAR = [("Epoch", "i8"), ("Close", "f4")]


def bars(n: int, start: int = T0) -> np.ndarray:
    a = np.zeros(n, dtype=BAR)
    a["Epoch"] = start + 60 * np.arange(n)
    a["Close"] = np.arange(n)
    return a


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Any:
    """mkts' own generated stub, on a channel that sends up to 64 MiB (the server's limit is
    2 MiB: larger requests must be refused by the server, not by the client)."""
    channel = grpc.insecure_channel(server.grpc_target, options=[
        ("grpc.max_send_message_length", 64 << 20)])
    yield pb_grpc.MarketstoreStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    return pymkts.Client(server.grpc_target, grpc=True)


def dataset(key: str, rows: np.ndarray) -> Any:
    names = list(rows.dtype.names or ())
    return pb.NumpyMultiDataset(
        data=pb.NumpyDataset(column_names=names,
                             column_types=[rows.dtype[n].str.lstrip("<|") for n in names],
                             column_data=[rows[n].tobytes() for n in names], length=len(rows)),
        start_index={key: 0}, lengths={key: len(rows)})


# -- error reporting ------------------------------------------------------------------------
def test_a_failed_query_is_status_unknown_with_the_message(client: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.query(pymkts.Params("NOSUCH", "1Min", "OHLCV"))
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert info.value.details() == "no files returned from query parse"


def test_one_failing_request_fails_the_whole_query_call(stub: Any, client: Any) -> None:
    client.write(bars(2), "WHOLE/1Min/OHLCV")
    good = pb.QueryRequest(destination="WHOLE/1Min/OHLCV")
    bad = pb.QueryRequest(destination="WHOLE/1Min/OHLCV", columns=["Nope"])
    with pytest.raises(grpc.RpcError) as info:
        stub.Query(pb.MultiQueryRequest(requests=[good, bad]))
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert "'Nope' is not in bucket" in info.value.details()
    reply = stub.Query(pb.MultiQueryRequest(requests=[good, good]))
    assert [r.result.data.length for r in reply.responses] == [2, 2]
    assert reply.version == "mkts-0.1.0" and reply.timezone == "UTC"


def test_write_answers_ok_with_one_response_per_failed_request(stub: Any) -> None:
    bad = np.zeros(1, dtype=[("Epoch", "i8"), ("Flag", "?")])
    reply = stub.Write(pb.MultiWriteRequest(requests=[
        pb.WriteRequest(data=dataset("PER/1Min/OHLCV", bars(3))),
        pb.WriteRequest(data=dataset("PER/1Min/BOOL", bad)),
        pb.WriteRequest(data=dataset("PER/1Min/OHLCV", bars(2, start=T0 + 600)))]))
    assert [r.error.split(";")[0] for r in reply.responses] == ["unsupported type string b1"]
    assert reply.responses[0].version == "mkts-0.1.0"
    got = stub.Query(pb.MultiQueryRequest(requests=[pb.QueryRequest(
        destination="PER/1Min/OHLCV")]))
    assert got.responses[0].result.data.length == 5  # both good requests were committed


def test_create_and_destroy_answer_each_request(stub: Any) -> None:
    shapes = [pb.DataShape(name="Epoch", type="i8"), pb.DataShape(name="Ask", type="f4")]
    reply = stub.Create(pb.MultiCreateRequest(requests=[
        pb.CreateRequest(key="CD/1Min/TICK:Symbol/Timeframe/AttributeGroup",
                         data_shapes=shapes, row_type="variable"),
        pb.CreateRequest(key="CD/1Min/OTHER", data_shapes=shapes, row_type="sideways"),
        pb.CreateRequest(key="CD/1Min/BAD", data_shapes=[pb.DataShape(name="X", type="b1")],
                         row_type="fixed")]))
    errors = [r.error for r in reply.responses]
    assert errors[0] == ""
    assert "row_type must be 'fixed' or 'variable', not 'sideways'" in errors[1]
    assert "unsupported type string b1" in errors[2]  # later requests still processed
    reply = stub.Destroy(pb.MultiKeyRequest(requests=[pb.KeyRequest(key="CD/1Min/TICK"),
                                                      pb.KeyRequest(key="CD/1Min/TICK")]))
    assert reply.responses[0].error == ""
    assert "does not exist" in reply.responses[1].error


def test_an_unknown_method_is_unimplemented(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary("/proto.Marketstore/GetInfo")
        with pytest.raises(grpc.RpcError) as info:
            call(b"")
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_bytes_that_are_not_a_message_are_invalid_argument(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary("/proto.Marketstore/Query")
        with pytest.raises(grpc.RpcError) as info:
            call(b"\x0a\xff\xff\xff\xff\x0f")  # a field longer than the body
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid proto.MultiQueryRequest" in info.value.details()


# -- proto3 defaults ----------------------------------------------------------------------
def test_zero_epoch_end_means_no_upper_bound_and_nanos_are_exact(stub: Any) -> None:
    ticks = np.array([(T0, 1.0, 0), (T0, 2.0, 500), (T0 + 1, 3.0, 0)],
                     dtype=[("Epoch", "i8"), ("Price", "f8"), ("Nanoseconds", "i4")])
    stub.Write(pb.MultiWriteRequest(requests=[pb.WriteRequest(
        data=dataset("ZERO/1Sec/TICK", ticks), is_variable_length=True)]))

    def prices(**fields: int) -> list[float]:
        reply = stub.Query(pb.MultiQueryRequest(requests=[pb.QueryRequest(
            destination="ZERO/1Sec/TICK", **fields)]))
        data = reply.responses[0].result.data
        return np.frombuffer(data.column_data[list(data.column_names).index("Price")], "<f8").tolist()

    assert prices() == [1.0, 2.0, 3.0]
    assert prices(epoch_end=0, epoch_start=0) == [1.0, 2.0, 3.0]
    assert prices(epoch_start=T0, epoch_start_nanos=1) == [2.0, 3.0]
    assert prices(epoch_end=T0, epoch_end_nanos=499) == [1.0]
    assert prices(limit_record_count=1) == [3.0]
    assert prices(limit_record_count=1, limit_from_start=True) == [1.0]


def test_zero_epoch_start_reaches_back_before_1970(client: Any) -> None:
    rows = np.array([(-86_400 * 365, 1.0), (T0, 2.0)], dtype=BAR)
    assert list(client.write(rows, "OLD/1D/OHLCV").responses) == []
    arr = client.query(pymkts.Params("OLD", "1D", "OHLCV")).first().array
    assert arr["Close"].tolist() == [1.0, 2.0]


# -- limits -----------------------------------------------------------------------------------
def test_a_message_over_max_request_mb_is_resource_exhausted(stub: Any, client: Any) -> None:
    big = np.zeros(200_000, dtype=BAR)  # 2.4 MB of column data; the server takes 2 MiB
    big["Epoch"] = T0 + 60 * np.arange(len(big))
    with pytest.raises(grpc.RpcError) as info:
        stub.Write(pb.MultiWriteRequest(requests=[pb.WriteRequest(
            data=dataset("BIG/1Min/OHLCV", big))]))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.server_version() == "mkts-0.1.0"  # still serving
    with pytest.raises(grpc.RpcError, match="no files returned"):
        client.query(pymkts.Params("BIG", "1Min", "OHLCV"))  # nothing was written


def test_a_request_of_many_empty_messages_is_refused_before_decoding(stub: Any) -> None:
    # 300 000 empty KeyRequests: 600 kB, under the size limit, but far more values than a
    # body of that size may hold (one per 8 bytes plus 10 000), so it is never built
    body = b"\x0a\x00" * 300_000
    request = pb.MultiKeyRequest.FromString(body)
    with pytest.raises(grpc.RpcError) as info:
        stub.Destroy(request)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "holds more than 85000 values" in info.value.details()


def test_more_requests_than_rpc_allows_in_one_call_are_refused(stub: Any) -> None:
    request = pb.MultiQueryRequest(requests=[pb.QueryRequest(destination="A/1Min/OHLCV")]
                                   * 10_001)
    with pytest.raises(grpc.RpcError) as info:
        stub.Query(request)
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert info.value.details() == "10001 requests in one call; at most 10000"


# -- startup and stop -------------------------------------------------------------------------
def test_grpc_is_off_unless_configured(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        assert srv.grpc_port is None
        assert "gRPC" not in srv.out_path.read_text()
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_grpc_cleanly_and_its_writes_survive(tmp_path: Path,
                                                                sig: int) -> None:
    srv = start_server(tmp_path, grpc=True)
    target = srv.grpc_target
    client = pymkts.Client(target, grpc=True)
    assert list(client.write(bars(5), "KEEP/1Min/OHLCV").responses) == []
    assert srv.stop(sig) == 0
    assert "stopped cleanly" in srv.stderr() and "Traceback" not in srv.stderr()
    with pytest.raises(grpc.RpcError) as info:  # nobody listens any more
        pymkts.Client(target, grpc=True).server_version()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    again = ServerProcess(srv.config, extra=("--grpc-port", "0")).wait_ready()
    try:
        arr = pymkts.Client(again.grpc_target, grpc=True).query(
            pymkts.Params("KEEP", "1Min", "OHLCV")).first().array
        assert arr["Close"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    finally:
        assert again.stop() == 0


def test_a_busy_grpc_port_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path, grpc_listen_port=port)
        res = subprocess.run([sys.executable, "-m", "mkts.cli", "start", "-c", str(cfg),
                              "--port", "0"], capture_output=True, text=True, env=server_env(),
                             cwd=str(REPO), timeout=60)
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("mkts start:")]
    assert lines == [f"mkts start: gRPC: cannot listen on 127.0.0.1:{port}: Address already "
                     f"in use; another process uses port {port}: stop it, or pick another port "
                     "with --grpc-port (0 picks a free one)"], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "db").exists()


def _outward_address() -> str | None:
    """This machine's address on its outgoing interface, if it has one besides loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") else addr


def test_grpc_binds_loopback_by_default(server: ServerProcess) -> None:
    assert server.grpc_target.startswith("127.0.0.1:")
    outward = _outward_address()
    if outward is None:
        pytest.skip("this machine has no address besides loopback")
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(5)
        s.connect((outward, server.grpc_port))


def test_grpc_listens_on_listen_host(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = ServerProcess(write_config(tmp_path, listen_host="127.0.0.1", grpc_listen_port=port),
                        port=0).wait_ready()
    try:
        assert srv.grpc_port == port
        assert f"serving gRPC on 127.0.0.1:{port}" in srv.out_path.read_text()
        assert pymkts.Client(f"127.0.0.1:{port}", grpc=True).server_version() == "mkts-0.1.0"
    finally:
        assert srv.stop() == 0
