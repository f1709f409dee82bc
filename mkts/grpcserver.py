"""MarketStore's gRPC service (`proto.Marketstore`, mkts/proto/marketstore.proto) served by
the `/rpc` `DataService`: each call's messages become the request maps DataService takes and
its answers become messages again, so both transports run one handler (docs/server.md "gRPC").

Owns the translation, gRPC's error mapping, the request budget and the grpc server's
lifecycle; the methods themselves live in mkts.rpc, startup order in mkts.server.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from mkts import engine
from mkts.proto import marketstore_pb2 as pb
from mkts.rpc import DataService, RpcError
from mkts.wire import BYTES_PER_VALUE, MAX_VALUES, VALUES_FLOOR, value_budget

__all__ = ["SERVICE", "GrpcServer", "MarketstoreService", "count_values", "address",
           "MAX_SEND_BYTES"]

log = logging.getLogger("mkts.server")

SERVICE = pb.DESCRIPTOR.services_by_name["Marketstore"].full_name  # "proto.Marketstore"
MAX_SEND_BYTES = 1 << 30  # largest reply: MarketStore's default and pymarketstore's receive limit
_INT32_MAX = (1 << 31) - 1
_LENGTH_DELIMITED = 2


# -- the request budget ------------------------------------------------------------------
def count_values(body: bytes, message: Descriptor, limit: int) -> int:
    """The values a serialized `message` holds, counted on the wire before anything is
    built: each message (nested ones and map entries included), each element of a repeated
    field and each unknown field counts one (scalars inside a message live in its own
    memory). Stops just past `limit`; malformed input ends the count early and the parser
    then reports it. docs/server.md "Limits and defence"."""
    count = 0
    stack = [(0, len(body), message)]
    while stack and count <= limit:
        pos, end, desc = stack.pop()
        fields = desc.fields_by_number
        while pos < end and count <= limit:
            tag, pos = _varint(body, pos)
            if tag < 0:
                return count
            field = fields.get(tag >> 3)
            wire = tag & 7
            if field is None:
                count += 1
            if wire == 0:
                _, pos = _varint(body, pos)
                if pos < 0:
                    return count
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == _LENGTH_DELIMITED:
                size, pos = _varint(body, pos)
                if size < 0 or pos + size > end:
                    return count
                if field is not None and field.message_type is not None:
                    count += 1
                    stack.append((pos, pos + size, field.message_type))
                elif field is not None and field.is_repeated:
                    count += 1
                pos += size
            else:  # groups or an invalid wire type: the parser reports it
                return count
    return count


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it), or (-1, -1) when the buffer ends inside it."""
    value = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    return -1, -1


class _Refused:
    """What the deserializer hands the method for a request it would not decode."""

    __slots__ = ("code", "message")

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


def _deserializer(cls: type[Message]) -> Callable[[bytes], Any]:
    def parse(body: bytes) -> Any:
        limit = value_budget(len(body))
        if count_values(body, cls.DESCRIPTOR, limit) > limit:
            return _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, (
                f"gRPC request of {len(body)} bytes holds more than {limit} values (messages, "
                f"map entries and repeated items count one each; at most one per "
                f"{BYTES_PER_VALUE} bytes plus {VALUES_FLOOR}, and never more than "
                f"{MAX_VALUES}); split it into smaller requests"))
        try:
            return cls.FromString(body)
        except DecodeError as exc:
            return _Refused(grpc.StatusCode.INVALID_ARGUMENT,
                            f"the request is not a valid {cls.DESCRIPTOR.full_name}: {exc}")
    return parse


# -- messages <-> DataService maps ---------------------------------------------------------
def query_params(r: pb.QueryRequest) -> dict[str, Any]:
    """One QueryRequest as DataService.Query's request map. proto3 has no presence: a zero
    start, end, limit or empty text is "not given" (epoch_end 0 is no upper bound, as in
    MarketStore; epoch_start 0 is no lower bound, which differs from 1970 only for data
    before 1970)."""
    if r.is_sql_statement:
        return {"is_sqlstatement": True, "sql_statement": r.sql_statement}
    req: dict[str, Any] = {"destination": r.destination}
    if r.key_category:
        req["key_category"] = r.key_category
    for side in ("start", "end"):
        seconds, nanos = getattr(r, f"epoch_{side}"), getattr(r, f"epoch_{side}_nanos")
        if seconds or nanos:
            req[f"epoch_{side}"] = seconds
            if nanos:
                req[f"epoch_{side}_nanos"] = nanos
    if r.limit_record_count:
        req["limit_record_count"] = r.limit_record_count
    if r.limit_from_start:
        req["limit_from_start"] = True
    if r.columns:
        req["columns"] = list(r.columns)
    if r.functions:
        req["functions"] = list(r.functions)
    return req


def write_params(r: pb.WriteRequest) -> dict[str, Any]:
    d = r.data.data
    return {"dataset": {"types": list(d.column_types), "names": list(d.column_names),
                        "data": list(d.column_data), "length": d.length,
                        "startindex": dict(r.data.start_index),
                        "lengths": dict(r.data.lengths)},
            "is_variable_length": r.is_variable_length}


def create_params(r: pb.CreateRequest) -> dict[str, Any]:
    return {"key": r.key, "column_names": [s.name for s in r.data_shapes],
            "column_types": [s.type for s in r.data_shapes], "row_type": r.row_type}


def dataset_message(ds: Mapping[str, Any]) -> pb.NumpyMultiDataset:
    """DataService's NumpyMultiDataset map -> the NumpyMultiDataset message. Row counts are
    int32 on this transport: a larger result is refused with RpcError."""
    length = int(ds["length"])
    if length > _INT32_MAX:
        raise RpcError(f"the result has {length} rows; gRPC's NumpyDataset counts rows in 32 "
                       f"bits (at most {_INT32_MAX}): narrow the range or set a limit")
    return pb.NumpyMultiDataset(
        data=pb.NumpyDataset(column_types=ds["types"], column_names=ds["names"],
                             column_data=ds["data"], length=length),
        start_index=ds["startindex"], lengths=ds["lengths"])


def server_responses(result: Mapping[str, Any]) -> pb.MultiServerResponse:
    return pb.MultiServerResponse(responses=[
        pb.ServerResponse(error=r.get("error") or "", version=r.get("version") or "")
        for r in result.get("responses") or ()])


# -- the service ---------------------------------------------------------------------------
def _abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover


class MarketstoreService:
    """The six methods of `proto.Marketstore` over one DataService. A call that fails as a
    whole (every Query and ListSymbols failure, a refused request) ends with status UNKNOWN
    and the reason as details, as MarketStore's; Create, Write and Destroy report each
    failed item in `ServerResponse.error`. A request over the budget is RESOURCE_EXHAUSTED,
    one that is not a valid message INVALID_ARGUMENT, a bug in mkts INTERNAL (logged)."""

    def __init__(self, service: DataService,
                 refused: Callable[[str], None] | None = None) -> None:
        self.service = service
        self._refused = refused

    def handlers(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Callable[[Any], Any], Any, Any]] = {
            "Query": (self.query, pb.MultiQueryRequest, pb.MultiQueryResponse),
            "Create": (self.create, pb.MultiCreateRequest, pb.MultiServerResponse),
            "Write": (self.write, pb.MultiWriteRequest, pb.MultiServerResponse),
            "Destroy": (self.destroy, pb.MultiKeyRequest, pb.MultiServerResponse),
            "ListSymbols": (self.list_symbols, pb.ListSymbolsRequest, pb.ListSymbolsResponse),
            "ServerVersion": (self.server_version, pb.ServerVersionRequest,
                              pb.ServerVersionResponse),
        }
        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(
                self._guarded(name, fn), request_deserializer=_deserializer(req),
                response_serializer=resp.SerializeToString)
            for name, (fn, req, resp) in methods.items()})

    def _guarded(self, name: str, fn: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: Any) -> Any:
            if isinstance(request, _Refused):
                if self._refused is not None:
                    self._refused(name)
                log.debug("refused a gRPC %s request: %s", name, request.message)
                _abort(context, request.code, request.message)
            try:
                return fn(request)
            except RpcError as exc:
                message = exc.message
            except engine.MktsError as exc:
                message = str(exc)
            except Exception as exc:  # a bug: log it, answer, keep serving
                log.exception("internal error while serving a gRPC %s request", name)
                _abort(context, grpc.StatusCode.INTERNAL,
                       f"internal server error ({type(exc).__name__}: {exc}); see the server log")
            _abort(context, grpc.StatusCode.UNKNOWN, message)
        return call

    def _call(self, method: str, params: Mapping[str, Any]) -> Any:
        return self.service.call(f"DataService.{method}", params)

    def query(self, request: pb.MultiQueryRequest) -> pb.MultiQueryResponse:
        result = self._call("Query", {"requests": [query_params(r) for r in request.requests]})
        return pb.MultiQueryResponse(
            responses=[pb.QueryResponse(result=dataset_message(r["result"]))
                       for r in result["responses"]],
            version=result.get("version") or "", timezone=result.get("timezone") or "")

    def write(self, request: pb.MultiWriteRequest) -> pb.MultiServerResponse:
        return server_responses(self._call(
            "Write", {"requests": [write_params(r) for r in request.requests]}))

    def create(self, request: pb.MultiCreateRequest) -> pb.MultiServerResponse:
        return server_responses(self._call(
            "Create", {"requests": [create_params(r) for r in request.requests]}))

    def destroy(self, request: pb.MultiKeyRequest) -> pb.MultiServerResponse:
        return server_responses(self._call(
            "Destroy", {"requests": [{"key": r.key} for r in request.requests]}))

    def list_symbols(self, request: pb.ListSymbolsRequest) -> pb.ListSymbolsResponse:
        fmt = "tbk" if request.format == pb.ListSymbolsRequest.TIME_BUCKET_KEY else "symbol"
        result = self._call("ListSymbols", {"format": fmt})
        return pb.ListSymbolsResponse(results=result["Results"])

    def server_version(self, request: pb.ServerVersionRequest) -> pb.ServerVersionResponse:
        return pb.ServerVersionResponse(version=self.service.version)


# -- the server ----------------------------------------------------------------------------
def address(host: str, port: int) -> str:
    """grpc's spelling of host:port (`[::1]:5995`; an empty host is every interface)."""
    host = host or "::"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """A grpc server bound at construction (so a busy port is found before the database is
    opened) and serving once `start(service)` is called. Plaintext, unary calls on a thread
    pool; requests up to `max_request_mb`, replies up to MAX_SEND_BYTES."""

    def __init__(self, host: str, port: int, max_request_mb: float) -> None:
        self.host = host
        self._pool = ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4),
                                        thread_name_prefix="mkts-grpc")
        self._server = grpc.server(self._pool, options=[
            ("grpc.max_receive_message_length", int(max_request_mb * (1 << 20))),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 0),  # a second server on the port is an error, not a twin
        ])
        try:
            self.port = int(self._server.add_insecure_port(address(host, port)))
        except RuntimeError:
            self._server.stop(None)
            self._pool.shutdown(wait=False)
            raise
        self.started = False

    def start(self, service: MarketstoreService) -> None:
        self._server.add_generic_rpc_handlers((service.handlers(),))
        self._server.start()
        self.started = True

    def stop(self, grace: float | None) -> threading.Event:
        """Refuse new calls now, cancel those still running after `grace` seconds; the event
        is set when every call has ended."""
        done: threading.Event = self._server.stop(grace)
        return done

    def close(self, grace: float | None) -> None:
        """stop() and wait for it, then end the thread pool."""
        self.stop(grace).wait()
        self._pool.shutdown(wait=True)
