"""Function call admission in the store, on SQLite and PostgreSQL: per-tenant and per-function limits, one FIFO
line per tenant and its bound (429) across servers, expired leases holding nothing, and the cluster's idle clock."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from seabox.config import FunctionsConfig
from seabox.errors import TooManyRequests
from seabox.model.function import Function, FunctionSpec
from seabox.model.tenant import Tenant
from seabox.services.function_calls import CallGateway
from seabox.services.function_exec import Call, Reply
from seabox.services.function_http import FUNCTION_LABEL, GENERATION_LABEL, HttpExecutor
from seabox.store.db import open_engine
from seabox.store.functions import FunctionStore
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY

LEASE, TTL = 30.0, 600.0


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[FunctionStore, FunctionStore]]:
    """Two servers' function stores (an engine each) on one new database holding tenants t and u."""
    engines = [open_engine(db_url) for _ in range(2)]
    Store(engines[0]).create_tenant("t")
    Store(engines[0]).create_tenant("u")
    try:
        yield FunctionStore(engines[0]), FunctionStore(engines[1])
    finally:
        for engine in engines:
            engine.dispose()


def _tenant(store: FunctionStore, name: str = "t") -> Tenant:
    return Store(store.engine).tenant_by_name(name)


def _fn(store: FunctionStore, name: str, concurrency: int = 10, tenant: str = "t") -> Function:
    return store.create(_tenant(store, tenant).id, FunctionSpec(name=name, image="busybox", concurrency=concurrency),
                        ROOMY["functions"])


def _add(store: FunctionStore, fn: Function, server: str = "s1", *, limit: int = 2, queue: int = 10,
         lease: float = LEASE) -> tuple[str, bool]:
    return store.add_call(fn, True, 0, server, lease, TTL, tenant_limit=limit, queue_size=queue)


def _end(store: FunctionStore, call_id: str) -> None:
    store.call_ended(call_id, "done", result_status=200, body=None, headers={}, error=None, container=None,
                     log_tail=None, read=True)


def test_the_store_admits_up_to_the_tenant_limit_then_queues_then_refuses(
        stores: tuple[FunctionStore, FunctionStore]) -> None:
    one, two = stores
    f, g, h = _fn(one, "f"), _fn(one, "g"), _fn(one, "h")
    a, runs_a = _add(one, f, limit=2, queue=1)
    assert runs_a and _add(two, g, "s2", limit=2, queue=1)[1]
    c, runs = _add(two, f, "s2", limit=2, queue=1)
    assert not runs and one.active_counts(f.id) == {"queued": 1, "running": 1}
    with pytest.raises(TooManyRequests) as refused:
        _add(one, h, limit=2, queue=1)
    assert refused.value.message == (
        "too many calls: 2 running and 1 queued for this tenant (at most 2 at once, 1 waiting: [functions] "
        "tenant_concurrency and queue_size); call again later")
    assert refused.value.retry_after == 1 and one.active_counts(h.id) == {"queued": 0, "running": 0}
    assert _add(one, _fn(one, "x", tenant="u"), limit=2, queue=1)[1]  # another tenant has slots of its own
    assert two.start_queued("s2", f.tenant, 2) == []  # still full
    _end(one, a)
    assert two.start_queued("s2", f.tenant, 2) == [c]
    assert one.active_counts(f.id) == {"queued": 0, "running": 1}


def test_a_call_ending_on_one_server_lets_the_other_start_its_queued_call(
        stores: tuple[FunctionStore, FunctionStore]) -> None:
    one, two = stores
    f = _fn(one, "f")
    a, _ = _add(one, f, limit=1)
    b, runs = _add(two, f, "s2", limit=1)
    assert not runs
    assert one.start_queued("s1", f.tenant, 1) == [] and two.start_queued("s2", f.tenant, 1) == []
    _end(one, a)
    assert one.start_queued("s1", f.tenant, 1) == []  # not s1's call
    assert two.start_queued("s2", f.tenant, 1) == [b]
    assert two.active_counts(f.id) == {"queued": 0, "running": 1}


def test_a_function_at_its_concurrency_holds_its_calls_in_order_but_not_other_functions(
        stores: tuple[FunctionStore, FunctionStore]) -> None:
    one, two = stores
    f, g = _fn(one, "f", concurrency=1), _fn(one, "g", concurrency=1)
    first, _ = _add(one, f, limit=10)
    second, runs2 = _add(two, f, "s2", limit=10)
    third, runs3 = _add(one, f, limit=10)
    assert not runs2 and not runs3
    assert _add(two, g, "s2", limit=10)[1]  # another function's call passes the waiting ones
    _end(one, first)
    assert one.start_queued("s1", f.tenant, 10) == []  # the third waits behind the second, on another server
    assert two.start_queued("s2", f.tenant, 10) == [second]
    _end(two, second)
    assert one.start_queued("s1", f.tenant, 10) == [third]


def test_an_earlier_call_waiting_for_a_tenant_slot_goes_before_a_later_one_of_another_function(
        stores: tuple[FunctionStore, FunctionStore]) -> None:
    one, two = stores
    f, g = _fn(one, "f"), _fn(one, "g")
    running, _ = _add(one, f, limit=1)
    waiting, _ = _add(two, g, "s2", limit=1)
    _end(one, running)
    assert not _add(one, f, limit=1)[1]  # the slot that freed is the earlier call's, on the other server
    assert two.start_queued("s2", f.tenant, 1) == [waiting]


def test_calls_of_a_server_whose_lease_ran_out_hold_no_slot_and_no_place(
        stores: tuple[FunctionStore, FunctionStore]) -> None:
    one, two = stores
    f = _fn(one, "f")
    _add(one, f, "dead", limit=1, queue=1, lease=0.2)  # running on a server that then stopped renewing
    _add(one, f, "dead", limit=1, queue=1, lease=0.2)  # and queued there
    with pytest.raises(TooManyRequests):
        _add(two, f, "s2", limit=1, queue=1)
    time.sleep(0.3)
    assert _add(two, f, "s2", limit=1, queue=1)[1]  # before any prune pass
    assert not _add(two, f, "s2", limit=1, queue=1)[1]


def test_admission_holds_with_many_calls_arriving_at_once(stores: tuple[FunctionStore, FunctionStore]) -> None:
    """Threads on both servers' engines add calls together: the tenant's row lock admits exactly the limit."""
    f = _fn(stores[0], "f")
    results: list[bool] = []
    go = threading.Barrier(16)

    def arrive(store: FunctionStore) -> None:
        go.wait()
        results.append(_add(store, f, limit=3, queue=100)[1])

    threads = [threading.Thread(target=arrive, args=(stores[i % 2],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 13 + [True] * 3
    assert stores[1].active_counts(f.id) == {"queued": 13, "running": 3}


def test_the_idle_clock_is_the_last_call_on_any_server(stores: tuple[FunctionStore, FunctionStore]) -> None:
    one, two = stores
    f, never = _fn(one, "f"), _fn(one, "g")
    before = time.time()
    a, _ = _add(two, f, "s2")
    assert one.last_calls([f.id, never.id]) == {f.id: pytest.approx(time.time(), abs=1)}  # running: busy now
    _end(two, a)
    ended = one.last_calls([f.id, never.id])
    assert list(ended) == [f.id] and before <= ended[f.id] <= time.time()
    time.sleep(0.05)
    assert one.last_calls([f.id]) == ended  # no call since: the clock stands


# two gateways ------------------------------------------------------------------------------------


@dataclass
class Gauge:
    """An executor shared by both gateways: counts the calls running at once and the order they started in."""

    delay: float = 0.1
    running: int = 0
    most: int = 0
    started: list[bytes] = field(default_factory=list)

    async def run(self, call: Call) -> Reply:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.append(call.body)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        return Reply(200, call.body)


@pytest.fixture
async def gateways(stores: tuple[FunctionStore, FunctionStore]) -> AsyncIterator[tuple[CallGateway, CallGateway, Gauge]]:
    gauge = Gauge()
    cfg = FunctionsConfig(tenant_concurrency=3, queue_size=100)
    made = [CallGateway(cfg, store, {"stdio": gauge}, f"s{i}") for i, store in enumerate(stores)]  # type: ignore[dict-item]
    try:
        yield made[0], made[1], gauge
    finally:
        for gateway in made:
            await gateway.close()


async def test_two_servers_never_run_more_than_the_tenant_limit_together(
        gateways: tuple[CallGateway, CallGateway, Gauge]) -> None:
    one, two, gauge = gateways
    fn = _fn(one.store, "f")
    tenant = _tenant(one.store)
    replies = await asyncio.gather(*(gw.call(tenant, fn, str(i).encode(), {}, sync=True)
                                     for i, gw in enumerate([one, two] * 6)))
    assert [r.body for r in replies if not isinstance(r, str)] == [str(i).encode() for i in range(12)]
    assert gauge.most == 3 and sorted(gauge.started) == sorted(str(i).encode() for i in range(12))
    assert one.store.active_counts(fn.id) == {"queued": 0, "running": 0}


async def test_a_functions_calls_start_in_arrival_order_across_servers(
        gateways: tuple[CallGateway, CallGateway, Gauge]) -> None:
    one, two, gauge = gateways
    fn = _fn(one.store, "f", concurrency=1)
    tenant = _tenant(one.store)
    calls = []
    for i, gw in enumerate([one, two, two, one, two, one]):
        calls.append(asyncio.create_task(gw.call(tenant, fn, str(i).encode(), {}, sync=True)))
        await asyncio.sleep(0.01)  # arrived in this order
    await asyncio.gather(*calls)
    assert gauge.started == [str(i).encode() for i in range(6)] and gauge.most == 1


async def test_429_counts_the_queues_of_both_servers(gateways: tuple[CallGateway, CallGateway, Gauge]) -> None:
    one, two, gauge = gateways
    one.cfg = two.cfg = FunctionsConfig(tenant_concurrency=1, queue_size=2)
    gauge.delay = 1.0
    fn = _fn(one.store, "f")
    tenant = _tenant(one.store)
    ids = [await one.call(tenant, fn, b"", {}, sync=False), await one.call(tenant, fn, b"", {}, sync=False),
           await two.call(tenant, fn, b"", {}, sync=False)]
    with pytest.raises(TooManyRequests, match="1 running and 2 queued"):
        await two.call(tenant, fn, b"", {}, sync=True)
    assert all(isinstance(i, str) for i in ids)


async def test_a_dead_servers_expired_call_frees_its_slot(gateways: tuple[CallGateway, CallGateway, Gauge]) -> None:
    one, _, gauge = gateways
    one.cfg = FunctionsConfig(tenant_concurrency=1, queue_size=10)
    fn = _fn(one.store, "f")
    tenant = _tenant(one.store)
    _add(one.store, fn, "dead", limit=1, lease=0.5)  # running on a server that stopped renewing its lease
    t0 = time.monotonic()
    reply = await one.call(tenant, fn, b"after", {}, sync=True)
    assert isinstance(reply, Reply) and reply.body == b"after"
    assert 0.3 < time.monotonic() - t0 < 2 and gauge.started == [b"after"]


# the idle clock of the pool pass -------------------------------------------------------------------


class Replicas:
    """The little of ContainerService that the pool pass uses: one running replica of function f1, and removals."""

    def __init__(self) -> None:
        self.replica = SimpleNamespace(id="r1", tenant="t1", spec=SimpleNamespace(labels={
            FUNCTION_LABEL: "f1", GENERATION_LABEL: "1"}), status=SimpleNamespace(state="running", node="n1"))
        self.removed: list[str] = []
        self.store = SimpleNamespace(tenant_by_id=lambda _tid: None, get_container=lambda _cid: self.replica,
                                     list_containers=lambda _tenant=None: [self.replica])

    async def remove(self, _tenant: object, cid: str, force: bool) -> None:
        self.removed.append(cid)


async def test_the_pool_pass_keeps_a_replica_while_its_function_is_called_on_another_server() -> None:
    containers = Replicas()
    executor = HttpExecutor(FunctionsConfig(idle_seconds=10), containers)  # type: ignore[arg-type]
    fn = Function(id="f1", tenant="t1", spec=FunctionSpec(name="f", image="busybox", mode="http"), secret="s",
                  created_at=time.time())
    executor.pool(fn).replicas["r1"].idle_since -= 60  # this server has not used it for a minute
    await executor.converge([fn], [containers.replica], {"f1": time.time() - 1})  # another server's call
    assert containers.removed == [] and executor.warm_replicas(fn) == 1
    await executor.converge([fn], [containers.replica], {"f1": time.time() - 11})
    assert containers.removed == ["r1"] and executor.warm_replicas(fn) == 0
    await executor.close()
