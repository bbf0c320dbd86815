"""The spend limit at the door: a tenant past its monthly limit creates nothing new (402), on either API."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from seabox.api.common import cloud

# POSTs that create something billable besides containers (ContainerService.create checks those itself, for
# whoever creates them: a request, a service's replica, a cron firing, a function call)
CREATES = re.compile(r"/v1/(volumes|fips|services|crons|funcs)|(/v[0-9.]+)?/volumes/create")


@web.middleware
async def spend_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    tenant = request.get("tenant")
    if tenant is not None and request.method == "POST" and CREATES.fullmatch(request.path):
        await asyncio.to_thread(cloud(request).accounts.check_spend, tenant)
    return await handler(request)
