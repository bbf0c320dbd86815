"""Controller passes on several servers (two engines on one SQLite or PostgreSQL database): one at a time, fenced."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from seabox.controllers.leased import LeasedPass
from seabox.model.container import ContainerStatus
from seabox.store.db import open_engine
from seabox.store.leases import Lease, LeaseLost, Leases
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY, spec


async def test_one_server_at_a_time_runs_a_pass_and_another_takes_over_when_it_stops(db_url: str) -> None:
    ran: list[str] = []

    def counter(server: str) -> Any:
        async def once(lease: Lease) -> None:
            ran.append(server)
        return once

    passes = {s: LeasedPass(Leases(open_engine(db_url)), "health", s, every=0.05, ttl=3.0) for s in ("a", "b")}
    tasks = {s: asyncio.create_task(p.run(counter(s))) for s, p in passes.items()}
    await asyncio.sleep(0.8)
    assert len(ran) >= 5 and len(set(ran)) == 1, ran
    holder = ran[0]
    other = "b" if holder == "a" else "a"
    tasks[holder].cancel()  # a server stopping gives its lease up
    await asyncio.gather(tasks[holder], return_exceptions=True)
    stopped_at, count = time.monotonic(), len(ran)
    while other not in ran[count:] and time.monotonic() - stopped_at < 5:
        await asyncio.sleep(0.02)
    assert time.monotonic() - stopped_at < 1.5, "the other server takes over at its next tick, not when the lease expires"
    await asyncio.sleep(0.2)
    assert set(ran[count:]) == {other}
    tasks[other].cancel()
    await asyncio.gather(tasks[other], return_exceptions=True)


async def test_a_server_that_died_holding_a_lease_is_replaced_once_its_lease_expires(db_url: str) -> None:
    leases = Leases(open_engine(db_url))
    assert leases.acquire("health", "dead", ttl=0.5) is not None  # and never renewed or released
    ran: list[float] = []

    async def once(lease: Lease) -> None:
        ran.append(time.monotonic())

    started = time.monotonic()
    task = asyncio.create_task(LeasedPass(Leases(open_engine(db_url)), "health", "alive", 0.05, 0.5).run(once))
    while not ran and time.monotonic() - started < 3:
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert ran and 0.3 <= ran[0] - started < 1.5


def test_a_holder_that_stalled_past_its_lease_writes_nothing(db_url: str) -> None:
    store = Store(open_engine(db_url))
    tenant = store.create_tenant("a")
    c = store.insert_container(tenant.id, "c" * 64, "web", "n1", "10.208.1.2", spec(), quota=ROOMY["containers"])
    leases = Leases(store.engine)
    stalled = leases.acquire("health", "server-1", ttl=0.2)
    assert stalled is not None
    time.sleep(0.3)
    current = Leases(open_engine(db_url)).acquire("health", "server-2", ttl=30)
    assert current is not None and current.generation == stalled.generation + 1
    lost = ContainerStatus(node="n1", state="lost", error="node n1 is down")
    with pytest.raises(LeaseLost):
        store.save_status(c.id, lost, fence=stalled)
    with pytest.raises(LeaseLost):
        store.move_container(c.id, "n1", "n2", lost, fence=stalled)
    with pytest.raises(LeaseLost):
        store.request_container(c.id, "stopped", fence=stalled)
    after = store.get_container(c.id)
    assert (after.status.state, after.status.node, after.spec.generation) == ("created", "n1", 0)
    assert [e.action for e in store.list_events(tenant.id)] == []
    store.save_status(c.id, lost, fence=current)
    assert store.get_container(c.id).status.state == "lost"
