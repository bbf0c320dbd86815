"""Native /v1 container routes: create, list, inspect, lifecycle actions, logs, exec, stats and top."""

from __future__ import annotations

import base64

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from seabox.api.auth import tenant_of
from seabox.api.common import NdjsonStream, body, cloud, dump, flag, number
from seabox.errors import InvalidArgument, SeaboxError
from seabox.model.container import ContainerCreate, check_tenant_labels

routes = web.RouteTableDef()


def encode_data(data: bytes) -> dict[str, object]:
    """Output bytes for an NDJSON line: text when it is UTF-8, else base64 with "b64": true."""
    try:
        return {"data": data.decode()}
    except UnicodeDecodeError:
        return {"data": base64.b64encode(data).decode(), "b64": True}


class ExecRequest(BaseModel):
    """A command to run inside a running container."""

    model_config = ConfigDict(extra="forbid")

    cmd: list[str] = Field(min_length=1)
    env: list[str] = Field(default_factory=list)
    workdir: str | None = None
    user: str = ""
    tty: bool = False  # a terminal: all output comes as "stdout", with the terminal's \r\n
    height: int | None = Field(default=None, ge=1, le=65535)  # the terminal's size (with tty)
    width: int | None = Field(default=None, ge=1, le=65535)


@routes.get("/v1/containers")
async def list_containers(request: web.Request) -> web.Response:
    return dump(cloud(request).containers.list(tenant_of(request), flag(request, "all")))


@routes.post("/v1/containers")
async def create(request: web.Request) -> web.Response:
    req = await body(request, ContainerCreate)
    check_tenant_labels(req.labels)
    c = await cloud(request).containers.create(tenant_of(request), req)
    if flag(request, "start"):
        c = await cloud(request).containers.start(tenant_of(request), c.id)
    return dump(c, 201)


@routes.get("/v1/containers/{ref}")
async def inspect(request: web.Request) -> web.Response:
    return dump(cloud(request).containers.get(tenant_of(request), request.match_info["ref"]))


@routes.post("/v1/containers/{ref}/start")
async def start(request: web.Request) -> web.Response:
    return dump(await cloud(request).containers.start(tenant_of(request), request.match_info["ref"]))


@routes.post("/v1/containers/{ref}/stop")
async def stop(request: web.Request) -> web.Response:
    svc = cloud(request).containers
    c = await svc.stop(tenant_of(request), request.match_info["ref"], number(request, "t"), request.query.get("signal"))
    return dump(c)


@routes.post("/v1/containers/{ref}/restart")
async def restart(request: web.Request) -> web.Response:
    svc = cloud(request).containers
    return dump(await svc.restart(tenant_of(request), request.match_info["ref"], number(request, "t")))


@routes.post("/v1/containers/{ref}/kill")
async def kill(request: web.Request) -> web.Response:
    svc = cloud(request).containers
    return dump(await svc.kill(tenant_of(request), request.match_info["ref"], request.query.get("signal", "KILL")))


@routes.post("/v1/containers/{ref}/wait")
async def wait(request: web.Request) -> web.Response:
    svc = cloud(request).containers
    c = await svc.wait(tenant_of(request), request.match_info["ref"], request.query.get("condition", "not-running"))
    return dump({"exit_code": c.status.exit_code, "oom_killed": c.status.oom_killed, "error": c.status.error})


@routes.post("/v1/containers/{ref}/rename")
async def rename(request: web.Request) -> web.Response:
    name = request.query.get("name")
    if not name:
        raise InvalidArgument("query parameter name is required", field="name")
    return dump(await cloud(request).containers.rename(tenant_of(request), request.match_info["ref"], name))


@routes.delete("/v1/containers/{ref}")
async def remove(request: web.Request) -> web.Response:
    await cloud(request).containers.remove(tenant_of(request), request.match_info["ref"], flag(request, "force"))
    return web.Response(status=204)


@routes.get("/v1/containers/{ref}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    """NDJSON lines {"time", "stream", "data"} (data base64 when not UTF-8: then "b64": true)."""
    svc = cloud(request).containers
    tail = number(request, "tail")
    entries = svc.logs(
        tenant_of(request),
        request.match_info["ref"],
        follow=flag(request, "follow"),
        tail=None if tail is None or tail < 0 else int(tail),
        since=number(request, "since"),
    )
    out = await NdjsonStream(request).open()
    async for entry in entries:
        await out.send({"time": entry.time.isoformat(), "stream": entry.stream, **encode_data(entry.data)})
    return await out.close()


@routes.post("/v1/containers/{ref}/exec")
async def exec_(request: web.Request) -> web.StreamResponse:
    """NDJSON: {"stream", "data"[, "b64"]} chunks, then {"exit_code": N} or {"error": {"status", "message"}}."""
    req = await body(request, ExecRequest)
    if (req.height is None) != (req.width is None) or (req.height is not None and not req.tty):
        raise InvalidArgument("height and width go together, and only with tty: true", field="height")
    svc = cloud(request).containers
    proc = await svc.exec(
        tenant_of(request), request.match_info["ref"], req.cmd, req.env, req.workdir, req.user, tty=req.tty
    )
    if req.height is not None and req.width is not None:
        proc.resize(req.height, req.width)
    out = await NdjsonStream(request).open()
    try:
        async for stream, data in proc:
            await out.send({"stream": stream, **encode_data(data)})
        try:
            await out.send({"exit_code": await proc.wait()})
        except SeaboxError as exc:  # the runtime failed the process after the answer began
            await out.send({"error": {"status": exc.status, **exc.to_json()}})
    except ConnectionResetError:  # the client left: stop the process and stop holding its output
        proc.close()
        await proc.kill()
        return out.response
    return await out.close()


@routes.get("/v1/containers/{ref}/stats")
async def stats(request: web.Request) -> web.Response:
    s = await cloud(request).containers.stats(tenant_of(request), request.match_info["ref"])
    return dump(
        {
            "cpu_ns": s.cpu_ns,
            "memory_bytes": s.memory_bytes,
            "memory_limit": s.memory_limit,
            "pids": s.pids,
            "read_at": s.read_at.isoformat(),
        }
    )


@routes.get("/v1/containers/{ref}/top")
async def top(request: web.Request) -> web.Response:
    processes = await cloud(request).containers.top(tenant_of(request), request.match_info["ref"])
    return dump({"processes": [{"pid": pid, "cmd": cmd} for pid, cmd in processes]})
