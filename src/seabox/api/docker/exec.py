"""Docker exec endpoints: create an exec session, start it (hijacked stream), inspect its exit code, resize it.

Sessions live in the store (services.exec), so each of these calls may reach a different server.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import cloud, integer
from seabox.api.docker.containers import MAX_TERMINAL
from seabox.api.docker.hijack import DetachWatch, Stream, feed_input, parse_detach_keys
from seabox.api.docker.routing import DockerRoutes
from seabox.api.docker.schema import ExecCreateBody, ExecStartBody, docker_body
from seabox.errors import InvalidArgument, RuntimeFailure
from seabox.model.exec import ExecConfig

routes = DockerRoutes()


@routes.post("/containers/{id}/exec")
async def create(request: web.Request) -> web.Response:
    body = await docker_body(request, ExecCreateBody)
    cmd = body.get("Cmd")
    if not cmd:
        raise InvalidArgument("Cmd is required: no command to run", field="Cmd")
    if body.get("Privileged"):
        raise InvalidArgument("privileged exec is not supported by Seabox", field="Privileged")
    detach_keys = str(body.get("DetachKeys") or "")
    parse_detach_keys(detach_keys, "DetachKeys")
    config = ExecConfig(
        cmd=[str(x) for x in cmd],
        env=body.get("Env") or [],
        workdir=body.get("WorkingDir") or None,
        user=body.get("User") or "",
        tty=bool(body.get("Tty")),
        stdin=bool(body.get("AttachStdin")),
        stdout=bool(body.get("AttachStdout", True)),
        stderr=bool(body.get("AttachStderr", True)),
        detach_keys=detach_keys,
    )
    session = cloud(request).exec.create(tenant_of(request), request.match_info["id"], config)
    return web.json_response({"Id": session.id}, status=201)


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    svc = cloud(request).exec
    tenant = tenant_of(request)
    sid = request.match_info["id"]
    cfg = svc.get(tenant, sid).config  # a 404 before the body is looked at
    body = await docker_body(request, ExecStartBody)
    tty = cfg.tty  # the process's terminal is the exec's, from create; the start body's Tty frames the output
    multiplexed = not body.get("Tty", cfg.tty)
    detach = bool(body.get("Detach"))
    console = body.get("ConsoleSize")
    size = (int(console[0]), int(console[1])) if tty and console and len(console) == 2 and all(console) else None
    session, proc = await svc.start(tenant, sid, tty=tty, stdin=cfg.stdin and not detach, size=size)
    if detach:
        svc.detach(session.id, proc)
        return web.json_response({}, status=200)
    try:
        out = await Stream(request, multiplexed=multiplexed).open()
    except BaseException:
        svc.abandon(session.id, proc)
        raise
    streams = {s for s, on in (("stdout", cfg.stdout), ("stderr", cfg.stderr)) if on}
    # as Docker, the detach keys are read in a terminal's input only
    watch = DetachWatch(parse_detach_keys(cfg.detach_keys, "DetachKeys")) if tty and cfg.stdin else None

    async def relay_output() -> None:
        async for stream, data in proc:
            if stream in streams or tty:
                await out.send("stdout" if tty else stream, data)

    feeder = asyncio.ensure_future(feed_input(out, proc.write_stdin if cfg.stdin else None, proc.close_stdin, watch))
    relay = asyncio.ensure_future(relay_output())
    ended = detached = False
    try:
        done, _ = await asyncio.wait({feeder, relay}, return_when=asyncio.FIRST_COMPLETED)
        if relay in done:
            relay.result()
            ended = True
        else:
            detached = True
    except ConnectionResetError:  # the client left
        pass
    finally:
        for task in (feeder, relay):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if not ended:
            # A client that leaves a terminal detaches from it, as in Docker (the docker CLI detaches so:
            # it reads the detach keys itself and closes the connection); without one the process is stopped.
            if detached or tty:
                svc.detach(session.id, proc)
            else:
                svc.abandon(session.id, proc)
    if ended:
        try:
            await svc.finish(session.id, proc)  # recorded before the client sees the stream end
        except RuntimeFailure as exc:  # as Docker: the runtime's error on the stream, then its end
            with contextlib.suppress(ConnectionResetError):
                await out.send("stdout", f"OCI runtime exec failed: {exc.message}\r\n".encode())
    return await out.close()


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    s = cloud(request).exec.get(tenant_of(request), request.match_info["id"])
    cfg = s.config
    return web.json_response(
        {
            "ID": s.id,
            "ContainerID": s.container_id,
            "Running": s.state == "running",
            "ExitCode": s.exit_code,
            "CanRemove": False,
            "DetachKeys": parse_detach_keys(cfg.detach_keys, "DetachKeys").decode() if cfg.detach_keys else "",
            "OpenStdin": cfg.stdin,
            "OpenStdout": cfg.stdout,
            "OpenStderr": cfg.stderr,
            "Pid": 0,
            "ProcessConfig": {
                "arguments": cfg.cmd[1:],
                "entrypoint": cfg.cmd[0],
                "privileged": False,
                "tty": cfg.tty,
                "user": cfg.user,
            },
        }
    )


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    height, width = integer(request, "h", MAX_TERMINAL), integer(request, "w", MAX_TERMINAL)
    await cloud(request).exec.resize(tenant_of(request), request.match_info["id"], height, width)
    return web.Response(status=200)
