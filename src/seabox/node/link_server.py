"""The node's link listener: what servers ask of this node over HTTP (streams, readings, images, volumes).

Servers authenticate with the link secret the node chose when it joined. Exec and attach are
websockets: binary frames carry a stream byte (1 stdout, 2 stderr) and data towards the server and
stdin towards the node; text frames carry JSON control messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import TypeAdapter

from seabox.errors import InvalidArgument, SeaboxError, Unauthorized
from seabox.node.local_link import LocalLink
from seabox.protocol.archive import UploadOptions
from seabox.protocol.images import HistoryEntry, ImageConfig, ImageInfo, NewImage, PullProgress
from seabox.protocol.placement import placement_from
from seabox.protocol.runtime import Stats
from seabox.protocol.streams import AttachStdio, ExecStream, TcpStream
from seabox.protocol.wire import LINK_PREFIX
from seabox.protocol.wire_errors import to_wire

log = logging.getLogger(__name__)

STREAM_BYTES = {"stdout": 1, "stderr": 2}
MAX_CONTROL = 1 << 16
_INFO = TypeAdapter(ImageInfo)
_INFOS = TypeAdapter(list[ImageInfo])
_STATS = TypeAdapter(Stats)
_HISTORY = TypeAdapter(list[HistoryEntry])
_PROGRESS = TypeAdapter(PullProgress)
LINK = web.AppKey("link", LocalLink)
SECRET = web.AppKey("secret", str)
STOPPED = web.AppKey("stopped", object)


def _error(exc: SeaboxError) -> web.Response:
    return web.json_response(to_wire(exc).model_dump(), status=exc.status)


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    auth = request.headers.get("Authorization", "")
    if not hmac.compare_digest(auth.encode(), f"Bearer {request.app[SECRET]}".encode()):
        return _error(Unauthorized("this is a node's link listener: only its control plane may call it"))
    try:
        return await handler(request)
    except SeaboxError as exc:
        return _error(exc)
    except (ValueError, KeyError, TypeError) as exc:  # a malformed request (JSON errors are ValueErrors)
        return _error(InvalidArgument(f"malformed link request: {exc!r}"))


def _link(request: web.Request) -> LocalLink:
    return request.app[LINK]


async def _json(request: web.Request) -> dict[str, Any]:
    data = await request.json()
    if not isinstance(data, dict):
        raise InvalidArgument("body must be a JSON object")
    return data


routes = web.RouteTableDef()


@routes.post(LINK_PREFIX + "/containers/{id}/signal")
async def signal(request: web.Request) -> web.Response:
    await _link(request).signal(request.match_info["id"], str((await _json(request))["signal"]))
    return web.Response(status=204)


@routes.get(LINK_PREFIX + "/containers/{id}/stats")
async def stats(request: web.Request) -> web.Response:
    return web.json_response(text=_STATS.dump_json(await _link(request).stats(request.match_info["id"])).decode())


@routes.get(LINK_PREFIX + "/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    return web.json_response(await _link(request).top(request.match_info["id"]))


@routes.get(LINK_PREFIX + "/containers/{id}/layer-size")
async def layer_size(request: web.Request) -> web.Response:
    return web.json_response({"bytes": await _link(request).layer_size(request.match_info["id"])})


@routes.post(LINK_PREFIX + "/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    body = await _json(request)
    await _link(request).resize(request.match_info["id"], int(body["height"]), int(body["width"]))
    return web.Response(status=204)


@routes.get(LINK_PREFIX + "/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    """NDJSON: one {"t": ns, "s": stream, "d": base64} per line; with follow, until the container stops."""
    cid = request.match_info["id"]
    q = request.query
    tail = int(q["tail"]) if q.get("tail") else None
    since = datetime.fromtimestamp(float(q["since"]), UTC) if q.get("since") else None
    until = datetime.fromtimestamp(float(q["until"]), UTC) if q.get("until") else None
    stopped: Callable[[str], Awaitable[None]] = request.app[STOPPED]  # type: ignore[assignment]
    entries = _link(request).logs(cid, follow=q.get("follow") == "1", tail=tail, since=since,
                                  until_stopped=lambda: stopped(cid), until=until)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        async for entry in entries:
            line = {"t": entry.time_ns, "s": entry.stream, "d": base64.b64encode(entry.data).decode()}
            await response.write(json.dumps(line).encode() + b"\n")
        await response.write_eof()
    return response


async def _pump_out(ws: web.WebSocketResponse, chunks: Any) -> None:
    async for stream, data in chunks:
        await ws.send_bytes(bytes([STREAM_BYTES.get(stream, 1)]) + data)


@routes.get(LINK_PREFIX + "/containers/{id}/exec")
async def exec_(request: web.Request) -> web.WebSocketResponse:
    spec = json.loads(request.query.get("spec", "{}"))
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    await ws.prepare(request)
    try:
        proc: ExecStream = await _link(request).exec(
            request.match_info["id"], [str(a) for a in spec["args"]], env=[str(e) for e in spec.get("env", [])],
            cwd=spec.get("cwd"), user=str(spec.get("user", "")), tty=bool(spec.get("tty")), stdin=bool(spec.get("stdin")),
        )
    except SeaboxError as exc:
        await ws.send_json({"error": to_wire(exc).model_dump()})
        await ws.close()
        return ws
    await ws.send_json({"started": True, "tty": proc.tty})
    output = asyncio.create_task(_pump_out(ws, proc))
    control = asyncio.create_task(_exec_control(ws, proc))
    await asyncio.wait({output, control}, return_when=asyncio.FIRST_COMPLETED)
    if not output.done():  # the server went away: its output is no longer wanted
        proc.close()
    with contextlib.suppress(Exception):
        await output
    control.cancel()
    code = await proc.wait()
    if not ws.closed:
        await ws.send_json({"exit": code})
        await ws.close()
    return ws


async def _exec_control(ws: web.WebSocketResponse, proc: ExecStream) -> None:
    """Stdin and control messages from the server, until it closes the socket."""
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            with contextlib.suppress(SeaboxError):  # stdin closed meanwhile: the data has nowhere to go
                await proc.write_stdin(msg.data)
        elif msg.type == WSMsgType.TEXT and len(msg.data) <= MAX_CONTROL:
            control = json.loads(msg.data)
            if "resize" in control:
                proc.resize(int(control["resize"][0]), int(control["resize"][1]))
            elif control.get("close_stdin"):
                proc.close_stdin()
            elif "kill" in control:
                await proc.kill(int(control["kill"]))


@routes.get(LINK_PREFIX + "/containers/{id}/attach")
async def attach(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    await ws.prepare(request)
    try:
        conn: AttachStdio = await _link(request).attach(request.match_info["id"], request.query.get("running") == "1")
    except SeaboxError as exc:
        await ws.send_json({"error": to_wire(exc).model_dump()})
        await ws.close()
        return ws
    await ws.send_json({"attached": True})
    output = asyncio.create_task(_pump_out(ws, conn))
    reader = asyncio.create_task(_stdin(ws, conn))
    try:
        await asyncio.wait({output, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        conn.close()
        with contextlib.suppress(Exception):
            await output
        if not ws.closed:
            await ws.send_json({"end": True})
            await ws.close()
    return ws


async def _stdin(ws: web.WebSocketResponse, conn: AttachStdio) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            await conn.write(msg.data)
        elif msg.type == WSMsgType.TEXT and json.loads(msg.data).get("close_stdin"):
            conn.close_stdin()


@routes.get(LINK_PREFIX + "/containers/{id}/dial")
async def dial(request: web.Request) -> web.WebSocketResponse:
    """A TCP connection to a container port: binary frames carry its bytes both ways; {"close_write": true}
    from the server half-closes towards the container, {"eof": true} from the node says the container did."""
    port = int(request.query["port"])
    if not 1 <= port <= 65535:
        raise InvalidArgument(f"port must be 1-65535: {port}", field="port")
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    await ws.prepare(request)
    try:
        conn = await _link(request).dial(request.match_info["id"], port)
    except SeaboxError as exc:
        await ws.send_json({"error": to_wire(exc).model_dump()})
        await ws.close()
        return ws
    await ws.send_json({"connected": True})
    output = asyncio.create_task(_pump_tcp(ws, conn))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await conn.write(msg.data)
            elif msg.type == WSMsgType.TEXT and json.loads(msg.data).get("close_write"):
                conn.close_write()
    except SeaboxError:  # the container closed its side: the server learns it from the output's end
        pass
    finally:
        conn.close()
        output.cancel()
        with contextlib.suppress(BaseException):
            await output
        if not ws.closed:
            await ws.close()
    return ws


async def _pump_tcp(ws: web.WebSocketResponse, conn: TcpStream) -> None:
    while data := await conn.read():
        await ws.send_bytes(data)
    await ws.send_json({"eof": True})


@routes.post(LINK_PREFIX + "/files/stat")
async def path_stat(request: web.Request) -> web.Response:
    body = await _json(request)
    found = await _link(request).path_stat(placement_from(body["placement"]), str(body["path"]))
    return web.json_response(text=found.model_dump_json())


async def _send_tar(request: web.Request, chunks: AsyncIterator[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


@routes.post(LINK_PREFIX + "/files/archive")
async def read_archive(request: web.Request) -> web.StreamResponse:
    body = await _json(request)
    return await _send_tar(request, await _link(request).read_archive(placement_from(body["placement"]), str(body["path"])))


@routes.post(LINK_PREFIX + "/files/export")
async def export(request: web.Request) -> web.StreamResponse:
    body = await _json(request)
    return await _send_tar(request, await _link(request).export(placement_from(body["placement"])))


@routes.post(LINK_PREFIX + "/files/changes")
async def changes(request: web.Request) -> web.Response:
    body = await _json(request)
    found = await _link(request).changes(placement_from(body["placement"]))
    return web.json_response([c.model_dump() for c in found])


@routes.post(LINK_PREFIX + "/files/upload")
async def upload(request: web.Request) -> web.Response:
    """The body: one JSON line {"placement", "path", "options"}, then the tar."""
    head = json.loads(await request.content.readuntil(b"\n"))

    async def tar() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 20):
            yield chunk

    await _link(request).write_archive(placement_from(head["placement"]), str(head["path"]), tar(),
                                       UploadOptions.model_validate(head["options"]))
    return web.Response(status=204)


@routes.post(LINK_PREFIX + "/images/pull")
async def pull(request: web.Request) -> web.StreamResponse:
    """NDJSON: {"progress": ...} lines, then {"image": ...} or {"error": ...}."""
    ref = str((await _json(request))["ref"])
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def progress(p: PullProgress) -> None:
        queue.put_nowait(b'{"progress": ' + _PROGRESS.dump_json(p) + b"}\n")

    task = asyncio.create_task(_link(request).pull(ref, progress))
    while not task.done() or not queue.empty():
        getter = asyncio.create_task(queue.get())
        await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            await response.write(getter.result())
        else:
            getter.cancel()
    try:
        await response.write(b'{"image": ' + _INFO.dump_json(task.result()) + b"}\n")
    except SeaboxError as exc:
        await response.write(json.dumps({"error": to_wire(exc).model_dump()}).encode() + b"\n")
    await response.write_eof()
    return response


@routes.post(LINK_PREFIX + "/images/import")
async def import_(request: web.Request) -> web.Response:
    link = _link(request)
    with tempfile.NamedTemporaryFile(dir=link.agent.root / "images", prefix="upload-", suffix=".tar") as spool:
        async for chunk in request.content.iter_chunked(1 << 20):
            spool.write(chunk)
        spool.flush()
        infos = await link.import_archive(Path(spool.name))
    return web.json_response(text=_INFOS.dump_json(infos).decode())


def _new_image(data: dict[str, Any]) -> NewImage:
    return NewImage(**{**data, "config": ImageConfig(**data["config"])})


@routes.post(LINK_PREFIX + "/images/import-rootfs")
async def import_rootfs(request: web.Request) -> web.Response:
    link = _link(request)
    spec = _new_image(json.loads(request.query["spec"]))
    with tempfile.NamedTemporaryFile(dir=link.agent.root / "images", prefix="upload-", suffix=".tar") as spool:
        async for chunk in request.content.iter_chunked(1 << 20):
            spool.write(chunk)
        spool.flush()
        info = await link.import_rootfs(Path(spool.name), spec)
    return web.json_response(text=_INFO.dump_json(info).decode())


@routes.post(LINK_PREFIX + "/files/commit")
async def commit(request: web.Request) -> web.Response:
    body = await _json(request)
    info = await _link(request).commit(placement_from(body["placement"]), _new_image(body["spec"]))
    return web.json_response(text=_INFO.dump_json(info).decode())


@routes.get(LINK_PREFIX + "/images/{id}/history")
async def history(request: web.Request) -> web.Response:
    return web.json_response(text=_HISTORY.dump_json(await _link(request).history(request.match_info["id"])).decode())


@routes.post(LINK_PREFIX + "/images/save")
async def save(request: web.Request) -> web.StreamResponse:
    link = _link(request)
    images = [(str(i), [str(n) for n in names]) for i, names in (await _json(request))["images"]]
    with tempfile.TemporaryDirectory(dir=link.agent.root / "images") as tmp:
        out = Path(tmp) / "save.tar"
        await link.save(images, out)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        with out.open("rb") as f:
            while chunk := f.read(1 << 20):
                await response.write(chunk)
        await response.write_eof()
    return response


@routes.get(LINK_PREFIX + "/images/{id}")
async def image(request: web.Request) -> web.Response:
    return web.json_response(text=_INFO.dump_json(await _link(request).image(request.match_info["id"])).decode())


@routes.delete(LINK_PREFIX + "/images/{id}")
async def remove_image(request: web.Request) -> web.Response:
    await _link(request).remove_image(request.match_info["id"])
    return web.Response(status=204)


@routes.post(LINK_PREFIX + "/volumes")
async def create_volume(request: web.Request) -> web.Response:
    body = await _json(request)
    await _link(request).create_volume(str(body["tenant_id"]), str(body["name"]), int(body["size"]))
    return web.Response(status=204)


@routes.delete(LINK_PREFIX + "/volumes/{tenant}/{name}")
async def remove_volume(request: web.Request) -> web.Response:
    freed = await _link(request).remove_volume(request.match_info["tenant"], request.match_info["name"])
    return web.json_response({"bytes": freed})


@routes.get(LINK_PREFIX + "/volumes/{tenant}/{name}/size")
async def volume_size(request: web.Request) -> web.Response:
    size = await _link(request).volume_size(request.match_info["tenant"], request.match_info["name"])
    return web.json_response({"bytes": size})


def create_link_app(link: LocalLink, secret: str, stopped: Callable[[str], Awaitable[None]]) -> web.Application:
    """The link listener's app over the node's own in-process link; STOPPED(cid) returns once cid stops."""
    app = web.Application(middlewares=[_guard], client_max_size=1 << 20)
    app[LINK] = link
    app[SECRET] = secret
    app[STOPPED] = stopped
    app.router.add_routes(routes)
    return app
