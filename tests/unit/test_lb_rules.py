"""Load-balanced services as nftables JSON (pure): the service map, per-algorithm dispatch, refused services,
service FIPs, leastconn's choice, and health probes against local servers."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import Any

from seabox.model.health import HealthCheck
from seabox.node import health
from seabox.node.network import lb_load, lb_rules, nft
from seabox.node.network.lb_rules import Balancer, Target

T = "seabox_t"
VIP = IPv4Address("10.208.0.200")
FIP = IPv4Address("198.18.0.5")
A, B, C = (Target(IPv4Address(f"10.208.0.{n}"), 8080) for n in (2, 3, 4))


def rules_of(commands: list[dict[str, Any]], chain: str) -> list[list[dict[str, Any]]]:
    rules = [c["add"]["rule"] for c in commands if "rule" in c.get("add", {})]
    return [r["expr"] for r in rules if r["chain"] == chain]


def named(commands: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(c["add"][kind] for c in commands if kind in c.get("add", {}) and c["add"][kind]["name"] == name)


def chain_names(commands: list[dict[str, Any]]) -> list[str]:
    return [c["add"]["chain"]["name"] for c in commands if "chain" in c.get("add", {})]


def test_roundrobin_picks_one_backend_chain_per_connection_with_numgen() -> None:
    b = Balancer("s1", "br1", VIP, 80, "roundrobin", (A, B, C))
    commands = lb_rules.chains(T, (b,), None)
    assert chain_names(commands) == ["lb_0_0", "lb_0_1", "lb_0_2", "lb_0"]  # backends before the chain naming them
    guard, dispatch = rules_of(commands, "lb_0")
    assert guard == [{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "br1"}}, {"return": None}]
    assert dispatch == [{"vmap": {"key": {"numgen": {"mode": "inc", "mod": 3, "offset": 0}},
                                  "data": {"set": [[i, {"goto": {"target": f"lb_0_{i}"}}] for i in range(3)]}}}]
    hairpin, dnat = rules_of(commands, "lb_0_1")
    assert hairpin[0]["match"]["right"] == "10.208.0.3" and hairpin[1]["mangle"]["value"] == lb_rules.HAIRPIN_MARK
    assert dnat[-1] == {"dnat": {"family": "ip", "addr": "10.208.0.3", "port": 8080}}
    element = named(lb_rules.service_map(T, (b,), None), "map", lb_rules.SERVICES)["elem"]
    assert element == [[{"concat": ["10.208.0.200", 80]}, {"goto": {"target": "lb_0"}}]]


def test_source_hashes_the_client_address_with_a_seed_stable_per_service() -> None:
    b = Balancer("s1", "br1", VIP, 80, "source", (A, B))
    dispatch = rules_of(lb_rules.chains(T, (b,), None), "lb_0")[1][0]["vmap"]["key"]["jhash"]
    assert dispatch == {"mod": 2, "seed": lb_rules.seed("s1"), "offset": 0,
                        "expr": {"payload": {"protocol": "ip", "field": "saddr"}}}
    assert lb_rules.seed("s1") == lb_rules.seed("s1") != lb_rules.seed("s2")


def test_a_service_without_backends_is_refused_and_has_no_chain() -> None:
    b = Balancer("s1", "br1", VIP, 80, "roundrobin", (), FIP, ())
    assert lb_rules.chains(T, (b,), "pub0") == []
    assert "elem" not in named(lb_rules.service_map(T, (b,), "pub0"), "map", lb_rules.SERVICES)
    refused = named(lb_rules.sets(T, (b,), "pub0"), "set", lb_rules.REFUSED)["elem"]
    assert refused == [{"concat": ["br1", "10.208.0.200", 80]}, {"concat": ["pub0", "198.18.0.5", 80]}]
    (reject,) = lb_rules.input_rules(T)
    assert reject["add"]["rule"]["expr"][-1] == {"reject": {"type": "tcp reset"}}


def test_a_service_fip_reaches_its_local_backends_from_any_interface() -> None:
    b = Balancer("s1", "br1", VIP, 80, "roundrobin", (A, B), FIP, (A,))
    commands = lb_rules.chains(T, (b,), "pub0")
    assert chain_names(commands) == ["lb_0_0", "lb_0_1", "lb_0", "lb_0_fip_0", "lb_0_fip"]
    (dispatch,) = rules_of(commands, "lb_0_fip")  # no in-interface guard
    assert dispatch[0]["vmap"]["key"]["numgen"]["mod"] == 1
    elements = named(lb_rules.service_map(T, (b,), "pub0"), "map", lb_rules.SERVICES)["elem"]
    assert [e[0]["concat"] for e in elements] == [["10.208.0.200", 80], ["198.18.0.5", 80]]
    assert lb_rules.published((b,), "pub0") == [("10.208.0.2", "tcp", 8080)]
    assert lb_rules.published((b,), None) == []  # without a public interface, no FIP at all
    assert chain_names(lb_rules.chains(T, (b,), None)) == ["lb_0_0", "lb_0_1", "lb_0"]


def test_a_service_fip_reaches_backends_on_other_nodes_from_its_snat_address() -> None:
    snat = IPv4Address("10.208.0.199")
    b = Balancer("s1", "br1", VIP, 80, "roundrobin", (A, B), FIP, (A, B), snat, (A, B, C), (A,))
    commands = lb_rules.chains(T, (b,), "pub0")
    assert all(expr[-1]["mangle"]["value"] != lb_rules.SNAT_MARK for expr in rules_of(commands, "lb_0_fip_0")
               if "mangle" in expr[-1])  # the local backend sees the client  # fmt: skip
    assert {"mangle": {"key": {"meta": {"key": "mark"}}, "value": lb_rules.SNAT_MARK}} in [
        expr[-1] for expr in rules_of(commands, "lb_0_fip_1")]  # the remote one: marked for SNAT
    assert [e[0]["concat"] for e in named(lb_rules.service_map(T, (b,), "pub0"), "map", lb_rules.SERVICES)["elem"]] \
        == [["10.208.0.200", 80], ["198.18.0.5", 80]]
    sets = lb_rules.sets(T, (b,), "pub0")
    assert named(sets, "map", lb_rules.SNAT_ADDRESSES)["elem"] == [["198.18.0.5", "10.208.0.199"]]
    # every backend (a leastconn subset's others keep their connections) accepts the SNAT address
    assert named(sets, "set", lb_rules.SNAT_PATHS)["elem"] == [
        {"concat": ["10.208.0.199", f"10.208.0.{n}", 8080]} for n in (2, 3, 4)]
    assert lb_rules.published((b,), "pub0") == [("10.208.0.2", "tcp", 8080), ("10.208.0.3", "tcp", 8080)]
    # on a backend's node (no FIP there): no SNAT map entry, but the paths are let in before the security groups
    elsewhere = Balancer("s1", "br1", VIP, 80, "roundrobin", (A, B), None, (), snat, (A, B, C), (C,))
    batch = nft.build_batch(nft.RuleSet(T, public_interface="pub0", balancers=(elsewhere,)))["nftables"]
    assert "elem" not in named(batch, "map", lb_rules.SNAT_ADDRESSES)
    forward = rules_of(batch, "forward")
    assert [r[-2]["match"]["right"] for r in forward[:2]] == [f"@{lb_rules.SNAT_PATHS}"] * 2
    assert forward[2][0]["vmap"]["data"] == "@fw_to"
    postrouting = rules_of(batch, "postrouting")
    assert postrouting[1][-1] == {"snat": {"family": "ip", "addr": {"map": {
        "key": {"ct": {"key": "ip daddr", "dir": "original"}}, "data": f"@{lb_rules.SNAT_ADDRESSES}"}}}}


def test_the_table_carries_services_only_when_there_are_some() -> None:
    empty = nft.build_batch(nft.RuleSet(T))["nftables"]
    assert not any(lb_rules.SERVICES in str(r) or lb_rules.REFUSED in str(r) for r in rules_of(empty, "prerouting")
                   + rules_of(empty, "input"))  # fmt: skip
    assert len(rules_of(empty, "postrouting")) == 1  # the tenants' masquerade only
    b = Balancer("s1", "br1", VIP, 80, "roundrobin", (A,), FIP, (A,))
    batch = nft.build_batch(nft.RuleSet(T, public_interface="pub0", balancers=(b,)))["nftables"]
    assert rules_of(batch, "postrouting")[0][-1] == {"masquerade": None}  # the hairpin masquerade comes first
    assert rules_of(batch, "input")[0][-1] == {"reject": {"type": "tcp reset"}}  # before the FIP drop
    assert named(batch, "set", "fips")["elem"] == ["198.18.0.5"]
    assert named(batch, "set", "published")["elem"] == [{"concat": ["10.208.0.2", "tcp", 8080]}]
    # the FIP hairpin masquerade is for connections to a FIP, not to a VIP
    hairpin = [r for r in rules_of(batch, "postrouting") if {"match": {"op": "in", "left": {"ct": {"key": "status"}},
                                                                       "right": ["dnat"]}} in r]  # fmt: skip
    assert hairpin and all(r[1]["match"]["left"] == {"ct": {"key": "ip daddr", "dir": "original"}} for r in hairpin)


def test_leastconn_keeps_the_backends_with_the_fewest_open_connections() -> None:
    assert lb_load.least_loaded((A, B, C), {A: 3, B: 1, C: 1}) == (B, C)
    assert lb_load.least_loaded((A, B, C), {A: 2}) == (B, C)
    assert lb_load.least_loaded((A, B), {}) == (A, B)
    assert lb_load.least_loaded((), {A: 1}) == ()


async def _server(answer: bytes | None) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if answer is not None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        else:
            await asyncio.sleep(5)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_probes_tcp_and_http_status_classes_and_time_out() -> None:
    local = IPv4Address("127.0.0.1")
    cases = {b"HTTP/1.1 200 OK\r\n\r\n": True, b"HTTP/1.0 302 Found\r\n\r\n": True,
             b"HTTP/1.1 500 Oops\r\n\r\n": False, b"garbage\r\n": False, None: False}  # fmt: skip
    for answer, expected in cases.items():
        server = await _server(answer)
        port = server.sockets[0].getsockname()[1]
        async with server:
            check = HealthCheck(protocol="http", port=port, path="/healthz", interval=0.5)
            assert await health.probe(local, check) is expected, answer
            assert await health.probe(local, HealthCheck(port=port, interval=0.5)) is True  # tcp: accepted
    assert await health.probe(local, HealthCheck(port=port, interval=0.5)) is False  # closed now
    assert health.probe_timeout(HealthCheck(port=1, interval=0.5)) < 0.5
    assert health.probe_timeout(HealthCheck(port=1, interval=300)) == health.MAX_TIMEOUT
