"""A tenant's floating IPs: allocate (within the quota), list, attach, detach, name and release.

A floating IP is attached to a container record, so it stays through stop, start and restarts and
follows the container to whichever node holds it; NodeHub puts it in that node's assignments. Every
change is an event, which also wakes the nodes' long-polls on every server.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from seabox.config import ServerConfig
from seabox.errors import Conflict
from seabox.model.container import Container
from seabox.model.fip import AUTO, Fip
from seabox.model.tenant import Tenant
from seabox.services.events import EventBus
from seabox.store.fips import FipStore
from seabox.store.quotas import QuotaStore
from seabox.store.repo import Store


class FipService:
    """Tenant-scoped floating IP operations on the store's records."""

    def __init__(self, cfg: ServerConfig, store: Store, fips: FipStore, quotas: QuotaStore, bus: EventBus) -> None:
        self.cfg = cfg
        self.store = store
        self.fips = fips
        self.quotas = quotas
        self.bus = bus
        self.quota = cfg.quotas.quota("fips")

    @property
    def _range(self) -> IPv4Network:
        return IPv4Network(self.cfg.network.fip_range)

    def list(self, tenant: Tenant, dangling: bool | None = None) -> list[Fip]:
        return self.fips.list(tenant.id, dangling)

    def get(self, tenant: Tenant, ref: str) -> Fip:
        return self.fips.get(tenant.id, ref)

    async def allocate(self, tenant: Tenant, count: int = 1, pick: bool = False) -> list[Fip]:
        """COUNT floating IPs; with PICK, the tenant's dangling ones first, then new ones for the rest."""
        picked = self.fips.list(tenant.id, dangling=True)[:count] if pick else []
        new = self.fips.allocate(tenant.id, self._range, count - len(picked), self.quota) if count > len(picked) else []
        for address in new:
            await self.bus.emit(tenant.id, "fip", "allocate", address, address)
        return [*picked, *(self.fips.get(tenant.id, a) for a in new)]

    async def attach(self, tenant: Tenant, ref: str, container_ref: str, force: bool = False) -> Fip:
        fip = self.fips.get(tenant.id, ref)
        c = self.store.find_container(tenant.id, container_ref)
        self.fips.attach(tenant.id, fip.address, c.id, force)
        await self.bus.emit(tenant.id, "fip", "attach", fip.address, fip.name or fip.address,
                            {"container": c.id, "containerName": c.name})
        return self.fips.get(tenant.id, fip.address)

    async def detach(self, tenant: Tenant, container_ref: str) -> Fip:
        c = self.store.find_container(tenant.id, container_ref)
        fip = self.fips.detach(tenant.id, c.id)
        if fip is None:
            raise Conflict(f"container {c.name} has no floating IP", field="container")
        await self.bus.emit(tenant.id, "fip", "detach", fip.address, fip.name or fip.address,
                            {"container": c.id, "containerName": c.name})
        return self.fips.get(tenant.id, fip.address)

    async def release(self, tenant: Tenant, ref: str) -> Fip:
        fip = self.fips.get(tenant.id, ref)
        self.fips.release(tenant.id, fip.address)
        await self.bus.emit(tenant.id, "fip", "release", fip.address, fip.name or fip.address)
        return fip

    async def name(self, tenant: Tenant, ref: str, name: str) -> Fip:
        fip = self.fips.get(tenant.id, ref)
        self.fips.rename(tenant.id, fip.address, name)
        await self.bus.emit(tenant.id, "fip", "rename", fip.address, name, {"oldName": fip.name or ""})
        return self.fips.get(tenant.id, fip.address)

    # `run --fip` -----------------------------------------------------------------------------------
    def plan(self, tenant: Tenant, ref: str) -> str | None:
        """Before a container is made with `--fip REF`: the address it will get, or None for a new one (AUTO).

        Refuses what would fail (no such floating IP, one attached elsewhere, the quota reached) so
        that a refused run makes no container.
        """
        if ref == AUTO:
            dangling = self.fips.list(tenant.id, dangling=True)
            if dangling:
                return dangling[0].address
            self.quotas.check(tenant.id, self.quota)
            return None
        fip = self.fips.get(tenant.id, ref)
        if fip.container is not None:
            raise Conflict(f"floating IP {fip.address} is attached to container {fip.container_name}: detach it "
                           "first, or attach it with `seabox fip attach -f` after the run", field="fip")
        if fip.service is not None:
            raise Conflict(f"floating IP {fip.address} is attached to service {fip.service}: detach it first",
                           field="fip")
        return fip.address

    async def give(self, tenant: Tenant, c: Container, address: str | None) -> None:
        """Attach ADDRESS (from plan(); None: a new floating IP) to the new container C."""
        if address is None:
            [address] = self.fips.allocate(tenant.id, self._range, 1, self.quota, c.id)
            await self.bus.emit(tenant.id, "fip", "allocate", address, address)
        else:
            self.fips.attach(tenant.id, address, c.id, force=False)
        await self.bus.emit(tenant.id, "fip", "attach", address, address, {"container": c.id, "containerName": c.name})
