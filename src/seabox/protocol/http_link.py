"""The control plane's link to a remote node: NodeLink over HTTP and websockets to the node's link listener."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal as signals
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import TypeAdapter

from seabox.errors import Conflict, UpstreamError
from seabox.model.node import NodeCapacity
from seabox.protocol.archive import Change, PathStat, UploadOptions
from seabox.protocol.images import HistoryEntry, ImageInfo, NewImage, PullProgress
from seabox.protocol.link import NodeLink
from seabox.protocol.logs import LogEntry
from seabox.protocol.placement import Placement, placement_json
from seabox.protocol.runtime import Stats
from seabox.protocol.wire import LINK_PREFIX, WireError
from seabox.protocol.wire_errors import error_from

STREAMS = {1: "stdout", 2: "stderr"}
_INFO = TypeAdapter(ImageInfo)
_INFOS = TypeAdapter(list[ImageInfo])
_STATS = TypeAdapter(Stats)
_HISTORY = TypeAdapter(list[HistoryEntry])
_PROGRESS = TypeAdapter(PullProgress)
_CHANGES = TypeAdapter(list[Change])
CALL_TIMEOUT = aiohttp.ClientTimeout(total=60)
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)


async def _checked(r: aiohttp.ClientResponse) -> None:
    if r.status >= 400:
        text = await r.text()
        try:
            wire = WireError.model_validate_json(text)
        except ValueError:
            raise UpstreamError(f"node answered {r.status}: {text[:200]}") from None
        raise error_from(r.status, wire)


def _raise_wire(message: dict[str, Any]) -> None:
    if "error" in message:
        wire = WireError.model_validate(message["error"])
        raise error_from(500, wire)


class HttpNodeLink(NodeLink):
    """Node NAME at ADDRESS (HOST:PORT), reached with its link SECRET."""

    def __init__(self, name: str, address: str, secret: str, capacity: NodeCapacity) -> None:
        self.name = name
        self.base = f"http://{address}{LINK_PREFIX}"
        self._headers = {"Authorization": f"Bearer {secret}"}
        self._capacity = capacity
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def _call(self, method: str, path: str, **kw: Any) -> bytes:
        try:
            async with self._client().request(method, self.base + path, timeout=CALL_TIMEOUT, **kw) as r:
                await _checked(r)
                return await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"node {self.name} cannot be reached: {exc}") from None

    def capacity(self) -> NodeCapacity:
        return self._capacity

    async def signal(self, cid: str, signal: str) -> None:
        await self._call("POST", f"/containers/{cid}/signal", json={"signal": signal})

    def logs(
        self,
        cid: str,
        *,
        follow: bool,
        tail: int | None,
        since: datetime | None,
        until_stopped: Callable[[], Awaitable[None]],
        until: datetime | None = None,
    ) -> AsyncIterator[LogEntry]:
        params = {"follow": "1" if follow else "0"}
        if tail is not None:
            params["tail"] = str(tail)
        if since is not None:
            params["since"] = str(since.timestamp())
        if until is not None:
            params["until"] = str(until.timestamp())
        return self._logs(cid, params)

    async def _logs(self, cid: str, params: dict[str, str]) -> AsyncIterator[LogEntry]:
        try:
            async with self._client().get(
                self.base + f"/containers/{cid}/logs", params=params, timeout=STREAM_TIMEOUT
            ) as r:
                await _checked(r)
                async for line in r.content:
                    if line.strip():
                        item = json.loads(line)
                        yield LogEntry(int(item["t"]), str(item["s"]), base64.b64decode(item["d"]))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"node {self.name}: logs of {cid[:12]}: {exc}") from None

    async def _socket(self, path: str, params: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self._client().ws_connect(self.base + path, params=params, timeout=aiohttp.ClientWSTimeout(ws_close=10))
        except aiohttp.WSServerHandshakeError as exc:
            raise UpstreamError(f"node {self.name}: {exc.message}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"node {self.name} cannot be reached: {exc}") from None

    async def exec(
        self,
        cid: str,
        args: list[str],
        *,
        env: Sequence[str],
        cwd: str | None,
        user: str,
        tty: bool,
        stdin: bool,
    ) -> RemoteExec:
        spec = {"args": args, "env": list(env), "cwd": cwd, "user": user, "tty": tty, "stdin": stdin}
        ws = await self._socket(f"/containers/{cid}/exec", {"spec": json.dumps(spec)})
        first = await ws.receive_json()
        if "error" in first:
            await ws.close()
            _raise_wire(first)
        return RemoteExec(ws, bool(first.get("tty")))

    async def attach(self, cid: str, running: bool) -> RemoteAttach:
        ws = await self._socket(f"/containers/{cid}/attach", {"running": "1" if running else "0"})
        first = await ws.receive_json()
        if "error" in first:
            await ws.close()
            _raise_wire(first)
        return RemoteAttach(ws)

    async def dial(self, cid: str, port: int) -> RemoteTcp:
        ws = await self._socket(f"/containers/{cid}/dial", {"port": str(port)})
        first = await ws.receive_json()
        if "error" in first:
            await ws.close()
            _raise_wire(first)
        return RemoteTcp(ws)

    async def resize(self, cid: str, height: int, width: int) -> None:
        await self._call("POST", f"/containers/{cid}/resize", json={"height": height, "width": width})

    async def stats(self, cid: str) -> Stats:
        return _STATS.validate_json(await self._call("GET", f"/containers/{cid}/stats"))

    async def top(self, cid: str) -> list[tuple[int, str]]:
        return [(int(pid), str(cmd)) for pid, cmd in json.loads(await self._call("GET", f"/containers/{cid}/top"))]

    async def path_stat(self, p: Placement, path: str) -> PathStat:
        body = {"placement": placement_json(p), "path": path}
        return PathStat.model_validate_json(await self._call("POST", "/files/stat", json=body))

    async def _tar(self, path: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        try:
            r = await self._client().post(self.base + path, json=body, timeout=STREAM_TIMEOUT)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"node {self.name} cannot be reached: {exc}") from None
        try:
            await _checked(r)
        except BaseException:
            r.release()
            raise
        return self._chunks(r)

    async def _chunks(self, r: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in r.content.iter_chunked(1 << 20):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"node {self.name}: a tar stream broke off: {exc}") from None
        finally:
            r.release()

    async def read_archive(self, p: Placement, path: str) -> AsyncIterator[bytes]:
        return await self._tar("/files/archive", {"placement": placement_json(p), "path": path})

    async def write_archive(self, p: Placement, path: str, data: AsyncIterator[bytes], options: UploadOptions) -> None:
        head = {"placement": placement_json(p), "path": path, "options": options.model_dump(mode="json")}

        async def body() -> AsyncIterator[bytes]:
            yield json.dumps(head).encode() + b"\n"
            async for chunk in data:
                yield chunk

        try:
            async with self._client().post(self.base + "/files/upload", data=body(), timeout=STREAM_TIMEOUT) as r:
                await _checked(r)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"node {self.name}: upload: {exc}") from None

    async def export(self, p: Placement) -> AsyncIterator[bytes]:
        return await self._tar("/files/export", {"placement": placement_json(p)})

    async def changes(self, p: Placement) -> list[Change]:
        return _CHANGES.validate_json(await self._call("POST", "/files/changes", json={"placement": placement_json(p)}))

    async def layer_size(self, cid: str) -> int:
        return int(json.loads(await self._call("GET", f"/containers/{cid}/layer-size"))["bytes"])

    async def pull(self, ref: str, progress: Callable[[PullProgress], None] | None) -> ImageInfo:
        try:
            async with self._client().post(self.base + "/images/pull", json={"ref": ref}, timeout=STREAM_TIMEOUT) as r:
                await _checked(r)
                async for line in r.content:
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    _raise_wire(item)
                    if "progress" in item and progress is not None:
                        progress(_PROGRESS.validate_python(item["progress"]))
                    if "image" in item:
                        return _INFO.validate_python(item["image"])
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"node {self.name}: pull of {ref}: {exc}") from None
        raise UpstreamError(f"node {self.name}: the pull of {ref} ended without an answer")

    async def import_archive(self, path: Path) -> list[ImageInfo]:
        with path.open("rb") as f:
            try:
                async with self._client().post(self.base + "/images/import", data=f, timeout=STREAM_TIMEOUT) as r:
                    await _checked(r)
                    return _INFOS.validate_json(await r.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamError(f"node {self.name}: import: {exc}") from None

    async def import_rootfs(self, path: Path, spec: NewImage) -> ImageInfo:
        with path.open("rb") as f:
            try:
                async with self._client().post(self.base + "/images/import-rootfs", data=f, timeout=STREAM_TIMEOUT,
                                               params={"spec": json.dumps(asdict(spec))}) as r:
                    await _checked(r)
                    return _INFO.validate_json(await r.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamError(f"node {self.name}: import: {exc}") from None

    async def commit(self, p: Placement, spec: NewImage) -> ImageInfo:
        body = {"placement": placement_json(p), "spec": asdict(spec)}
        return _INFO.validate_json(await self._call("POST", "/files/commit", json=body))

    async def history(self, image_id: str) -> list[HistoryEntry]:
        return _HISTORY.validate_json(await self._call("GET", f"/images/{image_id}/history"))

    async def save(self, images: list[tuple[str, list[str]]], out: Path) -> None:
        try:
            async with self._client().post(self.base + "/images/save", json={"images": images},
                                           timeout=STREAM_TIMEOUT) as r:
                await _checked(r)
                with out.open("wb") as f:
                    async for chunk in r.content.iter_chunked(1 << 20):
                        f.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"node {self.name}: save: {exc}") from None

    async def image(self, image_id: str) -> ImageInfo:
        return _INFO.validate_json(await self._call("GET", f"/images/{image_id}"))

    async def remove_image(self, image_id: str) -> None:
        await self._call("DELETE", f"/images/{image_id}")

    async def create_volume(self, tenant_id: str, name: str, size: int) -> None:
        await self._call("POST", "/volumes", json={"tenant_id": tenant_id, "name": name, "size": size})

    async def remove_volume(self, tenant_id: str, name: str) -> int:
        return int(json.loads(await self._call("DELETE", f"/volumes/{tenant_id}/{name}"))["bytes"])

    async def volume_size(self, tenant_id: str, name: str) -> int:
        return int(json.loads(await self._call("GET", f"/volumes/{tenant_id}/{name}/size"))["bytes"])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class _RemoteStream:
    """Output frames of a node's websocket as ("stdout" | "stderr", bytes) chunks."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._end: dict[str, Any] = {}

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                yield STREAMS.get(msg.data[0], "stdout"), msg.data[1:]
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self._end = json.loads(msg.data)
                return

    def _send(self, payload: dict[str, Any]) -> None:
        if not self._ws.closed:
            asyncio.ensure_future(self._ws.send_json(payload))

    async def _send_bytes(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(data)
        except (ConnectionResetError, RuntimeError) as exc:
            raise Conflict(f"the stream to the node is closed: {exc}") from None

    def close(self) -> None:
        asyncio.ensure_future(self._ws.close())


class RemoteExec(_RemoteStream):
    """An exec'd process on a remote node (the ExecStream protocol)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, tty: bool) -> None:
        super().__init__(ws)
        self.tty = tty

    async def write_stdin(self, data: bytes) -> None:
        await self._send_bytes(data)

    def close_stdin(self) -> None:
        self._send({"close_stdin": True})

    def resize(self, height: int, width: int) -> None:
        self._send({"resize": [height, width]})

    async def kill(self, sig: int = signals.SIGKILL) -> None:
        if not self._ws.closed:
            await self._ws.send_json({"kill": int(sig)})

    async def wait(self) -> int:
        """The exit code, once the node has sent it (after the output ended)."""
        with contextlib.suppress(Exception):
            while "exit" not in self._end and not self._ws.closed:
                msg = await self._ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._end = json.loads(msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        await self._ws.close()
        return int(self._end.get("exit", 137))


class RemoteAttach(_RemoteStream):
    """A container's stdio on a remote node (the AttachStdio protocol)."""

    async def write(self, data: bytes) -> None:
        await self._send_bytes(data)

    def close_stdin(self) -> None:
        self._send({"close_stdin": True})


class RemoteTcp:
    """A TCP connection a remote node opened to a container port, carried by a websocket (the TcpStream protocol)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._pending = b""  # the rest of a frame larger than a read asked for
        self._eof = False

    async def read(self, n: int = 65536) -> bytes:
        while not self._pending and not self._eof:
            msg = await self._ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                self._pending = msg.data
            elif msg.type != aiohttp.WSMsgType.TEXT or json.loads(msg.data).get("eof"):
                self._eof = True
        data, self._pending = self._pending[:n], self._pending[n:]
        return data

    async def write(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(data)
        except (ConnectionResetError, RuntimeError) as exc:
            raise UpstreamError(f"the connection to the container is closed: {exc}") from None

    def close_write(self) -> None:
        if not self._ws.closed:
            asyncio.ensure_future(self._ws.send_json({"close_write": True}))

    def close(self) -> None:
        asyncio.ensure_future(self._ws.close())
