"""What the control plane tells a node about one container it is to run, besides the container's record."""

from __future__ import annotations

from dataclasses import dataclass

from seabox.model.container import Container


@dataclass(frozen=True)
class Placement:
    """A container placed on a node, with the tenant facts the node needs (its id and network index)."""

    container: Container
    tenant_id: str
    tenant_index: int
