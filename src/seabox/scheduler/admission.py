"""Admission control: whether a node can hold a container of a given size (a pure function)."""

from __future__ import annotations

from seabox.model.humanize import human_bytes, human_cpus
from seabox.model.node import NodeCapacity
from seabox.model.sizes import Size


def refusal(size: Size, node: NodeCapacity, overcommit: float, allocated: int | None = None) -> str | None:
    """Why NODE cannot take a container of SIZE, or None if it can.

    Without ALLOCATED this asks whether the size can ever fit: its CPUs within the node's, its
    memory within the node's memory times OVERCOMMIT (and never above the node's memory). With
    ALLOCATED (the bytes the node's other running containers hold) it also asks whether the size
    fits in what is free now.
    """
    allocatable = int(node.memory_bytes * overcommit)
    free = max(allocatable - (allocated or 0), 0)
    never = size.cpus > node.cpus or size.memory_bytes > min(node.memory_bytes, allocatable)
    if not never and (allocated is None or size.memory_bytes <= free):
        return None
    has = human_bytes(node.memory_bytes)
    if overcommit != 1:
        has += f" ({human_bytes(allocatable)} at memory overcommit {overcommit:g})"
    return (
        f"size {size.name} needs {human_bytes(size.memory_bytes)} of memory and {human_cpus(size.cpus)}; "
        f"node {node.name} has {has} and {human_cpus(node.cpus)} ({human_bytes(free)} free)"
    )
