"""Node protocol routes: join with a token, heartbeats, watching assignments, reporting containers.

Every route but join takes the node's own credential (Authorization: Bearer), never a tenant key.
"""

from __future__ import annotations

from aiohttp import web

from seabox.api.auth import request_key
from seabox.api.common import body, cloud, number
from seabox.errors import Unauthorized
from seabox.model.node import Node, NodeCapacity
from seabox.protocol.wire import PLANE_PREFIX, Heartbeat, RegisterRequest, RegisterResponse, Reports
from seabox.store.repo import KEY_PREFIX

routes = web.RouteTableDef()
MAX_WATCH = 60.0


def node_of(request: web.Request) -> Node:
    """The node whose credential the request carries; 401 otherwise (a tenant key is refused by name)."""
    key = request_key(request)
    if not key:
        raise Unauthorized("missing node credential: send Authorization: Bearer CREDENTIAL")
    if key.startswith(KEY_PREFIX):
        raise Unauthorized("a tenant API key is not a node credential")
    node = cloud(request).nodes.node_for_credential(key)
    if node is None:
        raise Unauthorized("invalid node credential")
    return node


@routes.post(PLANE_PREFIX + "/register")
async def register(request: web.Request) -> web.Response:
    req = await body(request, RegisterRequest)
    c = cloud(request)
    credential = c.nodes.register(
        req.token, req.name, req.address, NodeCapacity(req.name, req.memory_bytes, req.cpus), req.link_secret
    )
    await c.bus.emit("", "node", "join", req.name, req.name, {"address": req.address})
    answer = RegisterResponse(name=req.name, credential=credential, heartbeat_interval=c.cfg.nodes.heartbeat_interval)
    return web.json_response(answer.model_dump(mode="json"), status=201)


@routes.post(PLANE_PREFIX + "/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    node = node_of(request)
    beat = await body(request, Heartbeat)
    await cloud(request).hub.heartbeat(node.name, NodeCapacity(node.name, beat.memory_bytes, beat.cpus))
    return web.json_response({"schedule": cloud(request).nodes.get(node.name).schedule})


@routes.get(PLANE_PREFIX + "/assignments")
async def assignments(request: web.Request) -> web.Response:
    """The node's assignments; with etag, held open until they differ from it (at most timeout seconds)."""
    node = node_of(request)
    timeout = min(number(request, "timeout", 0.0) or 0.0, MAX_WATCH)
    batch = await cloud(request).hub.assignments(node.name, request.query.get("etag", ""), max(timeout, 0.0))
    return web.json_response(text=batch.model_dump_json())


@routes.post(PLANE_PREFIX + "/reports")
async def reports(request: web.Request) -> web.Response:
    node = node_of(request)
    got = await body(request, Reports)
    await cloud(request).hub.report(node.name, got.reports)
    return web.Response(status=204)
