"""Docker volume and network endpoints: volumes map 1:1 to Seabox volumes; the only network is the tenant's."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import cloud
from seabox.api.docker.routing import DockerRoutes
from seabox.api.docker.schema import VolumeCreateBody, docker_body
from seabox.api.docker.translate import rfc3339
from seabox.errors import InvalidArgument, NotFound
from seabox.model.tenant import Tenant
from seabox.model.volume import Volume, VolumeCreate
from seabox.model import ipam

routes = DockerRoutes()


def _volume(v: Volume) -> dict[str, Any]:
    return {
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": "",
        "CreatedAt": rfc3339(v.created_at),
        "Labels": v.labels or None,
        "Scope": "local",
        "Options": {"size": str(v.size)},
        "UsageData": {"RefCount": len(v.in_use_by), "Size": -1},
    }


@routes.get("/volumes")
async def list_volumes(request: web.Request) -> web.Response:
    vols = cloud(request).volumes.list(tenant_of(request))
    return web.json_response({"Volumes": [_volume(v) for v in vols], "Warnings": []})


@routes.post("/volumes/create")
async def create(request: web.Request) -> web.Response:
    body = await docker_body(request, VolumeCreateBody)
    if body.get("Driver") not in (None, "", "local"):
        raise InvalidArgument(f"volume driver {body['Driver']!r} is not supported: use local", field="Driver")
    opts = body.get("DriverOpts") or {}
    unknown = set(opts) - {"size"}
    if unknown:
        raise InvalidArgument(f"unsupported volume options {sorted(unknown)}: only size is", field="DriverOpts")
    req = VolumeCreate.model_validate(
        {"name": body.get("Name") or secrets.token_hex(32), "labels": body.get("Labels") or {},
         **({"size": opts["size"]} if "size" in opts else {})}
    )
    svc = cloud(request).volumes
    tenant = tenant_of(request)
    try:
        return web.json_response(_volume(svc.get(tenant, req.name)), status=201)  # docker: create is idempotent
    except NotFound:
        return web.json_response(_volume(await svc.create(tenant, req)), status=201)


@routes.get("/volumes/{name}")
async def inspect(request: web.Request) -> web.Response:
    return web.json_response(_volume(cloud(request).volumes.get(tenant_of(request), request.match_info["name"])))


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
