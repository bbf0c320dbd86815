"""Resolving a tenant's security groups into the Firewall each of its containers gets (pure; no I/O).

A container in no group gets None (the default policy). A container in groups gets the union of
their rules; a rule's remote_group_name becomes the /32 addresses of the tenant's containers in that
group, wherever they run (adjacent addresses collapsed into CIDRs), so membership changes show in the next batch every node is built.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from ipaddress import IPv4Address, collapse_addresses
from typing import Any

from seabox.model.container import Container
from seabox.model.firewall import Firewall, FirewallRule

RuleKey = tuple[str, str, int, int, tuple[str, ...]]


class TenantFirewalls:
    """One tenant's groups (name -> stored rules) and containers; of() builds a container's Firewall."""

    def __init__(self, containers: Iterable[Container], groups: dict[str, list[dict[str, Any]]]) -> None:
        self.groups = groups
        members: dict[str, set[IPv4Address]] = defaultdict(set)
        for c in containers:
            if c.status.ip:
                for name in c.spec.security_groups:
                    members[name].add(IPv4Address(c.status.ip))
        # the members' /32s, adjacent ones collapsed into the CIDRs they fill (the same addresses, fewer entries)
        self.members = {name: [str(n) for n in collapse_addresses(ips)] for name, ips in members.items()}
        self._resolved: dict[str, list[FirewallRule]] = {}
        self._unions: dict[tuple[str, ...], Firewall] = {}

    def rules(self, group: str) -> list[FirewallRule]:
        """GROUP's rules with remote groups resolved (a group that is gone has none: its members allow nothing)."""
        if group not in self._resolved:
            self._resolved[group] = [self._rule(r) for r in self.groups.get(group, [])]
        return self._resolved[group]

    def _rule(self, r: dict[str, Any]) -> FirewallRule:
        remote_group = r.get("remote_group_name")
        remotes = list(self.members.get(remote_group, [])) if remote_group is not None else [r["remote_ip_prefix"]]
        return FirewallRule(
            direction=r["direction"],
            protocol=r["protocol"],
            port_min=r.get("port_range_min") or 0,
            port_max=r.get("port_range_max") or 0,
            remotes=remotes,
        )

    def of(self, groups: list[str]) -> Firewall | None:
        """The Firewall of a container in GROUPS: the union of their rules (each distinct rule once), or None.

        Containers in the same groups share one Firewall object.
        """
        if not groups:
            return None
        key = tuple(groups)
        if key not in self._unions:
            self._unions[key] = self._union(groups)
        return self._unions[key]

    def _union(self, groups: list[str]) -> Firewall:
        seen: set[RuleKey] = set()
        union: list[FirewallRule] = []
        for group in groups:
            for rule in self.rules(group):
                key = (rule.direction, rule.protocol, rule.port_min, rule.port_max, tuple(rule.remotes))
                if key not in seen:
                    seen.add(key)
                    union.append(rule)
        return Firewall(rules=union)
