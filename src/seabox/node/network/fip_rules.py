"""Floating IPs in the node's table: DNAT of published ports, SNAT of the container's egress to its FIP,
and nothing else addressed to a FIP."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Literal

from seabox.node.network.nft_expr import FAMILY, Command, Expr, concat, ct, match, meta, payload, rule

FIPS = "fips"  # every FIP this node serves
FIP_SNAT = "fip_snat"  # container address -> its fip
PUBLISHED = "published"  # container address . protocol . container port, for DNAT'd traffic
# dstnat as nft names it: before routing, so a DNAT'd packet is forwarded, not delivered to the host
PRIORITY_DSTNAT = -100


@dataclass(frozen=True)
class Forward:
    """One published port: fip:fip_port/protocol reaches the container's container_port."""

    protocol: Literal["tcp", "udp"]
    fip_port: int
    container_port: int


@dataclass(frozen=True)
class FloatingIP:
    """A FIP this node serves, the container (by private address) holding it, and its published ports."""

    fip: IPv4Address
    ip: IPv4Address
    ports: tuple[Forward, ...] = ()


def sets(
    table: str,
    fips: tuple[FloatingIP, ...],
    service_fips: tuple[IPv4Address, ...] = (),
    service_targets: list[tuple[str, str, int]] | None = None,
) -> list[Command]:
    """The FIP set (containers' and services' FIPs), the SNAT map, and the published set (published ports,
    and the backends services' FIPs reach, as address . protocol . port)."""
    common = {"family": FAMILY, "table": table}
    addresses: dict[str, Any] = {**common, "name": FIPS, "type": "ipv4_addr"}
    snat: dict[str, Any] = {**common, "name": FIP_SNAT, "type": "ipv4_addr", "map": "ipv4_addr"}
    published: dict[str, Any] = {**common, "name": PUBLISHED, "type": ["ipv4_addr", "inet_proto", "inet_service"]}
    forwards = {(str(f.ip), p.protocol, p.container_port) for f in fips for p in f.ports}
    forwards.update(service_targets or ())
    every_fip = sorted({*(f.fip for f in fips), *service_fips})
    if every_fip:
        addresses["elem"] = [str(fip) for fip in every_fip]
    if fips:
        snat["elem"] = [[str(f.ip), str(f.fip)] for f in fips]
    if forwards:
        published["elem"] = [concat(*element) for element in sorted(forwards)]
    return [{"add": {"set": addresses}}, {"add": {"map": snat}}, {"add": {"set": published}}]


def prerouting_rules(table: str, fips: tuple[FloatingIP, ...]) -> list[Command]:
    """A new connection to fip:port of a published port goes to the container (later packets follow
    conntrack). One rule per port (nft 1.0.6 cannot read a DNAT map of address . port from JSON); the nat
    chain sees only each connection's first packet."""
    return [
        rule(
            table,
            "prerouting",
            match("==", payload("ip", "daddr"), str(f.fip)),
            match("==", payload(p.protocol, "dport"), p.fip_port),
            {"dnat": {"family": "ip", "addr": str(f.ip), "port": p.container_port}},
        )
        for f in fips
        for p in f.ports
    ]


def published() -> tuple[Expr, Expr]:
    """Matches a connection DNAT'd to one of the published ports (the only way in from outside)."""
    key = concat(payload("ip", "daddr"), meta("l4proto"), payload("th", "dport"))
    return match("in", ct("status"), ["dnat"]), match("==", key, f"@{PUBLISHED}")


def input_rules(table: str) -> list[Command]:
    """What is still addressed to a FIP on the input hook was not DNAT'd: no host listener answers on a FIP."""
    return [rule(table, "input", match("==", payload("ip", "daddr"), f"@{FIPS}"), {"drop": None})]


def snat_rule(table: str, public_interface: str, own_bridges: str, tenant_subnets: str) -> Command:
    """A container holding a FIP leaves through the public interface with the FIP as its source."""
    return rule(
        table,
        "postrouting",
        match("==", payload("ip", "saddr"), tenant_subnets),
        match("==", meta("iifname"), own_bridges),
        match("==", meta("oifname"), public_interface),
        _to_fip(),
    )


def hairpin_rules(table: str, own_bridges: str, tenant_subnets: str) -> list[Command]:
    """A container reaching a FIP on this node (DNAT'd from a tenant address to a tenant bridge): it comes
    from its own FIP if it has one, else from the target bridge's gateway, so that replies come back
    through the node (and conntrack) and a tenant's private address never reaches another tenant. No
    iifname: when client and target share a bridge, br_netfilter bridges the DNAT'd frame, and a bridged
    frame's postrouting hook has no input interface."""
    hairpin = (
        match("in", ct("status"), ["dnat"]),
        match("==", {"ct": {"key": "ip daddr", "dir": "original"}}, f"@{FIPS}"),  # not a service VIP's
        match("==", payload("ip", "saddr"), tenant_subnets),
        match("==", meta("oifname"), own_bridges),
    )
    return [rule(table, "postrouting", *hairpin, _to_fip()), rule(table, "postrouting", *hairpin, {"masquerade": None})]


def _to_fip() -> Expr:
    """SNAT to the FIP of the packet's source container (no match for a container without one)."""
    return {"snat": {"family": "ip", "addr": {"map": {"key": payload("ip", "saddr"), "data": f"@{FIP_SNAT}"}}}}
