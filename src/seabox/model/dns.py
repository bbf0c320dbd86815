"""The names a tenant's containers have on its network: the internal DNS domain and each container's names."""

from __future__ import annotations

# Names under this domain are the tenants' own: a node's resolver answers them and never forwards them.
INTERNAL_DOMAIN = "seabox.internal"
SHORT_ID_CHARS = 12


def tenant_domain(tenant_name: str) -> str:
    """The domain of the tenant's names: TENANT.seabox.internal."""
    return f"{tenant_name}.{INTERNAL_DOMAIN}"


def container_names(name: str, container_id: str, tenant_name: str) -> list[str]:
    """What a container is reachable as on its tenant's network: NAME, its short id, NAME.TENANT.seabox.internal."""
    return [name, container_id[:SHORT_ID_CHARS], f"{name}.{tenant_domain(tenant_name)}"]
