"""Floating IP records: allocation from the public range (race-safe across servers), attachment, names, release.

An address is the table's primary key, so two servers handing out the same free address at once
cannot both succeed: the loser reads the used addresses again and tries the next. A tenant's quota
is counted in the allocating transaction, which holds the tenant's row (store/quotas.py), so
concurrent allocations never pass it together.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from seabox.billing import meter
from seabox.errors import Conflict, NotFound
from seabox.model.fip import Fip, free_addresses, is_address
from seabox.model.quota import Quota
from seabox.store import quotas
from seabox.store import tables as t

ALLOCATE_TRIES = 20
_c = t.fips.c
_WITH_CONTAINER = select(t.fips, t.containers.c.name.label("container_name"),
                         t.services.c.name.label("service_name")).select_from(
    t.fips.outerjoin(t.containers, t.containers.c.id == _c.container_id)
    .outerjoin(t.services, t.services.c.id == _c.service_id)
)
_DANGLING = _c.container_id.is_(None) & _c.service_id.is_(None)


def _fip(row: Any) -> Fip:
    return Fip(
        address=row["address"],
        tenant=row["tenant_id"],
        name=row["name"],
        container=row["container_id"],
        container_name=row["container_name"],
        service=row["service_name"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
    )


def _taken_by_container(exc: IntegrityError) -> bool:
    """Whether EXC broke one-floating-IP-per-container (PostgreSQL names the constraint, SQLite its column)."""
    return "uq_fip_container" in str(exc.orig) or "fips.container_id" in str(exc.orig)


def _name_taken(exc: IntegrityError) -> bool:
    return "uq_fip_name" in str(exc.orig) or "fips.tenant_id, fips.name" in str(exc.orig)


class FipStore:
    """Typed access to the fips table; every read is within one tenant."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self, tenant_id: str, dangling: bool | None = None) -> list[Fip]:
        """The tenant's floating IPs in address order; DANGLING True/False: only the unattached/attached ones."""
        q = _WITH_CONTAINER.where(_c.tenant_id == tenant_id)
        if dangling is not None:
            q = q.where(_DANGLING if dangling else ~_DANGLING)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return sorted((_fip(r) for r in rows), key=lambda f: IPv4Address(f.address))

    def get(self, tenant_id: str, ref: str) -> Fip:
        """The tenant's floating IP by address or name (NotFound for another tenant's, as for a missing one)."""
        key = _c.address if is_address(ref) else _c.name
        with self.engine.connect() as conn:
            row = conn.execute(_WITH_CONTAINER.where(_c.tenant_id == tenant_id, key == ref)).mappings().first()
        if row is None:
            raise NotFound(f"no such floating IP: {ref}", field="fip")
        return _fip(row)

    def allocate(self, tenant_id: str, network: IPv4Network, count: int, quota: Quota,
                 container_id: str | None = None) -> list[str]:
        """COUNT new addresses for the tenant (attached to CONTAINER_ID if given): all or, past QUOTA, none."""
        for _ in range(ALLOCATE_TRIES):
            try:
                with self.engine.begin() as conn:
                    quotas.hold(conn, tenant_id, quota, adding=count)
                    used = {r[0] for r in conn.execute(select(_c.address))}
                    addresses = free_addresses(network, used, count)
                    now = time.time()
                    conn.execute(insert(t.fips), [
                        {"address": a, "tenant_id": tenant_id, "name": None, "container_id": container_id,
                         "created_at": now} for a in addresses
                    ])
                    for a in addresses:
                        meter.open_interval(conn, tenant_id, "fip", a, a, "fip", now)
                return addresses
            except IntegrityError as exc:
                if _taken_by_container(exc):
                    raise Conflict("the container already has a floating IP: one per container", field="container") from None
                continue  # another server took one of these addresses first: look again
        raise Conflict("floating IPs could not be allocated: too many allocations at once, try again")

    def attach(self, tenant_id: str, address: str, container_id: str, force: bool) -> None:
        """Attach the tenant's ADDRESS to CONTAINER_ID; one attached elsewhere moves only with FORCE."""
        try:
            with self.engine.begin() as conn:
                row = _held(conn, tenant_id, address, lock=True)
                if row["container_id"] == container_id:
                    return
                if row["service_name"] is not None and not force:
                    raise Conflict(f"floating IP {address} is attached to service {row['service_name']}: detach it "
                                   "first, or attach with force (-f) to move it", field="fip")
                if row["container_id"] is not None and not force:
                    raise Conflict(f"floating IP {address} is attached to container {row['container_name']}: "
                                   "detach it first, or attach with force (-f) to move it", field="fip")
                other = conn.execute(select(_c.address).where(_c.container_id == container_id)).scalar()
                if other is not None:
                    raise Conflict(f"the container already has floating IP {other} (one per container): detach it first",
                                   field="container")
                conn.execute(update(t.fips).where(_c.address == address).values(container_id=container_id,
                                                                                 service_id=None))
        except IntegrityError as exc:
            if _taken_by_container(exc):
                raise Conflict("the container already has a floating IP (one per container): detach it first",
                               field="container") from None
            raise

    def detach(self, tenant_id: str, container_id: str) -> Fip | None:
        """Detach the floating IP of CONTAINER_ID; the one detached (None if it had none)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                _WITH_CONTAINER.where(_c.tenant_id == tenant_id, _c.container_id == container_id)
            ).mappings().first()
            if row is None:
                return None
            conn.execute(update(t.fips).where(_c.address == row["address"]).values(container_id=None))
        return _fip(row)

    def release(self, tenant_id: str, address: str) -> None:
        """Give the tenant's ADDRESS back to the range; refused while it is attached."""
        with self.engine.begin() as conn:
            row = _held(conn, tenant_id, address)
            if row["container_id"] is not None:
                raise Conflict(f"floating IP {address} is attached to container {row['container_name']}: "
                               f"detach it first (`seabox fip detach {row['container_name']}`)", field="fip")
            if row["service_name"] is not None:
                raise Conflict(f"floating IP {address} is attached to service {row['service_name']}: detach it "
                               f"first (`seabox service detach-fip {row['service_name']}`)", field="fip")
            if not conn.execute(delete(t.fips).where(_c.address == address, _DANGLING)).rowcount:
                raise Conflict(f"floating IP {address} was attached meanwhile: detach it first", field="fip")
            meter.close_interval(conn, "fip", address, time.time())

    def attach_service(self, tenant_id: str, address: str, service_id: str) -> None:
        """Attach the tenant's dangling ADDRESS to SERVICE_ID, which must have none yet."""
        try:
            with self.engine.begin() as conn:
                row = _held(conn, tenant_id, address, lock=True)
                if row["service_id"] == service_id:
                    return
                holder = (f"container {row['container_name']}" if row["container_id"] is not None
                          else f"service {row['service_name']}" if row["service_id"] is not None else None)
                if holder is not None:
                    raise Conflict(f"floating IP {address} is attached to {holder}: detach it first", field="fip")
                other = conn.execute(select(_c.address).where(_c.service_id == service_id)).scalar()
                if other is not None:
                    raise Conflict(f"the service already has floating IP {other} (one per service): detach it first",
                                   field="service")
                conn.execute(update(t.fips).where(_c.address == address, _DANGLING).values(service_id=service_id))
        except IntegrityError as exc:
            if "uq_fip_service" in str(exc.orig) or "fips.service_id" in str(exc.orig):
                raise Conflict("the service already has a floating IP (one per service): detach it first",
                               field="service") from None
            raise

    def detach_service(self, tenant_id: str, service_id: str) -> Fip | None:
        """Detach the floating IP of SERVICE_ID; the one detached (None if it had none)."""
        with self.engine.begin() as conn:
            row = conn.execute(_WITH_CONTAINER.where(_c.tenant_id == tenant_id, _c.service_id == service_id)).mappings().first()
            if row is None:
                return None
            conn.execute(update(t.fips).where(_c.address == row["address"]).values(service_id=None))
        return _fip(row)

    def rename(self, tenant_id: str, address: str, name: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(update(t.fips).where(_c.tenant_id == tenant_id, _c.address == address).values(name=name))
        except IntegrityError as exc:
            if _name_taken(exc):
                raise Conflict(f"floating IP name {name!r} is already in use", field="name") from None
            raise


def _held(conn: Connection, tenant_id: str, address: str, lock: bool = False) -> RowMapping:
    """The tenant's floating IP ADDRESS with its holder's names (row-locked with LOCK); NotFound if it has none."""
    q = _WITH_CONTAINER.where(_c.tenant_id == tenant_id, _c.address == address)
    row = conn.execute(q.with_for_update(of=t.fips) if lock else q).mappings().first()
    if row is None:
        raise NotFound(f"no such floating IP: {address}", field="fip")
    return row
