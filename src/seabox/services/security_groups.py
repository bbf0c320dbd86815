"""A tenant's security groups: create, update (all rules at once), remove, list, inspect, and a container's groups.

Every change is recorded as an event, which also wakes the node long-polls on every server: the
batches are rebuilt from the store, so each node whose containers a change touches gets it at once.
"""

from __future__ import annotations

from typing import Any

from seabox.config import QuotasConfig
from seabox.errors import InvalidArgument
from seabox.model.container import Container
from seabox.model.security_group import SecurityGroup, group_document, validate_group
from seabox.model.tenant import Tenant
from seabox.services.events import EventBus
from seabox.store.repo import Store
from seabox.store.security_groups import SecurityGroupStore

EVENT_TYPE = "security-group"


class SecurityGroupService:
    """Groups live in the store; nodes learn their resolved rules from their assignment batches."""

    def __init__(self, store: Store, groups: SecurityGroupStore, bus: EventBus, limits: QuotasConfig) -> None:
        self.store = store
        self.limits = limits
        self.groups = groups
        self.bus = bus

    async def create(self, tenant: Tenant, document: Any) -> SecurityGroup:
        spec = validate_group(document)
        group = self.groups.create(tenant.id, spec, self.limits.quota("security_groups"))
        await self.bus.emit(tenant.id, EVENT_TYPE, "create", spec.name, spec.name, {"rules": str(len(spec.rules))})
        return group

    async def update(self, tenant: Tenant, name: str, document: Any) -> SecurityGroup:
        """Replace NAME's description and rules with DOCUMENT's, atomically (its name, if it has one, must be NAME)."""
        named = isinstance(document, dict) and "name" in document
        spec = validate_group(document if named else group_document(document, name))
        if spec.name != name:
            raise InvalidArgument(f"the document names group {spec.name!r}, not {name!r}: groups cannot be renamed",
                                  field="name")
        group = self.groups.replace(tenant.id, spec)
        await self.bus.emit(tenant.id, EVENT_TYPE, "update", name, name,
                            {"rules": str(len(spec.rules)), "generation": str(group.generation)})
        return group

    async def remove(self, tenant: Tenant, name: str) -> None:
        self.groups.delete(tenant.id, name)
        await self.bus.emit(tenant.id, EVENT_TYPE, "destroy", name, name)

    def list(self, tenant: Tenant) -> list[SecurityGroup]:
        return self.groups.list(tenant.id)

    def get(self, tenant: Tenant, name: str) -> SecurityGroup:
        return self.groups.get(tenant.id, name)

    async def update_container(self, tenant: Tenant, ref: str, add: list[str], remove: list[str]) -> Container:
        """Put container REF in the ADD groups and out of the REMOVE ones, live and at once."""
        if not add and not remove:
            raise InvalidArgument("nothing to update: give security_groups_add or security_groups_remove",
                                  field="security_groups_add")
        both = sorted(set(add) & set(remove))
        if both:
            raise InvalidArgument(f"security group {both[0]} is both added and removed", field="security_groups_remove")
        c = self.store.find_container(tenant.id, ref)
        groups = self.groups.set_container_groups(tenant.id, c.id, add, remove)
        await self.bus.emit(tenant.id, "container", "update", c.id, c.name, {"securityGroups": ",".join(groups)})
        return self.store.get_container(c.id)
