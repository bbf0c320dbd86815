"""The aiohttp application: middlewares, the native /v1 routes, /_ping, /metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from seabox import __version__
from seabox.api.auth import TENANT, auth_middleware
from seabox.api.common import CLOUD
from seabox.api.docker import containers as docker_containers
from seabox.api.docker import exec as docker_exec
from seabox.api.docker import images as docker_images
from seabox.api.docker import system as docker_system
from seabox.api.docker import volumes as docker_volumes
from seabox.api.docker.routing import add_fallback, docker_headers
from seabox.api.errors import error_middleware
from seabox.api.openapi import build_openapi
from seabox.api.v1 import containers, images, system, volumes
from seabox.services.cloud import Cloud


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


async def metrics(request: web.Request) -> web.Response:
    c = request.app[CLOUD]
    all_containers = c.store.list_containers()
    states: dict[str, int] = {}
    for item in all_containers:
        states[item.status.state] = states.get(item.status.state, 0) + 1
    lines = [
        "# HELP seabox_info Seabox server version.",
        "# TYPE seabox_info gauge",
        f'seabox_info{{version="{__version__}",node="{c.agent.name}"}} 1',
        "# HELP seabox_containers Containers on this server by state.",
        "# TYPE seabox_containers gauge",
        *(f'seabox_containers{{state="{s}"}} {n}' for s, n in sorted(states.items())),
        "# HELP seabox_tenants Tenants.",
        "# TYPE seabox_tenants gauge",
        f"seabox_tenants {len(c.store.list_tenants())}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def create_app(cloud: Cloud) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=1 << 40)
    app[CLOUD] = cloud
    app[TENANT] = cloud.store
    app[docker_exec.SESSIONS] = {}
    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    for module in (containers, images, volumes, system):
        app.router.add_routes(module.routes)
    for docker in (docker_system, docker_containers, docker_exec, docker_images, docker_volumes):
        docker.routes.add_to(app)
    add_fallback(app)
    app.on_response_prepare.append(docker_headers)

    async def on_startup(_: web.Application) -> None:
        await cloud.start()

    async def on_cleanup(_: web.Application) -> None:
        await cloud.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
