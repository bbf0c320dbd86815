"""Native /v1 cron routes: create, list, inspect, history, run now, suspend, resume and remove."""

from __future__ import annotations

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import body, cloud, dump, integer
from seabox.model.cron import CronCreate
from seabox.store.crons import KEEP_RUNS

routes = web.RouteTableDef()


@routes.get("/v1/crons")
async def list_crons(request: web.Request) -> web.Response:
    return dump(cloud(request).crons.list(tenant_of(request)))


@routes.post("/v1/crons")
async def create(request: web.Request) -> web.Response:
    req = await body(request, CronCreate)
    return dump(await cloud(request).crons.create(tenant_of(request), req), 201)


@routes.get("/v1/crons/{name}")
async def inspect(request: web.Request) -> web.Response:
    return dump(cloud(request).crons.get(tenant_of(request), request.match_info["name"]))


@routes.get("/v1/crons/{name}/history")
async def history(request: web.Request) -> web.Response:
    tail = integer(request, "tail", KEEP_RUNS) if "tail" in request.query else KEEP_RUNS
    return dump(cloud(request).crons.history(tenant_of(request), request.match_info["name"], tail))


@routes.post("/v1/crons/{name}/run")
async def run(request: web.Request) -> web.Response:
    return dump(await cloud(request).crons.run_now(tenant_of(request), request.match_info["name"]), 201)


@routes.post("/v1/crons/{name}/suspend")
async def suspend(request: web.Request) -> web.Response:
    return dump(await cloud(request).crons.suspend(tenant_of(request), request.match_info["name"]))


@routes.post("/v1/crons/{name}/resume")
async def resume(request: web.Request) -> web.Response:
    return dump(await cloud(request).crons.resume(tenant_of(request), request.match_info["name"]))


@routes.delete("/v1/crons/{name}")
async def remove(request: web.Request) -> web.Response:
    await cloud(request).crons.remove(tenant_of(request), request.match_info["name"])
    return web.Response(status=204)
