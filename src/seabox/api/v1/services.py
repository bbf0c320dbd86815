"""Native /v1 service routes: create, list, inspect, scale, update the image, floating IPs and remove."""

from __future__ import annotations

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import body, cloud, dump, flag
from seabox.model.service import ServiceCreate, ServiceFip, ServiceScale, ServiceUpdate

routes = web.RouteTableDef()


@routes.get("/v1/services")
async def list_services(request: web.Request) -> web.Response:
    return dump(cloud(request).services.list(tenant_of(request)))


@routes.post("/v1/services")
async def create(request: web.Request) -> web.Response:
    req = await body(request, ServiceCreate)
    return dump(await cloud(request).services.create(tenant_of(request), req), 201)


@routes.get("/v1/services/{name}")
async def inspect(request: web.Request) -> web.Response:
    return dump(cloud(request).services.get(tenant_of(request), request.match_info["name"]))


@routes.post("/v1/services/{name}/scale")
async def scale(request: web.Request) -> web.Response:
    req = await body(request, ServiceScale)
    return dump(await cloud(request).services.scale(tenant_of(request), request.match_info["name"], req.replicas))


@routes.post("/v1/services/{name}/update")
async def update(request: web.Request) -> web.Response:
    req = await body(request, ServiceUpdate)
    return dump(await cloud(request).services.update_image(tenant_of(request), request.match_info["name"], req.image))


@routes.post("/v1/services/{name}/fip")
async def attach_fip(request: web.Request) -> web.Response:
    req = await body(request, ServiceFip)
    return dump(await cloud(request).services.attach_fip(tenant_of(request), request.match_info["name"], req.fip))


@routes.delete("/v1/services/{name}/fip")
async def detach_fip(request: web.Request) -> web.Response:
    return dump(await cloud(request).services.detach_fip(tenant_of(request), request.match_info["name"]))


@routes.delete("/v1/services/{name}")
async def remove(request: web.Request) -> web.Response:
    keep = flag(request, "keep")
    await cloud(request).services.remove(tenant_of(request), request.match_info["name"], keep)
    return web.Response(status=204)
