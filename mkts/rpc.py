"""The `/rpc` endpoint's logic: the JSON-RPC 2.0 envelope and MarketStore's `DataService`
methods (Query, Write, Create, Destroy, ListSymbols, GetInfo) over an `engine.Database`.

Synchronous and transport-free: `mkts.server` hands it a body and sends back what it
returns. Every failure becomes a JSON-RPC error object; nothing here raises to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mkts import engine
from mkts.engine.timeutil import MAX_DATETIME64_S, NS
from mkts.sqlwire import run_wire_sql
from mkts.wire import (
    MSGPACK,
    BodyLimitError,
    WireError,
    decode_body,
    decode_dataset,
    encode_body,
    encode_dataset,
    parse_wire_type,
    split_tbk,
)

__all__ = ["RpcError", "DataService", "handle_body", "PARSE_ERROR", "INVALID_REQUEST",
           "METHOD_ERROR", "MAX_REQUESTS"]

log = logging.getLogger("mkts.server")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
METHOD_ERROR = -32000  # what MarketStore's gorilla/rpc answers for any method error
INTERNAL_ERROR = -32603
MAX_REQUESTS = 10_000  # entries in one "requests" list
MAX_QUERY_COLUMNS = 200
MAX_QUERY_FUNCTIONS = 100  # calls in one request's chain
_INT64_MAX = (1 << 63) - 1
_TYPE_CODES = {"f4": 0, "i4": 1, "f8": 2, "i8": 3, "i1": 5, "i2": 9, "u1": 10, "u2": 11,
               "u4": 12, "u8": 13, "U16": 14}  # MarketStore's EnumElementType
_STRING_CODE = 8


class RpcError(Exception):
    """A JSON-RPC error: code, message (the text pymarketstore shows) and optional data."""

    def __init__(self, message: str, code: int = METHOD_ERROR, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


# -- the envelope --------------------------------------------------------------------------
def handle_body(service: DataService, body: bytes, kind: str = MSGPACK) -> bytes:
    """Decode one request body, call the method, and encode the response (always a body)."""
    req_id: Any = None
    try:
        try:
            request = decode_body(body, kind)
        except BodyLimitError as exc:
            raise RpcError(f"rpc: {exc}", INVALID_REQUEST) from None
        except WireError as exc:
            raise RpcError(f"rpc: parse error: {exc}", PARSE_ERROR) from None
        if not isinstance(request, Mapping):
            raise RpcError("rpc: the request must be a map with method, params, id and jsonrpc",
                           INVALID_REQUEST)
        req_id = request.get("id")
        if not isinstance(req_id, (str, int, float, type(None))) or isinstance(req_id, bool):
            req_id = None
            raise RpcError("rpc: id must be a string, a number or null", INVALID_REQUEST)
        if request.get("jsonrpc") != "2.0":
            raise RpcError("jsonrpc must be 2.0", INVALID_REQUEST)
        method = request.get("method")
        params = request.get("params")
        if isinstance(params, list) and len(params) == 1:
            params = params[0]
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise RpcError("rpc: params must be a map (or a one-element list holding a map)",
                           INVALID_REQUEST, None)
        result = service.call(method, params)
        response: dict[str, Any] = {"jsonrpc": "2.0", "result": result, "id": req_id}
    except RpcError as exc:
        response = _error(exc.code, exc.message, exc.data, req_id)
    except engine.MktsError as exc:
        response = _error(METHOD_ERROR, str(exc), None, req_id)
    except Exception as exc:  # a bug: log it, answer, keep serving
        log.exception("internal error while serving an RPC request")
        response = _error(INTERNAL_ERROR, f"internal server error ({type(exc).__name__}: {exc}); "
                          "see the server log", None, req_id)
    try:
        return encode_body(response, kind)
    except Exception as exc:  # pragma: no cover - results are built from encodable types
        log.exception("could not encode an RPC response")
        return encode_body(_error(INTERNAL_ERROR, f"could not encode the response: {exc}", None,
                                  req_id), kind)


def _error(code: int, message: str, data: Any, req_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": data},
            "id": req_id}


# -- parameter helpers ---------------------------------------------------------------------
def _requests(params: Mapping[str, Any]) -> list[Any]:
    reqs = params.get("requests")
    if not isinstance(reqs, list):
        raise RpcError(f"params.requests must be a list, not {_tname(reqs)}", INVALID_REQUEST)
    if len(reqs) > MAX_REQUESTS:
        raise RpcError(f"{len(reqs)} requests in one call; at most {MAX_REQUESTS}")
    return reqs


def _map(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WireError(f"{what} must be a map, not {_tname(value)}")
    return value


def _int(req: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    value = req.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(f"{name} must be an integer, not {_tname(value)}")
    if isinstance(value, float):
        if not np.isfinite(value) or value != int(value):
            raise WireError(f"{name} must be an integer, not {value!r}")
        value = int(value)
    return value


def _bool(req: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = req.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise WireError(f"{name} must be true or false, not {value!r}")
    return value


def _tname(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


def _time_arg(seconds: int, nanos: int, what: str) -> Any:
    """Epoch seconds (+ nanoseconds) -> what engine.query takes, exact to the nanosecond."""
    if not nanos:
        return seconds
    if not 0 <= nanos < NS:
        raise WireError(f"{what}_nanos must be within 0..999999999, not {nanos}")
    if abs(seconds) > MAX_DATETIME64_S:
        return seconds  # far outside any year file: the nanoseconds cannot matter
    return np.datetime64(seconds * NS + nanos, "ns")


# -- DataService ---------------------------------------------------------------------------
class DataService:
    """MarketStore's `DataService` over one open database. Thread-safe (the engine is)."""

    def __init__(self, db: engine.Database, version: str) -> None:
        self.db = db
        self.version = version
        self._methods: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "Query": self.query,
            "Write": self.write,
            "Create": self.create,
            "Destroy": self.destroy,
            "ListSymbols": self.list_symbols,
            "GetInfo": self.get_info,
        }

    def call(self, method: Any, params: Mapping[str, Any]) -> Any:
        if not isinstance(method, str) or method.count(".") != 1:
            raise RpcError(f'rpc: service/method request ill-formed: "{method}"', METHOD_NOT_FOUND)
        service, name = method.split(".")
        if service != "DataService":
            raise RpcError(f'rpc: can\'t find service "{method}"', METHOD_NOT_FOUND)
        fn = self._methods.get(name)
        if fn is None:
            raise RpcError(f'rpc: can\'t find method "{method}"', METHOD_NOT_FOUND)
        try:
            return fn(params)
        except WireError as exc:
            raise RpcError(str(exc)) from None

    # -- Query -----------------------------------------------------------------------------
    def query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """One dataset per request; any failing request fails the whole call."""
        responses = []
        for i, req in enumerate(_requests(params)):
            req = _map(req, f"requests[{i}]")
            responses.append({"result": self._query_one(req)})
        return {"responses": responses, "version": self.version, "timezone": self.db.timezone}

    def _query_one(self, req: Mapping[str, Any]) -> dict[str, Any]:
        if req.get("is_sqlstatement"):  # MarketStore's SQL subset (mkts/sqlwire.py)
            return run_wire_sql(self.db, req.get("sql_statement"))
        category = req.get("key_category")
        if category not in (None, "", "Symbol/Timeframe/AttributeGroup"):
            raise WireError(f"key_category {category!r} is not supported; mkts keys are "
                            "Symbol/Timeframe/AttributeGroup")
        dest = split_tbk(req.get("destination"), "destination")
        engine.parse_pattern(dest)  # a key pattern; InvalidKeyError names the part
        start = end = None
        if req.get("epoch_start") is not None:
            s = _int(req, "epoch_start")
            assert s is not None
            start = _time_arg(s, _int(req, "epoch_start_nanos", 0) or 0, "epoch_start")
        if req.get("epoch_end") is not None:
            e = _int(req, "epoch_end")
            assert e is not None
            if e < _INT64_MAX:
                end = _time_arg(e, _int(req, "epoch_end_nanos", 0) or 0, "epoch_end")
        limit = _int(req, "limit_record_count", 0) or 0
        if limit < 0:
            raise WireError(f"limit_record_count must not be negative, not {limit}")
        columns = req.get("columns")
        if columns is not None:
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise WireError("columns must be a list of column names")
            if len(columns) > MAX_QUERY_COLUMNS:
                raise WireError(f"{len(columns)} columns asked for; at most {MAX_QUERY_COLUMNS}")
            if not columns:
                columns = None
        functions = req.get("functions") or None
        if functions is not None:
            if not isinstance(functions, list) or not all(isinstance(f, str) for f in functions):
                raise WireError("functions must be a list of call strings like \"count(*)\"")
            if len(functions) > MAX_QUERY_FUNCTIONS:
                raise WireError(f"{len(functions)} functions asked for; at most "
                                f"{MAX_QUERY_FUNCTIONS}")
        results = self.db.query(dest, start, end, limit=limit or None,
                                limit_from_start=_bool(req, "limit_from_start"),
                                columns=columns, functions=functions)
        return encode_dataset(list(results.items()))

    # -- Write -----------------------------------------------------------------------------
    def write(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Each request is one transaction. `responses` is None when all succeeded, else one
        entry per failed request (MarketStore's shape)."""
        failed = []
        for i, req in enumerate(_requests(params)):
            try:
                req = _map(req, f"requests[{i}]")
                self._write_one(req)
            except (WireError, engine.MktsError) as exc:
                failed.append({"error": str(exc), "version": self.version})
        return {"responses": failed or None}

    def _write_one(self, req: Mapping[str, Any]) -> None:
        flag = _bool(req, "is_variable_length")
        items: dict[str, dict[str, np.ndarray]] = {}
        any_new = False
        for key, cols in decode_dataset(req.get("dataset")):
            kind = _existing_kind(self.db, key)
            any_new = any_new or kind is None
            variable = (kind == "variable") if kind is not None else flag
            if variable and "Nanoseconds" not in cols and "Epoch" in cols:
                # MarketStore takes a tick without Nanoseconds as .000000000 (with a warning).
                cols = {**cols, "Nanoseconds": np.zeros(len(cols["Epoch"]), dtype=np.int32)}
            items[key] = cols
        if items:
            self.db.write_many(items, variable=flag if any_new else None)

    # -- Create / Destroy ------------------------------------------------------------------
    def create(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """One {"error": "", "version"} per request, failures included (MarketStore's shape)."""
        out = []
        for i, req in enumerate(_requests(params)):
            try:
                self._create_one(_map(req, f"requests[{i}]"))
                out.append({"error": "", "version": self.version})
            except (WireError, engine.MktsError) as exc:
                out.append({"error": str(exc), "version": self.version})
        return {"responses": out}

    def _create_one(self, req: Mapping[str, Any]) -> None:
        key = split_tbk(req.get("key"))
        names, types = req.get("column_names"), req.get("column_types")
        if names is None:
            names = []
        if types is None:
            types = []
        if not isinstance(names, list) or not isinstance(types, list):
            raise WireError("column_names and column_types must be lists")
        if len(names) != len(types):
            raise WireError(f"column_names has {len(names)} entries and column_types "
                            f"{len(types)}; they must match")
        if req.get("is_variable_length") is not None:
            variable = _bool(req, "is_variable_length")
        else:  # pymarketstore sends row_type (MarketStore's JSON-RPC ignores it; we honour it)
            row_type = req.get("row_type", "fixed")
            if row_type not in ("fixed", "variable"):
                raise WireError(f"row_type must be 'fixed' or 'variable', not {row_type!r}")
            variable = row_type == "variable"
        columns: dict[str, np.dtype] = {}
        for name, t in zip(names, types, strict=True):
            if not isinstance(name, str):
                raise WireError(f"column names must be strings, not {_tname(name)}")
            dtype = parse_wire_type(t)
            if name == "Epoch" or (name == "Nanoseconds" and variable):
                continue  # (in a fixed bucket Nanoseconds is an ordinary column)
            if name in columns:
                raise WireError(f"column {name!r} appears twice")
            columns[name] = dtype
        self.db.create(key, columns, variable=variable)

    def destroy(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = []
        for i, req in enumerate(_requests(params)):
            try:
                self.db.destroy(split_tbk(_map(req, f"requests[{i}]").get("key")))
                out.append({"error": "", "version": self.version})
            except (WireError, engine.MktsError) as exc:
                out.append({"error": str(exc), "version": self.version})
        return {"responses": out}

    # -- ListSymbols / GetInfo -------------------------------------------------------------
    def list_symbols(self, params: Mapping[str, Any]) -> dict[str, Any]:
        fmt = params.get("format", "symbol")
        if fmt == "tbk":
            return {"Results": self.db.list_keys()}
        return {"Results": self.db.list_symbols()}

    def get_info(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = []
        for i, req in enumerate(_requests(params)):
            try:
                info = self.db.info(split_tbk(_map(req, f"requests[{i}]").get("key")))
                out.append(self._info_response(info))
            except (WireError, engine.MktsError) as exc:
                out.append({"LatestYear": 0, "TimeFrame": 0, "DSV": [], "RecordType": 0,
                            "ServerResp": {"error": str(exc), "version": self.version}})
        return {"responses": out}

    def _info_response(self, info: Mapping[str, Any]) -> dict[str, Any]:
        from mkts.engine.timeframes import parse_timeframe

        columns = dict(info["columns"])
        variable = info["kind"] == "variable"
        if variable:
            columns.pop("Nanoseconds", None)  # MarketStore's headers do not list it
        years = info.get("years") or [0]
        return {
            "LatestYear": int(max(years)),
            "TimeFrame": parse_timeframe(info["timeframe"]).seconds * NS,
            "DSV": [{"Name": n, "Type": _TYPE_CODES.get(t, _STRING_CODE)} for n, t in columns.items()],
            "RecordType": 1 if variable else 0,
            "ServerResp": {"error": "", "version": self.version},
        }


def _existing_kind(db: engine.Database, key: str) -> str | None:
    """"fixed" / "variable" for an existing bucket, None if there is none (or the key is bad:
    the write then reports it). Reads the catalog directly: `db.info()` would scan every
    tick slot of the bucket to count its bytes, far too slow for each write."""
    from mkts.engine.keys import parse_key

    try:
        bucket = db.catalog.buckets.get(parse_key(key))
    except engine.InvalidKeyError:
        return None
    return None if bucket is None else str(bucket.schema.kind)
