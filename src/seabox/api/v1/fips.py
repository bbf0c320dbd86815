"""Native /v1 floating IP routes: allocate, list, inspect, attach, detach, name and release."""

from __future__ import annotations

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import body, cloud, dump, flag
from seabox.model.fip import FipAllocate, FipAttach, FipDetach, FipName

routes = web.RouteTableDef()


@routes.get("/v1/fips")
async def list_fips(request: web.Request) -> web.Response:
    dangling = flag(request, "dangling") if "dangling" in request.query else None
    return dump(cloud(request).fips.list(tenant_of(request), dangling))


@routes.post("/v1/fips")
async def allocate(request: web.Request) -> web.Response:
    req = await body(request, FipAllocate)
    return dump(await cloud(request).fips.allocate(tenant_of(request), req.count, req.pick), 201)


@routes.post("/v1/fips/detach")
async def detach(request: web.Request) -> web.Response:
    req = await body(request, FipDetach)
    return dump(await cloud(request).fips.detach(tenant_of(request), req.container))


@routes.get("/v1/fips/{ref}")
async def inspect(request: web.Request) -> web.Response:
    return dump(cloud(request).fips.get(tenant_of(request), request.match_info["ref"]))


@routes.post("/v1/fips/{ref}/attach")
async def attach(request: web.Request) -> web.Response:
    req = await body(request, FipAttach)
    svc = cloud(request).fips
    return dump(await svc.attach(tenant_of(request), request.match_info["ref"], req.container, req.force))


@routes.post("/v1/fips/{ref}/name")
async def name(request: web.Request) -> web.Response:
    req = await body(request, FipName)
    return dump(await cloud(request).fips.name(tenant_of(request), request.match_info["ref"], req.name))


@routes.delete("/v1/fips/{ref}")
async def release(request: web.Request) -> web.Response:
    await cloud(request).fips.release(tenant_of(request), request.match_info["ref"])
    return web.Response(status=204)
