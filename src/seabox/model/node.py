"""Nodes: what a node offers containers (memory, CPUs), and a node's record as operators see it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

NODE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
Schedule = Literal["ready", "cordoned", "draining"]
NodeState = Literal["ready", "down", "cordoned", "draining"]


def check_node_name(name: str) -> str:
    """NAME if it is a valid node name; ValueError saying what one looks like otherwise."""
    if not NODE_NAME_RE.match(name):
        raise ValueError(f"invalid node name {name!r}: 1-63 of [a-z0-9.-], starting with a letter or digit")
    return name


@dataclass(frozen=True)
class NodeCapacity:
    """A node's name, total memory in bytes and the number of CPUs its containers may run on."""

    name: str
    memory_bytes: int
    cpus: int


class Node(BaseModel):
    """A node's record: where it is, what it has, whether it takes containers, when it last spoke."""

    name: str
    address: str
    memory_bytes: int
    cpus: int
    schedule: Schedule  # what the operator set
    registered_at: datetime
    heartbeat_at: datetime

    def state(self, now: float, down_after: float) -> NodeState:
        """down once its heartbeat is older than DOWN_AFTER seconds, else what the operator set."""
        return "down" if now - self.heartbeat_at.timestamp() > down_after else self.schedule
