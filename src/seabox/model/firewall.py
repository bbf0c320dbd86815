"""A container's resolved firewall: the rules its node enforces (security groups with remote groups resolved)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class FirewallRule(BaseModel):
    """One allowed flow: DIRECTION, PROTOCOL, a port range (0/0: every port; tcp/udp only) and remote CIDRs.

    remotes are IPv4 CIDRs; a remote security group arrives as its members' /32 addresses, and an
    empty list matches nothing.
    """

    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp", "icmp", "any"]
    port_min: int = 0
    port_max: int = 0
    remotes: list[str]


class Firewall(BaseModel):
    """The union of a container's security group rules: what they allow passes (stateful), nothing else."""

    rules: list[FirewallRule]
