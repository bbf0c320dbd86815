"""Docker system endpoints: _ping, version, info and the event stream, all tenant-scoped."""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from seabox import __version__
from seabox.api.auth import tenant_of
from seabox.api.common import cloud, number
from seabox.api.docker.routing import (
    API_VERSION,
    MIN_API_VERSION,
    DockerRoutes,
    query_filters,
)
from seabox.api.docker import translate
from seabox.api.docker import volumes as docker_volumes
from seabox.api.docker.containers import size_fields
from seabox.api.docker.images import familiar
from seabox.model.event import Event

routes = DockerRoutes()


@routes.get("/_ping")
async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", headers={"Cache-Control": "no-cache", "Builder-Version": "1"})


@routes.head("/_ping")
async def ping_head(request: web.Request) -> web.Response:
    return web.Response(headers={"Cache-Control": "no-cache", "Builder-Version": "1"})


def _version() -> dict[str, Any]:
    return {
        "Platform": {"Name": "Seabox"},
        "Components": [
            {"Name": "Engine", "Version": __version__,
             "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}}
        ],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "KernelVersion": platform.release(),
        "BuildTime": "",
    }


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    return web.json_response(_version())


@routes.get("/system/df")
async def disk_usage(request: web.Request) -> web.Response:
    """`docker system df`: image sizes as the image store has them; each container's writable layer
    (SizeRw) and each volume's files measured on their nodes (one on a node that is down: SizeRw 0 and
    volume Size -1, which the CLI prints as N/A); there is no build cache."""
    c = cloud(request)
    tenant = tenant_of(request)
    containers = c.containers.list(tenant, all_=True)
    volumes = c.volumes.list(tenant)
    images = await c.images.list(tenant)
    usage = await c.disk_usage.measure(tenant, containers, volumes)
    users: dict[str, int] = {}
    for x in containers:
        users[x.spec.image_id] = users.get(x.spec.image_id, 0) + 1
    sizes = {img.id: img.size for img in images}
    return web.json_response({
        "LayersSize": sum(sizes.values()),
        "Images": [
            {"Id": img.id, "ParentId": "", "RepoTags": [familiar(t) for t in img.repo_tags] or ["<none>:<none>"],
             "RepoDigests": [familiar(d) for d in img.repo_digests],
             "Created": int(img.created.timestamp()) if img.created else 0, "Size": img.size, "SharedSize": -1,
             "VirtualSize": img.size, "Labels": img.labels or None, "Containers": users.get(img.id, 0)}
            for img in images
        ],
        "Containers": [
            {**translate.summary(x, c.cfg.network, tenant), **size_fields(x, usage.containers, sizes)}
            for x in containers
        ],
        "Volumes": [docker_volumes.volume_json(v, usage.volumes.get(v.name, -1)) for v in volumes],
        "BuildCache": [],
    })


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    c = cloud(request)
    tenant = tenant_of(request)
    containers = c.containers.list(tenant, all_=True)
    running = sum(1 for x in containers if x.status.state == "running")
    paused = sum(1 for x in containers if x.status.state == "paused")
    nodes = c.nodes.list()
    return web.json_response(
        {
            "ID": tenant.id,
            "Name": "seabox",
            "Containers": len(containers),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
            "Images": len(await c.images.list(tenant)),
            "Driver": "overlay",
            "DriverStatus": [],
            "Plugins": {"Volume": ["local"], "Network": ["bridge"], "Authorization": None, "Log": ["json-file"]},
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": False,
            "PidsLimit": True,
            "OomKillDisable": False,
            "IPv4Forwarding": True,
            "Debug": False,
            "SystemTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "1",
            "KernelVersion": platform.release(),
            "OperatingSystem": f"Seabox {__version__}",
            "OSVersion": __version__,
            "OSType": "linux",
            "Architecture": platform.machine(),
            "NCPU": max((n.cpus for n in nodes), default=0),  # the most one container could get
            "MemTotal": max((n.memory_bytes for n in nodes), default=0),
            "IndexServerAddress": "",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
            "Labels": [f"seabox.tenant={tenant.name}"],
            "ExperimentalBuild": False,
            "ServerVersion": __version__,
            "Runtimes": {"runc": {"path": "runc"}},
            "DefaultRuntime": "runc",
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "SecurityOptions": [],
            "Warnings": [],
        }
    )


def docker_event(e: Event) -> dict[str, Any]:
    attributes = {"name": e.resource_name, **e.attributes}
    nanos = int(e.time.timestamp() * 1e9)
    return {
        "status": e.action,
        "id": e.resource_id,
        "from": e.attributes.get("image", ""),
        "Type": e.type,
        "Action": e.action,
        "Actor": {"ID": e.resource_id, "Attributes": attributes},
        "scope": "local",
        "time": nanos // 1_000_000_000,
        "timeNano": nanos,
    }


def _wanted(e: Event, filters: dict[str, list[str]]) -> bool:
    checks = {
        "type": [e.type],
        "event": [e.action, e.action.partition(":")[0]],  # health_status matches "health_status: healthy"
        "container": [e.resource_id, e.resource_name] if e.type == "container" else [],
        "image": [e.resource_id, e.resource_name, e.attributes.get("image", "")],
        "volume": [e.resource_id] if e.type == "volume" else [],
    }
    return all(any(v in checks.get(k, []) for v in values) for k, values in filters.items() if k in checks)


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Events as a JSON stream; without `until` it stays open for new ones until the client leaves."""
    c = cloud(request)
    tenant = tenant_of(request)
    since, until = number(request, "since"), number(request, "until")
    filters = query_filters(request)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    last = 0
    if since is None:  # only new events
        existing = c.store.list_events(tenant.id)
        last = existing[-1].id if existing else 0
    try:
        while True:
            for e in c.store.list_events(tenant.id, since, until, after_id=last):
                last = e.id
                if _wanted(e, filters):
                    await response.write(json.dumps(docker_event(e)).encode() + b"\n")
            if until is not None and time.time() >= until:
                break
            await c.bus.wait(1.0)
            if request.transport is None or request.transport.is_closing():
                break
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response
