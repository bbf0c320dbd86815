"""What the control plane tells a node about one container it is to run, besides the container's record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seabox.model.container import Container


@dataclass(frozen=True)
class Placement:
    """A container placed on a node, with the tenant facts the node needs (its id and network index)."""

    container: Container
    tenant_id: str
    tenant_index: int


def placement_json(p: Placement) -> dict[str, Any]:
    """P as the node protocol carries it."""
    return {"container": p.container.model_dump(mode="json"), "tenant_id": p.tenant_id, "tenant_index": p.tenant_index}


def placement_from(data: dict[str, Any]) -> Placement:
    return Placement(Container.model_validate(data["container"]), str(data["tenant_id"]), int(data["tenant_index"]))
