"""Native /v1 security group routes: create, list, inspect, update (replaces every rule), remove; a container's live
update (its groups, size or restart policy)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from seabox.api.auth import tenant_of
from seabox.api.body import OFF_LOOP_BYTES, json_body, read_body
from seabox.api.common import body, cloud, dump
from seabox.errors import InvalidArgument
from seabox.model.container import RestartPolicy, SizeName, check_group_names
from seabox.model.security_group import group_document, parse_yaml

routes = web.RouteTableDef()
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class ContainerUpdate(BaseModel):
    """A live change to a container: its size and restart policy, or security groups to join and to leave
    (each request one kind of change, applied all at once or not at all)."""

    model_config = ConfigDict(extra="forbid")

    size: SizeName | None = None  # running or paused: applied at once (runc); stopped: at its next start
    restart: RestartPolicy | None = None
    security_groups_add: list[str] = Field(default_factory=list)
    security_groups_remove: list[str] = Field(default_factory=list)

    @field_validator("restart", mode="before")
    @classmethod
    def _restart(cls, v: object) -> object:
        return RestartPolicy.parse(v) if isinstance(v, str) else v

    @field_validator("security_groups_add", "security_groups_remove")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return check_group_names(v)


async def _document(request: web.Request) -> Any:
    """The group document of the request: a YAML body (Content-Type application/yaml) or a JSON one;
    ?name=NAME replaces the name it gives."""
    if not request.body_exists:
        raise InvalidArgument("the request has no body: give the group as JSON, or as YAML with "
                              "Content-Type: application/yaml", field="body")
    if request.content_type in YAML_TYPES:
        raw = await read_body(request)
        data = await asyncio.to_thread(parse_yaml, raw) if len(raw) > OFF_LOOP_BYTES else parse_yaml(raw)
    else:
        data = await json_body(request)
    return group_document(data, request.query.get("name"))


@routes.get("/v1/security-groups")
async def list_groups(request: web.Request) -> web.Response:
    return dump(cloud(request).security_groups.list(tenant_of(request)))


@routes.post("/v1/security-groups")
async def create(request: web.Request) -> web.Response:
    document = await _document(request)
    return dump(await cloud(request).security_groups.create(tenant_of(request), document), 201)


@routes.get("/v1/security-groups/{name}")
async def inspect(request: web.Request) -> web.Response:
    return dump(cloud(request).security_groups.get(tenant_of(request), request.match_info["name"]))


@routes.put("/v1/security-groups/{name}")
async def update(request: web.Request) -> web.Response:
    document = await _document(request)
    svc = cloud(request).security_groups
    return dump(await svc.update(tenant_of(request), request.match_info["name"], document))


@routes.delete("/v1/security-groups/{name}")
async def remove(request: web.Request) -> web.Response:
    await cloud(request).security_groups.remove(tenant_of(request), request.match_info["name"])
    return web.Response(status=204)


@routes.post("/v1/containers/{ref}/update")
async def update_container(request: web.Request) -> web.Response:
    req = await body(request, ContainerUpdate)
    ref, tenant = request.match_info["ref"], tenant_of(request)
    if req.size is None and req.restart is None:
        svc = cloud(request).security_groups
        return dump(await svc.update_container(tenant, ref, req.security_groups_add, req.security_groups_remove))
    if req.security_groups_add or req.security_groups_remove:
        raise InvalidArgument("change the size or restart policy and the security groups in two requests",
                              field="security_groups_add" if req.security_groups_add else "security_groups_remove")
    return dump(await cloud(request).containers.update(tenant, ref, req.size, req.restart))
