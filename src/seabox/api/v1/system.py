"""Native /v1 system routes: who am I, my quotas, the size table, lifecycle events (optionally followed)."""

from __future__ import annotations

import time

from aiohttp import web

from seabox import __version__
from seabox.api.auth import tenant_of
from seabox.api.common import NdjsonStream, cloud, dump, flag, number
from seabox.model.sizes import DEFAULT_SIZE, SIZES

routes = web.RouteTableDef()


@routes.get("/v1/info")
async def info(request: web.Request) -> web.Response:
    c = cloud(request)
    tenant = tenant_of(request)
    return dump(
        {
            "version": __version__,
            "tenant": tenant.name,
            "containers": len(c.containers.list(tenant, all_=True)),
            "running": len(c.containers.list(tenant)),
            "images": len(await c.images.list(tenant)),
        }
    )


@routes.get("/v1/quota")
async def quota(request: web.Request) -> web.Response:
    """Each of the tenant's quotas: its limit, its use, and whether the limit is the operator's default."""
    c = cloud(request)
    return dump(c.quotas.usage(tenant_of(request).id, c.cfg.quotas.defaults()))


@routes.get("/v1/sizes")
async def sizes(request: web.Request) -> web.Response:
    return dump(
        [
            {
                "name": s.name,
                "memory_bytes": s.memory_bytes,
                "cpu_shares": s.cpu_shares,
                "cpus": s.cpus,
                "disk_bytes": s.disk_bytes,
                "default": s.name == DEFAULT_SIZE,
            }
            for s in SIZES.values()
        ]
    )


@routes.get("/v1/events")
async def events(request: web.Request) -> web.StreamResponse:
    """NDJSON events since/until (unix seconds); with follow=true the stream stays open for new ones."""
    c = cloud(request)
    tenant = tenant_of(request)
    since, until = number(request, "since"), number(request, "until")
    follow = flag(request, "follow")
    out = await NdjsonStream(request).open()
    last = 0
    while True:
        for event in c.store.list_events(tenant.id, since, until, after_id=last):
            await out.send(event.model_dump(mode="json"))
            last = event.id
        if not follow or (until is not None and time.time() > until):
            break
        await c.bus.wait(5.0)
    return await out.close()
