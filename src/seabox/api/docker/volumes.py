"""Docker volume and network endpoints: volumes map 1:1 to Seabox volumes; the only network is the tenant's."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import cloud
from seabox.api.docker.routing import DockerRoutes, query_filters
from seabox.api.docker.schema import VolumeCreateBody, docker_body
from seabox.api.docker.translate import rfc3339
from seabox.api.docker.prune import PruneFilter, prune_filter
from seabox.errors import Conflict, InvalidArgument, NotFound
from seabox.model.tenant import Tenant
from seabox.model.volume import Volume, VolumeCreate
from seabox.model import ipam

routes = DockerRoutes()
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # Docker's mark of a volume made without a name


def volume_json(v: Volume, size: int = -1) -> dict[str, Any]:
    """Docker's volume object; SIZE is the bytes of its files where measured (docker system df), else -1."""
    return {
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": "",
        "CreatedAt": rfc3339(v.created_at),
        "Labels": v.labels or None,
        "Scope": "local",
        "Options": {"size": str(v.size)},
        "UsageData": {"RefCount": len(v.in_use_by), "Size": size},
    }


def _bool_filter(values: list[str], key: str) -> bool:
    if len(values) != 1 or values[0].lower() not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"filter {key} takes one of true, false, 1 or 0", field="filters")
    return values[0].lower() in ("true", "1")


def _listed(v: Volume, filters: dict[str, list[str]], labelled: PruneFilter) -> bool:
    """Whether V passes Docker's volume list filters: name (a substring), label (KEY or KEY=VALUE), dangling, driver."""
    return (
        ("name" not in filters or any(n in v.name for n in filters["name"]))
        and labelled.selects(v.created_at.timestamp(), v.labels)
        and ("dangling" not in filters or _bool_filter(filters["dangling"], "dangling") == (not v.in_use_by))
        and ("driver" not in filters or "local" in filters["driver"])
    )


@routes.get("/volumes")
async def list_volumes(request: web.Request) -> web.Response:
    filters = query_filters(request)
    unknown = sorted(set(filters) - {"name", "label", "dangling", "driver"})
    if unknown:
        raise InvalidArgument(f"invalid filter {unknown[0]!r}: volumes are listed by name, label, dangling or driver",
                              field="filters")
    labelled = prune_filter({"label": filters.get("label", [])}, {"label"})
    vols = [v for v in cloud(request).volumes.list(tenant_of(request)) if _listed(v, filters, labelled)]
    return web.json_response({"Volumes": [volume_json(v) for v in vols], "Warnings": []})


def _prunes_named(request: web.Request, filters: dict[str, list[str]]) -> bool:
    """Whether a volume prune takes named volumes too: `all` (API 1.42+, where only anonymous ones go by default)."""
    if "all" in filters:
        return _bool_filter(filters["all"], "all")
    version = request.match_info.get("api_version")
    return version is not None and tuple(int(x) for x in version[1:].split(".")) < (1, 42)


@routes.post("/volumes/prune")
async def prune(request: web.Request) -> web.Response:
    filters = query_filters(request)
    named = _prunes_named(request, filters)
    chosen = prune_filter({k: vs for k, vs in filters.items() if k != "all"}, {"label", "label!"})
    svc = cloud(request).volumes
    tenant = tenant_of(request)
    removed, reclaimed = [], 0
    for v in svc.list(tenant):
        if v.in_use_by or not (named or ANONYMOUS_LABEL in v.labels) or not chosen.selects(v.created_at.timestamp(), v.labels):
            continue
        try:
            reclaimed += await svc.remove(tenant, v.name)
        except (NotFound, Conflict):  # removed, or mounted, meanwhile
            continue
        removed.append(v.name)
    return web.json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed})


@routes.post("/volumes/create")
async def create(request: web.Request) -> web.Response:
    body = await docker_body(request, VolumeCreateBody)
    if body.get("Driver") not in (None, "", "local"):
        raise InvalidArgument(f"volume driver {body['Driver']!r} is not supported: use local", field="Driver")
    opts = body.get("DriverOpts") or {}
    unknown = set(opts) - {"size"}
    if unknown:
        raise InvalidArgument(f"unsupported volume options {sorted(unknown)}: only size is", field="DriverOpts")
    labels = body.get("Labels") or {}
    if not body.get("Name"):  # as Docker: an unnamed volume is anonymous, which a prune removes by default
        labels = {**labels, ANONYMOUS_LABEL: ""}
    req = VolumeCreate.model_validate(
        {"name": body.get("Name") or secrets.token_hex(32), "labels": labels,
         **({"size": opts["size"]} if "size" in opts else {})}
    )
    svc = cloud(request).volumes
    tenant = tenant_of(request)
    try:
        return web.json_response(volume_json(svc.get(tenant, req.name)), status=201)  # docker: create is idempotent
    except NotFound:
        return web.json_response(volume_json(await svc.create(tenant, req)), status=201)


@routes.get("/volumes/{name}")
async def inspect(request: web.Request) -> web.Response:
    return web.json_response(volume_json(cloud(request).volumes.get(tenant_of(request), request.match_info["name"])))


@routes.delete("/volumes/{name}")
async def remove(request: web.Request) -> web.Response:
    await cloud(request).volumes.remove(tenant_of(request), request.match_info["name"])
    return web.Response(status=204)


def _network(request: web.Request, tenant: Tenant) -> dict[str, Any]:
    c = cloud(request)
    subnet = ipam.tenant_subnet(c.cfg.network, tenant.index)
    members = {
        x.id: {"Name": x.name, "EndpointID": x.id, "IPv4Address": f"{x.status.ip}/{subnet.prefixlen}",
               "MacAddress": "", "IPv6Address": ""}
        for x in c.containers.list(tenant) if x.status.ip
    }
    return {
        "Name": "bridge",
        "Id": f"seabox-{tenant.id}",
        "Created": rfc3339(tenant.created_at),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None,
                 "Config": [{"Subnet": str(subnet), "Gateway": str(ipam.gateway(subnet))}]},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "Containers": members,
        "Options": {},
        "Labels": {"seabox.network": "tenant"},
    }


@routes.get("/networks")
async def list_networks(request: web.Request) -> web.Response:
    return web.json_response([_network(request, tenant_of(request))])


@routes.get("/networks/{id}")
async def inspect_network(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    net = _network(request, tenant)
    if request.match_info["id"] not in ("bridge", net["Id"], net["Id"][:12]):
        raise NotFound(f"network {request.match_info['id']} not found")
    return web.json_response(net)
