"""A client of conmon's attach socket: the container's live output, and its stdin."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from seabox.errors import Conflict, NotFound

# conmon tags every packet it sends with the stream it came from.
_STREAMS = {2: "stdout", 3: "stderr"}
_RECV_SIZE = 65536
# conmon reads each stdin packet into a 32 KiB buffer and drops what does not fit; stay well inside it.
_SEND_SIZE = 16384


class AttachStream:
    """One connection to a container's attach socket: iterate it for ("stdout" | "stderr", bytes) chunks.

    The iteration ends when conmon exits.

    Output produced before connecting is not replayed (it is in the log). Closing stdin, or
    disconnecting, closes the container's stdin.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    async def connect(cls, path: Path) -> AttachStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise NotFound(f"no attach socket at {path}: the container is not running") from exc
        return cls(sock)

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(self._sock, _RECV_SIZE)
            except OSError:  # reset: conmon went away
                return
            if not packet:
                return
            stream = _STREAMS.get(packet[0])
            if stream is not None and len(packet) > 1:
                yield stream, packet[1:]

    async def write(self, data: bytes) -> None:
        """Send data to the container's stdin (the container must have been created with open_stdin)."""
        loop = asyncio.get_running_loop()
        try:
            for start in range(0, len(data), _SEND_SIZE):
                await loop.sock_sendall(self._sock, data[start : start + _SEND_SIZE])
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Conflict("the container's attach socket is closed") from exc

    def close_stdin(self) -> None:
        """Signal end of input: conmon closes the container's stdin and keeps sending output."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._sock.close()

    async def __aenter__(self) -> AttachStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
