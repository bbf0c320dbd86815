"""The billing records: the meter's usage intervals as rating reads them, price book versions and issued invoices."""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, delete, func, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError

from seabox.billing.tally import DAY_MS
from seabox.billing.prices import PriceBook, PriceHistory, price_text
from seabox.billing.rating import Interval, month_of, month_start_ms
from seabox.store import tables as t
from seabox.store.dialect import greatest, least

U = t.usage_intervals.c
P = t.usage_pieces.c
D = t.usage_days.c
I = t.invoices.c
S = t.spend_limits.c


class BillingStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def sums(self, tenant_id: str, group: str, lo: int, hi: int, now_ms: int,
             resource_id: str | None = None) -> list[tuple[str, str, str, Decimal, int]]:
        """(key, resource id, meter, quantity, billed ms in [LO, HI)) of TENANT_ID's per-time meters, summed by the
        database.

        An interval bills from its start to its end (NOW_MS while open), at least minimum_ms; GROUP is the
        key: size (the meter), resource (the kind) or container (the resource's name, and its id). With
        RESOURCE_ID, only that resource's (a container's runs and root filesystem). Closed intervals are
        read from the day rollup (billing/tally.py): whole days inside the window from their sums, the
        days it cuts from their pieces; open ones from the ledger.
        """
        first_day = -(-lo // DAY_MS) * DAY_MS  # the first midnight at or after LO
        last_day = hi - hi % DAY_MS  # the last midnight at or before HI
        edges = [(lo, hi)] if first_day >= last_day else [(lo, first_day), (last_day, hi)]
        totals: dict[tuple[str, str, str, str], int] = defaultdict(int)
        with self.engine.connect() as conn:
            queries = [self._open(conn, group, lo, hi, now_ms)]
            queries += [self._pieces(conn, group, a, b) for a, b in edges if a < b]
            if first_day < last_day:
                queries.append(self._days(group, first_day, last_day))
            for q, table in queries:
                q = q.where(table.c.tenant_id == tenant_id)
                if resource_id is not None:
                    q = q.where(table.c.resource_id == resource_id)
                for k, rid, meter, quantity, billed in conn.execute(q):
                    totals[(str(k), str(rid), meter, quantity)] += int(billed)
        return [(k, rid, meter, Decimal(quantity), billed)
                for (k, rid, meter, quantity), billed in totals.items() if billed > 0]

    @staticmethod
    def _key(table: Table, group: str) -> tuple[Any, Any]:
        c = table.c
        return ({"size": c.meter, "resource": c.kind, "container": c.resource_name}[group],
                c.resource_id if group == "container" else literal(""))

    def _open(self, conn: Connection, group: str, lo: int, hi: int, now_ms: int) -> tuple[Select[Any], Table]:
        """Open intervals' billed ms in [LO, HI): billed to NOW_MS, at least their minimum."""
        key, resource = self._key(t.usage_intervals, group)
        billed_end = greatest(conn, now_ms, U.start_ms + U.minimum_ms)
        part = least(conn, billed_end, hi) - greatest(conn, U.start_ms, lo)
        return (select(key, resource, U.meter, U.quantity, func.sum(part))
                .where(U.end_ms.is_(None), U.kind != "fip", U.start_ms < hi, part > 0)
                .group_by(key, resource, U.meter, U.quantity)), t.usage_intervals

    def _pieces(self, conn: Connection, group: str, a: int, b: int) -> tuple[Select[Any], Table]:
        """Closed intervals' billed ms in [A, B), a window inside at most two days, from those days' pieces."""
        key, resource = self._key(t.usage_pieces, group)
        part = least(conn, P.end_ms, b) - greatest(conn, P.start_ms, a)
        return (select(key, resource, P.meter, P.quantity, func.sum(part))
                .where(P.day_ms >= a - a % DAY_MS, P.day_ms < b, part > 0)
                .group_by(key, resource, P.meter, P.quantity)), t.usage_pieces

    def _days(self, group: str, first: int, last: int) -> tuple[Select[Any], Table]:
        """Closed intervals' billed ms in the whole days from midnight FIRST to midnight LAST."""
        key, resource = self._key(t.usage_days, group)
        return (select(key, resource, D.meter, D.quantity, func.sum(D.billed_ms))
                .where(D.day_ms >= first, D.day_ms < last)
                .group_by(key, resource, D.meter, D.quantity)), t.usage_days

    def fips(self, tenant_id: str, since_ms: int, until_ms: int) -> list[Interval]:
        """TENANT_ID's FIP intervals that may bill a month inside [SINCE, UNTIL): held then, or earlier in SINCE's
        calendar month (a month is billed once, at its first instant held)."""
        year, month = month_of(since_ms)
        q = select(U.kind, U.resource_id, U.resource_name, U.meter, U.quantity, U.start_ms, U.end_ms,
                   U.minimum_ms).where(U.tenant_id == tenant_id, U.kind == "fip", U.start_ms < until_ms,
                                       or_(U.end_ms.is_(None), U.end_ms >= month_start_ms(year, month)))
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

    def first_use_ms(self, tenant_id: str) -> int | None:
        """When TENANT_ID's earliest usage interval began (None: it has used nothing)."""
        with self.engine.connect() as conn:
            first = conn.execute(select(func.min(U.start_ms)).where(U.tenant_id == tenant_id)).scalar()
        return None if first is None else int(first)

    def issued_months(self, tenant_id: str) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(I.month).where(I.tenant_id == tenant_id))}

    def invoices(self, month: str | None = None) -> list[dict[str, Any]]:
        q = select(t.invoices).order_by(I.month, I.tenant_id)
        if month is not None:
            q = q.where(I.month == month)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def spend_limit(self, tenant_id: str) -> tuple[Decimal, bool] | None:
        """TENANT_ID's monthly limit in dollars and whether its running containers stop at it (None: no limit)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(S.monthly, S.stop_running).where(S.tenant_id == tenant_id)).first()
        return (Decimal(row.monthly), bool(row.stop_running)) if row else None

    def spend_limits(self) -> dict[str, tuple[Decimal, bool]]:
        with self.engine.connect() as conn:
            return {r.tenant_id: (Decimal(r.monthly), bool(r.stop_running)) for r in conn.execute(select(t.spend_limits))}

    def set_spend_limit(self, tenant_id: str, monthly: Decimal | None, stop_running: bool = False) -> None:
        """Set (or with None, remove) TENANT_ID's monthly spend limit."""
        with self.engine.begin() as conn:
            conn.execute(delete(t.spend_limits).where(S.tenant_id == tenant_id))
            if monthly is not None:
                conn.execute(insert(t.spend_limits).values(tenant_id=tenant_id, monthly=price_text(monthly),
                                                           stop_running=stop_running))
