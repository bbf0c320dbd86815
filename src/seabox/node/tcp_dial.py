"""TCP connections from this node's root network namespace to a port of one of its containers."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from seabox.errors import UpstreamError

CONNECT_TIMEOUT = 3.0  # a container's address is on this node's bridge: a live port answers at once


class LocalTcp:
    """One connection the node opened to a container port (the TcpStream protocol)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, n: int = 65536) -> bytes:
        try:
            return await self._reader.read(n)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionResetError, BrokenPipeError, RuntimeError) as exc:
            raise UpstreamError(f"the container closed the connection: {exc}") from None

    def close_write(self) -> None:
        if not self._writer.is_closing():
            with contextlib.suppress(OSError):
                self._writer.write_eof()

    def close(self) -> None:
        self._writer.close()


async def open_tcp(ip: str, port: int, what: str) -> LocalTcp:
    """A connection to IP:PORT (WHAT names the container in errors); UpstreamError if it refuses or is silent."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), CONNECT_TIMEOUT)
    except TimeoutError:
        raise UpstreamError(f"{what} does not answer on port {port}") from None
    except OSError as exc:
        raise UpstreamError(f"{what} refuses connections on port {port}: {exc.strerror or exc}") from None
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return LocalTcp(reader, writer)
