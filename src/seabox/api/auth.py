"""Tenant authentication: an API key from X-Api-Key or Authorization: Bearer, checked against stored hashes."""

from __future__ import annotations

from aiohttp import web

from seabox.api.errors import Handler
from seabox.errors import Unauthorized
from seabox.model.tenant import Tenant
from seabox.store.repo import Store

TENANT = web.AppKey("tenant_lookup", Store)
PUBLIC_PATHS = ("/_ping", "/v1/openapi.json", "/metrics")


def request_key(request: web.Request) -> str | None:
    key = request.headers.get("X-Api-Key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def is_public(path: str) -> bool:
    return any(path == p or path.endswith(p) and path.startswith("/v1.") for p in PUBLIC_PATHS)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_public(request.path):
        key = request_key(request)
        if not key:
            raise Unauthorized("missing API key: send X-Api-Key: KEY or Authorization: Bearer KEY")
        tenant = request.app[TENANT].tenant_for_key(key)
        if tenant is None:
            raise Unauthorized("invalid API key")
        request["tenant"] = tenant
    return await handler(request)


def tenant_of(request: web.Request) -> Tenant:
    tenant: Tenant = request["tenant"]
    return tenant
