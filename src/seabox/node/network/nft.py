"""The node's nftables table: a pure JSON batch builder from desired state, and its atomic apply via `nft -j`."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, collapse_addresses
from typing import Any, Literal

from seabox.errors import InvalidArgument, RuntimeFailure
from seabox.node.network import fip_rules, fw_rules, lb_rules, spoof_rules
from seabox.node.network.names import check_table_name
from seabox.node.network.nft_expr import FAMILY, Command, Expr, chain, match, meta, payload, prefix, rule

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
    # Floating IPs: served only through a public interface (none: no FIP rules at all).
    public_interface: str | None = None
    fips: tuple[fip_rules.FloatingIP, ...] = ()
    # Firewalled containers (those with security groups); the others have the default policy.
    guards: tuple[fw_rules.Guard, ...] = ()
    # Container veths and their addresses: the bridge table drops frames from any other source address.
    ports: tuple[spoof_rules.Port, ...] = ()
    # Load-balanced services of the tenants on this node.
    balancers: tuple[lb_rules.Balancer, ...] = ()

    @property
    def service_fips(self) -> tuple[IPv4Address, ...]:
        """The services' FIPs this node serves (none without a public interface)."""
        if self.public_interface is None:
            return ()
        return tuple(b.fip for b in self.balancers if b.fip is not None)


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
    lb_public = lb_rules.published(state.balancers, state.public_interface)
    commands += fip_rules.sets(state.table, state.fips, state.service_fips, lb_public)
    commands += lb_rules.sets(state.table, state.balancers, state.public_interface)
    commands += fw_rules.sets_and_chains(state.table, state.guards)  # before the maps that jump to them
    commands += _egress_chain(state)  # before the tenant chains that jump to it
    for tenant in state.tenants:
        commands += _tenant_chains(state, tenant)
    commands += lb_rules.chains(state.table, state.balancers, state.public_interface)
    commands += _maps(state)  # after the chains they jump to
    commands += lb_rules.service_map(state.table, state.balancers, state.public_interface)
    commands += fw_rules.maps(state.table, state.guards)
    commands += fip_rules.prerouting_rules(state.table, state.fips)
    if state.balancers:
        commands += lb_rules.prerouting_rules(state.table)
    commands += _forward_rules(state)
    commands += _input_rules(state)
    commands += _postrouting_rules(state)
    commands += spoof_rules.commands(state.table, state.ports)
    return {"nftables": commands}


def delete_batch(table: str) -> dict[str, Any]:
    """A batch removing the table if it exists (adding it first makes the delete unconditional)."""
    check_table_name(table)
    commands = [{"metainfo": {"json_schema_version": 1}}, *_table_cmd("add", table), *_table_cmd("delete", table)]
    return {"nftables": commands}


def delete_node_batch(table: str) -> dict[str, Any]:
    """A batch removing the node's tables (inet, and the bridge one of the same name) if they exist."""
    batch = delete_batch(table)
    batch["nftables"] += spoof_rules.delete(table)
    return batch


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


def _base_chains(table: str) -> list[Command]:
    filter_chain = {"type": "filter", "prio": PRIORITY_FILTER, "policy": "accept"}
    return [
        chain(table, "forward", hook="forward", **filter_chain),
        chain(table, "input", hook="input", **filter_chain),
        chain(table, "postrouting", type="nat", hook="postrouting", prio=PRIORITY_SRCNAT, policy="accept"),
        chain(table, "prerouting", type="nat", hook="prerouting", prio=fip_rules.PRIORITY_DSTNAT, policy="accept"),
    ]


def _sets(state: RuleSet) -> list[Command]:
    common = {"family": FAMILY, "table": state.table}
    subnets: dict[str, Any] = {**common, "name": TENANT_SUBNETS, "type": "ipv4_addr", "flags": ["interval"]}
    bridges: dict[str, Any] = {**common, "name": TENANT_BRIDGES, "type": "ifname"}
    if state.tenants:
        subnets["elem"] = [prefix(t.subnet) for t in state.tenants]
        bridges["elem"] = [t.bridge for t in state.tenants]
    blocked = collapse_addresses((LINK_LOCAL, *state.egress.blocked))
    egress = {**common, "name": EGRESS_BLOCKED, "type": "ipv4_addr", "flags": ["interval"]}
    egress["elem"] = [prefix(net) for net in blocked]
    return [{"add": {"set": subnets}}, {"add": {"set": bridges}}, {"add": {"set": egress}}]


def _egress_chain(state: RuleSet) -> list[Command]:
    table = state.table
    policy = state.egress
    commands = [
        chain(table, EGRESS),
        rule(table, EGRESS, match("==", payload("ip", "daddr"), prefix(LOOPBACK)), {"drop": None}),
    ]
    commands += [rule(table, EGRESS, *_to(e), {"accept": None}) for e in policy.allowed]
    commands += [rule(table, EGRESS, *_to(e), {"drop": None}) for e in policy.listeners if e not in policy.allowed]
    commands.append(rule(table, EGRESS, match("==", payload("ip", "daddr"), f"@{EGRESS_BLOCKED}"), {"drop": None}))
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
    commands = [chain(table, out), chain(table, inp)]
    # Forward, from this tenant's bridge: its own bridge (bridged frames, seen through br_netfilter)
    # is fine; any other tenant bridge is not, except a published port of a FIP on this node (as from
    # outside); only the tenant's own IPv4 addresses may leave, and only to where the egress chain
    # lets them.
    commands += [
        rule(table, out, match("==", meta("oifname"), tenant.bridge), {"accept": None}),
        rule(table, out, match("==", payload("ip", "saddr"), prefix(tenant.subnet)), *fip_rules.published(),
             {"accept": None}),
        rule(table, out, match("==", meta("oifname"), OWN_BRIDGES), {"drop": None}),
        rule(table, out, match("!=", meta("nfproto"), "ipv4"), {"drop": None}),
        rule(table, out, match("!=", payload("ip", "saddr"), prefix(tenant.subnet)), {"drop": None}),
        rule(table, out, {"jump": {"target": EGRESS}}),
        rule(table, out, {"accept": None}),
    ]
    # Input, from this tenant's bridge to the host: the listed services on its own gateway, and
    # what the egress chain accepts (the tenant API, resolvers); nothing else.
    for service in state.gateway_services:
        on_gateway = Endpoint(tenant.gateway, service.protocol, service.port)
        commands.append(rule(table, inp, *_to(on_gateway), {"accept": None}))
    commands.append(rule(table, inp, {"jump": {"target": EGRESS}}))
    commands.append(rule(table, inp, {"drop": None}))
    return commands


def _forward_rules(state: RuleSet) -> list[Command]:
    table = state.table
    # Security groups first, on every packet (established ones too): a removed rule cuts its flows; only a
    # service FIP's connections from another node, judged there, come before.
    services = lb_rules.forward_rules(table) if state.balancers else []
    return services + fw_rules.forward_rules(table) + [
        rule(table, "forward", _ct_established(), {"accept": None}),
        rule(table, "forward", {"vmap": {"key": meta("iifname"), "data": f"@{TENANT_FORWARD}"}}),
        # From outside, only a published port on a FIP (DNAT'd by prerouting) opens a connection into a
        # tenant network; nothing else does.
        rule(table, "forward", *fip_rules.published(), {"accept": None}),
        rule(table, "forward", match("==", meta("oifname"), OWN_BRIDGES), {"drop": None}),
    ]


def _input_rules(state: RuleSet) -> list[Command]:
    table = state.table
    # VXLAN frames of a tenant's VNI are taken only from that overlay's peers: anyone else could
    # otherwise inject frames into the tenant's network (the VNI is bits 32-55 of the VXLAN header).
    overlays = [
        rule(
            table,
            "input",
            match("==", payload("udp", "dport"), state.vxlan_port),
            match("==", {"payload": {"base": "th", "offset": 96, "len": 24}}, overlay.vni),
            *_from_others(overlay.peers),
            {"drop": None},
        )
        for overlay in state.overlays
    ]
    services = lb_rules.input_rules(table) if state.balancers else []
    return services + fip_rules.input_rules(table) + overlays + [
        rule(table, "input", match("==", meta("iifname"), OWN_BRIDGES), _ct_established(), {"accept": None}),
        rule(table, "input", {"vmap": {"key": meta("iifname"), "data": f"@{TENANT_INPUT}"}}),
        rule(table, "input", match("==", meta("iifname"), OWN_BRIDGES), {"drop": None}),
    ]


def _from_others(peers: tuple[IPv4Address, ...]) -> list[Expr]:
    """Matches a source address that is none of peers (every address when there are none)."""
    return [match("!=", payload("ip", "saddr"), {"set": [str(p) for p in peers]})] if peers else []


def _postrouting_rules(state: RuleSet) -> list[Command]:
    # Only what came in over this table's bridges: with br_netfilter, frames bridged inside another
    # node's tenant network (same subnets, its own bridge) pass this hook too and must stay untouched.
    fips = [lb_rules.hairpin_rule(state.table), lb_rules.snat_rule(state.table)] if state.balancers else []
    if state.public_interface is not None and state.fips:  # before the masquerade, which it replaces
        fips.append(fip_rules.snat_rule(state.table, state.public_interface, OWN_BRIDGES, f"@{TENANT_SUBNETS}"))
    if state.public_interface is not None and (state.fips or state.service_fips):
        fips += fip_rules.hairpin_rules(state.table, OWN_BRIDGES, f"@{TENANT_SUBNETS}")
    return fips + [
        rule(
            state.table,
            "postrouting",
            match("==", payload("ip", "saddr"), f"@{TENANT_SUBNETS}"),
            match("==", meta("iifname"), OWN_BRIDGES),
            match("!=", meta("oifname"), OWN_BRIDGES),
            {"masquerade": None},
        )
    ]


# --- expressions ----------------------------------------------------------------------------


def _to(endpoint: Endpoint) -> tuple[Expr, Expr]:
    return (
        match("==", payload("ip", "daddr"), str(endpoint.address)),
        match("==", payload(endpoint.protocol, "dport"), endpoint.port),
    )


def _ct_established() -> Expr:
    return match("in", {"ct": {"key": "state"}}, ["established", "related"])
