"""The two transports pymarketstore 0.22 speaks to a server (`Client(url)` over JSON-RPC,
`Client(target, grpc=True)` over gRPC) and helpers that read a Write/Create/Destroy reply
the same way from both (a dict over JSON-RPC, a `MultiServerResponse` message over gRPC)."""

from __future__ import annotations

from typing import Any

from server.serverproc import ServerProcess

TRANSPORTS = ("jsonrpc", "grpc")


def connect(server: ServerProcess, transport: str) -> Any:
    import pymarketstore

    if transport == "grpc":
        return pymarketstore.Client(server.grpc_target, grpc=True)
    return pymarketstore.Client(server.rpc_url)


def replies(res: Any) -> list[tuple[str, str]]:
    """(error, version) of each ServerResponse of a reply."""
    if isinstance(res, dict):
        return [(r["error"], r["version"]) for r in res["responses"] or ()]
    return [(r.error, r.version) for r in res.responses]


def errors(res: Any) -> list[str]:
    """The `error` text of each ServerResponse of a reply ("" for a success)."""
    return [e for e, _ in replies(res)]
