"""Native /v1 volume routes: create, list, inspect, remove."""

from __future__ import annotations

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import body, cloud, dump
from seabox.model.volume import VolumeCreate

routes = web.RouteTableDef()


@routes.get("/v1/volumes")
async def list_volumes(request: web.Request) -> web.Response:
    return dump(cloud(request).volumes.list(tenant_of(request)))


@routes.post("/v1/volumes")
async def create(request: web.Request) -> web.Response:
    req = await body(request, VolumeCreate)
    return dump(await cloud(request).volumes.create(tenant_of(request), req), 201)


@routes.get("/v1/volumes/{name}")
async def inspect(request: web.Request) -> web.Response:
    return dump(cloud(request).volumes.get(tenant_of(request), request.match_info["name"]))


@routes.delete("/v1/volumes/{name}")
async def remove(request: web.Request) -> web.Response:
    await cloud(request).volumes.remove(tenant_of(request), request.match_info["name"])
    return web.Response(status=204)
