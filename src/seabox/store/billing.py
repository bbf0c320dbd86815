"""The billing records: the meter's usage intervals as rating reads them, price book versions and issued invoices."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, or_, select
from sqlalchemy.exc import IntegrityError

from seabox.billing.meter import CONTAINER_MINIMUM_S
from seabox.billing.prices import PriceBook, PriceHistory, price_text
from seabox.billing.rating import Interval, month_of, month_start_ms
from seabox.store import tables as t

U = t.usage_intervals.c
I = t.invoices.c


class BillingStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def intervals(self, tenant_id: str, since_ms: int, until_ms: int) -> list[Interval]:
        """TENANT_ID's intervals that may bill inside [SINCE, UNTIL): open, or ended at most a minimum before
        SINCE (or within SINCE's calendar month, for a FIP's month)."""
        year, month = month_of(since_ms)
        reach = min(since_ms - CONTAINER_MINIMUM_S * 1000, month_start_ms(year, month))
        q = select(U.kind, U.resource_id, U.resource_name, U.meter, U.quantity, U.start_ms, U.end_ms,
                   U.minimum_ms).where(U.tenant_id == tenant_id, U.start_ms < until_ms,
                                       or_(U.end_ms.is_(None), U.end_ms >= reach))
        with self.engine.connect() as conn:
            return [Interval(r.kind, r.resource_id, r.resource_name, r.meter, Decimal(r.quantity), r.start_ms,
                             r.end_ms, r.minimum_ms) for r in conn.execute(q)]

    def price_history(self) -> PriceHistory:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.price_books).order_by(t.price_books.c.effective_at)).mappings().all()
        return PriceHistory(tuple(
            PriceBook(r["effective_at"], {k: Decimal(v) for k, v in r["prices"].items()}) for r in rows
        ))

    def add_price_book(self, book: PriceBook) -> bool:
        """Record BOOK as a new version (False if one already takes effect at that very time)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.price_books).values(
                    effective_at=book.effective_at, prices={k: price_text(v) for k, v in book.prices.items()},
                    created_at=time.time()))
        except IntegrityError:
            return False
        return True

    def invoice(self, tenant_id: str, month: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.invoices).where(I.tenant_id == tenant_id, I.month == month)).mappings().first()
        return dict(row) if row else None

    def issue(self, tenant_id: str, month: str, lines: list[dict[str, str]], total: Decimal) -> dict[str, Any]:
        """Store the month's invoice unless one is issued already; returns the one that stands (never changed)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.invoices).values(tenant_id=tenant_id, month=month, issued_at=time.time(),
                                                       lines=lines, total=str(total)))
        except IntegrityError:
            pass  # another server issued it first: theirs stands
        return self.invoice(tenant_id, month) or {}

    def invoices(self, month: str | None = None) -> list[dict[str, Any]]:
        q = select(t.invoices).order_by(I.month, I.tenant_id)
        if month is not None:
            q = q.where(I.month == month)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]
