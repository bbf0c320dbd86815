"""Where containers go: the scheduler's view of the nodes from the store, and the admission checks at start."""

from __future__ import annotations

import time
from collections.abc import Mapping

from seabox.config import ServerConfig
from seabox.errors import Conflict, NotFound
from seabox.model.container import ACTIVE, Container
from seabox.model.node import Node, NodeCapacity
from seabox.model.sizes import SIZES
from seabox.scheduler.admission import refusal
from seabox.scheduler.place import Placement, place
from seabox.scheduler.snapshot import NodeView, PlacementRequest
from seabox.store.nodes import NodeStore
from seabox.store.repo import Store


def holds_memory(c: Container) -> bool:
    """Whether the container's size counts as allocated on its node: it runs, or a start was asked and not yet acted on.

    Both are in the store, so every server counts the starts every other server admitted.
    """
    return c.status.state in ACTIVE or (c.spec.desired == "running" and c.status.generation < c.spec.generation)


class Placer:
    """Builds the cluster snapshot and asks the scheduler; the refusals become 409s naming the capacity."""

    def __init__(self, cfg: ServerConfig, store: Store, nodes: NodeStore) -> None:
        self.cfg = cfg
        self.store = store
        self.nodes = nodes

    def _capacity(self, node: Node) -> NodeCapacity:
        return NodeCapacity(node.name, node.memory_bytes, node.cpus)

    def _allocatable(self, node: Node) -> int:
        return int(node.memory_bytes * self.cfg.admission.memory_overcommit)

    def views(self, *, empty: bool = False) -> list[NodeView]:
        """Every node with what is allocated on it (see holds_memory).

        With EMPTY, as if nothing ran anywhere (to ask whether a size can fit at all).
        """
        now, down_after = time.time(), self.cfg.nodes.down_after
        views = []
        for node in self.nodes.list():
            placed = [] if empty else [c for c in self.store.list_containers(node=node.name) if holds_memory(c)]
            tenants: dict[str, int] = {}
            for c in placed:
                tenants[c.tenant] = tenants.get(c.tenant, 0) + 1
            views.append(
                NodeView(
                    name=node.name,
                    state=node.state(now, down_after),
                    memory_total=min(self._allocatable(node), node.memory_bytes),
                    cpus=node.cpus,
                    memory_allocated=sum(SIZES[c.spec.size].memory_bytes for c in placed),
                    containers=len(placed),
                    tenant_containers=tenants,
                )
            )
        return views

    def choose(
        self,
        tenant_id: str,
        size: str,
        required_node: str | None = None,
        pinned_by: str | None = None,
        avoid: frozenset[str] = frozenset(),
        spread: Mapping[str, int] | None = None,
    ) -> str:
        """The node a new container of SIZE goes to; a 409 saying why when no node can ever hold it.

        A node with room now is preferred; if none has, the container goes where it could fit once
        memory is freed (its start is refused until then).
        """
        s = SIZES[size]
        request = PlacementRequest(tenant_id, size, s.memory_bytes, s.cpus, required_node, avoid, pinned_by,
                                   spread or {})
        nodes = self.nodes.list()
        if len(nodes) == 1 and required_node in (None, nodes[0].name) and not avoid:
            reason = refusal(s, self._capacity(nodes[0]), self.cfg.admission.memory_overcommit)
            if reason is not None:
                raise Conflict(reason, field="size")
        chosen = place(self.views(), request)
        if isinstance(chosen, Placement):
            return chosen.node
        chosen = place(self.views(empty=True), request)  # where it fits once memory is freed
        if isinstance(chosen, Placement):
            return chosen.node
        raise Conflict(chosen.reason, field="size")

    def is_down(self, node_name: str | None) -> bool:
        """Whether node NODE_NAME has stopped heartbeating (an unknown node counts as down)."""
        try:
            node = self.nodes.get(node_name or "")
        except NotFound:
            return True
        return node.state(time.time(), self.cfg.nodes.down_after) == "down"

    def admit_start(self, node_name: str, cid: str, size: str, placed: list[Container]) -> None:
        """A 409 unless node NODE_NAME is up and has SIZE's memory free now, besides what the PLACED containers hold."""
        node = self.nodes.get(node_name)
        if node.state(time.time(), self.cfg.nodes.down_after) == "down":
            raise Conflict(f"node {node_name}, which holds container {cid[:12]}, is down")
        allocated = sum(SIZES[c.spec.size].memory_bytes for c in placed if c.id != cid and holds_memory(c))
        reason = refusal(SIZES[size], self._capacity(node), self.cfg.admission.memory_overcommit, allocated)
        if reason is not None:
            raise Conflict(reason, field="size")
