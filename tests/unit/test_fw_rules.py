"""Security group rules compiled into disjoint allow-set elements (pure, no I/O)."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network

from seabox.model.firewall import Firewall, FirewallRule
from seabox.node.network import fw_rules, nft

PROTO = {"icmp": 1, "tcp": 6, "udp": 17}


def allows(rules: list[FirewallRule], direction: str, remote: IPv4Address, proto: int, port: int) -> bool:
    """The rules' meaning, read directly: what the compiled elements must agree with."""
    for r in rules:
        if r.direction != direction or not any(remote in IPv4Network(x, strict=False) for x in r.remotes):
            continue
        if r.protocol == "any" or (PROTO[r.protocol] == proto and r.protocol == "icmp"):
            return True
        if PROTO[r.protocol] == proto and (r.port_min == r.port_max == 0 or r.port_min <= port <= r.port_max):
            return True
    return False


def element_allows(elements: tuple[fw_rules.Element, ...], remote: IPv4Address, proto: int, port: int) -> int:
    return sum(remote in net and p[0] <= proto <= p[1] and lo <= port <= hi for net, p, (lo, hi) in elements)


def test_random_rule_sets_compile_to_disjoint_elements_with_the_same_meaning() -> None:
    rng = random.Random(14)
    nets = ["10.208.3.0/24", "10.208.3.7/32", "10.208.0.0/16", "203.0.113.0/25", "203.0.113.128/25", "0.0.0.0/0"]
    for _ in range(40):
        rules = []
        for _ in range(rng.randint(0, 8)):
            protocol = rng.choice(["tcp", "udp", "icmp", "any"])
            low = rng.choice([0, 22, 80, 81, 443, 1000])
            high = low + rng.choice([0, 0, 1, 100]) if low else 0
            rules.append(FirewallRule(direction=rng.choice(["ingress", "egress"]), protocol=protocol,
                                      port_min=low if protocol in ("tcp", "udp") else 0,
                                      port_max=high if protocol in ("tcp", "udp") else 0,
                                      remotes=rng.sample(nets, rng.randint(0, 2))))  # fmt: skip
        allowed = fw_rules.compile_firewall(Firewall(rules=rules))
        for direction, elements in (("ingress", allowed.ingress), ("egress", allowed.egress)):
            for remote in ("10.208.3.7", "10.208.3.9", "10.208.9.1", "203.0.113.200", "198.51.100.1"):
                for proto in (1, 6, 17, 47):
                    for port in (0, 22, 80, 81, 100, 180, 443, 1000, 1100, 65535):
                        hits = element_allows(elements, IPv4Address(remote), proto, port)
                        assert hits <= 1  # disjoint: the kernel refuses overlapping elements
                        assert bool(hits) == allows(rules, direction, IPv4Address(remote), proto, port), (
                            rules, direction, remote, proto, port)


def test_an_empty_remote_list_matches_nothing_and_members_share_one_firewall() -> None:
    wall = Firewall(rules=[FirewallRule(direction="ingress", protocol="any", remotes=[])])
    allowed = fw_rules.compile_firewall(wall)
    assert allowed.ingress == () and allowed.egress == ()
    guards = (fw_rules.Guard(IPv4Address("10.208.3.2"), allowed), fw_rules.Guard(IPv4Address("10.208.3.3"), allowed))
    batch = nft.build_batch(nft.RuleSet("seabox_t", guards=guards))["nftables"]
    chains = [c["add"]["chain"]["name"] for c in batch if "chain" in c.get("add", {})]
    assert [c for c in chains if c.startswith("fw_")] == ["fw_0_to", "fw_0_from"]
    fw_to = next(c["add"]["map"] for c in batch if c.get("add", {}).get("map", {}).get("name") == "fw_to")
    assert fw_to["elem"] == [["10.208.3.2", {"jump": {"target": "fw_0_to"}}],
                             ["10.208.3.3", {"jump": {"target": "fw_0_to"}}]]  # fmt: skip
