"""One tenant's resolver: a UDP and a TCP socket on its gateway address, port 53, bound to its bridge, with limits.

The sockets are bound to the tenant's bridge (SO_BINDTODEVICE): only queries that came in over that
bridge reach them, so the interface decides the tenant, never anything in the query, and replies
leave by the same bridge. The resolver knows its own tenant's zone only.

A hostile tenant may flood it: a query is at most MAX_QUERY bytes, at most max_inflight queries are
being forwarded upstream at once (more are answered SERVFAIL at once), at most max_tcp TCP
connections are open (more are closed at once) and each closes after TCP_IDLE seconds without a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from ipaddress import IPv4Address, IPv4Network

import dns.message
import dns.rcode

from seabox.node.dns.forward import DNS_PORT, Forwarder
from seabox.node.dns.zone import Zone, answer, error, parse_query, to_wire, udp_limit

log = logging.getLogger(__name__)

MAX_QUERY = 512  # bytes: a question with EDNS fits many times over
MAX_INFLIGHT = 64
MAX_TCP = 16
TCP_IDLE = 10.0
TCP_MAX_ANSWER = 65535


class TenantResolver:
    """Serves one tenant's zone on gateway:port over bridge to the addresses of subnet, forwarding what
    is not the tenant's own."""

    def __init__(
        self,
        bridge: str,
        gateway: IPv4Address,
        subnet: IPv4Network,
        zone: Zone,
        forwarder: Forwarder,
        *,
        port: int = DNS_PORT,
        max_inflight: int = MAX_INFLIGHT,
        max_tcp: int = MAX_TCP,
    ) -> None:
        self.bridge = bridge
        self.gateway = gateway
        self.subnet = subnet
        self.zone = zone
        self.forwarder = forwarder
        self.port = port
        self.max_inflight = max_inflight
        self.max_tcp = max_tcp
        self.ifindex = 0  # of the bridge the sockets are bound to (0: not started)
        self._inflight = 0
        self._tcp_open = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind both sockets (OSError if the bridge is missing or the address is taken) and serve."""
        loop = asyncio.get_running_loop()
        ifindex = socket.if_nametoindex(self.bridge)
        udp = _bound_socket(socket.SOCK_DGRAM, self.bridge, self.gateway, self.port)
        try:
            tcp = _bound_socket(socket.SOCK_STREAM, self.bridge, self.gateway, self.port)
        except OSError:
            udp.close()
            raise
        tcp.listen(self.max_tcp)
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), sock=udp)
        self._tcp = await asyncio.start_server(self._connection, sock=tcp)
        self.ifindex = ifindex

    def update(self, zone: Zone, forwarder: Forwarder) -> None:
        """Serve zone from now on, forwarding through forwarder."""
        self.zone = zone
        self.forwarder = forwarder

    async def close(self) -> None:
        """Close both sockets and drop the queries still being forwarded."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            # not wait_closed(): from Python 3.12 it waits for open connections, which end on their own
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.ifindex = 0

    # answering ----------------------------------------------------------------------------
    async def respond(self, query: dns.message.Message) -> dns.message.Message:
        """The answer to query: the zone's own, or the upstreams' while fewer than max_inflight are pending."""
        local = answer(query, self.zone)
        if local is not None:
            return local
        if not self._admit():
            return error(query, dns.rcode.SERVFAIL)
        return await self._forward(query)

    def _admit(self) -> bool:
        """Count one more query being forwarded, unless max_inflight are already."""
        if self._inflight >= self.max_inflight:
            return False
        self._inflight += 1
        return True

    async def _forward(self, query: dns.message.Message) -> dns.message.Message:
        """The upstreams' answer to an admitted query."""
        try:
            return await self.forwarder.resolve(query)
        finally:
            self._inflight -= 1

    def _datagram(self, wire: bytes, peer: tuple[str, int]) -> None:
        if len(wire) > MAX_QUERY or not self._from_tenant(peer[0]) or (query := parse_query(wire)) is None:
            return
        local = answer(query, self.zone)
        if local is None and not self._admit():
            local = error(query, dns.rcode.SERVFAIL)
        if local is not None:  # answered at once: no task, nothing held
            self._send(to_wire(local, udp_limit(query)), peer)
            return
        task = asyncio.create_task(self._forward_datagram(query, peer))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def _forward_datagram(self, query: dns.message.Message, peer: tuple[str, int]) -> None:
        response = await self._forward(query)
        self._send(to_wire(response, udp_limit(query)), peer)

    def _from_tenant(self, host: str) -> bool:
        """Whether a query's source address is one of the tenant's (a query from any other is dropped)."""
        try:
            return IPv4Address(host) in self.subnet
        except ValueError:
            return False

    def _send(self, wire: bytes, peer: tuple[str, int]) -> None:
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(wire, peer)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self._tcp_open >= self.max_tcp or not peer or not self._from_tenant(peer[0]):
            writer.close()
            return
        self._tcp_open += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                prefix = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                size = int.from_bytes(prefix, "big")  # the TCP framing's length, not DNS wire format
                if not 0 < size <= MAX_QUERY:
                    break
                query = parse_query(await asyncio.wait_for(reader.readexactly(size), TCP_IDLE))
                if query is None:
                    break
                response = await self.respond(query)
                writer.write(response.to_wire(max_size=TCP_MAX_ANSWER, prefer_truncation=True, prepend_length=True))
                await asyncio.wait_for(writer.drain(), TCP_IDLE)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:  # close(): the connection ends here (the stream server logs a cancelled task)
            pass
        finally:
            self._tcp_open -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("answering a query on %s failed", self.bridge, exc_info=task.exception())


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, resolver: TenantResolver) -> None:
        self.resolver = resolver

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.resolver._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.info("resolver on %s: %s", self.resolver.bridge, exc)


def _bound_socket(kind: int, bridge: str, gateway: IPv4Address, port: int) -> socket.socket:
    """A non-blocking socket on gateway:port that sees only what arrives over bridge."""
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, bridge.encode())
        sock.bind((str(gateway), port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
