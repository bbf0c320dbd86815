"""Docker exec endpoints: create an exec session, start it (hijacked stream), inspect its exit code, resize it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import cloud, integer
from seabox.api.docker.containers import MAX_TERMINAL
from seabox.api.docker.hijack import Stream
from seabox.api.docker.routing import DockerRoutes
from seabox.api.docker.schema import ExecCreateBody, ExecStartBody, docker_body
from seabox.errors import Conflict, InvalidArgument, NotFound
from seabox.protocol.streams import ExecStream

routes = DockerRoutes()
MAX_FINISHED = 1000  # finished sessions kept for inspection per server


@dataclass
class ExecSession:
    """One `docker exec`: its configuration, and once started its process and exit code."""

    id: str
    tenant_id: str
    container_id: str
    cmd: list[str]
    env: list[str]
    workdir: str | None
    user: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool
    running: bool = False
    exit_code: int | None = None
    process: ExecStream | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


SESSIONS = web.AppKey("docker_exec_sessions", dict)


def _sessions(request: web.Request) -> dict[str, ExecSession]:
    sessions: dict[str, ExecSession] = request.app[SESSIONS]
    return sessions


def _session(request: web.Request) -> ExecSession:
    session = _sessions(request).get(request.match_info["id"])
    if session is None or session.tenant_id != tenant_of(request).id:
        raise NotFound(f"no such exec instance: {request.match_info['id']}")
    return session


@routes.post("/containers/{id}/exec")
async def create(request: web.Request) -> web.Response:
    body = await docker_body(request, ExecCreateBody)
    cmd = body.get("Cmd")
    if not cmd:
        raise InvalidArgument("Cmd is required: no command to run", field="Cmd")
    if body.get("Privileged"):
        raise InvalidArgument("privileged exec is not supported by Seabox", field="Privileged")
    tenant = tenant_of(request)
    c = cloud(request).containers.get(tenant, request.match_info["id"])
    if c.status.state != "running":
        raise Conflict(f"container {c.name} is not running")
    sessions = _sessions(request)
    finished = [k for k, s in sessions.items() if s.exit_code is not None]
    for key in finished[: max(0, len(finished) - MAX_FINISHED)]:
        del sessions[key]
    session = ExecSession(
        id=secrets.token_hex(32),
        tenant_id=tenant.id,
        container_id=c.id,
        cmd=[str(x) for x in cmd],
        env=body.get("Env") or [],
        workdir=body.get("WorkingDir") or None,
        user=body.get("User") or "",
        tty=bool(body.get("Tty")),
        stdin=bool(body.get("AttachStdin")),
        stdout=bool(body.get("AttachStdout", True)),
        stderr=bool(body.get("AttachStderr", True)),
    )
    sessions[session.id] = session
    return web.json_response({"Id": session.id}, status=201)


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    body = await docker_body(request, ExecStartBody)
    if session.running or session.exit_code is not None:
        raise Conflict(f"exec {session.id[:12]} has already been started")
    tty = bool(body.get("Tty", session.tty))
    detach = bool(body.get("Detach"))
    svc = cloud(request).containers
    proc = await svc.exec(
        tenant_of(request), session.container_id, session.cmd, session.env, session.workdir, session.user,
        tty=tty, stdin=session.stdin and not detach,
    )
    session.process, session.running = proc, True
    console = body.get("ConsoleSize")
    if tty and console and len(console) == 2 and all(console):
        proc.resize(int(console[0]), int(console[1]))
    if detach:
        task = asyncio.ensure_future(_drain(session, proc))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)
        return web.json_response({}, status=200)
    out = await Stream(request, multiplexed=not tty).open()
    streams = {s for s, on in (("stdout", session.stdout), ("stderr", session.stderr)) if on}

    async def feed_stdin() -> None:
        while data := await out.receive():
            if session.stdin:
                await proc.write_stdin(data)
        if session.stdin:
            proc.close_stdin()

    feeder = asyncio.ensure_future(feed_stdin())
    try:
        async for stream, data in proc:
            if stream in streams or tty:
                await out.send("stdout" if tty else stream, data)
        await _finish(session, proc)
    except ConnectionResetError:  # the client left: stop the process and stop holding its output
        proc.close()
        await proc.kill()
        await _finish(session, proc)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feeder
    return await out.close()


async def _finish(session: ExecSession, proc: ExecStream) -> None:
    session.exit_code = await proc.wait()
    session.running = False


async def _drain(session: ExecSession, proc: ExecStream) -> None:
    async for _ in proc:
        pass
    await _finish(session, proc)


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    s = _session(request)
    return web.json_response(
        {
            "ID": s.id,
            "ContainerID": s.container_id,
            "Running": s.running,
            "ExitCode": s.exit_code,
            "CanRemove": False,
            "DetachKeys": "",
            "OpenStdin": s.stdin,
            "OpenStdout": s.stdout,
            "OpenStderr": s.stderr,
            "Pid": 0,
            "ProcessConfig": {
                "arguments": s.cmd[1:],
                "entrypoint": s.cmd[0],
                "privileged": False,
                "tty": s.tty,
                "user": s.user,
            },
        }
    )


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    s = _session(request)
    if s.process is None or not s.running:
        raise Conflict(f"exec {s.id[:12]} is not running")
    s.process.resize(integer(request, "h", MAX_TERMINAL), integer(request, "w", MAX_TERMINAL))
    return web.Response(status=200)
