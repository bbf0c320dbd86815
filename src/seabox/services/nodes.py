"""The control plane's side of the node protocol: each node's assignments, and the reports it sends back."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address
import time

from seabox.model.container import Container
from seabox.model.firewall import Firewall
from seabox.model.dns import container_names
from seabox.model.node import NodeCapacity
from seabox.protocol.assignments import Assignment, AssignmentBatch, ContainerReport, HostsEntry
from seabox.protocol.balancing import BalancedService
from seabox.protocol.link import ControlPlane
from seabox.services.containers import ContainerService
from seabox.services.balancing import balanced, health_checks, service_hosts
from seabox.services.events import EventBus
from seabox.services.firewalls import TenantFirewalls
from seabox.store.nodes import NodeStore
from seabox.store.repo import Store
from seabox.store.security_groups import SecurityGroupStore
from seabox.store.services import ServiceStore


def hosts_entries(containers: list[Container], tenant_name: str) -> list[HostsEntry]:
    """A tenant's /etc/hosts lines and DNS records from its containers (newest first): each with an
    address, oldest first."""
    return [(c.status.ip, container_names(c.name, c.id, tenant_name)) for c in reversed(containers) if c.status.ip]


POLL_INTERVAL = 1.0


def underlay_of(address: str) -> str | None:
    """The IPv4 address of a node's advertised IPV4:PORT (None for the embedded node's "local")."""
    host, _, _ = address.rpartition(":")
    try:
        return str(IPv4Address(host))
    except ValueError:
        return None


class NodeHub(ControlPlane):
    """Builds assignments from the store and hands reports to the container service."""

    def __init__(self, store: Store, nodes: NodeStore, bus: EventBus, containers: ContainerService) -> None:
        self.store = store
        self.nodes = nodes
        self.bus = bus
        self.containers = containers
        self.security_groups = SecurityGroupStore(store.engine)
        self.services = ServiceStore(store.engine)

    def batch(self, node: str) -> AssignmentBatch:
        """Everything NODE is to hold now."""
        tenants = {t.id: t for t in self.store.list_tenants()}
        mine = [c for c in self.store.list_containers(node=node) if c.tenant in tenants]
        underlays = {n.name: underlay_of(n.address) for n in self.nodes.list()}
        peers: dict[int, list[str]] = {}
        hosts: dict[int, list[HostsEntry]] = {}
        firewalls: dict[str, Firewall | None] = {}
        services = self.services.of_tenants({c.tenant for c in mine})
        grouped = {c.tenant for c in mine if c.spec.security_groups}
        grouped |= {s.tenant for s in services if s.fip is not None and s.spec.security_groups}
        group_rules = self.security_groups.rules_of(grouped)  # one query for every tenant here
        balancing: list[BalancedService] = []
        for tid in sorted({c.tenant for c in mine}):
            everywhere = self.store.list_containers(tid)
            theirs = [s for s in services if s.tenant == tid]
            hosts[tenants[tid].index] = hosts_entries(everywhere, tenants[tid].name) + service_hosts(theirs, tenants[tid].name)
            by_id = {c.id: c for c in everywhere}
            tenant_firewalls = TenantFirewalls(everywhere, group_rules.get(tid, {})) if tid in grouped else None
            balancing += [balanced(s, tenants[tid].index, by_id, node, tenant_firewalls) for s in theirs]
            if tenant_firewalls is not None:
                firewalls.update((c.id, tenant_firewalls.of(c.spec.security_groups)) for c in mine if c.tenant == tid)
            others = {c.status.node for c in everywhere} - {node}
            found = sorted({ip for n in others if (ip := underlays.get(n or "")) is not None})
            if found and underlays.get(node):
                peers[tenants[tid].index] = found
        checks = health_checks(services)
        batch = AssignmentBatch(
            underlay=underlays.get(node),
            peers=peers,
            containers=[
                Assignment(
                    id=c.id,
                    name=c.name,
                    tenant_id=c.tenant,
                    tenant_index=tenants[c.tenant].index,
                    ip=c.status.ip,
                    spec=c.spec,
                    lost=c.status.state == "lost",
                    fip=c.fip,
                    firewall=firewalls.get(c.id),
                    health=checks.get(c.id),
                )
                for c in reversed(mine)
            ],
            hosts=hosts,
            services=balancing,
        )
        batch.etag = hashlib.sha256(batch.model_dump_json().encode()).hexdigest()[:32]
        return batch

    async def assignments(self, node: str, etag: str, timeout: float) -> AssignmentBatch:
        deadline = time.monotonic() + timeout
        while True:
            batch = self.batch(node)
            remaining = deadline - time.monotonic()
            if batch.etag != etag or remaining <= 0:
                return batch
            # woken at once by any server's changes (EventBus.relay); the admin CLI's are polled
            await self.bus.wait(min(remaining, POLL_INTERVAL))

    async def heartbeat(self, node: str, capacity: NodeCapacity) -> None:
        self.nodes.heartbeat(node, capacity)

    async def report(self, node: str, reports: list[ContainerReport]) -> None:
        for report in reports:
            await self.containers.apply_report(node, report)
