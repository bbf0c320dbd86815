"""Billing as the API shows it: usage lines, invoices and the price book (money as exact decimal strings)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class UsageLine(BaseModel):
    key: str  # what the line groups: a meter, a resource kind, a resource's name or a day
    meter: str  # a price book key: container.s4, storage, fip, service
    unit: str  # second | GB-month | month
    quantity: str
    cost: str  # dollars
    resource_id: str = ""  # with by=container: the resource's id (a container's, as `seabox ps` shows it)


class Usage(BaseModel):
    since: datetime
    until: datetime
    by: str
    lines: list[UsageLine]
    total: str


class Invoice(BaseModel):
    month: str  # YYYY-MM
    status: str  # draft (the month is not over: so far) | issued (immutable)
    issued_at: datetime | None
    lines: list[UsageLine]
    total: str


class Prices(BaseModel):
    effective_at: datetime
    prices: dict[str, str]  # meter -> dollars per unit
    units: dict[str, str]  # meter -> unit
