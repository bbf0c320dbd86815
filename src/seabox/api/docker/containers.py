"""Docker container endpoints: list, create, inspect, lifecycle, wait, logs, attach, resize, top, stats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import cloud, flag, integer, number
from seabox.api.docker import translate
from seabox.api.docker.hijack import DetachWatch, Stream, client_gone, feed_input, parse_detach_keys
from seabox.api.docker.routing import DockerRoutes, query_filters
from seabox.api.docker.schema import ContainerCreateBody, docker_body
from seabox.errors import Conflict, InvalidArgument, NotModified, SeaboxError
from seabox.model.container import ACTIVE, Container, check_tenant_labels
from seabox.protocol.streams import AttachStdio
from seabox.protocol.runtime import Stats

routes = DockerRoutes()
MAX_TERMINAL = 65535  # rows or columns of a terminal (ioctl TIOCSWINSZ takes 16 bits)
TAIL = re.compile(r"-?[0-9]{1,18}")


def _ref(request: web.Request) -> str:
    return request.match_info["id"].lstrip("/")


def _matches(c: Container, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "name" and not any(v.lstrip("/") in c.name for v in values):
            return False
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "status" and c.status.state not in values:
            return False
        if key == "health" and (c.status.health.status if c.status.health is not None else "none") not in values:
            return False
        if key == "exited" and not (c.status.state == "exited" and str(c.status.exit_code) in values):
            return False
        if key == "ancestor" and not any(v in (c.spec.image, c.spec.image_id) or c.spec.image.endswith("/" + v)
                                         or c.spec.image.endswith("/" + v + ":latest") for v in values):
            return False
        if key == "label":
            labels = translate.labels_of(c)  # as docker shows them: sizes and security groups too
            for v in values:
                k, sep, want = v.partition("=")
                if k not in labels or (sep and labels[k] != want):
                    return False
    return True


@routes.get("/containers/json")
async def list_containers(request: web.Request) -> web.Response:
    c = cloud(request)
    tenant = tenant_of(request)
    filters = query_filters(request)
    items = [x for x in c.containers.list(tenant, flag(request, "all") or "status" in filters) if _matches(x, filters)]
    limit = int(number(request, "limit") or 0)
    if limit > 0:
        items = items[:limit]
    out = [translate.summary(x, c.cfg.network, tenant) for x in items]
    if flag(request, "size"):  # docker ps -s
        for entry, sizes in zip(out, await _sized(request, items), strict=True):
            entry.update(sizes)
    return web.json_response(out)


def size_fields(x: Container, layers: dict[str, int], images: dict[str, int]) -> dict[str, int]:
    """SizeRw and SizeRootFs of container X: its writable layer as measured (0 where its node is down, so
    not in LAYERS), and that plus its image's size (IMAGES: bytes by image id)."""
    layer = layers.get(x.id, 0)
    return {"SizeRw": layer, "SizeRootFs": images.get(x.spec.image_id, 0) + layer}


async def _sized(request: web.Request, containers: list[Container]) -> list[dict[str, int]]:
    """size_fields of each container (size=1 on list and inspect), their layers measured on their nodes."""
    c = cloud(request)
    tenant = tenant_of(request)
    usage = await c.disk_usage.measure(tenant, containers, [])
    images = {img.id: img.size for img in await c.images.list(tenant)}
    return [size_fields(x, usage.containers, images) for x in containers]


@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    body = await docker_body(request, ContainerCreateBody)
    req = translate.create_request(body, request.query.get("name"))
    check_tenant_labels(req.labels)
    container = await cloud(request).containers.create(tenant_of(request), req)
    return web.json_response({"Id": container.id, "Warnings": []}, status=201)


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    c = cloud(request)
    tenant = tenant_of(request)
    container = c.containers.get(tenant, _ref(request))
    out = translate.inspect(container, c.cfg.network, tenant)
    if flag(request, "size"):  # docker inspect -s
        out.update((await _sized(request, [container]))[0])
    return web.json_response(out)


@routes.post("/containers/{id}/start")
async def start(request: web.Request) -> web.Response:
    svc = cloud(request).containers
    tenant = tenant_of(request)
    if svc.get(tenant, _ref(request)).status.state == "running":
        raise NotModified("already running")
    await svc.start(tenant, _ref(request))
    return web.Response(status=204)


@routes.post("/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    svc = cloud(request).containers
    tenant = tenant_of(request)
    timeout = number(request, "t")
    if svc.get(tenant, _ref(request)).status.state not in ACTIVE:
        raise NotModified("already stopped")
    await svc.stop(tenant, _ref(request), timeout, request.query.get("signal"))
    return web.Response(status=204)


@routes.post("/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    await cloud(request).containers.restart(tenant_of(request), _ref(request), number(request, "t"))
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    await cloud(request).containers.kill(tenant_of(request), _ref(request), request.query.get("signal") or "KILL")
    return web.Response(status=204)


@routes.post("/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    name = request.query.get("name")
    if not name:
        raise InvalidArgument("name is required", field="name")
    await cloud(request).containers.rename(tenant_of(request), _ref(request), name)
    return web.Response(status=204)


@routes.delete("/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    await cloud(request).containers.remove(tenant_of(request), _ref(request), flag(request, "force"))
    return web.Response(status=204)


@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    """Headers go out at once (the CLI waits for them before starting); the body comes at the exit."""
    svc = cloud(request).containers
    tenant = tenant_of(request)
    condition = request.query.get("condition") or "not-running"
    svc.get(tenant, _ref(request))  # 404 before the 200 is sent
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    waiter = asyncio.ensure_future(svc.wait(tenant, _ref(request), condition))
    gone = asyncio.ensure_future(client_gone(request, 0.5))
    try:
        done, _ = await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            c = waiter.result()
            error = {"Message": c.status.error} if c.status.error else None
            await response.write(json.dumps({"StatusCode": c.status.exit_code, "Error": error}).encode() + b"\n")
            await response.write_eof()
    except ConnectionResetError:
        pass  # the client left (`docker run -d` does not stay for the exit)
    finally:
        for task in (waiter, gone):
            task.cancel()
    return response


def _wanted_streams(request: web.Request) -> set[str]:
    streams = {s for s in ("stdout", "stderr") if flag(request, s)}
    return streams


@routes.get("/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    svc = cloud(request).containers
    streams = _wanted_streams(request)
    if not streams:
        raise InvalidArgument("you must choose at least one stream (stdout or stderr)", field="stdout")
    tail_text = request.query.get("tail", "all")
    if tail_text not in ("all", "") and not TAIL.fullmatch(tail_text):
        raise InvalidArgument(f"tail must be a number or 'all', got {tail_text!r}", field="tail")
    tail = None if tail_text in ("all", "") or int(tail_text) < 0 else int(tail_text)
    since = number(request, "since") or None
    until = number(request, "until") or None
    timestamps = flag(request, "timestamps")
    c = svc.get(tenant_of(request), _ref(request))
    out = await Stream(request, multiplexed=not c.spec.tty).open()
    try:
        entries = svc.logs(tenant_of(request), c.id, follow=flag(request, "follow"), tail=tail, since=since,
                           until=until)
        async for entry in entries:
            if entry.stream in streams:
                data = (entry.timestamp + " ").encode() + entry.data if timestamps else entry.data
                await out.send(entry.stream, data)
    except ConnectionResetError:
        pass
    return await out.close()


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    """Hijack the connection; pump the container's output out and the client's bytes into its stdin."""
    svc = cloud(request).containers
    tenant = tenant_of(request)
    c = svc.get(tenant, _ref(request))
    if c.status.state not in ("created", "running", "exited"):
        raise Conflict(f"container {c.name} is {c.status.state}: cannot attach")
    streams = _wanted_streams(request)
    want_stdin = flag(request, "stdin") and c.spec.stdin_open
    keys = parse_detach_keys(request.query.get("detachKeys", ""), "detachKeys")
    # as Docker: the detach keys are read in a terminal's input only
    watch = DetachWatch(keys) if c.spec.tty and want_stdin else None
    pending = svc.attach(tenant, c.id)
    out = await Stream(request, multiplexed=not c.spec.tty).open()
    try:
        if flag(request, "logs"):
            async for entry in svc.logs(tenant, c.id):
                if entry.stream in streams:
                    await out.send(entry.stream, entry.data)
        if not flag(request, "stream", True):
            return await out.close()
        done, _ = await asyncio.wait({pending, asyncio.ensure_future(client_gone(request))},
                                     return_when=asyncio.FIRST_COMPLETED)
        if pending not in done:
            return await out.close()
        conn = pending.result()
        await _pump(out, conn, streams, want_stdin, watch)
    except ConnectionResetError:
        pass
    finally:
        if pending.done() and not pending.cancelled() and pending.exception() is None:
            pending.result().close()
        else:
            pending.cancel()
    return await out.close()


async def _pump(out: Stream, conn: AttachStdio, streams: set[str], stdin: bool, watch: DetachWatch | None) -> None:
    """Relay until the container's output ends or the client types the detach keys (WATCH, on a terminal)."""

    async def relay_output() -> None:
        async for stream, data in conn:
            if stream in streams:
                await out.send(stream, data)

    tasks = [asyncio.ensure_future(feed_input(out, conn.write if stdin else None, conn.close_stdin, watch)),
             asyncio.ensure_future(relay_output())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[1] in done:
            tasks[1].result()  # ConnectionResetError if the client left
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    h, w = integer(request, "h", MAX_TERMINAL), integer(request, "w", MAX_TERMINAL)
    await cloud(request).containers.resize(tenant_of(request), _ref(request), h, w)
    return web.Response(status=200)


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    top = await cloud(request).containers.top(tenant_of(request), _ref(request))
    processes = [[str(pid), cmd] for pid, cmd in top]
    return web.json_response({"Titles": ["PID", "CMD"], "Processes": processes})


def _stats_json(c: Container, now: Stats, before: Stats | None) -> dict[str, Any]:
    def cpu(s: Stats | None) -> dict[str, Any]:
        if s is None:
            return {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 0, "throttling_data": {}}
        return {
            "cpu_usage": {
                "total_usage": s.cpu_ns,
                "percpu_usage": s.per_cpu_ns,
                "usage_in_kernelmode": s.cpu_kernel_ns,
                "usage_in_usermode": s.cpu_user_ns,
            },
            "system_cpu_usage": s.system_cpu_ns,
            "online_cpus": s.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": s.throttled_periods,
                                "throttled_time": s.throttled_ns},
        }

    return {
        "read": now.read_at.isoformat().replace("+00:00", "Z"),
        "preread": before.read_at.isoformat().replace("+00:00", "Z") if before else translate.ZERO_TIME,
        "id": c.id,
        "name": "/" + c.name,
        "pids_stats": {"current": now.pids, **({"limit": now.pids_limit} if now.pids_limit else {})},
        "cpu_stats": cpu(now),
        "precpu_stats": cpu(before),
        "memory_stats": {
            "usage": now.memory_bytes,
            "max_usage": now.memory_max_bytes,
            "limit": now.memory_limit,
            "failcnt": now.memory_failcnt,
            "stats": now.memory_stat,
        },
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": now.block_read_bytes},
                {"major": 0, "minor": 0, "op": "write", "value": now.block_write_bytes},
            ]
        },
        "networks": {},
    }


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    """With stream=false one JSON object (two readings half a second apart); else one per second."""
    svc = cloud(request).containers
    c = svc.get(tenant_of(request), _ref(request))
    tenant = tenant_of(request)

    async def reading() -> Stats | None:
        try:
            return await svc.stats(tenant, c.id)
        except SeaboxError:  # stopped or gone meanwhile: the stream ends
            return None

    first = await reading()
    if first is None:
        empty = Stats(0, 0, 0, 0, datetime.now(UTC))
        return web.json_response(_stats_json(c, empty, None))
    if not flag(request, "stream", True):
        if not flag(request, "one-shot"):
            await asyncio.sleep(0.5)
        second = await reading() or first
        return web.json_response(_stats_json(c, second, first if second is not first else None))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    before: Stats | None = None
    now: Stats | None = first
    try:
        while now is not None:
            await response.write(json.dumps(_stats_json(c, now, before)).encode() + b"\n")
            await asyncio.sleep(1.0)
            before, now = now, await reading()
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response
