"""Native /v1 billing routes: the tenant's usage so far, monthly invoices and the price book."""

from __future__ import annotations

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.common import cloud, dump, number

routes = web.RouteTableDef()


@routes.get("/v1/usage")
async def usage(request: web.Request) -> web.Response:
    """?since=&until= (unix seconds; default this month so far), ?by=size|resource|container|day, ?container=."""
    report = cloud(request).accounts.usage(tenant_of(request), number(request, "since"), number(request, "until"),
                                           request.query.get("by", "size"), container=request.query.get("container"))
    return dump(report)


@routes.get("/v1/invoice")
async def invoice(request: web.Request) -> web.Response:
    """?month=YYYY-MM (default: this month, a draft)."""
    return dump(cloud(request).accounts.invoice(tenant_of(request), request.query.get("month")))


@routes.get("/v1/prices")
async def prices(request: web.Request) -> web.Response:
    return dump(cloud(request).accounts.prices())
