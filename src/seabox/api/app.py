"""The aiohttp application: middlewares, the native /v1 routes, the Docker routes, /metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from seabox.api.auth import TENANT, auth_middleware
from seabox.api.body import LIMITS
from seabox.api.common import CLOUD
from seabox.api.docker import archive as docker_archive
from seabox.api.docker import containers as docker_containers
from seabox.api.docker import exec as docker_exec
from seabox.api.docker import images as docker_images
from seabox.api.docker import lifecycle as docker_lifecycle
from seabox.api.docker import system as docker_system
from seabox.api.docker import volumes as docker_volumes
from seabox.api.docker.routing import add_fallback, docker_headers
from seabox.api.errors import REDACTED, error_middleware
from seabox.api.metrics import metrics
from seabox.api.node import plane as node_plane
from seabox.api.openapi import build_openapi
from seabox.api.ratelimit import rate_limit_middleware
from seabox.api.spend import spend_limit_middleware
from seabox.api.v1 import (billing, containers, crons, fips, functions, images, security_groups, services, system,
                           volumes)
from seabox.services.cloud import Cloud


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


def create_app(cloud: Cloud) -> web.Application:
    limits = cloud.cfg.api
    app = web.Application(
        middlewares=[error_middleware, rate_limit_middleware(limits), auth_middleware, spend_limit_middleware],
        client_max_size=limits.max_body_bytes,
    )
    app[CLOUD] = cloud
    app[LIMITS] = limits
    app[REDACTED] = {str(cloud.cfg.data_dir): "DATA_DIR", str(cloud.cfg.data_dir.resolve()): "DATA_DIR",
                     str(cloud.cfg.run_dir): "RUN_DIR"}
    app[TENANT] = cloud.store
    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    for module in (containers, images, volumes, fips, security_groups, services, crons, functions, system, billing,
                   node_plane):
        app.router.add_routes(module.routes)
    for docker in (docker_system, docker_lifecycle, docker_containers, docker_archive, docker_exec, docker_images,
                   docker_volumes):
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
