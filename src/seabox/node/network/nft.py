"""The node's nftables table: a pure JSON batch builder from desired state, and its atomic apply via `nft -j`."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, collapse_addresses
from typing import Any, Literal

from seabox.errors import InvalidArgument, RuntimeFailure
from seabox.node.network.names import check_table_name

Command = dict[str, Any]
Expr = dict[str, Any]

FAMILY = "inet"
NFT_ARGV = ("nft", "-j", "-f", "-")
# Every tenant bridge of every Seabox table is named sbx-t<index>; nft reads a trailing * as a prefix match.
# Named sets and verdict maps of the table.
TENANT_SUBNETS = "tenant_subnets"
# Only this table's bridges: a wildcard would also match another Seabox table's bridges (a second
# server, or a leftover table) and, with br_netfilter on, drop traffic inside their tenant networks.
TENANT_BRIDGES = "tenant_bridges"
OWN_BRIDGES = f"@{TENANT_BRIDGES}"
TENANT_FORWARD = "tenant_forward"
TENANT_INPUT = "tenant_input"
# The chain every tenant chain jumps to before traffic leaves the tenant network, and its range set.
EGRESS = "egress"
EGRESS_BLOCKED = "egress_blocked"
# Host loopback: dropped by an explicit rule, whatever net.ipv4.conf.*.route_localnet says.
LOOPBACK = IPv4Network("127.0.0.0/8")
# Link-local, where clouds put their metadata service (169.254.169.254): always blocked.
LINK_LOCAL = IPv4Network("169.254.0.0/16")
# Base-chain priorities as nft names them: filter = 0, srcnat = 100.
PRIORITY_FILTER = 0
PRIORITY_SRCNAT = 100


@dataclass(frozen=True)
class GatewayService:
    """A host service tenant containers may reach on their own bridge's gateway address."""

    protocol: Literal["tcp", "udp"]
    port: int


@dataclass(frozen=True)
class Endpoint:
    """A TCP or UDP service at one IPv4 address."""

    address: IPv4Address
    protocol: Literal["tcp", "udp"]
    port: int


@dataclass(frozen=True)
class EgressPolicy:
    """What tenant traffic leaving its own network may not reach, besides the node itself and link-local."""

    blocked: tuple[IPv4Network, ...] = ()
    # Reachable even on the node or in a blocked range (the tenant API, the resolvers of resolv.conf).
    allowed: tuple[Endpoint, ...] = ()
    # The control plane's listeners: dropped unless allowed, even where they are not the node's.
    listeners: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class TenantRules:
    """One tenant network present on this node, as the rules see it."""

    index: int
    subnet: IPv4Network
    gateway: IPv4Address
    bridge: str

    @property
    def forward_chain(self) -> str:
        return f"tenant_{self.index}"

    @property
    def input_chain(self) -> str:
        return f"tenant_{self.index}_in"


@dataclass(frozen=True)
class OverlayRules:
    """A tenant network spanning nodes: its VXLAN id and the underlay addresses that may send into it."""

    vni: int
    peers: tuple[IPv4Address, ...]


@dataclass(frozen=True)
class RuleSet:
    """Desired content of the node's table; later features (floating IPs, security groups, LB) add fields."""

    table: str
    tenants: tuple[TenantRules, ...] = ()
    # Nothing serves tenants on their gateway yet: no service is open there by default.
    gateway_services: tuple[GatewayService, ...] = ()
    egress: EgressPolicy = EgressPolicy()
    overlays: tuple[OverlayRules, ...] = ()
    vxlan_port: int = 4789


def build_batch(state: RuleSet) -> dict[str, Any]:
    """The one-transaction batch that replaces the whole table with state (add, delete, re-create)."""
    check_table_name(state.table)
    indexes = [t.index for t in state.tenants]
    if len(set(indexes)) != len(indexes):
        raise InvalidArgument("duplicate tenant index in rule set")
    commands: list[Command] = [{"metainfo": {"json_schema_version": 1}}]
    commands += _reset_table(state.table)
    commands += _base_chains(state.table)
    commands += _sets(state)  # before the rules that name them
    commands += _egress_chain(state)  # before the tenant chains that jump to it
    for tenant in state.tenants:
        commands += _tenant_chains(state, tenant)
    commands += _maps(state)  # after the chains they jump to
    commands += _forward_rules(state.table)
    commands += _input_rules(state)
    commands += _postrouting_rules(state)
    return {"nftables": commands}


def delete_batch(table: str) -> dict[str, Any]:
    """A batch removing the table if it exists (adding it first makes the delete unconditional)."""
    check_table_name(table)
    commands = [{"metainfo": {"json_schema_version": 1}}, *_table_cmd("add", table), *_table_cmd("delete", table)]
    return {"nftables": commands}


def apply(batch: dict[str, Any]) -> None:
    """Feed batch to `nft -j -f -`; the kernel commits it as one transaction or not at all."""
    try:
        proc = subprocess.run(
            list(NFT_ARGV), input=json.dumps(batch), capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeFailure(f"nft failed to run: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeFailure(f"nft rejected the batch: {proc.stderr.strip()}")


def table_exists(table: str) -> bool:
    """Whether `inet <table>` is present in the kernel."""
    check_table_name(table)
    try:
        proc = subprocess.run(
            ["nft", "-j", "list", "tables", FAMILY], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeFailure(f"nft failed to run: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeFailure(f"nft list tables failed: {proc.stderr.strip()}")
    listing = json.loads(proc.stdout)["nftables"]
    return any(item.get("table", {}).get("name") == table for item in listing)


# --- sections of the batch ------------------------------------------------------------------


def _table_cmd(verb: str, table: str) -> list[Command]:
    return [{verb: {"table": {"family": FAMILY, "name": table}}}]


def _reset_table(table: str) -> list[Command]:
    return _table_cmd("add", table) + _table_cmd("delete", table) + _table_cmd("add", table)


def _chain(table: str, name: str, **base: object) -> Command:
    return {"add": {"chain": {"family": FAMILY, "table": table, "name": name, **base}}}


def _rule(table: str, chain: str, *expr: Expr) -> Command:
    return {"add": {"rule": {"family": FAMILY, "table": table, "chain": chain, "expr": list(expr)}}}


def _base_chains(table: str) -> list[Command]:
    filter_chain = {"type": "filter", "prio": PRIORITY_FILTER, "policy": "accept"}
    return [
        _chain(table, "forward", hook="forward", **filter_chain),
        _chain(table, "input", hook="input", **filter_chain),
        _chain(table, "postrouting", type="nat", hook="postrouting", prio=PRIORITY_SRCNAT, policy="accept"),
    ]


def _sets(state: RuleSet) -> list[Command]:
    common = {"family": FAMILY, "table": state.table}
    subnets: dict[str, Any] = {**common, "name": TENANT_SUBNETS, "type": "ipv4_addr", "flags": ["interval"]}
    bridges: dict[str, Any] = {**common, "name": TENANT_BRIDGES, "type": "ifname"}
    if state.tenants:
        subnets["elem"] = [_prefix(t.subnet) for t in state.tenants]
        bridges["elem"] = [t.bridge for t in state.tenants]
    blocked = collapse_addresses((LINK_LOCAL, *state.egress.blocked))
    egress = {**common, "name": EGRESS_BLOCKED, "type": "ipv4_addr", "flags": ["interval"]}
    egress["elem"] = [_prefix(net) for net in blocked]
    return [{"add": {"set": subnets}}, {"add": {"set": bridges}}, {"add": {"set": egress}}]


def _egress_chain(state: RuleSet) -> list[Command]:
    table = state.table
    policy = state.egress
    commands = [
        _chain(table, EGRESS),
        _rule(table, EGRESS, _match("==", _payload("ip", "daddr"), _prefix(LOOPBACK)), {"drop": None}),
    ]
    commands += [_rule(table, EGRESS, *_to(e), {"accept": None}) for e in policy.allowed]
    commands += [_rule(table, EGRESS, *_to(e), {"drop": None}) for e in policy.listeners if e not in policy.allowed]
    commands.append(_rule(table, EGRESS, _match("==", _payload("ip", "daddr"), f"@{EGRESS_BLOCKED}"), {"drop": None}))
    return commands


def _maps(state: RuleSet) -> list[Command]:
    common = {"family": FAMILY, "table": state.table}
    forward: dict[str, Any] = {**common, "name": TENANT_FORWARD, "type": "ifname", "map": "verdict"}
    inputs: dict[str, Any] = {**common, "name": TENANT_INPUT, "type": "ifname", "map": "verdict"}
    if state.tenants:
        forward["elem"] = [[t.bridge, {"jump": {"target": t.forward_chain}}] for t in state.tenants]
        inputs["elem"] = [[t.bridge, {"jump": {"target": t.input_chain}}] for t in state.tenants]
    return [{"add": {"map": forward}}, {"add": {"map": inputs}}]


def _tenant_chains(state: RuleSet, tenant: TenantRules) -> list[Command]:
    table = state.table
    out = tenant.forward_chain
    inp = tenant.input_chain
    commands = [_chain(table, out), _chain(table, inp)]
    # Forward, from this tenant's bridge: its own bridge (bridged frames, seen through br_netfilter)
    # is fine; any other tenant bridge is not; only the tenant's own IPv4 addresses may leave, and
    # only to where the egress chain lets them.
    commands += [
        _rule(table, out, _match("==", _meta("oifname"), tenant.bridge), {"accept": None}),
        _rule(table, out, _match("==", _meta("oifname"), OWN_BRIDGES), {"drop": None}),
        _rule(table, out, _match("!=", _meta("nfproto"), "ipv4"), {"drop": None}),
        _rule(table, out, _match("!=", _payload("ip", "saddr"), _prefix(tenant.subnet)), {"drop": None}),
        _rule(table, out, {"jump": {"target": EGRESS}}),
        _rule(table, out, {"accept": None}),
    ]
    # Input, from this tenant's bridge to the host: the listed services on its own gateway, and
    # what the egress chain accepts (the tenant API, resolvers); nothing else.
    for service in state.gateway_services:
        on_gateway = Endpoint(tenant.gateway, service.protocol, service.port)
        commands.append(_rule(table, inp, *_to(on_gateway), {"accept": None}))
    commands.append(_rule(table, inp, {"jump": {"target": EGRESS}}))
    commands.append(_rule(table, inp, {"drop": None}))
    return commands


def _forward_rules(table: str) -> list[Command]:
    return [
        _rule(table, "forward", _ct_established(), {"accept": None}),
        _rule(table, "forward", {"vmap": {"key": _meta("iifname"), "data": f"@{TENANT_FORWARD}"}}),
        # Nothing opens a connection into a tenant network from outside it.
        _rule(table, "forward", _match("==", _meta("oifname"), OWN_BRIDGES), {"drop": None}),
    ]


def _input_rules(state: RuleSet) -> list[Command]:
    table = state.table
    # VXLAN frames of a tenant's VNI are taken only from that overlay's peers: anyone else could
    # otherwise inject frames into the tenant's network (the VNI is bits 32-55 of the VXLAN header).
    overlays = [
        _rule(
            table,
            "input",
            _match("==", _payload("udp", "dport"), state.vxlan_port),
            _match("==", {"payload": {"base": "th", "offset": 96, "len": 24}}, overlay.vni),
            *_from_others(overlay.peers),
            {"drop": None},
        )
        for overlay in state.overlays
    ]
    return overlays + [
        _rule(table, "input", _match("==", _meta("iifname"), OWN_BRIDGES), _ct_established(), {"accept": None}),
        _rule(table, "input", {"vmap": {"key": _meta("iifname"), "data": f"@{TENANT_INPUT}"}}),
        _rule(table, "input", _match("==", _meta("iifname"), OWN_BRIDGES), {"drop": None}),
    ]


def _from_others(peers: tuple[IPv4Address, ...]) -> list[Expr]:
    """Matches a source address that is none of peers (every address when there are none)."""
    return [_match("!=", _payload("ip", "saddr"), {"set": [str(p) for p in peers]})] if peers else []


def _postrouting_rules(state: RuleSet) -> list[Command]:
    # Only what came in over this table's bridges: with br_netfilter, frames bridged inside another
    # node's tenant network (same subnets, its own bridge) pass this hook too and must stay untouched.
    return [
        _rule(
            state.table,
            "postrouting",
            _match("==", _payload("ip", "saddr"), f"@{TENANT_SUBNETS}"),
            _match("==", _meta("iifname"), OWN_BRIDGES),
            _match("!=", _meta("oifname"), OWN_BRIDGES),
            {"masquerade": None},
        )
    ]


# --- expressions ----------------------------------------------------------------------------


def _match(op: str, left: Expr, right: object) -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def _payload(protocol: str, fieldname: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": fieldname}}


def _prefix(subnet: IPv4Network) -> Expr:
    return {"prefix": {"addr": str(subnet.network_address), "len": subnet.prefixlen}}


def _to(endpoint: Endpoint) -> tuple[Expr, Expr]:
    return (
        _match("==", _payload("ip", "daddr"), str(endpoint.address)),
        _match("==", _payload(endpoint.protocol, "dport"), endpoint.port),
    )


def _ct_established() -> Expr:
    return _match("in", {"ct": {"key": "state"}}, ["established", "related"])
