"""A tenant's load-balanced services: create, list, inspect, scale, update the image, floating IPs and remove.

These operations change only the service's record (its spec); the services controller makes the
replica containers follow it. Each change is an event, which wakes the controller at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping

from seabox.config import ServerConfig
from seabox.errors import Conflict, InvalidArgument, NotFound
from seabox.model import ipam
from seabox.model.container import Container, ContainerCreate
from seabox.model.service import Service, ServiceCreate
from seabox.model.tenant import Tenant
from seabox.services.containers import ContainerService
from seabox.services.events import EventBus
from seabox.store.fips import FipStore
from seabox.store.services import ServiceStore

SERVICE_LABEL = "seabox.service"  # every replica carries its service's name in this label


class ServiceService:
    """Tenant-scoped service operations on the store's records."""

    def __init__(self, cfg: ServerConfig, services: ServiceStore, fips: FipStore, containers: ContainerService,
                 bus: EventBus) -> None:
        self.cfg = cfg
        self.services = services
        self.fips = fips
        self.containers = containers
        self.bus = bus

    def list(self, tenant: Tenant) -> list[Service]:
        return self.services.list(tenant.id)

    def get(self, tenant: Tenant, name: str) -> Service:
        return self.services.get(tenant.id, name)

    async def _image(self, tenant: Tenant, ref: str, cmd: list[str] | None) -> str:
        """The canonical name of the tenant's image REF (404 naming the image), which must have a command or get CMD."""
        resolved = await self.containers.images.resolve(tenant, ref)
        config = resolved.info.config
        if not cmd and not config.cmd and not config.entrypoint:
            raise InvalidArgument("no command given and the image has none", field="cmd")
        return resolved.name

    async def create(self, tenant: Tenant, req: ServiceCreate) -> Service:
        """The new service (refused, with nothing made, for an unknown image, security group or a name in use)."""
        spec = req.spec()
        spec.image = await self._image(tenant, req.image, req.cmd)
        self.containers.store.check_security_groups(tenant.id, spec.security_groups)
        subnet = ipam.tenant_subnet(self.cfg.network, tenant.index)
        svc = self.services.create(tenant.id, req.name, subnet, spec, self.cfg.quotas.quota("services"))
        await self.bus.emit(tenant.id, "service", "create", svc.id, svc.name,
                            {"image": spec.image, "replicas": str(spec.replicas), "vip": svc.vip})
        return svc

    async def scale(self, tenant: Tenant, name: str, replicas: int) -> Service:
        svc = self.services.get(tenant.id, name)
        svc.spec.replicas = replicas
        self.services.set_spec(svc.id, svc.spec)
        await self.bus.emit(tenant.id, "service", "scale", svc.id, svc.name, {"replicas": str(replicas)})
        return self.services.get(tenant.id, name)

    async def update_image(self, tenant: Tenant, name: str, image: str) -> Service:
        """Run IMAGE from now on: a new generation, which the controller rolls out one replica at a time."""
        svc = self.services.get(tenant.id, name)
        svc.spec.image = await self._image(tenant, image, svc.spec.cmd)
        svc.spec.generation += 1
        self.services.set_spec(svc.id, svc.spec)
        await self.bus.emit(tenant.id, "service", "update", svc.id, svc.name,
                            {"image": svc.spec.image, "generation": str(svc.spec.generation)})
        return self.services.get(tenant.id, name)

    async def attach_fip(self, tenant: Tenant, name: str, fip_ref: str) -> Service:
        svc = self.services.get(tenant.id, name)
        fip = self.fips.get(tenant.id, fip_ref)
        self.fips.attach_service(tenant.id, fip.address, svc.id)
        await self.bus.emit(tenant.id, "fip", "attach", fip.address, fip.name or fip.address,
                            {"service": svc.id, "serviceName": svc.name})
        return self.services.get(tenant.id, name)

    async def detach_fip(self, tenant: Tenant, name: str) -> Service:
        svc = self.services.get(tenant.id, name)
        fip = self.fips.detach_service(tenant.id, svc.id)
        if fip is None:
            raise Conflict(f"service {svc.name} has no floating IP", field="service")
        await self.bus.emit(tenant.id, "fip", "detach", fip.address, fip.name or fip.address,
                            {"service": svc.id, "serviceName": svc.name})
        return self.services.get(tenant.id, name)

    async def remove(self, tenant: Tenant, name: str, keep: bool = False) -> None:
        """Remove the service and its replicas; with KEEP the replicas stay, as plain containers."""
        svc = self.services.get(tenant.id, name)
        self.services.delete(svc.id)
        await self.bus.emit(tenant.id, "service", "destroy", svc.id, svc.name, {"keep": str(keep).lower()})
        if keep:
            return

        async def gone(cid: str) -> None:
            with contextlib.suppress(NotFound):
                await self.containers.remove(tenant, cid, force=True)

        await asyncio.gather(*(gone(r.id) for r in svc.replicas))

    # what the controller does ------------------------------------------------------------------
    async def add_replica(self, tenant: Tenant, svc: Service, spread: Mapping[str, int]) -> Container:
        """A new replica of SVC's current generation, placed by SPREAD, asked to start."""
        spec = svc.spec
        req = ContainerCreate(image=spec.image, name=self._replica_name(tenant, svc.name), cmd=spec.cmd, env=spec.env,
                              volumes=spec.volumes, size=spec.size, security_groups=spec.security_groups,
                              labels={SERVICE_LABEL: svc.name})
        c = await self.containers.create(tenant, req, spread=spread)
        try:
            self.services.add_replica(svc.id, c.id, spec.generation)
        except NotFound:  # the service went meanwhile: no orphan container either
            await self.containers.ask_remove(c)
            raise
        await self.containers.ask_start(c)
        return c

    def _replica_name(self, tenant: Tenant, service: str) -> str:
        while True:
            name = f"{service}-{secrets.token_hex(3)}"
            if not self.containers.store.container_name_taken(tenant.id, name):
                return name
