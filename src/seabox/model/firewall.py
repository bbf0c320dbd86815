"""A container's security groups as its node enforces them: the union of their rules, remote groups resolved."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class FirewallRule(BaseModel):
    """Traffic one rule allows: remotes are IPv4 CIDRs (remote groups as their members' /32s; none: nothing)."""

    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp", "icmp", "any"]
    port_min: int = 0  # 0/0: all ports; only for tcp and udp
    port_max: int = 0
    remotes: list[str]


class Firewall(BaseModel):
    """Everything a firewalled container may send and receive: its rules and nothing else (stateful)."""

    rules: list[FirewallRule]
