"""A floating IP reaches the node's assignments: attach, move and detach change the batch and wake the node's
long-poll at once, also when the change is made through another server; the FIP follows its container's node."""

from __future__ import annotations

import asyncio
import time

from seabox.config import ServerConfig
from seabox.model.container import ContainerStatus
from seabox.model.node import NodeCapacity
from seabox.services.events import EventBus
from seabox.services.fips import FipService
from seabox.services.nodes import NodeHub
from seabox.store.fips import FipStore
from seabox.store.quotas import QuotaStore
from seabox.store.nodes import NodeStore
from tests.unit.test_cross_server import buses  # noqa: F401  (fixture: two servers' event buses on one database)
from tests.unit.test_store import ROOMY, spec

MiB = 1 << 20


def fips_of(hub: NodeHub, node: str) -> dict[str, str | None]:
    return {a.name: a.fip for a in hub.batch(node).containers}


async def test_attach_through_one_server_wakes_the_nodes_long_poll_on_the_other(
    buses: tuple[EventBus, EventBus],  # noqa: F811
) -> None:
    a, b = buses
    tenant = a.store.create_tenant("t")
    nodes = NodeStore(a.store.engine)
    for node in ("n1", "n2"):
        nodes.ensure_local(node, "local", NodeCapacity(node, 1024 * MiB, 2))
    web = a.store.insert_container(tenant.id, "c" * 64, "web", "n1", "10.208.1.2", spec(), quota=ROOMY["containers"])
    a.store.insert_container(tenant.id, "d" * 64, "db", "n1", "10.208.1.3", spec(), quota=ROOMY["containers"])
    service = FipService(ServerConfig(), a.store, FipStore(a.store.engine), QuotaStore(a.store.engine), a)
    hub = NodeHub(b.store, NodeStore(b.store.engine), b, containers=None)  # type: ignore[arg-type]
    [fip] = await service.allocate(tenant)

    async def change(action: object) -> dict[str, str | None]:
        """Run ACTION (a coroutine) while n1's long-poll on the other server waits; its new batch's FIPs."""
        etag = hub.batch("n1").etag
        polling = asyncio.create_task(hub.assignments("n1", etag, 20.0))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await action  # type: ignore[misc]
        batch = await asyncio.wait_for(polling, 5)
        assert batch.etag != etag and time.monotonic() - started < 0.5  # woken, not the 1 s poll
        return {x.name: x.fip for x in batch.containers}

    assert fips_of(hub, "n1") == {"web": None, "db": None}
    assert await change(service.attach(tenant, fip.address, "web")) == {"web": fip.address, "db": None}
    assert await change(service.attach(tenant, fip.address, "db", force=True)) == {"web": None, "db": fip.address}
    assert await change(service.detach(tenant, "db")) == {"web": None, "db": None}

    await service.attach(tenant, fip.address, "web")
    a.store.request_container(web.id, "running")
    a.store.move_container(web.id, "n1", "n2", ContainerStatus())  # drained: the FIP goes with it
    assert fips_of(hub, "n2") == {"web": fip.address} and fips_of(hub, "n1") == {"db": None}
