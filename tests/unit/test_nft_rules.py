"""The nftables JSON batch built from desired state (pure, no I/O)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from seabox.errors import InvalidArgument
from seabox.node.network import nft

TABLE = "seabox_unit"


def tenant(index: int, third: int) -> nft.TenantRules:
    return nft.TenantRules(
        index=index,
        subnet=IPv4Network(f"10.208.{third}.0/24"),
        gateway=IPv4Address(f"10.208.{third}.1"),
        bridge=f"sbx-t{index}",
    )


A = tenant(3, 3)
B = tenant(7, 7)
JUMP_EGRESS = [{"jump": {"target": "egress"}}]
DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}


def commands(state: nft.RuleSet) -> list[dict[str, Any]]:
    batch = nft.build_batch(state)
    assert list(batch) == ["nftables"]
    return batch["nftables"]


def added(cmds: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c["add"][kind] for c in cmds if kind in c.get("add", {})]


def rules(cmds: list[dict[str, Any]], chain: str) -> list[list[dict[str, Any]]]:
    return [r["expr"] for r in added(cmds, "rule") if r["chain"] == chain]


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (item,) = [i for i in items if i["name"] == name]
    return item


def test_batch_replaces_the_table_in_one_transaction() -> None:
    cmds = commands(nft.RuleSet(TABLE, (A,)))
    assert cmds[0] == {"metainfo": {"json_schema_version": 1}}
    table = {"family": "inet", "name": TABLE}
    assert cmds[1:4] == [{"add": {"table": table}}, {"delete": {"table": table}}, {"add": {"table": table}}]
    # Nothing after the re-creation deletes or touches another table; the bridge table of the same name
    # (source checks) is replaced the same way, last.
    bridge = {"family": "bridge", "name": TABLE}
    start = cmds.index({"add": {"table": bridge}})
    assert cmds[start : start + 3] == [{"add": {"table": bridge}}, {"delete": {"table": bridge}},
                                       {"add": {"table": bridge}}]  # fmt: skip
    for cmd in cmds[4:start] + cmds[start + 3 :]:
        (verb, body) = next(iter(cmd.items()))
        assert verb == "add"
        (obj,) = body.values()
        assert obj["family"] == ("inet" if cmds.index(cmd) < start else "bridge") and obj["table"] == TABLE
    json.dumps(cmds)


def test_base_chains_accept_foreign_traffic() -> None:
    chains = added(commands(nft.RuleSet(TABLE)), "chain")
    assert by_name(chains, "forward") == {
        "family": "inet", "table": TABLE, "name": "forward",
        "type": "filter", "hook": "forward", "prio": 0, "policy": "accept",
    }  # fmt: skip
    assert by_name(chains, "input")["hook"] == "input"
    assert by_name(chains, "input")["policy"] == "accept"
    post = by_name(chains, "postrouting")
    assert (post["type"], post["hook"], post["prio"], post["policy"]) == ("nat", "postrouting", 100, "accept")


def test_each_tenant_gets_its_chains_and_map_entries() -> None:
    cmds = commands(nft.RuleSet(TABLE, (A, B)))
    names = [c["name"] for c in added(cmds, "chain")]
    assert {"tenant_3", "tenant_3_in", "tenant_7", "tenant_7_in"} <= set(names)
    maps = added(cmds, "map")
    assert by_name(maps, "tenant_forward")["elem"] == [
        ["sbx-t3", {"jump": {"target": "tenant_3"}}],
        ["sbx-t7", {"jump": {"target": "tenant_7"}}],
    ]
    assert by_name(maps, "tenant_input")["elem"] == [
        ["sbx-t3", {"jump": {"target": "tenant_3_in"}}],
        ["sbx-t7", {"jump": {"target": "tenant_7_in"}}],
    ]
    assert by_name(maps, "tenant_forward")["type"] == "ifname"
    assert by_name(maps, "tenant_forward")["map"] == "verdict"
    subnets = by_name(added(cmds, "set"), "tenant_subnets")
    assert subnets["flags"] == ["interval"]
    assert subnets["elem"] == [
        {"prefix": {"addr": "10.208.3.0", "len": 24}},
        {"prefix": {"addr": "10.208.7.0", "len": 24}},
    ]


def test_chains_precede_maps_and_maps_precede_their_users() -> None:
    cmds = commands(nft.RuleSet(TABLE, (A, B)))
    position = {
        (kind, obj["name"]): i for i, c in enumerate(cmds) for kind, obj in c.get("add", {}).items() if "name" in obj
    }
    assert position[("chain", "tenant_7_in")] < position[("map", "tenant_forward")]
    uses = [i for i, c in enumerate(cmds) if "@tenant_forward" in json.dumps(c.get("add", {}).get("rule"))]
    assert uses and position[("map", "tenant_forward")] < min(uses)


def test_forward_order_firewalls_established_dispatch_published_then_no_way_in() -> None:
    forward = rules(commands(nft.RuleSet(TABLE, (A,))), "forward")
    assert forward[0] == [{"vmap": {"key": {"payload": {"protocol": "ip", "field": "daddr"}}, "data": "@fw_to"}}]
    assert forward[1] == [{"vmap": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": "@fw_from"}}]
    assert forward[2] == [
        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
        {"accept": None},
    ]
    assert forward[3] == [{"vmap": {"key": {"meta": {"key": "iifname"}}, "data": "@tenant_forward"}}]
    assert forward[4][0] == {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": ["dnat"]}}
    assert forward[4][-1] == {"accept": None}
    assert forward[5] == [
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "@tenant_bridges"}},
        {"drop": None},
    ]


def test_tenant_forward_chain_isolates_and_stops_spoofing() -> None:
    chain = rules(commands(nft.RuleSet(TABLE, (A, B))), "tenant_3")
    oifname = {"meta": {"key": "oifname"}}
    published = chain.pop(1)  # a FIP's published port on this node (hairpin), from the tenant's own addresses
    assert published[0]["match"]["right"] == {"prefix": {"addr": "10.208.3.0", "len": 24}}
    assert published[1]["match"]["right"] == ["dnat"] and published[-1] == {"accept": None}
    assert chain == [
        [{"match": {"op": "==", "left": oifname, "right": "sbx-t3"}}, {"accept": None}],
        [{"match": {"op": "==", "left": oifname, "right": "@tenant_bridges"}}, {"drop": None}],
        [{"match": {"op": "!=", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}, {"drop": None}],
        [
            {
                "match": {
                    "op": "!=",
                    "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                    "right": {"prefix": {"addr": "10.208.3.0", "len": 24}},
                }
            },
            {"drop": None},
        ],
        # Only IPv4 gets here (so fe80::/10 and all IPv6 is never forwarded), and only after the
        # tenant's own bridge was accepted: a blocked range over the tenant subnet cannot cut it.
        JUMP_EGRESS,
        [{"accept": None}],
    ]


def test_tenant_input_chain_allows_only_own_gateway_services() -> None:
    services = (nft.GatewayService("udp", 53), nft.GatewayService("tcp", 8053))
    cmds = commands(nft.RuleSet(TABLE, (A, B), gateway_services=services))
    chain = rules(cmds, "tenant_7_in")
    daddr = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "10.208.7.1"}}
    assert chain == [
        [daddr, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}},
         {"accept": None}],
        [daddr, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8053}},
         {"accept": None}],
        JUMP_EGRESS,
        [{"drop": None}],
    ]  # fmt: skip
    inputs = rules(cmds, "input")[1:]  # after the FIPs' drop
    assert inputs[1] == [{"vmap": {"key": {"meta": {"key": "iifname"}}, "data": "@tenant_input"}}]
    # A tenant bridge outside this table's map still reaches nothing on the host.
    assert inputs[2] == [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "@tenant_bridges"}},
        {"drop": None},
    ]


def test_no_gateway_service_by_default_only_egress_exceptions_then_drop() -> None:
    chain = rules(commands(nft.RuleSet(TABLE, (A,))), "tenant_3_in")
    assert chain == [JUMP_EGRESS, [{"drop": None}]]


def endpoint(address: str, protocol: str, port: int) -> list[dict[str, Any]]:
    return [
        {"match": {"op": "==", "left": DADDR, "right": address}},
        {"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": "dport"}}, "right": port}},
    ]


API = nft.Endpoint(IPv4Address("203.0.113.10"), "tcp", 2376)
RESOLVER = nft.Endpoint(IPv4Address("10.255.255.53"), "udp", 53)
LISTENER = nft.Endpoint(IPv4Address("203.0.113.10"), "tcp", 8470)
POLICY = nft.EgressPolicy(
    blocked=(IPv4Network("10.0.0.0/8"), IPv4Network("198.51.100.0/24")),
    allowed=(API, RESOLVER),
    listeners=(LISTENER, API),
)


def test_egress_chain_loopback_first_then_exceptions_listeners_and_ranges() -> None:
    chain = rules(commands(nft.RuleSet(TABLE, (A,), egress=POLICY)), "egress")
    assert chain == [
        # Never excepted: host loopback, even where route_localnet lets it through routing.
        [{"match": {"op": "==", "left": DADDR, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}},
         {"drop": None}],
        [*endpoint("203.0.113.10", "tcp", 2376), {"accept": None}],
        [*endpoint("10.255.255.53", "udp", 53), {"accept": None}],
        # The listener that is also the tenant API stays open: no drop rule for it.
        [*endpoint("203.0.113.10", "tcp", 8470), {"drop": None}],
        [{"match": {"op": "==", "left": DADDR, "right": "@egress_blocked"}}, {"drop": None}],
    ]  # fmt: skip


def test_link_local_is_blocked_even_with_no_operator_ranges() -> None:
    cmds = commands(nft.RuleSet(TABLE, (A,)))
    blocked = by_name(added(cmds, "set"), "egress_blocked")
    assert blocked["type"] == "ipv4_addr" and blocked["flags"] == ["interval"]
    assert blocked["elem"] == [{"prefix": {"addr": "169.254.0.0", "len": 16}}]
    assert rules(cmds, "egress")[-1] == [
        {"match": {"op": "==", "left": DADDR, "right": "@egress_blocked"}},
        {"drop": None},
    ]


def test_blocked_ranges_are_merged_and_sorted() -> None:
    # nft refuses overlapping intervals in a set: the builder merges them.
    policy = nft.EgressPolicy(
        blocked=tuple(
            IPv4Network(n) for n in ("192.168.0.0/16", "10.1.0.0/16", "10.0.0.0/8", "169.254.169.254/32")
        )
    )
    blocked = by_name(added(commands(nft.RuleSet(TABLE, egress=policy)), "set"), "egress_blocked")
    assert blocked["elem"] == [
        {"prefix": {"addr": "10.0.0.0", "len": 8}},
        {"prefix": {"addr": "169.254.0.0", "len": 16}},
        {"prefix": {"addr": "192.168.0.0", "len": 16}},
    ]


def test_egress_chain_and_set_precede_the_tenant_chains_that_use_them() -> None:
    cmds = commands(nft.RuleSet(TABLE, (A, B), egress=POLICY))
    position = {
        (kind, obj["name"]): i for i, c in enumerate(cmds) for kind, obj in c.get("add", {}).items() if "name" in obj
    }
    first_user = min(i for i, c in enumerate(cmds) if '"target": "egress"' in json.dumps(c))
    assert position[("set", "egress_blocked")] < position[("chain", "egress")] < first_user


def test_masquerade_tenant_subnets_coming_from_own_bridges_leaving_through_other_links() -> None:
    post = rules(commands(nft.RuleSet(TABLE, (A,))), "postrouting")
    assert post == [
        [
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                    "right": "@tenant_subnets",
                }
            },
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "@tenant_bridges"}},
            {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "@tenant_bridges"}},
            {"masquerade": None},
        ]
    ]


def test_empty_state_is_a_valid_skeleton() -> None:
    cmds = commands(nft.RuleSet(TABLE))
    assert [c["name"] for c in added(cmds, "chain")] == ["forward", "input", "postrouting", "prerouting", "egress",
                                                         "prerouting"]
    for item in added(cmds, "set") + added(cmds, "map"):
        assert "elem" not in item or item["name"] == "egress_blocked"


def test_builder_is_deterministic() -> None:
    state = nft.RuleSet(TABLE, (A, B), egress=POLICY)
    assert nft.build_batch(state) == nft.build_batch(state)


def test_duplicate_tenant_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        nft.build_batch(nft.RuleSet(TABLE, (A, A)))


@pytest.mark.parametrize("name", ["", "1abc", "seabox-x", "a b", "x;y", "t" * 65])
def test_bad_table_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidArgument):
        nft.build_batch(nft.RuleSet(name))
    with pytest.raises(InvalidArgument):
        nft.delete_batch(name)


def test_delete_batch_is_unconditional() -> None:
    table = {"family": "inet", "name": TABLE}
    assert nft.delete_batch(TABLE)["nftables"][1:] == [{"add": {"table": table}}, {"delete": {"table": table}}]
