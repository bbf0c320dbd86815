"""`seabox admin prices` and `seabox admin invoices`: the operator's price book and the invoices issued."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from seabox.cli.admin import DATA_DIR_OPT, TENANT, _fail, _store, console
from seabox.cli.client import parse_time
from seabox.cli.command import Group, UsageError, argument, flag, option
from seabox.errors import SeaboxError

prices_app = Group("prices", "The price book: show it, or set prices from now (or a later time) on; the past keeps "
                   "its prices. DATA_DIR/prices.toml (meter = \"dollars\" lines) is applied at server start.")
spend_app = Group("spend-limit", "Monthly spend limits: past one, a tenant creates nothing new (402) until next month; "
                  "with --stop-running its running containers are stopped too.")
usage_app = Group("usage", "Usage for operators who bill elsewhere.")
invoices_app = Group("invoices", "Invoices: issued on the first pass after their month ends, never changed afterwards.")


def _accounts(data_dir: Path):  # type: ignore[no-untyped-def]
    # imported here: SQLAlchemy and Alembic would slow every tenant command's start
    from seabox.billing.accounts import Accounts
    from seabox.store.billing import BillingStore

    store = _store(data_dir)
    return Accounts(store, BillingStore(store.engine))


def _show(book) -> None:  # type: ignore[no-untyped-def]
    console.print(f"in force since {book.effective_at.isoformat()}", highlight=False)
    table = Table("METER", "PRICE", "PER", box=None)
    for meter, price in book.prices.items():
        table.add_row(meter, "$" + price, book.units[meter])
    console.print(table)


@prices_app.command("show")
def prices_show(data_dir: Path = DATA_DIR_OPT) -> None:
    """The prices in force now."""
    _show(_accounts(data_dir).prices())


@prices_app.command("set")
def prices_set(
    changes: list[str] = argument("METER=DOLLARS", "e.g. container.s4=0.000003 fip=1", many=True),
    effective: float | None = option("--effective", type=parse_time, help="When the prices take effect: unix seconds "
                                     "or an ISO time, now or later (default: now)."),
    data_dir: Path = DATA_DIR_OPT,
) -> None:
    """A new version of the price book, from --effective on (what was used before keeps its old prices)."""
    pairs: dict[str, str] = {}
    for item in changes:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected METER=DOLLARS, got {item!r}", "METER=DOLLARS")
        pairs[key] = value
    try:
        _show(_accounts(data_dir).set_prices(pairs, effective))
    except SeaboxError as exc:
        raise _fail(exc) from None


@invoices_app.command("ls")
def invoices_ls(
    month: str | None = option("--month", help="Only this month (YYYY-MM)."),
    data_dir: Path = DATA_DIR_OPT,
) -> None:
    """Every invoice issued: tenant, month, total, when issued."""
    from datetime import UTC, datetime

    from seabox.billing.accounts import parse_month

    try:
        if month is not None:
            parse_month(month)
        accounts = _accounts(data_dir)
        names = {t.id: t.name for t in accounts.store.list_tenants()}
        table = Table("TENANT", "MONTH", "TOTAL", "ISSUED", box=None)
        for row in accounts.billing.invoices(month):
            table.add_row(escape(names.get(row["tenant_id"], row["tenant_id"])), row["month"], "$" + row["total"],
                          datetime.fromtimestamp(row["issued_at"], UTC).strftime("%Y-%m-%d %H:%M:%S"))
    except SeaboxError as exc:
        raise _fail(exc) from None
    console.print(table)


@spend_app.command("set")
def spend_set(
    tenant: str = TENANT,
    dollars: str = argument("DOLLARS", "The monthly limit, e.g. 50 or 12.5."),
    stop_running: bool = flag("--stop-running", help="At the limit, also stop what runs."),
    data_dir: Path = DATA_DIR_OPT,
) -> None:
    """Set TENANT's monthly spend limit (this month's use counts towards it at once)."""
    try:
        accounts = _accounts(data_dir)
        accounts.set_spend_limit(accounts.store.tenant_by_name(tenant), dollars, stop_running)
    except SeaboxError as exc:
        raise _fail(exc) from None
    console.print(f"{escape(tenant)}: ${escape(dollars)} a month" + (", running containers stop at it" if stop_running
                                                                     else ""), highlight=False)


@spend_app.command("rm")
def spend_rm(tenant: str = TENANT, data_dir: Path = DATA_DIR_OPT) -> None:
    """Remove TENANT's monthly spend limit."""
    try:
        accounts = _accounts(data_dir)
        accounts.set_spend_limit(accounts.store.tenant_by_name(tenant), None)
    except SeaboxError as exc:
        raise _fail(exc) from None


@usage_app.command("export")
def usage_export(
    fmt: str = option("--format", default="csv", help="csv (a header row, one row per tenant, resource and meter) or "
                      "cloudevents (a JSON array of CloudEvents 1.0, as OpenMeter's batch ingest takes them)."),
    since: float | None = option("--since", type=parse_time, help="From: 10m, 1h, unix seconds or an ISO time "
                                 "(default: the start of this month, UTC)."),
    until: float | None = option("--until", type=parse_time, help="Until (default: now)."),
    data_dir: Path = DATA_DIR_OPT,
) -> None:
    """Every tenant's usage and cost of the window, by resource and meter, on stdout."""
    import csv
    import hashlib
    import json
    import sys

    if fmt not in ("csv", "cloudevents"):
        raise UsageError("use csv or cloudevents", "--format")
    try:
        report = _accounts(data_dir).export(since, until)
    except SeaboxError as exc:
        raise _fail(exc) from None
    rows = [{"tenant": tenant.name, "resource_id": line.resource_id, "resource": line.key, "meter": line.meter,
             "unit": line.unit, "quantity": line.quantity, "cost": line.cost, "since": usage.since.isoformat(),
             "until": usage.until.isoformat()} for tenant, usage in report for line in usage.lines]
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=["tenant", "resource_id", "resource", "meter", "unit",
                                                        "quantity", "cost", "since", "until"])
        writer.writeheader()
        writer.writerows(rows)
        return
    events = [{
        "specversion": "1.0",
        "type": "seabox.usage",
        "source": "seabox",
        # the same window and resource give the same id: ingesting an export twice counts it once
        "id": hashlib.sha256("|".join((r["tenant"], r["resource_id"], r["meter"], r["since"], r["until"]))
                             .encode()).hexdigest()[:32],
        "subject": r["tenant"],
        "time": r["until"],
        "datacontenttype": "application/json",
        "data": {k: r[k] for k in ("resource_id", "resource", "meter", "unit", "quantity", "cost", "since")},
    } for r in rows]
    print(json.dumps(events, indent=2))
