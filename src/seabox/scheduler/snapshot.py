"""What the scheduler sees: a frozen view of each node and one container's placement request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

NodeState = Literal["ready", "down", "cordoned", "draining"]


@dataclass(frozen=True)
class NodeView:
    """One node as the control plane knows it: its state, capacity and what is placed on it.

    MEMORY_TOTAL is what containers may be allocated on the node in bytes; MEMORY_ALLOCATED the sum of
    the sizes of the containers placed there; TENANT_CONTAINERS maps a tenant id to how many of those
    containers are that tenant's (tenants with none are absent).
    """

    name: str
    state: NodeState
    memory_total: int
    cpus: int
    memory_allocated: int
    containers: int
    tenant_containers: Mapping[str, int] = field(default_factory=dict)

    @property
    def memory_free(self) -> int:
        return self.memory_total - self.memory_allocated


@dataclass(frozen=True)
class PlacementRequest:
    """One container to place: its tenant, its size (name, memory bytes, CPU cap) and where it must or must not go.

    REQUIRED_NODE pins it to one node (a node-local volume or image lives there); PINNED_BY names what
    pins it, for the refusal message ("volume data"). AVOID_NODES are never chosen (the node a lost
    copy was on, for instance). SPREAD maps node names to how many containers of the request's group
    (a service's replicas) each holds: the node with the fewest is preferred (anti-affinity).
    """

    tenant_id: str
    size: str
    memory_bytes: int
    cpus: float
    required_node: str | None = None
    avoid_nodes: frozenset[str] = frozenset()
    pinned_by: str | None = None
    spread: Mapping[str, int] = field(default_factory=dict)
