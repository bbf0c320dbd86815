"""An indexed, updatable cluster snapshot that places as `place()` does without scanning every node."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from seabox.model.humanize import human_bytes
from seabox.scheduler.place import Placement, Refusal, pinned, why_not
from seabox.scheduler.snapshot import NodeState, NodeView, PlacementRequest


class _Node:
    """One node's mutable record inside a Cluster."""

    __slots__ = ("name", "state", "memory_total", "cpus", "memory_allocated", "containers", "tenants")

    def __init__(self, view: NodeView) -> None:
        self.name = view.name
        self.state: NodeState = view.state
        self.memory_total = view.memory_total
        self.cpus = view.cpus
        self.memory_allocated = view.memory_allocated
        self.containers = view.containers
        self.tenants = {t: c for t, c in view.tenant_containers.items() if c}

    @property
    def free(self) -> int:
        return self.memory_total - self.memory_allocated

    def view(self) -> NodeView:
        return NodeView(self.name, self.state, self.memory_total, self.cpus, self.memory_allocated,
                        self.containers, dict(self.tenants))


class Cluster:
    """NODES indexed for placement; `commit` and `release` keep the index current as containers come and go.

    Ready nodes sit in one list sorted by (free memory, name): the best fit among the nodes that hold
    none of a tenant's containers is the first one past a bisection that the tenant does not use. The
    nodes a tenant does use sit in one such list per count of its containers they hold, so the best
    fit among the nodes holding the fewest is a bisection too; counting the entries past those
    bisections tells when no unused node fits, without a scan. A commit or release re-sorts one node
    in the lists of the tenants it holds. `place` answers exactly as `place(self.views(), request)`.
    """

    def __init__(self, nodes: Iterable[NodeView]) -> None:
        self._nodes: dict[str, _Node] = {}
        for view in nodes:
            if view.name in self._nodes:
                raise ValueError(f"node {view.name} appears twice in the snapshot")
            self._nodes[view.name] = _Node(view)
        ready = [n for n in self._nodes.values() if n.state == "ready"]
        self._by_free = sorted((n.free, n.name) for n in ready)
        # tenant -> count -> the ready nodes holding that many of its containers, by (free memory, name)
        self._levels: dict[str, dict[int, list[tuple[int, str]]]] = {}
        for n in ready:
            for tenant, count in n.tenants.items():
                self._levels.setdefault(tenant, {}).setdefault(count, []).append((n.free, n.name))
        for levels in self._levels.values():
            for entries in levels.values():
                entries.sort()

    def views(self) -> list[NodeView]:
        """The cluster as it stands, one frozen view per node."""
        return [n.view() for n in self._nodes.values()]

    def place(self, request: PlacementRequest) -> Placement | Refusal:
        """Where REQUEST goes, by the policy of `place()`; nothing changes until `commit`."""
        if request.required_node is not None:
            node = self._nodes.get(request.required_node)
            return pinned(node.view() if node else None, request)
        name = self._unused_best_fit(request)
        if name is None:
            name = self._used_best_fit(request)
        return Placement(name) if name is not None else Refusal(why_not(self.views(), request))

    def commit(self, node: str, request: PlacementRequest) -> None:
        """Record that REQUEST's container now holds its memory on NODE."""
        n = self._node(node)
        if request.memory_bytes > n.free:
            raise ValueError(f"node {node} has {human_bytes(max(n.free, 0))} free, "
                             f"not the {human_bytes(request.memory_bytes)} of size {request.size}")
        self._move(n, request.tenant_id, 1, request.memory_bytes)

    def release(self, node: str, request: PlacementRequest) -> None:
        """Record that REQUEST's container left NODE and freed its memory."""
        n = self._node(node)
        if not n.tenants.get(request.tenant_id) or n.memory_allocated < request.memory_bytes:
            raise ValueError(f"node {node} holds no container of size {request.size} of tenant {request.tenant_id}")
        self._move(n, request.tenant_id, -1, -request.memory_bytes)

    def _node(self, name: str) -> _Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise ValueError(f"node {name} is not in the cluster") from None

    def _unused_best_fit(self, request: PlacementRequest) -> str | None:
        """The ready node with the least free memory that fits REQUEST and holds none of its tenant's containers."""
        tenant, memory = request.tenant_id, request.memory_bytes
        by_free, nodes, cpus, avoid = self._by_free, self._nodes, request.cpus, request.avoid_nodes
        first = bisect_left(by_free, (memory, ""))
        levels = self._levels.get(tenant, {})
        used = sum(len(entries) - bisect_left(entries, (memory, "")) for entries in levels.values())
        if used == len(by_free) - first:
            return None  # every node with the memory free holds some of the tenant's containers
        for i in range(first, len(by_free)):
            n = nodes[by_free[i][1]]
            if tenant not in n.tenants and n.cpus >= cpus and n.name not in avoid:
                return n.name
        return None

    def _used_best_fit(self, request: PlacementRequest) -> str | None:
        """Among the ready nodes that fit REQUEST and hold its tenant's containers: fewest of them, then best fit."""
        nodes, memory, cpus, avoid = self._nodes, request.memory_bytes, request.cpus, request.avoid_nodes
        levels = self._levels.get(request.tenant_id, {})
        for count in sorted(levels):
            entries = levels[count]
            for i in range(bisect_left(entries, (memory, "")), len(entries)):
                n = nodes[entries[i][1]]
                if n.cpus >= cpus and n.name not in avoid:
                    return n.name
        return None

    def _move(self, n: _Node, tenant: str, step: int, memory: int) -> None:
        """Add STEP containers of TENANT holding MEMORY bytes (negative to remove) to N, and re-index it."""
        ready = n.state == "ready"
        if ready:
            self._unindex(n)
        count = n.tenants.get(tenant, 0) + step
        n.memory_allocated += memory
        n.containers += step
        if count:
            n.tenants[tenant] = count
        else:
            del n.tenants[tenant]
        if ready:
            self._index(n)

    def _unindex(self, n: _Node) -> None:
        key = (n.free, n.name)
        del self._by_free[bisect_left(self._by_free, key)]
        for tenant, count in n.tenants.items():
            levels = self._levels[tenant]
            entries = levels[count]
            del entries[bisect_left(entries, key)]
            if not entries:
                del levels[count]
                if not levels:
                    del self._levels[tenant]

    def _index(self, n: _Node) -> None:
        key = (n.free, n.name)
        insort(self._by_free, key)
        for tenant, count in n.tenants.items():
            insort(self._levels.setdefault(tenant, {}).setdefault(count, []), key)
