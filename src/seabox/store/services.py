"""Service records: their virtual IPs and SNAT addresses (from the top of the tenant's subnet), specs, statuses
and replica links.

A replica is an ordinary container with a row in service_replicas naming its service, the spec
generation it runs and, once it is leaving, since when it drains. Removing the service removes those
rows (its containers stay, as plain containers) and detaches its floating IP.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from seabox.billing import meter
from seabox.errors import Conflict, NotFound
from seabox.model import ipam
from seabox.model.container import ContainerStatus
from seabox.model.quota import Quota
from seabox.model.service import Replica, Service, ServiceSpec, ServiceStatus
from seabox.store import quotas
from seabox.store import tables as t

VIP_TRIES = 20
_s = t.services.c
_r = t.service_replicas.c
_SERVICES = select(t.services, t.fips.c.address.label("fip")).select_from(
    t.services.outerjoin(t.fips, t.fips.c.service_id == _s.id)
)


@dataclass(frozen=True)
class ReplicaLink:
    """That container CONTAINER_ID is a replica of SERVICE_ID, made for GENERATION; draining since DRAINING_SINCE."""

    container_id: str
    service_id: str
    generation: int
    draining_since: float | None


def _link(row: Any) -> ReplicaLink:
    return ReplicaLink(row["container_id"], row["service_id"], int(row["generation"]), row["draining_since"])


class ServiceStore:
    """Typed access to the services and service_replicas tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, tenant_id: str, name: str, subnet: IPv4Network, spec: ServiceSpec, quota: Quota) -> Service:
        """A new service with the two highest addresses of SUBNET that no container or other service holds: its
        virtual IP and its SNAT address."""
        for _ in range(VIP_TRIES):
            try:
                with self.engine.begin() as conn:
                    quotas.hold(conn, tenant_id, quota)
                    c = t.containers.c
                    if conn.execute(select(c.id).where(c.tenant_id == tenant_id, c.name == name)).first():
                        raise Conflict(f"service name {name!r} is the name of one of your containers", field="name")
                    if conn.execute(select(_s.id).where(_s.tenant_id == tenant_id, _s.name == name)).first():
                        raise Conflict(f"service {name!r} already exists", field="name")
                    used = _used(conn, tenant_id)
                    vip = ipam.allocate_top(subnet, used)
                    row = {"id": "s" + secrets.token_hex(8), "tenant_id": tenant_id, "name": name, "vip": str(vip),
                           "snat_ip": str(ipam.allocate_top(subnet, used | {vip})),
                           "spec": spec.model_dump(mode="json"),
                           "status": ServiceStatus(desired=spec.replicas).model_dump(mode="json"),
                           "created_at": time.time()}
                    conn.execute(insert(t.services).values(**row))
                    meter.open_interval(conn, tenant_id, "service", row["id"], name, "service", row["created_at"])
                return self.get(tenant_id, name)
            except IntegrityError as exc:
                if "uq_service_name" in str(exc.orig) or "services.tenant_id, services.name" in str(exc.orig):
                    raise Conflict(f"service {name!r} already exists", field="name") from None
                continue  # another service took this address first: look again
        raise Conflict("no virtual IP could be allocated: too many services created at once, try again")

    def assign_snat(self, svc: Service, subnet: IPv4Network) -> str:
        """Give SVC, made before services had one, its SNAT address (the highest free one of SUBNET)."""
        for _ in range(VIP_TRIES):
            try:
                with self.engine.begin() as conn:
                    address = str(ipam.allocate_top(subnet, _used(conn, svc.tenant)))
                    conn.execute(update(t.services).where(_s.id == svc.id, _s.snat_ip.is_(None))
                                 .values(snat_ip=address))  # fmt: skip
                    current = conn.execute(select(_s.snat_ip).where(_s.id == svc.id)).scalar_one_or_none()
                if current is None:
                    raise NotFound(f"service {svc.name} not found")
                return str(current)
            except IntegrityError:
                continue  # another service or container took this address first: look again
        raise Conflict(f"no SNAT address could be allocated for service {svc.name}: try again")

    def _services(self, query: Any) -> list[Service]:
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            ids = [r["id"] for r in rows]
            replicas: dict[str, list[Replica]] = {i: [] for i in ids}
            if ids:
                c = t.containers.c
                q = (select(_r.service_id, _r.generation, _r.draining_since, c.id, c.name, c.status, c.created_at)
                     .select_from(t.service_replicas.join(t.containers, c.id == _r.container_id))
                     .where(_r.service_id.in_(ids)).order_by(c.created_at))
                for r in conn.execute(q).mappings():
                    st = ContainerStatus.model_validate(r["status"])
                    replicas[r["service_id"]].append(Replica(id=r["id"], name=r["name"], state=st.state,
                                                             healthy=st.healthy, generation=int(r["generation"]),
                                                             draining=r["draining_since"] is not None))
        return [self._service(r, replicas[r["id"]]) for r in sorted(rows, key=lambda r: str(r["name"]))]

    @staticmethod
    def _service(row: Any, replicas: list[Replica]) -> Service:
        return Service(id=row["id"], name=row["name"], tenant=row["tenant_id"], vip=row["vip"], fip=row["fip"],
                       snat_ip=row["snat_ip"],
                       created_at=datetime.fromtimestamp(row["created_at"], UTC),
                       spec=ServiceSpec.model_validate(row["spec"]), status=ServiceStatus.model_validate(row["status"]),
                       replicas=replicas)

    def list(self, tenant_id: str | None = None) -> list[Service]:
        """The tenant's services by name (every tenant's when TENANT_ID is None)."""
        return self._services(_SERVICES if tenant_id is None else _SERVICES.where(_s.tenant_id == tenant_id))

    def of_tenants(self, tenant_ids: Iterable[str]) -> list[Service]:
        return self._services(_SERVICES.where(_s.tenant_id.in_(list(tenant_ids))))

    def get(self, tenant_id: str, name: str) -> Service:
        """The tenant's service NAME (NotFound for another tenant's, as for a missing one)."""
        found = self._services(_SERVICES.where(_s.tenant_id == tenant_id, _s.name == name))
        if not found:
            raise NotFound(f"no such service: {name}", field="service")
        return found[0]

    def name_taken(self, tenant_id: str, name: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(_s.id).where(_s.tenant_id == tenant_id, _s.name == name)).first() is not None

    def set_spec(self, service_id: str, spec: ServiceSpec) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.services).where(_s.id == service_id).values(spec=spec.model_dump(mode="json")))

    def set_status(self, service_id: str, status: ServiceStatus) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.services).where(_s.id == service_id).values(status=status.model_dump(mode="json")))

    def delete(self, service_id: str) -> None:
        """Remove the service; its replicas become plain containers and its floating IP dangles."""
        with self.engine.begin() as conn:
            conn.execute(delete(t.service_replicas).where(_r.service_id == service_id))
            conn.execute(update(t.fips).where(t.fips.c.service_id == service_id).values(service_id=None))
            conn.execute(delete(t.services).where(_s.id == service_id))
            meter.close_interval(conn, "service", service_id, time.time())

    # replicas ----------------------------------------------------------------------------------
    def add_replica(self, service_id: str, container_id: str, generation: int) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.service_replicas).values(container_id=container_id, service_id=service_id,
                                                               generation=generation, draining_since=None))
        except IntegrityError:
            raise NotFound("the service was removed meanwhile", field="service") from None

    def drain(self, container_id: str, since: float) -> None:
        """Take the replica out of its service's backends (it is removed once drained)."""
        with self.engine.begin() as conn:
            conn.execute(update(t.service_replicas).where(_r.container_id == container_id, _r.draining_since.is_(None))
                         .values(draining_since=since))

    def links(self, service_ids: Iterable[str] | None = None) -> list[ReplicaLink]:
        """The replica links of SERVICE_IDS (of every service when None)."""
        q = select(t.service_replicas)
        if service_ids is not None:
            q = q.where(_r.service_id.in_(list(service_ids)))
        with self.engine.connect() as conn:
            return [_link(r) for r in conn.execute(q).mappings()]


def _used(conn: Any, tenant_id: str) -> set[IPv4Address]:
    """The addresses of the tenant's network its containers and services hold."""
    c = t.containers.c
    used = {IPv4Address(r[0]) for r in conn.execute(select(c.ip).where(c.tenant_id == tenant_id, c.ip.is_not(None)))}
    for vip, snat_ip in conn.execute(select(_s.vip, _s.snat_ip).where(_s.tenant_id == tenant_id)):
        used |= {IPv4Address(vip), *([IPv4Address(snat_ip)] if snat_ip else [])}
    return used
