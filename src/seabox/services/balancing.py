"""What nodes are to serve of a tenant's services: the balanced VIPs, their replicas' health checks, their names.

Backends are the replicas that run, passed their health check and are not draining, oldest first. The
floating IP of a service is held by one node: that of its oldest healthy replica, which stays the same
while that replica stays healthy; it reaches the replicas on other nodes from the service's SNAT address.
"""

from __future__ import annotations

from seabox.model.container import Container
from seabox.model.dns import tenant_domain
from seabox.model.health import HealthCheck
from seabox.model.service import Service
from seabox.protocol.assignments import HostsEntry
from seabox.protocol.balancing import Backend, BalancedService
from seabox.services.firewalls import TenantFirewalls


def _backends(svc: Service, containers: dict[str, Container]) -> list[Container]:
    """SVC's replicas that receive traffic, oldest first (svc.replicas is in creation order)."""
    found = []
    for r in svc.replicas:
        c = containers.get(r.id)
        if c is not None and not r.draining and c.status.state == "running" and c.status.healthy and c.status.ip:
            found.append(c)
    return found


def balanced(svc: Service, tenant_index: int, containers: dict[str, Container], node: str,
             firewalls: TenantFirewalls | None = None) -> BalancedService:
    """SVC as NODE serves it (CONTAINERS: its tenant's, by id; FIREWALLS: its tenant's groups, when the service
    is in any); the floating IP, with the replicas' firewall, only if NODE holds it."""
    backends = _backends(svc, containers)
    holder = backends[0].status.node if backends else None
    held = svc.fip is not None and holder == node
    return BalancedService(
        id=svc.id, name=svc.name, tenant_id=svc.tenant, tenant_index=tenant_index, vip=svc.vip, port=svc.spec.port,
        algorithm=svc.spec.algorithm,
        backends=[Backend(container_id=c.id, ip=c.status.ip or "", port=svc.spec.container_port) for c in backends],
        fip=svc.fip if held else None,
        snat_ip=svc.snat_ip if svc.fip is not None else None,
        firewall=firewalls.of(svc.spec.security_groups) if held and firewalls is not None else None,
    )


def health_checks(services: list[Service]) -> dict[str, HealthCheck]:
    """Container id -> the health check its node runs on it, for every replica of SERVICES."""
    return {r.id: s.spec.health for s in services for r in s.replicas}


def service_hosts(services: list[Service], tenant_name: str) -> list[HostsEntry]:
    """The names of a tenant's services on its network: NAME and NAME.TENANT.seabox.internal, at the VIP."""
    return [(s.vip, [s.name, f"{s.name}.{tenant_domain(tenant_name)}"]) for s in services]
