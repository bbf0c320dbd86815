"""Published ports: a container port reachable from outside on the container's floating IP."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class PortMapping(BaseModel):
    """One published port (a range expands to several mappings)."""

    container_port: int
    fip_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
