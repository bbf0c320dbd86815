"""Two servers on one database (two engines, SQLite or PostgreSQL): a change through one wakes the other's
waiters at once, and starts admitted by one count on the other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from seabox.config import ServerConfig
from seabox.errors import Conflict
from seabox.model.node import NodeCapacity
from seabox.services.events import EventBus
from seabox.services.nodes import NodeHub
from seabox.services.placement import Placer
from seabox.store.db import open_engine
from seabox.store.nodes import NodeStore
from seabox.store.notify import Notifier
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY, spec

MiB = 1 << 20


@pytest.fixture
async def buses(db_url: str) -> AsyncIterator[tuple[EventBus, EventBus]]:
    made = []
    for _ in range(2):
        store = Store(open_engine(db_url))
        made.append(EventBus(store, Notifier(store.engine)))
    relays = [asyncio.create_task(b.relay()) for b in made]
    await asyncio.sleep(0.3)  # listening
    yield made[0], made[1]
    for relay in relays:
        relay.cancel()
    await asyncio.gather(*relays, return_exceptions=True)
    for bus in made:
        assert bus.notifier is not None
        await bus.notifier.close()


async def _took(waiting: Any) -> float:
    started = time.monotonic()
    await waiting
    return time.monotonic() - started


async def test_a_change_on_one_server_wakes_a_wait_on_the_other_at_once(buses: tuple[EventBus, EventBus]) -> None:
    a, b = buses
    waiting = asyncio.create_task(b.wait(10.0))
    await asyncio.sleep(0.1)
    await a.notify()
    assert await asyncio.wait_for(_took(waiting), 5) < 1.0
    # and the other way round, for an event
    waiting = asyncio.create_task(a.wait(10.0))
    await asyncio.sleep(0.1)
    tenant = b.store.create_tenant("t")
    await b.emit(tenant.id, "container", "create", "x")
    assert await asyncio.wait_for(_took(waiting), 5) < 1.0


async def test_a_nodes_long_poll_on_one_server_returns_at_once_on_a_change_made_through_the_other(
    buses: tuple[EventBus, EventBus],
) -> None:
    a, b = buses
    tenant = a.store.create_tenant("t")
    NodeStore(a.store.engine).ensure_local("n1", "local", NodeCapacity("n1", 1024 * MiB, 2))
    c = a.store.insert_container(tenant.id, "c" * 64, "web", "n1", "10.208.1.2", spec(), quota=ROOMY["containers"])
    hub = NodeHub(b.store, NodeStore(b.store.engine), b, containers=None)  # type: ignore[arg-type]
    etag = hub.batch("n1").etag
    polling = asyncio.create_task(hub.assignments("n1", etag, 20.0))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    a.store.request_container(c.id, "running")
    await a.notify()
    batch = await asyncio.wait_for(polling, 5)
    assert time.monotonic() - started < 0.5  # not the 1 s poll
    assert batch.etag != etag and batch.containers[0].spec.desired == "running"


def test_a_start_admitted_by_one_server_counts_on_the_other_until_its_node_acts(db_url: str) -> None:
    servers = []
    for _ in range(2):
        store = Store(open_engine(db_url))
        servers.append((store, Placer(ServerConfig(), store, NodeStore(store.engine))))
    (store_a, placer_a), (store_b, placer_b) = servers
    NodeStore(store_a.engine).ensure_local("n1", "local", NodeCapacity("n1", 768 * MiB, 2))  # room for one s4
    tenant = store_a.create_tenant("t")
    one = store_a.insert_container(tenant.id, "a" * 64, "one", "n1", "10.208.1.2", spec(), quota=ROOMY["containers"])
    two = store_a.insert_container(tenant.id, "b" * 64, "two", "n1", "10.208.1.3", spec(), quota=ROOMY["containers"])

    def admit(store: Store, placer: Placer, cid: str) -> int:
        return store.request_start(cid, "n1", lambda placed: placer.admit_start("n1", cid, "s4", placed))

    assert admit(store_a, placer_a, one.id) == 1
    with pytest.raises(Conflict, match="free"):
        admit(store_b, placer_b, two.id)
    assert placer_b.views()[0].memory_allocated == 512 * MiB  # placement counts it too
    failed = store_b.get_container(one.id).status.model_copy(update={"generation": 1, "error": "no such file"})
    store_b.save_status(one.id, failed)  # its node reported the start failed: the memory is free again
    assert admit(store_b, placer_b, two.id) == 1
