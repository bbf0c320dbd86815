"""Docker container pause, unpause, update (a size applied live) and prune: desired state for the node, the rest refused by name."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.body import json_body
from seabox.api.common import cloud
from seabox.api.docker import translate
from seabox.api.docker.prune import prune_filter
from seabox.api.docker.routing import DockerRoutes, query_filters
from seabox.errors import InvalidArgument
from seabox.model.container import Container, RestartPolicy
from seabox.model.sizes import SIZES, smallest_fitting

routes = DockerRoutes()
# POST /containers/{id}/update fields Seabox reads; the docker CLI sends every other one too, zero or empty
_UPDATE_READ = {"Memory", "NanoCpus", "RestartPolicy"}
_RESTART_NAMES = ("", "no", "on-failure", "always", "unless-stopped")


def _ref(request: web.Request) -> str:
    return request.match_info["id"].lstrip("/")


@routes.post("/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    await cloud(request).containers.pause(tenant_of(request), _ref(request))
    return web.Response(status=204)


@routes.post("/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    await cloud(request).containers.unpause(tenant_of(request), _ref(request))
    return web.Response(status=204)


def _integer(body: dict[str, Any], key: str) -> int:
    value = body.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{key} must be a non-negative integer", field=key)
    return value


def _restart(body: dict[str, Any]) -> RestartPolicy | None:
    policy = body.get("RestartPolicy") or {}
    if not isinstance(policy, dict):
        raise InvalidArgument("RestartPolicy must be an object", field="RestartPolicy")
    name = policy.get("Name") or ""
    if name not in _RESTART_NAMES:
        raise InvalidArgument(f"restart policy must be no, on-failure, always or unless-stopped, got {str(name)[:40]!r}",
                              field="RestartPolicy")
    count = policy.get("MaximumRetryCount") or 0
    if not isinstance(count, int) or count < 0 or (count and name != "on-failure"):
        raise InvalidArgument("MaximumRetryCount is a non-negative integer, for on-failure only", field="RestartPolicy")
    return RestartPolicy(name=name, max_retries=count) if name else None


def update_request(body: Any, c: Container) -> tuple[str | None, RestartPolicy | None]:
    """A Docker update body as (size, restart policy), None where unchanged; any other field set is a 400 naming it."""
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object", field="body")
    for key, value in body.items():
        if key not in _UPDATE_READ and value not in (None, 0, "", [], {}, False):
            if key == "MemorySwap" and value in (-1, body.get("Memory")):
                continue  # Seabox sizes have no swap: equal to Memory, or unlimited, is what they mean
            raise InvalidArgument(f"{key} cannot be updated on Seabox: a container's size (--memory, --cpus) "
                                  "and its restart policy can", field=key)
    memory, nano = _integer(body, "Memory"), _integer(body, "NanoCpus")
    size = None
    if memory or nano:
        now = SIZES[c.spec.size]
        size = smallest_fitting(memory or now.memory_bytes, nano / 1e9 if nano else now.cpus).name
    return size, _restart(body)


@routes.post("/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    svc = cloud(request).containers
    tenant = tenant_of(request)
    c = svc.get(tenant, _ref(request))
    size, restart = update_request(await json_body(request), c)
    await svc.update(tenant, c.id, size, restart)
    return web.json_response({"Warnings": []})


@routes.post("/containers/prune")
async def prune(request: web.Request) -> web.Response:
    chosen = prune_filter(query_filters(request), {"until", "label", "label!"})
    removed, reclaimed = await cloud(request).containers.prune(
        tenant_of(request), lambda c: not chosen.selects(c.created_at.timestamp(), translate.labels_of(c))
    )
    return web.json_response({"ContainersDeleted": [c.id for c in removed] or None, "SpaceReclaimed": reclaimed})
