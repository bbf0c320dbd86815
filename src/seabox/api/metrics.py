"""The operator's /metrics (Prometheus text), readable only with the metrics token kept in DATA_DIR/metrics.token."""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
from pathlib import Path

from aiohttp import web

from seabox import __version__
from seabox.api.auth import TENANT, request_key
from seabox.api.common import CLOUD
from seabox.errors import Forbidden, Unauthorized
from seabox.services.cloud import Cloud

TOKEN_FILE = "metrics.token"


class MissingCredential(Unauthorized):
    """No metrics token: the 401 tells a scraper how to authenticate."""

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="seabox metrics"'}


def metrics_token(data_dir: Path, rotate: bool = False) -> str:
    """The operator's metrics token, created (mode 0600) on first use or when ROTATE is set."""
    path = data_dir / TOKEN_FILE
    if rotate or not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        tmp.replace(path)
    return path.read_text().strip()


def _check_operator(request: web.Request) -> None:
    presented = request_key(request)
    if presented is None:
        raise MissingCredential("/metrics needs the operator's metrics token: Authorization: Bearer TOKEN "
                                "(`seabox admin metrics-token` prints it)")
    token = metrics_token(request.app[CLOUD].cfg.data_dir)
    if hmac.compare_digest(presented.encode(), token.encode()):
        return
    if request.app[TENANT].tenant_for_key(presented) is not None:
        raise Forbidden("/metrics is for the operator: tenant API keys cannot read it")
    raise Unauthorized("invalid metrics token")


def _usage_lines(c: Cloud) -> list[str]:
    """Each tenant's use this month so far by meter: quantity and cost (what still runs counted to now)."""
    quantity = ["# HELP seabox_tenant_usage This month's use so far, in each meter's unit (second, GB-month, month).",
                "# TYPE seabox_tenant_usage gauge"]
    cost = ["# HELP seabox_tenant_usage_dollars What this month's use has cost so far.",
            "# TYPE seabox_tenant_usage_dollars gauge"]
    for tenant in c.store.list_tenants():
        for line in c.accounts.usage(tenant).lines:
            labels = f'tenant="{tenant.name}",meter="{line.meter}"'
            quantity.append(f'seabox_tenant_usage{{{labels},unit="{line.unit}"}} {line.quantity}')
            cost.append(f"seabox_tenant_usage_dollars{{{labels}}} {line.cost}")
    return quantity + cost


async def metrics(request: web.Request) -> web.Response:
    _check_operator(request)
    c = request.app[CLOUD]
    usage = await asyncio.to_thread(_usage_lines, c)
    states: dict[str, int] = {}
    for item in c.store.list_containers():
        states[item.status.state] = states.get(item.status.state, 0) + 1
    lines = [
        "# HELP seabox_info Seabox server version.",
        "# TYPE seabox_info gauge",
        f'seabox_info{{version="{__version__}"}} 1',
        "# HELP seabox_containers Containers on this server by state.",
        "# TYPE seabox_containers gauge",
        *(f'seabox_containers{{state="{s}"}} {n}' for s, n in sorted(states.items())),
        "# HELP seabox_tenants Tenants.",
        "# TYPE seabox_tenants gauge",
        f"seabox_tenants {len(c.store.list_tenants())}",
        *usage,
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

