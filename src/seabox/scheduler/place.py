"""Placement as a pure function: a cluster snapshot and a request -> the node to run on, or why none."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from seabox.model.humanize import human_bytes, human_cpus
from seabox.scheduler.snapshot import NodeView, PlacementRequest


@dataclass(frozen=True)
class Placement:
    """The node the container goes to."""

    node: str


@dataclass(frozen=True)
class Refusal:
    """Why no node can take the container: one sentence, the message of a 409."""

    reason: str


def place(nodes: Sequence[NodeView], request: PlacementRequest) -> Placement | Refusal:
    """Where REQUEST goes among NODES: on a ready node with its memory free (never overcommitted).

    A pinned request goes to its required node or is refused. Otherwise the node holding the fewest
    of the request's group (request.spread), then of the tenant's containers wins (spread), then the one with the least free memory that fits
    (best fit, packing), then the first by name: the same snapshot always gives the same answer.
    """
    if request.required_node is not None:
        return pinned(next((n for n in nodes if n.name == request.required_node), None), request)
    tenant, memory, cpus, avoid = request.tenant_id, request.memory_bytes, request.cpus, request.avoid_nodes
    best: tuple[int, int, int, str] | None = None
    for n in nodes:
        free = n.memory_total - n.memory_allocated
        if n.state != "ready" or free < memory or n.cpus < cpus or n.name in avoid:
            continue
        rank = (request.spread.get(n.name, 0), n.tenant_containers.get(tenant, 0), free, n.name)
        if best is None or rank < best:
            best = rank
    return Placement(best[3]) if best is not None else Refusal(why_not(nodes, request))


def pinned(node: NodeView | None, request: PlacementRequest) -> Placement | Refusal:
    """REQUEST's required node, NODE (None if the cluster has no node of that name), or why it cannot take it."""
    why = f"which holds {request.pinned_by}" if request.pinned_by else "to which this container is pinned"
    subject = f"node {request.required_node} ({why})"
    if node is None:
        return Refusal(f"{subject} is not in the cluster")
    if node.name in request.avoid_nodes:
        return Refusal(f"{subject} is excluded from this placement")
    if node.state != "ready":
        return Refusal(f"{subject} is {node.state}")
    if node.cpus < request.cpus:
        return Refusal(f"{subject} has {human_cpus(node.cpus)}; size {request.size} needs {human_cpus(request.cpus)}")
    if node.memory_free < request.memory_bytes:
        return Refusal(
            f"{subject} has {human_bytes(max(node.memory_free, 0))} free; "
            f"size {request.size} needs {human_bytes(request.memory_bytes)}"
        )
    return Placement(node.name)


def why_not(nodes: Sequence[NodeView], request: PlacementRequest) -> str:
    """Why none of NODES can take unpinned REQUEST (call it only when none can): the first obstacle met."""
    ready = [n for n in nodes if n.state == "ready"]
    if not ready:
        counts = Counter(n.state for n in nodes)
        detail = ", ".join(f"{counts[s]} {s}" for s in ("down", "cordoned", "draining") if counts[s])
        return f"no node is ready ({detail or 'none has joined'})"
    open_ = [n for n in ready if n.name not in request.avoid_nodes]
    if not open_:
        return f"no node is ready except {', '.join(sorted(n.name for n in ready))}, which this placement avoids"
    able = [n for n in open_ if n.cpus >= request.cpus]
    if not able:
        most = max(n.cpus for n in open_)
        return f"no node has {human_cpus(request.cpus)} for size {request.size}; most CPUs: {most}"
    largest = max(max(n.memory_free for n in able), 0)
    return (
        f"no node has {human_bytes(request.memory_bytes)} free for size {request.size}; "
        f"largest free: {human_bytes(largest)}"
    )
