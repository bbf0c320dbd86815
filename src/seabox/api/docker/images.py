"""Docker image endpoints: list, pull (with Docker's progress stream), inspect, tag, remove, load."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import cloud, flag, import_uploaded_archive
from seabox.api.docker.routing import DockerRoutes
from seabox.api.docker.translate import rfc3339
from seabox.errors import InvalidArgument, NotImplementedYet, SeaboxError
from seabox.model.image import Image
from seabox.model.reference import ImageRef, parse_reference
from seabox.protocol.images import PullProgress

routes = DockerRoutes()


def familiar(name: str) -> str:
    try:
        return parse_reference(name).familiar
    except SeaboxError:
        return name


def _summary(img: Image) -> dict[str, Any]:
    return {
        "Id": img.id,
        "ParentId": "",
        "RepoTags": [familiar(t) for t in img.repo_tags] or ["<none>:<none>"],
        "RepoDigests": [familiar(d) for d in img.repo_digests],
        "Created": int(img.created.timestamp()) if img.created else 0,
        "Size": img.size,
        "VirtualSize": img.size,
        "SharedSize": -1,
        "Labels": img.labels or None,
        "Containers": -1,
    }


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    return web.json_response([_summary(i) for i in await cloud(request).images.list(tenant_of(request))])


def _progress_lines(p: PullProgress, ref: ImageRef, layers: list[str]) -> list[dict[str, Any]]:
    """Docker's wording of one pull step ('latest: Pulling from library/busybox', per-layer lines)."""
    short = (p.layer or "").removeprefix("sha256:")[:12]
    if p.status == "resolving" and not layers:
        return [{"status": f"Pulling from {ref.repository}", "id": ref.tag or ref.digest or "latest"}]
    if p.status == "downloading":
        layers.append(short)
        return [
            {"status": "Pulling fs layer", "progressDetail": {}, "id": short},
            {"status": "Downloading", "progressDetail": {"current": 0, "total": p.size or 0}, "id": short},
        ]
    if p.status == "done":
        return [{"status": "Download complete", "progressDetail": {}, "id": short}]
    if p.status == "complete":
        return [{"status": "Pull complete", "progressDetail": {}, "id": layer} for layer in layers]
    return []


@routes.post("/images/create")
async def pull(request: web.Request) -> web.StreamResponse:
    """`docker pull` / the CLI's pull-on-404: a JSON stream of progress, errors as errorDetail lines."""
    if request.query.get("fromSrc"):
        raise NotImplementedYet("importing a root filesystem (docker import) is not supported: use docker load")
    name = request.query.get("fromImage")
    if not name:
        raise InvalidArgument("fromImage is required", field="fromImage")
    tag = request.query.get("tag")
    if tag:
        name = f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
    ref = parse_reference(name)
    svc = cloud(request).images
    queue: asyncio.Queue[PullProgress | None] = asyncio.Queue()
    task = asyncio.ensure_future(svc.pull(tenant_of(request), name, queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)

    async def send(obj: dict[str, Any]) -> None:
        await response.write(json.dumps(obj).encode() + b"\r\n")

    layers: list[str] = []
    try:
        while (event := await queue.get()) is not None:
            for line in _progress_lines(event, ref, layers):
                await send(line)
        try:
            image = task.result()
            if image.repo_digests:
                await send({"status": f"Digest: {image.repo_digests[0].rsplit('@', 1)[-1]}"})
            await send({"status": f"Status: Downloaded newer image for {ref.familiar}"})
        except SeaboxError as exc:
            await send({"errorDetail": {"message": exc.message}, "error": exc.message})
        await response.write_eof()
    except ConnectionResetError:
        task.cancel()
    return response


def _inspect(img: Image) -> dict[str, Any]:
    return {
        "Id": img.id,
        "RepoTags": [familiar(t) for t in img.repo_tags],
        "RepoDigests": [familiar(d) for d in img.repo_digests],
        "Parent": "",
        "Comment": "",
        "Created": rfc3339(img.created),
        "Container": "",
        "DockerVersion": "",
        "Author": "",
        "Config": {
            "Env": img.env,
            "Cmd": img.cmd,
            "Entrypoint": img.entrypoint,
            "WorkingDir": img.working_dir,
            "User": img.user,
            "Labels": img.labels or None,
            "ExposedPorts": {p: {} for p in img.exposed_ports} or None,
            "Volumes": None,
        },
        "Architecture": img.architecture,
        "Os": img.os,
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": {"Name": "overlay", "Data": None},
        "RootFS": {"Type": "layers", "Layers": []},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


@routes.get(r"/images/{name:.+}/json")
async def inspect(request: web.Request) -> web.Response:
    return web.json_response(_inspect(await cloud(request).images.inspect(tenant_of(request), request.match_info["name"])))


@routes.delete(r"/images/{name:.+}")
async def remove(request: web.Request) -> web.Response:
    svc = cloud(request).images
    tenant = tenant_of(request)
    image_id = (await svc.inspect(tenant, request.match_info["name"])).id
    untagged = await svc.remove(tenant, request.match_info["name"], flag(request, "force"))
    result: list[dict[str, str]] = [{"Untagged": familiar(r)} for r in untagged if r != image_id]
    if not any(i.id == image_id for i in await svc.list(tenant)):
        result.append({"Deleted": image_id})
    return web.json_response(result)


@routes.post(r"/images/{name:.+}/tag")
async def tag(request: web.Request) -> web.Response:
    """`docker tag SOURCE REPO[:TAG]`: a name for this tenant only."""
    repo = request.query.get("repo")
    if not repo:
        raise InvalidArgument("repo is required", field="repo")
    target = f"{repo}:{request.query['tag']}" if request.query.get("tag") else repo
    await cloud(request).images.tag(tenant_of(request), request.match_info["name"], target)
    return web.Response(status=201)


@routes.post("/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    """`docker load`: the body is a `docker save` tarball (or an OCI archive)."""
    images = await import_uploaded_archive(request)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for img in images:
        names = [familiar(t) for t in img.repo_tags] or [img.id]
        for name in names:
            word = "Loaded image" if img.repo_tags else "Loaded image ID"
            await response.write(json.dumps({"stream": f"{word}: {name}\n"}).encode() + b"\r\n")
    await response.write_eof()
    return response
