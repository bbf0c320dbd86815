"""Tenant authentication: an API key (X-Api-Key or Authorization: Bearer, stored hashed) or a client certificate's CN."""

from __future__ import annotations

import re

from aiohttp import web

from seabox.api.errors import Handler
from seabox.errors import InvalidArgument, NotFound, Unauthorized
from seabox.model.tenant import Tenant
from seabox.protocol.wire import PLANE_PREFIX
from seabox.store.nodes import NODE_CREDENTIAL_PREFIX
from seabox.store.repo import Store
from seabox.tls import peer_common_name

TENANT = web.AppKey("tenant_lookup", Store)
# nothing tenant-specific; /metrics checks the operator's own token (api/metrics.py)
PUBLIC_PATHS = ("/_ping", "/version", "/v1/openapi.json", "/metrics")
CALL_PREFIX = "/call/"  # a function's public call URL: the secret in its path is the credential (api/v1/functions.py)
_KEY = re.compile(r"[!-~]+")  # printable ASCII, no spaces


def _checked(key: str, header: str) -> str:
    if not _KEY.fullmatch(key):
        raise InvalidArgument(f"the {header} header must be printable ASCII (an API key)", field=header)
    return key


def request_key(request: web.Request) -> str | None:
    """The credential the request carries in X-Api-Key or Authorization: Bearer (400 when it is not a key's form)."""
    key = request.headers.get("X-Api-Key")
    if key and key.strip():
        return _checked(key.strip(), "X-Api-Key")
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return _checked(value.strip(), "Authorization")
    return None


_VERSION_PREFIX = re.compile(r"^/v\d+\.\d+(?=/)")


def is_public(path: str) -> bool:
    """Paths served without a tenant credential, bare or under a Docker /vN.NN prefix (node routes and function
    call URLs check their own)."""
    return (_VERSION_PREFIX.sub("", path) in PUBLIC_PATHS or path.startswith(PLANE_PREFIX + "/")
            or path.startswith(CALL_PREFIX))


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
            if key.startswith(NODE_CREDENTIAL_PREFIX):
                raise Unauthorized("a node credential is not a tenant API key")
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
