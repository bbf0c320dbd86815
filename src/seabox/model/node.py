"""What a node offers containers: its memory and CPUs, as the node agent measures them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeCapacity:
    """A node's name, total memory in bytes and the number of CPUs its containers may run on."""

    name: str
    memory_bytes: int
    cpus: int
