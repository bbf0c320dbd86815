"""The live streams a node hands the control plane: an exec'd process and a container's attached stdio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class ExecStream(Protocol):
    """A process started in a running container; iterate it for ("stdout" | "stderr", bytes) chunks.

    Always await wait() once the output has ended (or after kill()); close() drops output no longer wanted.
    """

    tty: bool

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]: ...

    async def write_stdin(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def resize(self, height: int, width: int) -> None: ...

    async def kill(self, sig: int = ...) -> None: ...

    def close(self) -> None: ...

    async def wait(self) -> int: ...


class AttachStdio(Protocol):
    """A connection to a container's own stdio: its live output, and its stdin if it was opened."""

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]: ...

    async def write(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def close(self) -> None: ...


class TcpStream(Protocol):
    """A TCP connection a node opened to a port of one of its running containers (as the node's bridge reaches it)."""

    async def read(self, n: int = 65536) -> bytes: ...  # b"" once the container closed its side

    async def write(self, data: bytes) -> None: ...

    def close_write(self) -> None: ...  # half-close: the container reads EOF

    def close(self) -> None: ...
