"""The services controller: makes every service's replica containers follow its spec (see service_plan).

It runs as a LeasedPass (one server at a time); each pass reconciles every service, then again at
every change anywhere (EventBus) or every TICK seconds, for WINDOW seconds, so that it reacts to an
exited replica or a new spec within a fraction of a second. A pass stops as soon as its server no
longer holds the lease. Replicas that keep failing are replaced with a growing back-off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from seabox.config import ServerConfig
from seabox.controllers.service_plan import Plan, ReplicaView, plan
from seabox.errors import NotFound, SeaboxError
from seabox.model import ipam
from seabox.model.container import Container
from seabox.model.service import Service, ServiceStatus
from seabox.model.tenant import Tenant
from seabox.services.events import EventBus
from seabox.services.services import ServiceService
from seabox.store.leases import Lease, Leases
from seabox.store.services import ReplicaLink

log = logging.getLogger(__name__)

LEASE = "services"
WINDOW = 10.0  # seconds one pass keeps reconciling before it hands back to LeasedPass
TICK = 0.25  # seconds between reconciliations when nothing changes (drain deadlines, back-offs)
BACKOFF_MAX = 30.0


def replica_view(c: Container, link: ReplicaLink) -> ReplicaView:
    st = c.status
    return ReplicaView(id=c.id, name=c.name, node=st.node, generation=link.generation, state=st.state,
                       desired=c.spec.desired, pending=st.generation < c.spec.generation, healthy=st.healthy,
                       draining_since=link.draining_since, error=st.error, created_at=c.created_at.timestamp())


class ServiceController:
    """Reconciles services; CLOCK gives epoch seconds (drain deadlines are stored)."""

    def __init__(self, cfg: ServerConfig, ops: ServiceService, bus: EventBus, leases: Leases | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.ops = ops
        self.bus = bus
        self.leases = leases
        self.clock = clock
        self._failures: dict[str, int] = {}  # service id -> replicas failed in a row
        self._not_before: dict[str, float] = {}  # service id -> no new replica before (back-off)

    async def run(self, lease: Lease) -> None:
        """One LeasedPass pass: reconcile at every change for WINDOW seconds, while LEASE is held."""
        deadline = time.monotonic() + WINDOW
        while self._held(lease):
            await self.reconcile_all()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await self.bus.wait(min(remaining, TICK))

    def _held(self, lease: Lease) -> bool:
        if self.leases is None:
            return True
        holder = self.leases.holder(lease.name)
        return holder is not None and holder.owner == lease.owner and holder.generation == lease.generation

    async def reconcile_all(self) -> None:
        services = self.ops.services.list()
        if not services:
            return
        links: dict[str, list[ReplicaLink]] = {}
        for link in self.ops.services.links(s.id for s in services):
            links.setdefault(link.service_id, []).append(link)
        store = self.ops.containers.store
        tenants: dict[str, Tenant] = {}
        containers: dict[str, dict[str, Container]] = {}
        for svc in services:
            if svc.tenant not in tenants:
                tenants[svc.tenant] = store.tenant_by_id(svc.tenant)
                containers[svc.tenant] = {c.id: c for c in store.list_containers(svc.tenant)}
            mine = containers[svc.tenant]
            views = [replica_view(mine[link.container_id], link) for link in links.get(svc.id, [])
                     if link.container_id in mine]
            try:
                if svc.snat_ip is None:  # made before services had one
                    self.ops.services.assign_snat(svc, ipam.tenant_subnet(self.cfg.network, tenants[svc.tenant].index))
                    await self.bus.notify()
                await self.reconcile(tenants[svc.tenant], svc, views, mine)
            except SeaboxError as exc:
                log.info("service %s: %s", svc.name, exc.message)
                self._record(svc, ServiceStatus(state=svc.status.state, ready=svc.status.ready,
                                                desired=svc.spec.replicas, message=exc.message))

    async def reconcile(self, tenant: Tenant, svc: Service, views: list[ReplicaView],
                        containers: dict[str, Container]) -> Plan:
        """One step for SVC: remove, drain and create what plan() says; record its status."""
        now = self.clock()
        step = plan(views, svc.spec.replicas, svc.spec.generation, now, self.cfg.services.drain_seconds)
        self._back_off(svc, step, now)
        for cid in step.drain:
            self.ops.services.drain(cid, now)
        if step.drain:
            await self.bus.notify()  # the nodes take them out of the backends now
        for cid in step.remove:
            try:
                await self.ops.containers.ask_remove(containers[cid])
            except NotFound:
                continue
        message = ""
        if step.create and now >= self._not_before.get(svc.id, 0.0):
            spread: dict[str, int] = {}
            for v in views:
                if not v.leaving and not v.failed and v.node:
                    spread[v.node] = spread.get(v.node, 0) + 1
            for _ in range(step.create):
                try:
                    c = await self.ops.add_replica(tenant, svc, spread)
                except SeaboxError as exc:
                    message = f"cannot make a replica: {exc.message}"
                    self._not_before[svc.id] = now + BACKOFF_MAX / 10
                    break
                node = c.status.node or ""
                spread[node] = spread.get(node, 0) + 1
        status = step.status
        if message:
            status = status.model_copy(update={"message": f"{status.message}; {message}"})
        self._record(svc, status)
        return step

    def _back_off(self, svc: Service, step: Plan, now: float) -> None:
        """Replicas failing in a row delay the next new one: 0 s after the first, then 1, 2, 4 ... 30 s."""
        if step.failed:
            n = self._failures.get(svc.id, 0) + len(step.failed)
            self._failures[svc.id] = n
            if n > 1:
                self._not_before[svc.id] = now + min(BACKOFF_MAX, 2.0 ** (n - 2))
        elif step.status.ready >= step.status.desired:
            self._failures.pop(svc.id, None)
            self._not_before.pop(svc.id, None)

    def _record(self, svc: Service, status: ServiceStatus) -> None:
        if status != svc.status:
            self.ops.services.set_status(svc.id, status)
