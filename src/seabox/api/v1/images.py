"""Native /v1 image routes: pull (with NDJSON progress), import an archive, tag, list, inspect, remove."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import (
    NdjsonStream,
    body,
    cloud,
    dump,
    flag,
    import_uploaded_archive,
)
from seabox.errors import SeaboxError
from seabox.model.image import PullRequest, TagRequest
from seabox.model.reference import parse_reference
from seabox.protocol.images import PullProgress

routes = web.RouteTableDef()


@routes.get("/v1/images")
async def list_images(request: web.Request) -> web.Response:
    return dump(await cloud(request).images.list(tenant_of(request)))


@routes.post("/v1/images/pull")
async def pull(request: web.Request) -> web.StreamResponse:
    """NDJSON progress events; the last line is {"image": {...}} or {"error": {"status", "message"}}."""
    req = await body(request, PullRequest)
    svc = cloud(request).images
    tenant = tenant_of(request)
    parse_reference(req.image)  # a malformed reference is a plain 400 before the stream opens
    queue: asyncio.Queue[PullProgress | None] = asyncio.Queue()
    task = asyncio.create_task(svc.pull(tenant, req.image, queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    out = await NdjsonStream(request).open()
    try:
        while (event := await queue.get()) is not None:
            await out.send({"progress": asdict(event)})
        try:
            image = task.result()
            await out.send({"image": image.model_dump(mode="json")})
        except SeaboxError as exc:
            await out.send({"error": {"status": exc.status, **exc.to_json()}})
    finally:
        if not task.done():
            task.cancel()
    return await out.close()


@routes.post("/v1/images/import")
async def import_archive(request: web.Request) -> web.Response:
    """The request body is an OCI archive or a `docker save` tarball."""
    return dump(await import_uploaded_archive(request), 201)


@routes.post("/v1/images/{ref:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    """Give the tenant's image REF the extra name in the body's `target`."""
    req = await body(request, TagRequest)
    return dump(await cloud(request).images.tag(tenant_of(request), request.match_info["ref"], req.target), 201)


@routes.get("/v1/images/{ref:.+}")
async def inspect(request: web.Request) -> web.Response:
    return dump(await cloud(request).images.inspect(tenant_of(request), request.match_info["ref"]))


@routes.delete("/v1/images/{ref:.+}")
async def remove(request: web.Request) -> web.Response:
    svc = cloud(request).images
    removed = await svc.remove(tenant_of(request), request.match_info["ref"], flag(request, "force"))
    return dump({"untagged": removed})
