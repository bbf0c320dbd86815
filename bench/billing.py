"""`python -m bench billing`: a usage query over a tenant's 100,000 lifecycle events, and invoices for 1,000 tenants."""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, insert, select, text

from bench.results import report
from seabox.billing import meter
from seabox.billing.accounts import Accounts
from seabox.billing.tally import INTERVAL_COLUMNS, tally
from seabox.billing.rating import month_of, month_start_ms
from seabox.store import tables as t
from seabox.store.billing import BillingStore
from seabox.store.db import open_engine
from seabox.model.container import ContainerSpec, ContainerStatus, RestartPolicy
from seabox.model.event import ContainerEvent
from seabox.model.quota import Quota
from seabox.store import repo
from seabox.store.repo import Store

EVENTS = int(os.environ.get("BENCH_BILLING_EVENTS", "100000"))  # lifecycle events: a start and a die per run
TENANTS = int(os.environ.get("BENCH_BILLING_TENANTS", "1000"))
RUNS_PER_TENANT = 20  # runs in the month each invoice covers
QUERIES = 21
METER_STARTS = int(os.environ.get("BENCH_METER_STARTS", "200"))


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


class _NoMeter:
    """The meter's calls as the store makes them, doing nothing: the store's writes without metering."""

    def __getattr__(self, name: str) -> object:
        return getattr(meter, name) if name in ("gigabytes", "CONTAINER_MINIMUM_S") else (lambda *a, **k: None)


def _create_start(store: Store, tenant_id: str, spec: ContainerSpec, quota: Quota) -> float:
    """Seconds of the store's writes for one create+start: the record, then the node's report that it runs."""
    cid = secrets.token_hex(32)
    t0 = time.perf_counter()
    store.insert_container(tenant_id, cid, cid[:12], "n1", None, spec, quota=quota)
    store.save_status(cid, ContainerStatus(state="running"),
                      [ContainerEvent(action="start", attributes={"size": spec.size}, at=time.time())])
    elapsed = time.perf_counter() - t0
    store.delete_container(cid)
    return elapsed


def _metering_cost(store: Store, tenant_id: str) -> tuple[float, float]:
    """Median ms of a create+start's store writes with the meter and without it, interleaved."""
    spec = ContainerSpec(image="busybox", image_id="sha256:" + "a" * 64, args=["true"], cmd=["true"],
                         entrypoint=None, env=[], labels={}, size="s4", volumes=[], workdir="/", user="",
                         hostname="h", restart=RestartPolicy(), tty=False, stdin_open=False, stop_signal="SIGTERM",
                         stop_timeout=10, runtime_class="runc")
    quota = Quota("containers", 10**6)
    metered, bare = [], []
    for _ in range(METER_STARTS):
        metered.append(_create_start(store, tenant_id, spec, quota))
        repo.meter = _NoMeter()  # type: ignore[assignment]
        try:
            bare.append(_create_start(store, tenant_id, spec, quota))
        finally:
            repo.meter = meter
    return statistics.median(metered) * 1000, statistics.median(bare) * 1000


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
        with_meter, without_meter = _metering_cost(store, store.create_tenant("starts").id)
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
        (f"store writes of one create+start, with the meter, p50 (peer: the same writes without it; {METER_STARTS} "
         "each, interleaved)", f"{with_meter:.2f} ms", f"{without_meter:.2f} ms",
         f"+{with_meter - without_meter:.2f} ms"),
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
        "tenant. Metering: the meter's work is SQL in the transactions a create and the node's start report "
        "already make, so the figure times those two store calls with the meter and with its calls made to do "
        "nothing; what it adds is to be read against a create+start's p50 through the server (the `runtime` "
        "figure, 100-200 ms): the 5% budget is 5-10 ms.\n"
    ))


if __name__ == "__main__":
    main()
