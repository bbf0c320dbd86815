"""Source checks on the tenant bridges: a frame a container sends carries its own IPv4 address (and ARP
claims only it), so no container passes for a sibling of its subnet. A `bridge` family table of the same
name as the node's, in the same batch."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from seabox.node.network.nft_expr import Command, concat, match, meta, payload

FAMILY = "bridge"
PORTS = "container_ports"  # every container veth the node knows the address of
SOURCES = "container_sources"  # veth . its container's address
# Before br_netfilter (priority 0 of the bridge prerouting hook) hands the frame to the inet hooks.
PRIORITY = -300


@dataclass(frozen=True)
class Port:
    """A container's host-side veth and the one address it may send from."""

    veth: str
    ip: IPv4Address


def commands(table: str, ports: tuple[Port, ...]) -> list[Command]:
    """The bridge table, replaced whole: its sets and the prerouting chain checking them."""
    common = {"family": FAMILY, "table": table}
    names: dict[str, Any] = {**common, "name": PORTS, "type": "ifname"}
    sources: dict[str, Any] = {**common, "name": SOURCES, "type": ["ifname", "ipv4_addr"]}
    if ports:
        names["elem"] = [p.veth for p in ports]
        sources["elem"] = [concat(p.veth, str(p.ip)) for p in ports]
    ours = match("==", meta("iifname"), f"@{PORTS}")
    return [
        *(_table(verb, table) for verb in ("add", "delete", "add")),
        {"add": {"set": names}},
        {"add": {"set": sources}},
        {"add": {"chain": {**common, "name": "prerouting", "type": "filter", "hook": "prerouting",
                           "prio": PRIORITY, "policy": "accept"}}},  # fmt: skip
        _rule(table, ours, match("==", payload("ether", "type"), "ip"),
              match("!=", concat(meta("iifname"), payload("ip", "saddr")), f"@{SOURCES}")),  # fmt: skip
        _rule(table, ours, match("==", payload("ether", "type"), "arp"),
              match("!=", concat(meta("iifname"), payload("arp", "saddr ip")), f"@{SOURCES}")),  # fmt: skip
    ]


def delete(table: str) -> list[Command]:
    """The bridge table removed if it exists."""
    return [_table("add", table), _table("delete", table)]


def _table(verb: str, table: str) -> Command:
    return {verb: {"table": {"family": FAMILY, "name": table}}}


def _rule(table: str, *expr: dict[str, Any]) -> Command:
    return {"add": {"rule": {"family": FAMILY, "table": table, "chain": "prerouting", "expr": [*expr, {"drop": None}]}}}
