"""A tenant's account: usage so far, monthly invoices (drafted live, issued once the month ends) and the price book."""

from __future__ import annotations

import re
import time
import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from seabox.billing.prices import UNITS, PriceBook, parse_price, price_text
from seabox.billing.rating import DAY_MS, GROUPS, Line, month_of, month_start_ms, rate, total
from seabox.errors import Conflict, InvalidArgument, PaymentRequired
from seabox.model.billing import Invoice, Prices, Usage, UsageLine
from seabox.model.tenant import Tenant
from seabox.store.billing import BillingStore
from seabox.store.repo import Store

MONTH = re.compile(r"(\d{4})-(\d{2})")
MAX_DAYS = 366  # the longest window usage grouped by day covers (one query per day)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()  # before any usage a Seabox can have recorded


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _lines(lines: list[Line]) -> list[UsageLine]:
    return [UsageLine(key=x.key, meter=x.meter, unit=x.unit, quantity=str(x.quantity), cost=str(x.cost),
                      resource_id=x.resource_id) for x in lines]


def parse_month(value: str) -> tuple[int, int]:
    """'YYYY-MM' as (year, month), or a 400 naming month."""
    m = MONTH.fullmatch(value)
    if not m or not 1 <= int(m[2]) <= 12 or int(m[1]) < 2000:
        raise InvalidArgument(f"month must be YYYY-MM (e.g. 2026-11), from 2000-01, not {value!r}", field="month")
    return int(m[1]), int(m[2])


def month_name(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


class Accounts:
    def __init__(self, store: Store, billing: BillingStore) -> None:
        self.store = store
        self.billing = billing

    def usage(self, tenant: Tenant, since: float | None = None, until: float | None = None, by: str = "size",
              now: float | None = None, container: str | None = None) -> Usage:
        """What TENANT used in [SINCE, UNTIL) (default: this month so far), what is running counted to now;
        with CONTAINER (a name or id of one of TENANT's containers, else a 404), only that container's."""
        now = time.time() if now is None else now
        if by not in GROUPS:
            raise InvalidArgument(f"by must be one of {', '.join(GROUPS)}, not {by!r}", field="by")
        now_ms = round(now * 1000)
        year, month = month_of(now_ms)
        since_ms = month_start_ms(year, month) if since is None else round(since * 1000)
        until_ms = now_ms if until is None else round(until * 1000)
        if since is not None and since < EARLIEST:
            raise InvalidArgument("since must be a time from 2000-01-01 on", field="since")
        if until_ms <= since_ms:
            raise InvalidArgument(f"until ({_at(until_ms).isoformat()}) must be after since "
                                  f"({_at(since_ms).isoformat()})", field="until")
        if by == "day" and until_ms - since_ms > MAX_DAYS * DAY_MS:
            raise InvalidArgument(f"by day covers at most {MAX_DAYS} days: narrow --since/--until", field="since")
        only = self.store.find_container(tenant.id, container).id if container is not None else None
        lines = self._rate(tenant.id, since_ms, until_ms, now_ms, by, only)
        return Usage(since=_at(since_ms), until=_at(until_ms), by=by, lines=_lines(lines), total=str(total(lines)))

    def invoice(self, tenant: Tenant, month: str | None = None, now: float | None = None) -> Invoice:
        """TENANT's invoice for MONTH (default: this one, a draft so far); a month that has ended is issued once."""
        now = time.time() if now is None else now
        now_ms = round(now * 1000)
        year, mon = month_of(now_ms) if month is None else parse_month(month)
        start, end = month_start_ms(year, mon), month_start_ms(year, mon + 1)
        name = month_name(year, mon)
        if start > now_ms:
            raise InvalidArgument(f"month {name} has not begun: its invoice does not exist yet", field="month")
        if end > now_ms:
            lines = self._month_lines(tenant.id, start, end, now_ms)
            return Invoice(month=name, status="draft", issued_at=None, lines=_lines(lines), total=str(total(lines)))
        return self._issued(tenant.id, name, start, end, now_ms)

    def _month_lines(self, tenant_id: str, start: int, end: int, now_ms: int) -> list[Line]:
        return self._rate(tenant_id, start, end, now_ms, "size")

    def _rate(self, tenant_id: str, since_ms: int, until_ms: int, now_ms: int, by: str,
              only: str | None = None) -> list[Line]:
        """The lines of TENANT_ID's use in the window (with ONLY, that resource's alone: a container has no FIP meter)."""
        group = "size" if by == "day" else by
        return rate(lambda lo, hi: self.billing.sums(tenant_id, group, lo, hi, now_ms, only),
                    [] if only else self.billing.fips(tenant_id, since_ms, until_ms), self.billing.price_history(),
                    since_ms, until_ms, now_ms, by)

    def _issued(self, tenant_id: str, name: str, start: int, end: int, now_ms: int) -> Invoice:
        row = self.billing.invoice(tenant_id, name)
        if row is None:
            lines = self._month_lines(tenant_id, start, end, now_ms)
            row = self.billing.issue(tenant_id, name, [x.model_dump() for x in _lines(lines)], total(lines))
        return Invoice(month=name, status="issued", issued_at=datetime.fromtimestamp(row["issued_at"], UTC),
                       lines=[UsageLine.model_validate(x) for x in row["lines"]], total=row["total"])

    def issue_due(self, now: float | None = None) -> int:
        """Issue each tenant's invoice of every ended month from its first use on that is not issued yet; how many.

        A tenant that has used nothing has nothing due (`invoice --month` still issues its empty month).
        """
        now = time.time() if now is None else now
        now_ms = round(now * 1000)
        this_month = month_of(now_ms)
        issued = 0
        for tenant in self.store.list_tenants():
            first = self.billing.first_use_ms(tenant.id)
            if first is None:
                continue
            done = self.billing.issued_months(tenant.id)
            year, mon = max(month_of(first), month_of(round(tenant.created_at.timestamp() * 1000)))
            while (year, mon) < this_month:
                name = month_name(year, mon)
                if name not in done:
                    self._issued(tenant.id, name, month_start_ms(year, mon), month_start_ms(year, mon + 1), now_ms)
                    issued += 1
                year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
        return issued

    def spent(self, tenant_id: str, now: float) -> Decimal:
        """What TENANT_ID's use this month has cost so far."""
        now_ms = round(now * 1000)
        return total(self._month_lines(tenant_id, month_start_ms(*month_of(now_ms)), now_ms, now_ms))

    def check_spend(self, tenant: Tenant, now: float | None = None) -> None:
        """Refuse (402) a new create of TENANT once this month's spend has reached its limit."""
        limit = self.billing.spend_limit(tenant.id)
        if limit is None:
            return
        now = time.time() if now is None else now
        spent = self.spent(tenant.id, now)
        if spent >= limit[0]:
            raise PaymentRequired(f"monthly spend limit of ${limit[0]} reached: ${spent} spent this month; nothing new "
                                  "is created until next month or until the operator raises the limit",
                                  field="spend_limit")

    def over_limit(self, now: float | None = None) -> list[str]:
        """The tenants past their monthly spend limit whose running containers are to be stopped."""
        now = time.time() if now is None else now
        return [tid for tid, (monthly, stop) in self.billing.spend_limits().items()
                if stop and self.spent(tid, now) >= monthly]

    def set_spend_limit(self, tenant: Tenant, monthly: str | None, stop_running: bool = False) -> None:
        """TENANT's monthly spend limit in dollars (None: none); STOP_RUNNING stops what runs once it is reached."""
        if monthly is None:
            self.billing.set_spend_limit(tenant.id, None)
            return
        try:
            value = Decimal(monthly)
        except ArithmeticError:
            raise InvalidArgument(f"spend limit must be a number of dollars, not {monthly!r}", field="spend_limit") from None
        if not value.is_finite() or value < 0 or value > 10**12:
            raise InvalidArgument(f"spend limit must be from 0 to 1000000000000 dollars, not {monthly}",
                                  field="spend_limit")
        self.billing.set_spend_limit(tenant.id, value, stop_running)

    def export(self, since: float | None = None, until: float | None = None,
               now: float | None = None) -> list[tuple[Tenant, Usage]]:
        """Every tenant's usage of [SINCE, UNTIL) by resource (the operator's export), tenants by name."""
        tenants = sorted(self.store.list_tenants(), key=lambda x: x.name)
        return [(tenant, self.usage(tenant, since, until, "container", now)) for tenant in tenants]

    def prices(self, at: float | None = None) -> Prices:
        book = self.billing.price_history().at(time.time() if at is None else at)
        return Prices(effective_at=datetime.fromtimestamp(book.effective_at, UTC),
                      prices={k: price_text(v) for k, v in book.prices.items()}, units=UNITS)

    def set_prices(self, changes: dict[str, str], effective_at: float | None = None,
                   now: float | None = None) -> Prices:
        """A new version of the book: the book in force at EFFECTIVE_AT (default now) with CHANGES, from then on.

        The past is never rewritten: EFFECTIVE_AT may not be before now.
        """
        now = time.time() if now is None else now
        at = now if effective_at is None else effective_at
        if at < now - 1:
            raise InvalidArgument("a price change takes effect now or later, never in the past", field="effective_at")
        if not changes:
            raise InvalidArgument("name at least one price to change, e.g. container.s4=0.000003", field="prices")
        parsed: dict[str, Decimal] = {key: parse_price(key, value) for key, value in changes.items()}
        book: PriceBook = self.billing.price_history().at(at).with_changes(parsed, at)
        if not self.billing.add_price_book(book):
            raise Conflict("another price change takes effect at that very time", field="effective_at")
        return self.prices(at)

    def apply_price_file(self, path: Path) -> bool:
        """Set the prices PATH (DATA_DIR/prices.toml, `container.s4 = "0.000003"` lines) names that differ
        from those in force, from now on; False if it is absent or changes nothing."""
        if not path.exists():
            return False
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"{path.name}: {exc}", field="prices") from None
        wanted = {key: parse_price(key, value) for key, value in _flat(data).items()}
        current = self.billing.price_history().at(time.time()).prices
        changed = {key: price_text(value) for key, value in wanted.items() if current.get(key) != value}
        if changed:
            self.set_prices(changed)
        return bool(changed)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML's dotted keys (container.s4 = ...) back into the price book's flat ones."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat
