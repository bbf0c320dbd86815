"""Security groups in the node's table: each distinct firewall's allow sets and chains, and the maps that send
every packet to or from a firewalled container through them.

Rules are evaluated on every packet, not only on a connection's first one: a packet to container C in
conntrack direction original is checked against C's ingress rules on (ip saddr, th dport), a reply to
C's own outbound flow against its egress rules on (ip saddr, th sport); packets from C likewise
against egress (original, on ip daddr, th dport) and ingress (reply, on ip daddr, th sport). So a
removed rule stops the flows it allowed as soon as the table is replaced, with no conntrack surgery.

Each firewall compiles into two sets of disjoint (remote prefix . protocol . port range) elements (the
kernel refuses overlapping elements of a concatenated interval set), so one lookup decides a packet
whatever the number of rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from ipaddress import IPv4Address, IPv4Network, collapse_addresses
from typing import Any

from seabox.model.firewall import Firewall, FirewallRule
from seabox.node.network.nft_expr import FAMILY, Command, Expr, chain, concat, ct, match, meta, payload, prefix, rule

FW_TO = "fw_to"  # verdict map: a firewalled container's address -> the chain checking packets to it
FW_FROM = "fw_from"  # ... -> the chain checking packets from it
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17}
# The protocol axis cut so that every named protocol is a segment of its own and "any" covers them all.
_PROTO_SEGMENTS = ((0, 0), (1, 1), (2, 5), (6, 6), (7, 16), (17, 17), (18, 255))
ALL_PORTS = (0, 65535)

# (remote, (protocol low, high), (port low, high)): one element of an allow set
Element = tuple[IPv4Network, tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Allowed:
    """What one firewall lets through, as disjoint set elements per direction; compared and hashed by
    key (the firewall's canonical JSON), which stands for them."""

    key: str
    ingress: tuple[Element, ...] = field(compare=False)
    egress: tuple[Element, ...] = field(compare=False)


@dataclass(frozen=True)
class Guard:
    """A firewalled container on this node: its address, and the compiled rules of its groups."""

    ip: IPv4Address
    allowed: Allowed


def compile_firewall(firewall: Firewall, key: str | None = None) -> Allowed:
    """The firewall's rules as disjoint elements (pure); key is its model_dump_json() when known."""
    key = firewall.model_dump_json() if key is None else key
    return Allowed(key, _elements(firewall.rules, "ingress"), _elements(firewall.rules, "egress"))


def _ports(r: FirewallRule) -> tuple[int, int]:
    if r.protocol in ("tcp", "udp") and (r.port_min or r.port_max):
        return r.port_min, r.port_max
    return ALL_PORTS


def _covers(r: FirewallRule, segment: tuple[int, int]) -> bool:
    return r.protocol == "any" or (segment[0] == segment[1] == PROTOCOLS[r.protocol])


def _elements(rules: Iterable[FirewallRule], direction: str) -> tuple[Element, ...]:
    chosen = [r for r in rules if r.direction == direction and r.remotes]
    result: list[Element] = []
    for segment in _PROTO_SEGMENTS:
        spans = [(_ports(r), IPv4Network(remote, strict=False)) for r in chosen if _covers(r, segment)
                 for remote in r.remotes]  # fmt: skip
        for ports, nets in _sweep(spans):
            result += [(net, segment, ports) for net in nets]
    return tuple(result)


def _sweep(spans: list[tuple[tuple[int, int], IPv4Network]]) -> list[tuple[tuple[int, int], tuple[IPv4Network, ...]]]:
    """Cut the port axis where any span starts or ends; each piece gets the union of the remotes over it
    (collapsed, so disjoint); neighbouring pieces with the same remotes are merged."""
    events: dict[int, list[tuple[int, IPv4Network]]] = {}
    for (low, high), net in spans:
        events.setdefault(low, []).append((1, net))
        events.setdefault(high + 1, []).append((-1, net))
    active: dict[IPv4Network, int] = {}
    pieces: list[tuple[tuple[int, int], tuple[IPv4Network, ...]]] = []
    points = sorted(events)
    for point, following in zip(points, points[1:], strict=False):
        for delta, net in events[point]:
            active[net] = active.get(net, 0) + delta
            if not active[net]:
                del active[net]
        if not active:
            continue
        nets = _collapsed(frozenset(active))
        if pieces and pieces[-1][1] == nets and pieces[-1][0][1] == point - 1:
            pieces[-1] = ((pieces[-1][0][0], following - 1), nets)
        else:
            pieces.append(((point, following - 1), nets))
    return pieces


@cache
def _collapsed(nets: frozenset[IPv4Network]) -> tuple[IPv4Network, ...]:
    return tuple(collapse_addresses(nets))


# --- the table's part ----------------------------------------------------------------------


def _distinct(guards: Iterable[Guard]) -> list[Allowed]:
    """Each firewall once, in a stable order: members of one group share its sets and chains."""
    seen: dict[Allowed, None] = {}
    for guard in guards:
        seen.setdefault(guard.allowed, None)
    return list(seen)


def sets_and_chains(table: str, guards: tuple[Guard, ...]) -> list[Command]:
    """The allow sets and the per-firewall chains (before the maps that jump to them)."""
    commands: list[Command] = []
    for n, allowed in enumerate(_distinct(guards)):
        for direction, elements in (("ingress", allowed.ingress), ("egress", allowed.egress)):
            spec: dict[str, Any] = {
                "family": FAMILY, "table": table, "name": f"fw_{n}_{direction}",
                "type": ["ipv4_addr", "inet_proto", "inet_service"], "flags": ["interval"],
            }  # fmt: skip
            if elements:
                spec["elem"] = [_element(e) for e in elements]
            commands.append({"add": {"set": spec}})
        commands += _chains(table, n)
    return commands


def maps(table: str, guards: tuple[Guard, ...]) -> list[Command]:
    """fw_to and fw_from: each firewalled container's address to its firewall's chains."""
    index = {allowed: n for n, allowed in enumerate(_distinct(guards))}
    commands = []
    for name, suffix in ((FW_TO, "to"), (FW_FROM, "from")):
        spec: dict[str, Any] = {"family": FAMILY, "table": table, "name": name, "type": "ipv4_addr", "map": "verdict"}
        if guards:
            spec["elem"] = [[str(g.ip), {"jump": {"target": f"fw_{index[g.allowed]}_{suffix}"}}] for g in guards]
        commands.append({"add": {"map": spec}})
    return commands


def forward_rules(table: str) -> list[Command]:
    """First in the forward chain: packets to, then from, a firewalled container go through its chains."""
    return [
        rule(table, "forward", {"vmap": {"key": payload("ip", "daddr"), "data": f"@{FW_TO}"}}),
        rule(table, "forward", {"vmap": {"key": payload("ip", "saddr"), "data": f"@{FW_FROM}"}}),
    ]


def _chains(table: str, n: int) -> list[Command]:
    ingress, egress = f"@fw_{n}_ingress", f"@fw_{n}_egress"
    to, frm = f"fw_{n}_to", f"fw_{n}_from"
    return [
        chain(table, to),
        rule(table, to, _direction("original"), _lookup("saddr", "dport", ingress), {"return": None}),
        rule(table, to, _direction("reply"), _lookup("saddr", "sport", egress), {"return": None}),
        rule(table, to, *_icmp_related(), {"return": None}),
        rule(table, to, {"drop": None}),
        chain(table, frm),
        rule(table, frm, _direction("original"), _lookup("daddr", "dport", egress), {"return": None}),
        rule(table, frm, _direction("reply"), _lookup("daddr", "sport", ingress), {"return": None}),
        rule(table, frm, *_icmp_related(), {"return": None}),
        rule(table, frm, {"drop": None}),
    ]


def _direction(value: str) -> Expr:
    return match("==", ct("direction"), value)


def _lookup(address: str, port: str, named_set: str) -> Expr:
    key = concat(payload("ip", address), meta("l4proto"), payload("th", port))
    return match("==", key, named_set)


def _icmp_related() -> tuple[Expr, Expr]:
    """ICMP errors about a tracked flow (unreachable, fragmentation needed): path MTU discovery needs them."""
    return match("==", meta("l4proto"), PROTOCOLS["icmp"]), match("in", ct("state"), ["related"])


def _element(element: Element) -> Expr:
    net, (p_low, p_high), (low, high) = element
    remote: object = str(net.network_address) if net.prefixlen == 32 else prefix(net)
    proto: object = p_low if p_low == p_high else {"range": [p_low, p_high]}
    ports: object = low if low == high else {"range": [low, high]}
    return concat(remote, proto, ports)
