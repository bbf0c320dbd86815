"""`python -m bench billing`: a usage query over a tenant's 100,000 lifecycle events, and invoices for 1,000 tenants."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, insert, select, text

from bench.results import report
from seabox.billing.accounts import Accounts
from seabox.billing.tally import INTERVAL_COLUMNS, tally
from seabox.billing.rating import month_of, month_start_ms
from seabox.store import tables as t
from seabox.store.billing import BillingStore
from seabox.store.db import open_engine
from seabox.store.repo import Store

EVENTS = int(os.environ.get("BENCH_BILLING_EVENTS", "100000"))  # lifecycle events: a start and a die per run
TENANTS = int(os.environ.get("BENCH_BILLING_TENANTS", "1000"))
RUNS_PER_TENANT = 20  # runs in the month each invoice covers
QUERIES = 21


def _runs(tenant_id: str, count: int, first_ms: int, every_ms: int) -> list[dict[str, object]]:
    """COUNT container runs of 20 s, EVERY_MS apart from FIRST_MS, over 500 containers, as the meter writes them."""
    return [{"tenant_id": tenant_id, "kind": "container", "resource_id": f"c{i % 500}", "resource_name": f"web-{i % 500}",
             "meter": "container.s4", "quantity": "1", "start_ms": first_ms + i * every_ms,
             "end_ms": first_ms + i * every_ms + 20_000, "minimum_ms": 10_000, "lost": False} for i in range(count)]


def _tally(conn: Connection, tenant_id: str) -> None:
    """Roll up the closed runs written in bulk, as the meter does when it closes each one."""
    tally(conn, conn.execute(select(*INTERVAL_COLUMNS).where(t.usage_intervals.c.tenant_id == tenant_id)).all())


def _median_ms(action, count: int = QUERIES) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="seabox-bench-billing-") as workdir:
        store = Store(open_engine(f"sqlite:///{Path(workdir) / 'seabox.db'}"))
        accounts = Accounts(store, BillingStore(store.engine))
        now = time.time()
        now_ms = round(now * 1000)
        year, month = month_of(now_ms)
        since_ms = month_start_ms(year, month)
        big = store.create_tenant("big")
        runs = EVENTS // 2
        with store.engine.begin() as conn:  # spread over this month so far: every run bills in the query
            conn.execute(insert(t.usage_intervals), _runs(big.id, runs, since_ms, max(1, (now_ms - since_ms) // runs)))
            _tally(conn, big.id)
        ours = _median_ms(lambda: accounts.usage(big))
        by_container = _median_ms(lambda: accounts.usage(big, by="container"))

        def floor() -> None:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT meter, sum(end_ms - start_ms) FROM usage_intervals WHERE tenant_id = :t "
                                  "GROUP BY meter"), {"t": big.id}).all()
        peer = _median_ms(floor)

        last_start = month_start_ms(year, month - 1)
        tenants = [store.create_tenant(f"t{i}") for i in range(TENANTS)]
        with store.engine.begin() as conn:
            conn.execute(t.tenants.update().values(created_at=last_start / 1000))
            for tenant in tenants:
                conn.execute(insert(t.usage_intervals), _runs(tenant.id, RUNS_PER_TENANT, last_start, 3_600_000))
                _tally(conn, tenant.id)
        t0 = time.perf_counter()
        issued = accounts.issue_due(now)
        per_tenant = (time.perf_counter() - t0) * 1000 / max(1, issued)
        draft = _median_ms(lambda: accounts.usage(tenants[0], since=last_start / 1000, until=since_ms / 1000))

    rows = [
        (f"usage query, {EVENTS:,} lifecycle events of one tenant, p50 (target <= 50 ms; peer: the bare SQL sum)",
         f"{ours:.1f} ms", f"{peer:.1f} ms", f"{ours / peer:.2f}x"),
        ("usage query --by container, same tenant, p50", f"{by_container:.1f} ms", f"{peer:.1f} ms",
         f"{by_container / peer:.2f}x"),
        (f"invoice issue, {issued:,} tenants x {RUNS_PER_TENANT} runs, per tenant (peer: that month's usage query)",
         f"{per_tenant:.2f} ms", f"{draft:.2f} ms", f"{per_tenant / draft:.2f}x"),
    ]
    report("billing", rows, (
        f"## Billing\n\nLatest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench billing` (SQLite, one "
        "process, no root) on a 2-core machine shared with other work."), (
        f"The ledger holds {runs:,} container runs (a start and a die each: {EVENTS:,} lifecycle events) of "
        "one tenant over 500 containers, all in this month, written in bulk as the meter writes them; the "
        f"query is `Accounts.usage` (this month so far, the median of {QUERIES}). The peer is one bare SQL "
        "sum over the same rows (no minimum, no clipping, no pricing): the floor any query over them pays. "
        f"Invoices: the invoice pass issues last month's invoice for {TENANTS:,} tenants with "
        f"{RUNS_PER_TENANT} runs each (rating plus the insert), against the same month's usage query of one "
        "tenant.\n"
    ))


if __name__ == "__main__":
    main()
