"""The gRPC layer without a server (mkts/grpcserver.py, mkts/proto/): the checked-in modules
match marketstore.proto and pymarketstore's wire contract and load beside pymarketstore's own;
messages become the maps DataService takes; the request budget counts values on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkts.grpcserver import (
    SERVICE,
    count_values,
    create_params,
    dataset_message,
    query_params,
    write_params,
)
from mkts.proto import marketstore_pb2 as pb
from mkts.rpc import RpcError

REPO = Path(__file__).resolve().parents[2]


# -- the generated modules ------------------------------------------------------------------
def test_generated_module_matches_the_proto_file(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    from google.protobuf import descriptor_pb2

    out = tmp_path / "set.pb"
    rc = protoc.main(["protoc", f"-I{REPO}", f"--descriptor_set_out={out}",
                      str(REPO / "mkts/proto/marketstore.proto")])
    assert rc == 0
    [fresh] = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    for message in fresh.message_type:  # the Python generator leaves out the JSON names
        for f in [*message.field, *(f for n in message.nested_type for f in n.field)]:
            f.ClearField("json_name")
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert checked_in == fresh, "mkts/proto is stale: run `make proto` and commit the result"


def test_the_wire_contract_is_pymarketstores() -> None:
    theirs = pytest.importorskip("pymarketstore.proto.marketstore_pb2")
    assert SERVICE == "proto.Marketstore"
    mine_service = pb.DESCRIPTOR.services_by_name["Marketstore"]
    their_service = theirs.DESCRIPTOR.services_by_name["Marketstore"]
    assert [(m.name, m.input_type.name, m.output_type.name) for m in mine_service.methods] == \
        [(m.name, m.input_type.name, m.output_type.name) for m in their_service.methods]
    for name, message in theirs.DESCRIPTOR.message_types_by_name.items():
        mine = pb.DESCRIPTOR.message_types_by_name[name]
        assert {(f.name, f.number, f.type, f.is_repeated) for f in mine.fields} == \
            {(f.name, f.number, f.type, f.is_repeated) for f in message.fields}, name


def test_messages_travel_between_mkts_and_pymarketstore_modules_in_one_process() -> None:
    theirs = pytest.importorskip("pymarketstore.proto.marketstore_pb2")
    sent = pb.QueryRequest(destination="A/1Min/OHLCV", epoch_end=7, functions=["count(*)"])
    got = theirs.QueryRequest.FromString(sent.SerializeToString())
    assert (got.destination, got.epoch_end, list(got.functions)) == \
        ("A/1Min/OHLCV", 7, ["count(*)"])


# -- messages -> DataService maps -----------------------------------------------------------
def test_proto3_zeros_are_fields_not_given() -> None:
    assert query_params(pb.QueryRequest(destination="A/1Min/OHLCV")) == \
        {"destination": "A/1Min/OHLCV"}
    full = pb.QueryRequest(destination="A/1Min/OHLCV", key_category="Symbol/Timeframe/"
                           "AttributeGroup", epoch_start=10, epoch_end=0, epoch_end_nanos=5,
                           limit_record_count=3, limit_from_start=True, columns=["Close"],
                           functions=["max(Close)"])
    assert query_params(full) == {
        "destination": "A/1Min/OHLCV", "key_category": "Symbol/Timeframe/AttributeGroup",
        "epoch_start": 10, "epoch_end": 0, "epoch_end_nanos": 5, "limit_record_count": 3,
        "limit_from_start": True, "columns": ["Close"], "functions": ["max(Close)"]}


def test_a_sql_request_carries_only_its_statement() -> None:
    req = pb.QueryRequest(is_sql_statement=True, sql_statement="SELECT 1;",
                          destination="ignored/1Min/X", columns=["ignored"])
    assert query_params(req) == {"is_sqlstatement": True, "sql_statement": "SELECT 1;"}


def test_write_and_create_become_rpc_maps() -> None:
    ds = pb.NumpyMultiDataset(data=pb.NumpyDataset(
        column_names=["Epoch"], column_types=["i8"], column_data=[b"\0" * 8], length=1),
        start_index={"A/1Min/X": 0}, lengths={"A/1Min/X": 1})
    assert write_params(pb.WriteRequest(data=ds, is_variable_length=True)) == {
        "dataset": {"names": ["Epoch"], "types": ["i8"], "data": [b"\0" * 8], "length": 1,
                    "startindex": {"A/1Min/X": 0}, "lengths": {"A/1Min/X": 1}},
        "is_variable_length": True}
    create = pb.CreateRequest(key="A/1Min/X", row_type="fixed", data_shapes=[
        pb.DataShape(name="Epoch", type="i8"), pb.DataShape(name="Ask", type="f4")])
    assert create_params(create) == {"key": "A/1Min/X", "column_names": ["Epoch", "Ask"],
                                     "column_types": ["i8", "f4"], "row_type": "fixed"}


def test_a_result_over_int32_rows_is_refused() -> None:
    ds = {"types": ["i8"], "names": ["Epoch"], "data": [b""], "length": 1 << 31,
          "startindex": {}, "lengths": {}}
    with pytest.raises(RpcError, match="counts rows in 32 bits"):
        dataset_message(ds)


# -- the request budget ---------------------------------------------------------------------
def test_messages_and_repeated_items_count_and_scalars_do_not() -> None:
    req = pb.MultiQueryRequest(requests=[
        pb.QueryRequest(destination="A/1Min/X", epoch_start=5, columns=["a", "b"]),
        pb.QueryRequest(destination="B/1Min/X", functions=["f()"])])
    # 2 QueryRequests + 2 columns + 1 function
    assert count_values(req.SerializeToString(), pb.MultiQueryRequest.DESCRIPTOR, 100) == 5


def test_map_entries_and_nested_messages_count() -> None:
    ds = pb.NumpyMultiDataset(data=pb.NumpyDataset(column_names=["Epoch"], column_types=["i8"],
                                                   column_data=[b"12345678"], length=1),
                              start_index={"A": 0, "B": 0}, lengths={"A": 1, "B": 0})
    req = pb.MultiWriteRequest(requests=[pb.WriteRequest(data=ds)])
    # WriteRequest, NumpyMultiDataset, NumpyDataset, 3 repeated items, 4 map entries
    assert count_values(req.SerializeToString(), pb.MultiWriteRequest.DESCRIPTOR, 100) == 10


def test_unknown_fields_count_and_the_count_stops_past_the_limit() -> None:
    unknown = b"\x78\x01" * 50  # field 15, varint: not a field of MultiKeyRequest
    assert count_values(unknown, pb.MultiKeyRequest.DESCRIPTOR, 1000) == 50
    assert count_values(b"\x0a\x00" * 1000, pb.MultiKeyRequest.DESCRIPTOR, 10) == 11


@pytest.mark.parametrize("body", [b"\x0a\x05ab", b"\x0a", b"\xff", b"\x0b\x00"],
                         ids=["short field", "no length", "cut varint", "group"])
def test_malformed_bytes_end_the_count_early(body: bytes) -> None:
    assert count_values(body, pb.MultiKeyRequest.DESCRIPTOR, 100) <= 1
