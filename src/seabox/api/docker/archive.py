"""Docker's container filesystem endpoints: archive get/put/head (`docker cp`), export, and changes (`docker diff`)."""

from __future__ import annotations

import base64
import posixpath
import re
from collections.abc import AsyncIterator

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.body import upload_chunks
from seabox.api.common import cloud, flag
from seabox.api.docker.routing import DockerRoutes
from seabox.errors import InvalidArgument
from seabox.model.container import Container
from seabox.protocol.archive import PathStat, UploadOptions

routes = DockerRoutes()
STAT_HEADER = "X-Docker-Container-Path-Stat"
NUMERIC_USER = re.compile(r"([0-9]{1,5})(?::([0-9]{1,5}))?")


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("the path query parameter is required", field="path")
    if "\0" in path:
        raise InvalidArgument("path must not contain NUL", field="path")
    return path if path.startswith("/") else "/" + path


def _under(path: str, target: str) -> bool:
    where, target = posixpath.normpath(path), posixpath.normpath(target)
    return where == target or where.startswith(target.rstrip("/") + "/")


def _copyable(c: Container, path: str, *, write: bool = False) -> str:
    """PATH, if docker cp may reach it: the rootfs (writable unless --read-only) or a volume (writable unless
    mounted :ro), as Docker rules; a tmpfs is refused (400), as it lives only inside the running container
    and a copy would reach what lies beneath it."""
    for t in c.spec.tmpfs:
        if _under(path, t.path):
            raise InvalidArgument(f"{path} is on a tmpfs, mounted at {t.path}: docker cp reaches the container's "
                                  f"filesystem and volumes only; copy through the container instead (docker exec "
                                  f"-i {c.name} tar -x -C {t.path} < archive.tar, or tar -c -C {t.path} . > "
                                  "archive.tar)", field="path")
    if not write:
        return path
    volume = next((v for v in sorted(c.spec.volumes, key=lambda v: -len(v.path)) if _under(path, v.path)), None)
    if volume is not None and volume.readonly:
        raise InvalidArgument(f"{path} is on volume {volume.volume}, which is mounted read-only at {volume.path}",
                              field="path")
    if volume is None and c.spec.read_only:
        raise InvalidArgument(f"the container's root filesystem is read-only (--read-only): {path} is on no volume",
                              field="path")
    return path


def _stat_header(found: PathStat) -> dict[str, str]:
    return {STAT_HEADER: base64.b64encode(found.model_dump_json().encode()).decode()}


@routes.head("/containers/{id}/archive")
async def archive_head(request: web.Request) -> web.Response:
    c, link, p = cloud(request).containers.files(tenant_of(request), request.match_info["id"])
    return web.Response(headers=_stat_header(await link.path_stat(p, _copyable(c, _path(request)))))


async def _send(request: web.Request, chunks: AsyncIterator[bytes], headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar", **headers})
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


@routes.get("/containers/{id}/archive")
async def archive_get(request: web.Request) -> web.StreamResponse:
    c, link, p = cloud(request).containers.files(tenant_of(request), request.match_info["id"])
    path = _copyable(c, _path(request))
    found = await link.path_stat(p, path)
    return await _send(request, await link.read_archive(p, path), _stat_header(found))


def _owner(c: Container) -> tuple[int, int] | None:
    """copyUIDGID: every file belongs to the container's user (Docker: its configured user, else as archived)."""
    user = c.spec.user or ""
    if not user:
        return None
    m = NUMERIC_USER.fullmatch(user)
    if m is None:
        raise InvalidArgument(f"copyUIDGID needs a numeric container user (uid[:gid]), not {user!r}: copy without -a "
                              "and chown inside the container", field="copyUIDGID")
    uid = int(m.group(1))
    return uid, int(m.group(2)) if m.group(2) else uid


@routes.route("PUT", "/containers/{id}/archive")
async def archive_put(request: web.Request) -> web.Response:
    c, link, p = cloud(request).containers.files(tenant_of(request), request.match_info["id"])
    path = _copyable(c, _path(request), write=True)
    options = UploadOptions(owner=_owner(c) if flag(request, "copyUIDGID") else None,
                            no_overwrite_dir=flag(request, "noOverwriteDirNonDir"))
    await link.write_archive(p, path, upload_chunks(request), options)
    return web.Response(status=200)


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    _, link, p = cloud(request).containers.files(tenant_of(request), request.match_info["id"])
    return await _send(request, await link.export(p), {})


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    _, link, p = cloud(request).containers.files(tenant_of(request), request.match_info["id"])
    found = await link.changes(p)
    return web.json_response([ch.model_dump() for ch in found])
