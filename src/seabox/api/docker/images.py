"""Docker image endpoints: list, pull (with Docker's progress stream), import, commit, inspect, history, tag, save, load, prune, remove."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.body import limits, parse_json, read_body, spool_upload
from seabox.api.common import cloud, flag, import_uploaded_archive
from seabox.api.docker.image_changes import apply_body, apply_changes
from seabox.api.docker.routing import DockerRoutes, query_filters
from seabox.api.docker.translate import rfc3339
from seabox.errors import InvalidArgument, NotImplementedYet, SeaboxError
from seabox.model.image import Image
from seabox.model.reference import ImageRef, parse_reference
from seabox.protocol.images import ImageConfig, NewImage, PullProgress

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
        return await _import_rootfs(request)
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
            "Volumes": {v: {} for v in img.volumes} or None,
            **({"StopSignal": img.stop_signal} if img.stop_signal else {}),
            **({"Healthcheck": img.healthcheck} if img.healthcheck else {}),
        },
        "Architecture": img.architecture,
        "Os": img.os,
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": {"Name": "overlay", "Data": None},
        "RootFS": {"Type": "layers", "Layers": img.layers},
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


def _new_name(request: web.Request) -> str | None:
    repo = request.query.get("repo")
    if not repo:
        if request.query.get("tag"):
            raise InvalidArgument("tag needs repo", field="tag")
        return None
    return f"{repo}:{request.query['tag']}" if request.query.get("tag") else repo


async def _import_rootfs(request: web.Request) -> web.Response:
    """`docker import FILE|- [REPO[:TAG]]`: the request body is the filesystem tarball."""
    if request.query["fromSrc"] != "-":
        raise InvalidArgument("fromSrc must be '-' (the tarball in the request body): Seabox fetches no URL; "
                              "download it and give the file", field="fromSrc")
    if request.query.get("platform") not in (None, "", "linux", "linux/amd64"):
        raise InvalidArgument("platform: Seabox imports linux/amd64 images only", field="platform")
    config = apply_changes(ImageConfig(), request.query.getall("changes", []))
    spec = NewImage(config, comment=request.query.get("message", ""), created_by="Imported from -")
    name = _new_name(request)
    c = cloud(request)
    tmp_root = c.cfg.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        path = Path(tmp) / "rootfs.tar"
        await spool_upload(request, path)
        image = await c.images.import_rootfs(tenant_of(request), path, spec, name)
    return web.json_response({"status": image.id})


@routes.post("/commit")
async def commit(request: web.Request) -> web.Response:
    """`docker commit CONTAINER [REPO[:TAG]]`: the container's filesystem changes as a new image's top layer.

    With pause (the default) a running container is frozen while its changes are read, and thawed after."""
    ref = request.query.get("container")
    if not ref:
        raise InvalidArgument("container is required", field="container")
    pause = flag(request, "pause", True)
    c = cloud(request)
    tenant = tenant_of(request)
    container = c.containers.get(tenant, ref)
    if container.status.node is None:
        raise InvalidArgument(f"container {ref} has not been placed on a node yet: start it first", field="container")
    raw = await read_body(request)
    body = {} if raw.strip() in (b"", b"null") else parse_json(raw, limits(request).max_json_depth)
    if not isinstance(body, dict):
        raise InvalidArgument("the commit body must be a container config object", field="body")
    config = apply_body(await c.images.base_config(tenant, container), body)
    config = apply_changes(config, request.query.getall("changes", []))
    spec = NewImage(config, comment=request.query.get("comment", ""), author=request.query.get("author", ""),
                    created_by=f"commit of {container.name}")
    name = _new_name(request)
    async with c.containers.paused_while(tenant, container.id) if pause else nullcontext(container):
        image = await c.images.commit(tenant, container, spec, name)
    return web.json_response({"Id": image.id}, status=201)


@routes.get(r"/images/{name:.+}/history")
async def history(request: web.Request) -> web.Response:
    image, steps = await cloud(request).images.history(tenant_of(request), request.match_info["name"])
    out = []
    for i, step in enumerate(steps):
        out.append({
            "Id": image.id if i == 0 else "<missing>",
            "Created": int(step.created.timestamp()) if step.created else 0,
            "CreatedBy": step.created_by,
            "Tags": [familiar(t) for t in image.repo_tags] if i == 0 else None,
            "Size": step.size,
            "Comment": step.comment,
        })
    return web.json_response(out)


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    c = cloud(request)
    tmp_root = c.cfg.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        out = Path(tmp) / "save.tar"
        await c.images.save(tenant_of(request), names, out)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        with out.open("rb") as f:
            while chunk := f.read(1 << 20):
                await response.write(chunk)
        await response.write_eof()
    return response


@routes.get("/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    """`docker save IMAGE...`: one docker-archive of them all."""
    return await _save(request, request.query.getall("names", []))


@routes.get(r"/images/{name:.+}/get")
async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


_PRUNE_FILTERS = ("dangling", "until", "label", "label!")


def _label_match(labels: dict[str, str], wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)


@routes.post("/images/prune")
async def prune(request: web.Request) -> web.Response:
    """`docker image prune [-a] [--filter dangling=|until=|label=|label!=]`: the tenant's unused images."""
    filters = query_filters(request)
    for key in filters:
        if key not in _PRUNE_FILTERS:
            raise InvalidArgument(f"filter {key} is not supported by image prune: use one of "
                                  f"{', '.join(_PRUNE_FILTERS)}", field="filters")
    dangling = [v.lower() for v in filters.get("dangling", ["true"])]
    if any(v not in ("true", "false", "1", "0") for v in dangling):
        raise InvalidArgument("filter dangling must be true or false", field="filters")
    until = _until(filters.get("until", []))
    labels, not_labels = filters.get("label", []), filters.get("label!", [])

    def keep(image: Image) -> bool:
        created = image.created.timestamp() if image.created else 0.0
        return (until is not None and created >= until) \
            or not all(_label_match(image.labels, w) for w in labels) \
            or any(_label_match(image.labels, w) for w in not_labels)

    removed = await cloud(request).images.prune(tenant_of(request), keep, dangling_only=dangling[0] in ("true", "1"))
    deleted: list[dict[str, str]] = []
    for image in removed:
        deleted += [{"Untagged": familiar(n)} for n in [*image.repo_tags, *image.repo_digests]]
        deleted.append({"Deleted": image.id})
    return web.json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": sum(i.size for i in removed)})


def _until(values: list[str]) -> float | None:
    """The `until` filter: a unix time, an RFC 3339 time or a duration before now (10m, 24h)."""
    if not values:
        return None
    value = values[-1]
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
            return time.time() - float(value[:-1]) * units[value[-1]]
        if value.replace(".", "", 1).isdigit():
            return float(value)
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise InvalidArgument(f"filter until {value!r}: give a unix time, an RFC 3339 time or a duration like 24h",
                              field="filters") from None


@routes.post("/build")
async def build(request: web.Request) -> web.Response:
    raise NotImplementedYet("docker build is not supported by Seabox: build the image elsewhere, then "
                            "`docker save IMAGE | docker load` it (or push it to a registry and pull it)")
