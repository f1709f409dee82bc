"""The server's listening sockets: binding host:port before anything is opened, an accept
loop that backs off when the process is out of descriptors (`_GuardedSite`), and the
message a failed listen prints. What is served on them is httpapp's."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time

from aiohttp import web

log = logging.getLogger("mkts.server")

# accept() out of descriptors (or kernel memory): retry after a delay doubling from the
# first value up to the cap; connections wait in the listen backlog meanwhile (and beyond
# the backlog the kernel refuses them).
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_RETRY_S = (0.01, 1.0)
_BACKLOG = 128


class _AcceptGuard:
    """Backoff and logging for accept() failing for lack of resources: one log line when an
    episode starts and one when it ends, never one per attempt."""

    def __init__(self) -> None:
        self.since: float | None = None  # start of the current episode
        self.retries = 0
        self.delay = _ACCEPT_RETRY_S[0]
        self.episodes = 0

    def failed(self, exc: OSError) -> float:
        """The delay before the next attempt."""
        if self.since is None:
            self.since = time.monotonic()
            self.retries = 0
            self.delay = _ACCEPT_RETRY_S[0]
            self.episodes += 1
            log.error("cannot accept connections: %s; retrying with a backoff up to %g s "
                      "(connections wait in the listen backlog). Raise the open-file limit "
                      "(ulimit -n) or lower storage.max_open_files", exc.strerror or exc,
                      _ACCEPT_RETRY_S[1])
        else:
            self.delay = min(_ACCEPT_RETRY_S[1], self.delay * 2)
        self.retries += 1
        return self.delay

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("accepting connections again after %.1f s (%d retries)",
                        time.monotonic() - self.since, self.retries)
            self.since = None


class _Listener:
    """What a site's `_server` must offer aiohttp (`sockets`, `close`): the listening
    sockets and the tasks accepting on them."""

    def __init__(self, sockets: list[socket.socket], tasks: list[asyncio.Task[None]]) -> None:
        self.sockets = sockets
        self._tasks = tasks

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for t in self._tasks:
            t.cancel()
        for sock in self.sockets:
            if sock.fileno() >= 0:
                # Drop a pending sock_accept's reader before the descriptor can be reused.
                loop.remove_reader(sock.fileno())
                sock.close()


class _GuardedSite(web.BaseSite):
    """aiohttp's TCPSite with an accept loop of our own. asyncio's (3.11) keeps calling
    accept() after EMFILE for every pending connection and schedules a retry for each, which
    spins and logs without bound; this one backs off (`_AcceptGuard`)."""

    __slots__ = ("_host", "_port", "_sockets", "guard")

    def __init__(self, runner: web.BaseRunner, host: str, sockets: list[socket.socket]) -> None:
        """`sockets` come bound from `bind()`; the site makes them listen when it starts
        (until then a connection is refused) and closes them when it stops."""
        super().__init__(runner, backlog=_BACKLOG)
        self._host = host
        self._sockets = sockets
        self._port = sockets[0].getsockname()[1] if sockets else 0
        self.guard = _AcceptGuard()

    @property
    def name(self) -> str:
        shown = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{shown}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        sockets = self._sockets
        for sock in sockets:
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        tasks = [loop.create_task(self._accept(loop, sock)) for sock in sockets]
        self._server = _Listener(sockets, tasks)  # type: ignore[assignment]

    async def _accept(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        factory = self._runner.server
        assert factory is not None
        guard = self.guard
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except ConnectionAbortedError:
                continue  # the client gave up before we took the connection
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                await asyncio.sleep(guard.failed(exc))
                continue
            guard.recovered()
            try:
                await loop.connect_accepted_socket(factory, conn)
            except (OSError, RuntimeError) as exc:  # the connection died at once
                log.debug("dropped a new connection: %r", exc)
                conn.close()


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to host:port (every address the name resolves to), as asyncio's
    create_server makes them, not listening yet. Binding first is how a start finds a busy
    port before it opens (or creates) anything; the caller closes them if it gives up."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and sockets[:-1]:  # one port for every address
                addr = (addr[0], sockets[0].getsockname()[1], *addr[2:])
            sock.bind(addr)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _listen_error(host: str, port: int, exc: OSError, port_option: str = "--port") -> str:
    """`cannot listen on HOST:PORT: <why>`, with what to do for the usual causes."""
    text = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    if exc.errno == errno.EADDRINUSE:
        text += (f"; another process uses port {port}: stop it, or pick another port with "
                 f"{port_option} (0 picks a free one)")
    elif exc.errno == errno.EACCES and 0 < port < 1024:
        text += f"; port {port} needs privileges: pick one from 1024 up with {port_option}"
    elif isinstance(exc, socket.gaierror):
        text += "; set listen_host (or --host) to an address or name of this machine"
    return text
