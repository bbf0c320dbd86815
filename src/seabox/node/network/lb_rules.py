"""Load-balanced services in the node's table: DNAT of a service's VIP:port (from its tenant's bridge) and FIP:port
(from outside) to one backend, chosen in the kernel, and a TCP reset while it has none.

Layout (as kube-proxy's nftables mode): one verdict map `lb_services` (address . port -> the service's chain)
looked up by the prerouting nat chain; a service chain picks a backend chain with `numgen inc mod N`
(roundrobin, leastconn over the least-loaded backends) or `jhash ip saddr mod N` (source); a backend chain
DNATs. The nat chains see only each connection's first packet: conntrack carries the rest, so replacing the
table (one transaction) never moves an established connection, and a backend taken out of the map keeps the
connections it has (draining).

Return traffic: the client and the backend are on the same tenant network (the bridge, spanned to other
nodes by VXLAN), so the DNAT'd frame is bridged to the backend and the backend answers the client directly;
the client's node, whose bridge carries that answer, un-NATs it through conntrack (br_netfilter sees bridged
frames). No masquerade then: the backend, and its security groups, see the client's own address. The one
exception is a backend that is the client itself (a replica reaching its own service): that connection is
marked and masqueraded to the tenant gateway, so the reply comes back through the node.

A FIP reaches every backend. One on this node answers the client through it, as a published port does;
one on another node would answer through its own node's gateway, so that connection is marked and SNAT'd
to the service's SNAT address, which this node holds on the tenant network (node/network/snat_port.py).
This node judges those connections by the backends' security groups (it gets them with the service), on
the client's own address; the backends' nodes let the SNAT address through to the service's backends.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Literal

from seabox.node.network.nft_expr import FAMILY, Command, Expr, chain, concat, ct, match, meta, payload, rule

SERVICES = "lb_services"  # vip . port and fip . port -> the service's chain
REFUSED = "lb_refused"  # in-interface . address . port of services without backends: reset
SNAT_ADDRESSES = "lb_snat"  # fip -> the service's SNAT address
SNAT_PATHS = "lb_snat_paths"  # SNAT address . backend address . port: a FIP's connections from another node
# Set on the first packet of a connection whose backend is its own client (hairpin): masqueraded.
HAIRPIN_MARK = 0x00100000
# Set on the first packet of a FIP's connection to a backend on another node: SNAT'd to the SNAT address.
SNAT_MARK = 0x00200000

Algorithm = Literal["roundrobin", "leastconn", "source"]


@dataclass(frozen=True)
class Target:
    """A backend: its tenant-network address and port."""

    ip: IPv4Address
    port: int


@dataclass(frozen=True)
class Balancer:
    """A service as this node serves it: VIP:port on the tenant's bridge; with fip, FIP:port on the public
    interface too. targets are the backends the map holds now (for leastconn, the least-loaded ones), of
    backends (all of them); fip_targets those the FIP reaches, of which those not in local (the backends
    on this node) from snat, the service's SNAT address (set while it has a FIP, on every node)."""

    id: str
    bridge: str
    vip: IPv4Address
    port: int
    algorithm: Algorithm
    targets: tuple[Target, ...] = ()
    fip: IPv4Address | None = None
    fip_targets: tuple[Target, ...] = ()
    snat: IPv4Address | None = None
    backends: tuple[Target, ...] = ()
    local: tuple[Target, ...] = ()


def sets(table: str, balancers: tuple[Balancer, ...], public_interface: str | None) -> list[Command]:
    """The refused set (before the input rule naming it)."""
    spec: dict[str, Any] = {"family": FAMILY, "table": table, "name": REFUSED,
                            "type": ["ifname", "ipv4_addr", "inet_service"]}  # fmt: skip
    refused = [concat(b.bridge, str(b.vip), b.port) for b in balancers if not b.targets]
    if public_interface is not None:
        refused += [concat(public_interface, str(b.fip), b.port) for b in balancers
                    if b.fip is not None and not b.fip_targets]  # fmt: skip
    if refused:
        spec["elem"] = refused
    common = {"family": FAMILY, "table": table}
    addresses: dict[str, Any] = {**common, "name": SNAT_ADDRESSES, "type": "ipv4_addr", "map": "ipv4_addr"}
    paths: dict[str, Any] = {**common, "name": SNAT_PATHS, "type": ["ipv4_addr", "ipv4_addr", "inet_service"]}
    snat = {str(b.fip): str(b.snat) for b in balancers if public_interface is not None and b.fip and b.snat}
    if snat:
        addresses["elem"] = [[fip, address] for fip, address in sorted(snat.items())]
    reached = sorted({(str(b.snat), str(t.ip), t.port) for b in balancers if b.snat is not None for t in b.backends})
    if reached:
        paths["elem"] = [concat(*element) for element in reached]
    return [{"add": {"set": spec}}, {"add": {"map": addresses}}, {"add": {"set": paths}}]


def chains(table: str, balancers: tuple[Balancer, ...], public_interface: str | None) -> list[Command]:
    """Each service's chains (before the map that jumps to them)."""
    commands: list[Command] = []
    for n, b in enumerate(balancers):
        if b.targets:
            commands += _service_chain(table, f"lb_{n}", b.algorithm, b.targets, b.id, iif=b.bridge)
        if public_interface is not None and b.fip is not None and b.fip_targets:
            remote = frozenset(t for t in b.fip_targets if t not in b.local)
            commands += _service_chain(table, f"lb_{n}_fip", b.algorithm, b.fip_targets, b.id, iif=None, snat=remote)
    return commands


def service_map(table: str, balancers: tuple[Balancer, ...], public_interface: str | None) -> list[Command]:
    spec: dict[str, Any] = {"family": FAMILY, "table": table, "name": SERVICES,
                            "type": ["ipv4_addr", "inet_service"], "map": "verdict"}  # fmt: skip
    elements = []
    for n, b in enumerate(balancers):
        if b.targets:
            elements.append([concat(str(b.vip), b.port), {"goto": {"target": f"lb_{n}"}}])
        if public_interface is not None and b.fip is not None and b.fip_targets:
            elements.append([concat(str(b.fip), b.port), {"goto": {"target": f"lb_{n}_fip"}}])
    if elements:
        spec["elem"] = elements
    return [{"add": {"map": spec}}]


def prerouting_rules(table: str) -> list[Command]:
    """A new TCP connection to a service address:port goes to its chain."""
    key = concat(payload("ip", "daddr"), payload("tcp", "dport"))
    return [rule(table, "prerouting", _tcp(), {"vmap": {"key": key, "data": f"@{SERVICES}"}})]


def input_rules(table: str) -> list[Command]:
    """A connection to a service without backends is refused with a TCP reset (not left to time out);
    first in the input chain, before the drops of FIP and tenant traffic."""
    key = concat(meta("iifname"), payload("ip", "daddr"), payload("tcp", "dport"))
    return [rule(table, "input", _tcp(), match("==", key, f"@{REFUSED}"), {"reject": {"type": "tcp reset"}})]


def hairpin_rule(table: str) -> Command:
    """First in postrouting: a connection DNAT'd to its own client comes from the gateway, so the reply
    comes back through the node (the bridge port carries the frame back: its hairpin mode is on)."""
    marked = match("==", {"&": [meta("mark"), HAIRPIN_MARK]}, HAIRPIN_MARK)
    return rule(table, "postrouting", marked, {"masquerade": None})


def forward_rules(table: str) -> list[Command]:
    """First in the forward chain, before the security groups: a FIP's connection from the SNAT address of a
    service to its backend here (and its replies) passes, as the FIP's node judged it already."""
    original = concat(payload("ip", "saddr"), payload("ip", "daddr"), payload("tcp", "dport"))
    reply = concat(payload("ip", "daddr"), payload("ip", "saddr"), payload("tcp", "sport"))
    return [
        rule(table, "forward", _tcp(), match("==", ct("direction"), "original"), match("==", original, f"@{SNAT_PATHS}"),
             {"accept": None}),
        rule(table, "forward", _tcp(), match("==", ct("direction"), "reply"), match("==", reply, f"@{SNAT_PATHS}"),
             {"accept": None}),
    ]


def snat_rule(table: str) -> Command:
    """In postrouting: a FIP's connection to a backend on another node comes from the service's SNAT address."""
    marked = match("==", {"&": [meta("mark"), SNAT_MARK]}, SNAT_MARK)
    fip = {"ct": {"key": "ip daddr", "dir": "original"}}
    return rule(table, "postrouting", marked, {"snat": {"family": "ip", "addr": {"map": {"key": fip,
                                                                                         "data": f"@{SNAT_ADDRESSES}"}}}})


def published(balancers: tuple[Balancer, ...], public_interface: str | None) -> list[tuple[str, str, int]]:
    """(address, protocol, port) of the backends a service FIP reaches: let in from outside as published ports."""
    if public_interface is None:
        return []
    seen = {(str(t.ip), "tcp", t.port) for b in balancers if b.fip is not None for t in b.fip_targets}
    return sorted(seen)


def seed(service_id: str) -> int:
    """The jhash seed of a service: stable across table rebuilds and agent restarts (a client keeps its backend)."""
    return zlib.crc32(service_id.encode())


def _service_chain(
    table: str, name: str, algorithm: Algorithm, targets: tuple[Target, ...], service_id: str, *, iif: str | None,
    snat: frozenset[Target] = frozenset(),
) -> list[Command]:
    commands: list[Command] = []
    for i, target in enumerate(targets):  # before the service chain that jumps to them
        backend = f"{name}_{i}"
        commands.append(chain(table, backend))
        commands.append(rule(table, backend, match("==", payload("ip", "saddr"), str(target.ip)),
                             {"mangle": {"key": meta("mark"), "value": HAIRPIN_MARK}}))  # fmt: skip
        if target in snat:
            commands.append(rule(table, backend, {"mangle": {"key": meta("mark"), "value": SNAT_MARK}}))
        commands.append(rule(table, backend, _tcp(), {"dnat": {"family": "ip", "addr": str(target.ip),
                                                                "port": target.port}}))  # fmt: skip
    commands.append(chain(table, name))
    if iif is not None:  # the VIP serves its own tenant's bridge only
        commands.append(rule(table, name, match("!=", meta("iifname"), iif), {"return": None}))
    pick: Expr
    if algorithm == "source":
        pick = {"jhash": {"mod": len(targets), "seed": seed(service_id), "offset": 0, "expr": payload("ip", "saddr")}}
    else:
        pick = {"numgen": {"mode": "inc", "mod": len(targets), "offset": 0}}
    verdicts = [[i, {"goto": {"target": f"{name}_{i}"}}] for i in range(len(targets))]
    commands.append(rule(table, name, {"vmap": {"key": pick, "data": {"set": verdicts}}}))
    return commands


def _tcp() -> Expr:
    return match("==", meta("l4proto"), "tcp")
