"""Docker's hijacked connections: '101 UPGRADED' then raw bytes both ways, and the multiplexed stream framing."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from seabox.errors import Conflict, InvalidArgument

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}


DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
# docker-py reads the 101 response through a buffered reader, then the stream from the bare socket: bytes that
# reach it with the headers are lost. Output ready at once (attach with logs=1) waits until this long after the 101.
UPGRADE_GRACE = 0.01
_CTRL_KEYS = ["ctrl-" + c for c in "@abcdefghijklmnopqrstuvwxyz[\\]^_"]  # their codes are 0..31


def parse_detach_keys(text: str, field: str) -> bytes:
    """Docker's detach key sequence: comma-separated single characters, ctrl-@..ctrl-_ or DEL; '' is the default."""
    if not text:
        return DEFAULT_DETACH_KEYS
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1 and key.isascii():
            codes.append(ord(key))
        elif key in _CTRL_KEYS:
            codes.append(_CTRL_KEYS.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise InvalidArgument(f"invalid detach keys ({text}): unknown character {key!r}; use letters, "
                                  "ctrl-a..ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_ or DEL, "
                                  "separated by commas", field=field)
    return bytes(codes)


class DetachWatch:
    """Finds the detach key sequence in a terminal's input, across chunks: the bytes before it go on, a
    partial match is held back until the next byte tells whether it was the sequence."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The input to pass on, and whether the sequence ended in DATA (what follows it is dropped)."""
        text = self._held + data
        found = text.find(self.keys)
        if found >= 0:
            self._held = b""
            return text[:found], True
        keep = next((n for n in range(min(len(self.keys) - 1, len(text)), 0, -1)
                     if self.keys.startswith(text[-n:])), 0)
        self._held = text[len(text) - keep:]
        return text[:len(text) - keep], False


async def feed_input(out: Stream, write: Callable[[bytes], Awaitable[None]] | None, close: Callable[[], None],
                     watch: DetachWatch | None) -> None:
    """Pass what the client sends to WRITE (None: dropped) and CLOSE it when the client ends its side.

    Returns when the client detaches: it typed the detach keys, or (as Docker) ended a terminal's input
    (WATCH is set for a terminal). Otherwise it never returns: the output goes on after the input.
    """
    writing = write is not None
    while data := await out.receive():
        detached = False
        if watch is not None:
            data, detached = watch.feed(data)
        if write is not None and writing and data:
            try:
                await write(data)
            except Conflict:  # the process closed its stdin: what the client sends goes nowhere
                writing = False
        if detached:
            return
    if watch is not None:
        return
    if writing:
        close()
    await asyncio.Event().wait()


def frame(stream: str, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream: [type, 0, 0, 0, big-endian length] + payload."""
    return struct.pack(">BxxxL", STREAM_IDS[stream], len(data)) + data


async def client_gone(request: web.Request, interval: float = 0.2) -> None:
    """Returns once the client's connection is closed (polled every INTERVAL seconds)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(interval)


class _RawParser:
    """Stands in for aiohttp's payload parser on an upgraded connection: bytes in, straight to a queue."""

    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(data)
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


class _HalfCloseProtocol(asyncio.Protocol):
    """Sits between the transport and aiohttp once hijacked: the client's bytes go to the queue, and a
    half-close by the client (docker CLI's CloseWrite after stdin ends) keeps our sending side open."""

    def __init__(self, inner: Any, queue: asyncio.Queue[bytes]) -> None:
        self.inner = inner
        self.queue = queue

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def eof_received(self) -> bool:
        self.queue.put_nowait(b"")
        return True  # keep the transport open for our output

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(b"")
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class Stream:
    """The response side of a Docker stream: hijacked (after 101) when the client asked to upgrade, else a plain 200."""

    def __init__(self, request: web.Request, multiplexed: bool) -> None:
        self.request = request
        self.multiplexed = multiplexed
        self.upgraded = request.headers.get("Upgrade", "").lower() == "tcp"
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._response: web.StreamResponse | None = None
        self._closed = False
        self._quiet_until = 0.0  # no output before then (see UPGRADE_GRACE)

    async def open(self) -> Stream:
        content_type = MULTIPLEXED_STREAM if self.multiplexed else RAW_STREAM
        if self.upgraded:
            response = web.StreamResponse(
                status=101,
                reason="UPGRADED",
                headers={"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"},
            )
            await response.prepare(self.request)
            protocol: Any = self.request.protocol
            protocol.keep_alive(False)
            protocol.set_parser(_RawParser(self._inbox))  # hands over bytes that came with the request
            transport = self.request.transport
            assert transport is not None
            transport.set_protocol(_HalfCloseProtocol(protocol, self._inbox))
            self._quiet_until = asyncio.get_running_loop().time() + UPGRADE_GRACE
        else:
            response = web.StreamResponse(headers={"Content-Type": content_type})
            await response.prepare(self.request)
            self._inbox.put_nowait(b"")  # nothing can be read from a plain request
        self._response = response
        return self

    async def send(self, stream: str, data: bytes) -> None:
        """Write output: framed when multiplexed, raw otherwise. Raises ConnectionResetError if the client left."""
        payload = frame(stream, data) if self.multiplexed else data
        if not payload:
            return
        early = self._quiet_until - asyncio.get_running_loop().time()
        if early > 0:
            await asyncio.sleep(early)
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client went away")
        if self.upgraded:
            transport.write(payload)
            protocol: Any = self.request.protocol
            await protocol._drain_helper()
        else:
            assert self._response is not None
            await self._response.write(payload)

    async def receive(self) -> bytes:
        """The next bytes the client sent after the upgrade (stdin); b'' when it closed its side."""
        return await self._inbox.get()

    async def close(self) -> web.StreamResponse:
        assert self._response is not None
        if not self._closed:
            self._closed = True
            transport = self.request.transport
            if self.upgraded:
                if transport is not None and not transport.is_closing():
                    transport.close()
            else:
                try:
                    await self._response.write_eof()
                except ConnectionResetError:
                    pass
        return self._response
