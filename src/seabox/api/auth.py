"""Tenant authentication: an API key (X-Api-Key or Authorization: Bearer, stored hashed) or a client certificate's CN."""

from __future__ import annotations

import re

from aiohttp import web

from seabox.api.errors import Handler
from seabox.errors import NotFound, Unauthorized
from seabox.model.tenant import Tenant
from seabox.store.repo import Store
from seabox.tls import peer_common_name

TENANT = web.AppKey("tenant_lookup", Store)
PUBLIC_PATHS = ("/_ping", "/version", "/v1/openapi.json", "/metrics")  # nothing tenant-specific


def request_key(request: web.Request) -> str | None:
    key = request.headers.get("X-Api-Key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


_VERSION_PREFIX = re.compile(r"^/v\d+\.\d+(?=/)")


def is_public(path: str) -> bool:
    """Paths served without a credential, bare or under a Docker /vN.NN prefix."""
    return _VERSION_PREFIX.sub("", path) in PUBLIC_PATHS


def _tenant_of_certificate(request: web.Request) -> Tenant | None:
    """The tenant named by the CN of a client certificate the TLS listener verified."""
    transport = request.transport
    cn = peer_common_name(transport.get_extra_info("peercert") if transport else None)
    if cn is None:
        return None
    try:
        return request.app[TENANT].tenant_by_name(cn)
    except NotFound:
        raise Unauthorized(f"client certificate CN {cn!r} names no tenant") from None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_public(request.path):
        key = request_key(request)
        if key:
            tenant = request.app[TENANT].tenant_for_key(key)
            if tenant is None:
                raise Unauthorized("invalid API key")
        else:
            tenant = _tenant_of_certificate(request)
            if tenant is None:
                raise Unauthorized(
                    "missing API key: send X-Api-Key: KEY or Authorization: Bearer KEY, or a client certificate"
                )
        request["tenant"] = tenant
    return await handler(request)


def tenant_of(request: web.Request) -> Tenant:
    tenant: Tenant = request["tenant"]
    return tenant
