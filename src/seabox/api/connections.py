"""The API's listening sockets and their connections: a deadline for each request head, idle reaping, a cap
on open connections (the oldest idle one goes first) and short JSON answers to malformed HTTP."""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
import time
from collections import OrderedDict
from typing import Any, Protocol

from aiohttp import web

from seabox.config import ApiConfig

log = logging.getLogger(__name__)
FD_RESERVE = 1024  # descriptors kept free for the database, runc, conmon and image tools
SUMMARY_EVERY = 60.0  # seconds between log lines about closed connections
BACKLOG = 4096  # the kernel caps it at net.core.somaxconn; absorbs bursts of connections


def raise_fd_limit() -> int:
    """Lift the soft limit on open files to the hard one; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class ConnectionGuard:
    """Every open connection of the API, oldest activity first, and the few counters the log reports."""

    def __init__(self, cfg: ApiConfig, max_connections: int, clock: Any = time.monotonic) -> None:
        self.cfg = cfg
        self.max_connections = max_connections
        self.conns: OrderedDict[Connection, None] = OrderedDict()
        self.by_address: dict[str, OrderedDict[Connection, None]] = {}
        self.closed: dict[str, int] = {}
        self._clock = clock
        self._since = clock()

    def opened(self, conn: Connection) -> None:
        """Admit CONN; past a cap the oldest idle connection (of its address, or of all) is closed, else CONN."""
        mine = self.by_address.setdefault(conn.address, OrderedDict())
        self.conns[conn] = None
        mine[conn] = None
        self._make_room(mine, conn, self.cfg.max_connections_per_address, "max_connections_per_address")
        if conn in self.conns:
            self._make_room(self.conns, conn, self.max_connections, "max_connections")

    def _make_room(self, conns: OrderedDict[Connection, None], newcomer: Connection, cap: int, reason: str) -> None:
        checked = 0
        while len(conns) > cap and checked < len(conns):
            oldest = next(iter(conns))
            if oldest is newcomer:
                conns.move_to_end(oldest)
            elif oldest.idle():
                self.reap(oldest, reason)
                continue
            else:  # busy (a request or a hijacked stream): keep it, look further
                conns.move_to_end(oldest)
            checked += 1
        if len(conns) > cap:
            self.reap(newcomer, reason)

    def active(self, conn: Connection) -> None:
        if conn in self.conns:
            self.conns.move_to_end(conn)
            self.by_address[conn.address].move_to_end(conn)

    def lost(self, conn: Connection) -> None:
        self.conns.pop(conn, None)
        mine = self.by_address.get(conn.address)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self.by_address[conn.address]

    def reap(self, conn: Connection, reason: str) -> None:
        """Close CONN; counted, and summed up in the log at most once a minute (never a line per connection)."""
        self.lost(conn)
        conn.force_close()
        self.count(reason)

    def count(self, reason: str) -> None:
        self.closed[reason] = self.closed.get(reason, 0) + 1
        now = self._clock()
        if now - self._since >= SUMMARY_EVERY:
            summary = ", ".join(f"{n} by {why}" for why, n in sorted(self.closed.items()))
            log.info("closed connections in the last %.0f s: %s ([api] in config.toml)", now - self._since, summary)
            self.closed.clear()
            self._since = now


class Connection(Protocol):
    """What the guard needs of a connection."""

    address: str

    def idle(self) -> bool: ...

    def force_close(self) -> None: ...


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler with a header deadline: a request head must arrive whole within
    header_timeout of its first byte (or of the connection's start), else the connection is closed."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=guard.cfg.idle_timeout, **kwargs)
        self._guard = guard
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_started = False
        self._heads = 0
        self.address = ""

    def idle(self) -> bool:
        """Open and not handling a request (a hijacked stream is a request in progress)."""
        return self.transport is not None and not self._request_in_progress and not self._messages

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self._loop.call_later(self._guard.cfg.header_timeout, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.idle() and (self._head_started or self._heads == 0):
            self._guard.reap(self, "header_timeout")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) else ""
        self._arm()
        self._guard.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._guard.lost(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and not self._head_started and not self._request_in_progress and not self._messages:
            self._head_started = True  # the first bytes of a new request head: its deadline starts now
            self._arm()
        super().data_received(data)
        if self._messages:
            self._head_started = False
            self._heads += 1
            self._disarm()
        self._guard.active(self)

    def _process_keepalive(self) -> None:
        was_open = self.transport is not None
        super()._process_keepalive()
        if was_open and self.transport is None:
            self._guard.count("idle_timeout")

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Malformed HTTP (or a failure outside the app): a short JSON answer; only real failures are logged loudly."""
        if status >= 500:
            log.error("error handling request from %s", request.remote, exc_info=exc)
        else:
            log.debug("bad request from %s: %s", request.remote, message)
            self._guard.count("bad_request")
        if request.writer.output_size > 0:
            raise ConnectionError("response already started: cannot send an error")
        text = f"malformed HTTP request: {message}" if status < 500 and message else "internal server error"
        response = web.json_response({"message": text}, status=status)
        response.force_close()
        return response


async def listen(runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int,
                 ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    """Serve RUNNER's app on HOST:PORT with guarded connections; close the result before runner.cleanup()."""
    loop = asyncio.get_running_loop()
    server = runner.server
    assert server is not None, "runner.setup() first"

    def connection() -> GuardedRequestHandler:
        return GuardedRequestHandler(server, guard=guard, loop=loop, access_log=None)

    return await loop.create_server(
        connection, host, port, ssl=ssl_context, backlog=BACKLOG, reuse_address=True,
        ssl_handshake_timeout=guard.cfg.header_timeout if ssl_context else None,
    )


def guard_for(cfg: ApiConfig) -> ConnectionGuard:
    """A guard whose connection cap leaves FD_RESERVE descriptors free under the process's file limit."""
    limit = raise_fd_limit()
    cap = min(cfg.max_connections, max(16, limit - FD_RESERVE))
    if cap < cfg.max_connections:
        log.info("serving at most %d connections (open-file limit %d); [api] max_connections is %d",
                 cap, limit, cfg.max_connections)
    return ConnectionGuard(cfg, cap)
