"""Admission control: whether a node can hold a container of a given size (a pure function)."""

from __future__ import annotations

from seabox.model.node import NodeCapacity
from seabox.model.sizes import GiB, MiB, Size


def _bytes(n: int) -> str:
    if n >= GiB:
        return f"{n / GiB:.1f}".removesuffix(".0") + " GiB"
    return f"{n // MiB} MiB"


def _cpus(n: float) -> str:
    return f"{n:g} CPU" + ("" if n == 1 else "s")


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
    has = _bytes(node.memory_bytes)
    if overcommit != 1:
        has += f" ({_bytes(allocatable)} at memory overcommit {overcommit:g})"
    return (
        f"size {size.name} needs {_bytes(size.memory_bytes)} of memory and {_cpus(size.cpus)}; "
        f"node {node.name} has {has} and {_cpus(node.cpus)} ({_bytes(free)} free)"
    )
