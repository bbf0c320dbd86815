"""A tenant's volumes: create, list, inspect and remove (refused while a container mounts it)."""

from __future__ import annotations

from seabox.config import QuotasConfig
from seabox.errors import Conflict, NotFound
from seabox.model.tenant import Tenant
from seabox.model.volume import Volume, VolumeCreate
from seabox.services.links import NodeLinks
from seabox.services.events import EventBus
from seabox.store.repo import Store


class VolumeService:
    """Records live in the store, data on the node that holds the volume."""

    def __init__(self, store: Store, links: NodeLinks, bus: EventBus, limits: QuotasConfig) -> None:
        self.store = store
        self.limits = limits
        self.links = links
        self.bus = bus

    async def create(self, tenant: Tenant, req: VolumeCreate, node: str | None = None) -> Volume:
        """Make the volume on NODE (by default the default node)."""
        link = self.links.get(node) if node else self.links.default
        vol = self.store.create_volume(tenant.id, req.name, req.size, req.labels, link.name,
                                       quota=self.limits.quota("volumes"))
        try:
            await link.create_volume(tenant.id, req.name, req.size)
        except BaseException:
            self.store.delete_volume(tenant.id, req.name)
            raise
        await self.bus.emit(tenant.id, "volume", "create", req.name, req.name, {"size": str(req.size)})
        return vol

    async def ensure(self, tenant: Tenant, name: str, node: str) -> bool:
        """Create the volume on NODE with default settings if the tenant has none by that name (as `docker run -v`
        does); whether it made one."""
        try:
            self.store.get_volume(tenant.id, name)
        except NotFound:
            await self.create(tenant, VolumeCreate(name=name), node)
            return True
        return False

    def list(self, tenant: Tenant) -> list[Volume]:
        return self.store.list_volumes(tenant.id)

    def get(self, tenant: Tenant, name: str) -> Volume:
        return self.store.get_volume(tenant.id, name)

    async def remove(self, tenant: Tenant, name: str) -> int:
        """Remove the unmounted volume and its data; the bytes its files held (what a prune reclaims)."""
        vol = self.store.get_volume(tenant.id, name)
        if vol.in_use_by:
            raise Conflict(f"volume {name} is in use by container(s) {', '.join(vol.in_use_by)}: remove them first")
        freed = await self.links.get(vol.node).remove_volume(tenant.id, name)
        self.store.delete_volume(tenant.id, name)
        await self.bus.emit(tenant.id, "volume", "destroy", name, name)
        return freed
