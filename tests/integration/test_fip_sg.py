"""Floating IPs, published ports and security groups on a real node table: traffic from a test-owned
"outside" netns on the node's public interface and between container netns."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from seabox.config import NetworkConfig
from seabox.model import ipam
from seabox.model.firewall import Firewall, FirewallRule
from seabox.model.ports import PortMapping
from seabox.node.network.manager import Attachment, Exposure, NodeNetwork
from seabox.node.network.names import NetNames
from tests.fixtures.public_net import (
    Outside, connection, echoes, fip_addresses, node_on_public, ns_socket, pings, probe, serve,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and nftables"),
]

PID = os.getpid()
TABLE = f"seabox_fip_{PID}"
NAMES = NetNames.of_node(f"test-fip-{PID}", TABLE)
PUBLIC = f"sbtpub{PID % 100000}"
PUBLIC_SUBNET = IPv4Network("203.0.113.16/29")
FIP_RANGE = IPv4Network("198.18.0.0/15")
FIP1, FIP2 = IPv4Address("198.18.14.1"), IPv4Address("198.18.14.2")
# Tenant indexes of this run: 1200..1349 of the default supernet, 3 per run.
TENANT_A = 1200 + (PID % 50) * 3
TENANT_B = TENANT_A + 1
CFG = NetworkConfig(public_interface=PUBLIC)
MOVE_BUDGET = 1.0


def ip(tenant: int, n: int) -> IPv4Address:
    return ipam.tenant_subnet(CFG, tenant).network_address + n


def fw(*rules: FirewallRule) -> Firewall:
    return Firewall(rules=list(rules))


def rule(direction: str, protocol: str, remotes: list[str], low: int = 0, high: int = 0) -> FirewallRule:
    return FirewallRule(direction=direction, protocol=protocol, port_min=low, port_max=high,  # type: ignore[arg-type]
                        remotes=remotes)  # fmt: skip


@dataclass
class Node:
    net: NodeNetwork
    outside: Outside

    def container(self, tenant: int, n: int) -> Attachment:
        return self.net.attach(secrets.token_hex(32), tenant, ip(tenant, n))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with node_on_public(tmp_path, CFG, NAMES, PUBLIC_SUBNET, FIP_RANGE, {TENANT_A, TENANT_B}) as (net, outside):
        yield Node(net, outside)


def test_a_fip_reaches_its_published_ports_and_nothing_else(node: Node) -> None:
    c1 = node.container(TENANT_A, 2)
    c2 = node.container(TENANT_A, 3)  # publishes a port but holds no FIP
    out = node.outside.path
    node.net.expose({
        c1.netns_path.name: Exposure(c1.ip, FIP1, (PortMapping(container_port=80, fip_port=8080),
                                                   PortMapping(container_port=53, fip_port=5353, protocol="udp"))),
        c2.netns_path.name: Exposure(c2.ip, None, (PortMapping(container_port=80, fip_port=8080),)),
    })  # fmt: skip
    assert fip_addresses(PUBLIC, FIP_RANGE) == {str(FIP1)}
    host_port = 47000 + PID % 1000
    with serve(c1.netns_path, 80, "c1"), serve(c1.netns_path, 81, "c1"), serve(c1.netns_path, 53, "c1", udp=True), \
            serve(c2.netns_path, 80, "c2"), serve(None, host_port, "host"):  # fmt: skip
        # DNAT without SNAT: the container sees the outside's own address
        assert probe(out, FIP1, 8080) == f"c1 {node.outside.address}"
        assert probe(out, FIP1, 5353, udp=True) == f"c1 {node.outside.address}"
        assert probe(out, FIP1, 80) is None  # the container port itself is not published
        assert probe(out, FIP1, 81) is None  # a port the container listens on but did not publish
        assert probe(out, FIP1, 5353) is None  # published for udp only
        assert not pings(out, FIP1)
        # the host's own listener: reachable on the node's address, never on a FIP
        assert probe(out, node.outside.node_address, host_port) == f"host {node.outside.address}"
        assert probe(out, FIP1, host_port) is None
        # a container without a FIP publishes nothing, even to an outside that routes to it
        with IPRoute(netns=str(out), flags=0) as ns:
            ns.route("add", dst=str(ipam.tenant_subnet(CFG, TENANT_A)), gateway=str(node.outside.node_address))
        assert probe(out, c2.ip, 80) is None and probe(out, c1.ip, 80) is None
    node.net.expose({})
    assert fip_addresses(PUBLIC, FIP_RANGE) == set()
    with serve(c1.netns_path, 80, "c1"):
        assert probe(out, FIP1, 8080) is None


def test_egress_leaves_with_the_fip_and_without_one_with_the_node_address(node: Node) -> None:
    c1 = node.container(TENANT_A, 2)
    c2 = node.container(TENANT_A, 3)
    node.net.expose({c1.netns_path.name: Exposure(c1.ip, FIP1), c2.netns_path.name: Exposure(c2.ip)})
    with serve(node.outside.path, 9000, "outside"), serve(node.outside.path, 9001, "outside", udp=True):
        assert probe(c1.netns_path, node.outside.address, 9000) == f"outside {FIP1}"
        assert probe(c1.netns_path, node.outside.address, 9001, udp=True) == f"outside {FIP1}"
        assert probe(c2.netns_path, node.outside.address, 9000) == f"outside {node.outside.node_address}"


def test_moving_a_fip_sends_new_connections_to_the_new_holder_within_a_second(node: Node) -> None:
    c1 = node.container(TENANT_A, 2)
    c2 = node.container(TENANT_B, 2)
    ports = (PortMapping(container_port=80, fip_port=80), PortMapping(container_port=53, fip_port=53, protocol="udp"))
    out = node.outside.path
    with serve(c1.netns_path, 80, "c1"), serve(c2.netns_path, 80, "c2"), \
            serve(c1.netns_path, 53, "c1", udp=True), serve(c2.netns_path, 53, "c2", udp=True):  # fmt: skip
        node.net.expose({c1.netns_path.name: Exposure(c1.ip, FIP1, ports), c2.netns_path.name: Exposure(c2.ip)})
        with ns_socket(out, socket.SOCK_DGRAM) as udp, connection(out, FIP1, 80) as old:
            udp.settimeout(0.5)
            udp.sendto(b"?", (str(FIP1), 53))
            assert udp.recv(256).decode().startswith("c1")
            assert echoes(old)
            start = time.monotonic()
            node.net.expose({c1.netns_path.name: Exposure(c1.ip), c2.netns_path.name: Exposure(c2.ip, FIP1, ports)})
            answer = None
            while answer is None and time.monotonic() - start < MOVE_BUDGET:
                answer = probe(out, FIP1, 80, timeout=0.2)
            assert answer == f"c2 {node.outside.address}", f"after {time.monotonic() - start:.3f} s"
            # the same UDP flow (same source port) now reaches the new holder: its old NAT entry is gone
            udp.sendto(b"?", (str(FIP1), 53))
            assert udp.recv(256).decode().startswith("c2")
            # the old holder's connection is over: its next packet no longer reaches it
            assert not echoes(old)
        with serve(node.outside.path, 9000, "outside"):
            assert probe(c2.netns_path, node.outside.address, 9000) == f"outside {FIP1}"
            assert probe(c1.netns_path, node.outside.address, 9000) == f"outside {node.outside.node_address}"


def received(sock: socket.socket, expected: bytes, payload: bytes, timeout: float) -> bool:
    """Send payload and read until expected has come back (True), or timeout."""
    sock.sendall(payload)
    got = b""
    deadline = time.monotonic() + timeout
    while got != expected and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got += sock.recv(64)
        except OSError:
            return False
    return got == expected


def test_addresses_in_the_fip_range_that_no_container_holds_are_removed(node: Node) -> None:
    c1 = node.container(TENANT_A, 2)
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=PUBLIC)[0]
        ipr.addr("add", index=index, address="198.18.14.99", prefixlen=32)
    node.net.expose({c1.netns_path.name: Exposure(c1.ip, FIP2)})
    assert fip_addresses(PUBLIC, FIP_RANGE) == {str(FIP2)}
    with IPRoute() as ipr:  # the node's own address is not in the range and stays
        index = ipr.link_lookup(ifname=PUBLIC)[0]
        assert str(node.outside.node_address) in {a.get("address") for a in ipr.addr("dump", index=index)}


def test_default_policy_without_a_firewall(node: Node) -> None:
    a1, a2 = node.container(TENANT_A, 2), node.container(TENANT_A, 3)
    b1 = node.container(TENANT_B, 2)
    node.net.expose({a1.netns_path.name: Exposure(a1.ip, FIP1, (PortMapping(container_port=80, fip_port=80),))})
    with serve(a1.netns_path, 80, "a1"), serve(a1.netns_path, 81, "a1"), serve(node.outside.path, 9000, "outside"):
        assert probe(a2.netns_path, a1.ip, 81) == f"a1 {a2.ip}"  # its own tenant: every port
        assert probe(b1.netns_path, a1.ip, 80) is None  # another tenant: nothing
        assert probe(node.outside.path, FIP1, 80) is not None  # outside: the published port only
        assert probe(node.outside.path, FIP1, 81) is None
        assert probe(a1.netns_path, node.outside.address, 9000) == f"outside {FIP1}"  # egress open


def test_every_rule_kind_and_nothing_else(node: Node) -> None:
    a1, a2, a3 = node.container(TENANT_A, 2), node.container(TENANT_A, 3), node.container(TENANT_A, 4)
    a4 = node.container(TENANT_A, 5)  # in no rule
    outside = str(node.outside.address)
    wall = fw(
        rule("ingress", "tcp", [f"{a2.ip}/32"], 80, 80),  # a remote group: its members' /32s
        rule("ingress", "tcp", [str(PUBLIC_SUBNET)], 8000, 8010),  # a prefix and a port range
        rule("ingress", "any", [f"{a3.ip}/32"]),  # protocol any
        rule("ingress", "icmp", [f"{a2.ip}/32"]),
        rule("egress", "tcp", [f"{outside}/32"], 9000, 9000),
        rule("egress", "udp", [f"{outside}/32"]),  # 0/0: every port
    )
    published = tuple(PortMapping(container_port=p, fip_port=p) for p in (8000, 8010, 8011))
    node.net.expose({a1.netns_path.name: Exposure(a1.ip, FIP1, published, wall),
                     a2.netns_path.name: Exposure(a2.ip), a3.netns_path.name: Exposure(a3.ip)})  # fmt: skip
    out = node.outside.path
    with serve(a1.netns_path, 80, "a1"), serve(a1.netns_path, 81, "a1"), serve(a1.netns_path, 8000, "a1"), \
            serve(a1.netns_path, 8010, "a1"), serve(a1.netns_path, 8011, "a1"), \
            serve(a1.netns_path, 5000, "a1", udp=True), serve(out, 9000, "o"), serve(out, 9001, "o"), \
            serve(out, 7000, "o", udp=True):  # fmt: skip
        assert probe(a2.netns_path, a1.ip, 80) == f"a1 {a2.ip}"  # stateful: the reply passes
        assert probe(a2.netns_path, a1.ip, 81) is None
        assert probe(a2.netns_path, a1.ip, 5000, udp=True) is None
        assert pings(a2.netns_path, a1.ip) and pings(a3.netns_path, a1.ip)
        assert not pings(a4.netns_path, a1.ip)
        assert probe(a4.netns_path, a1.ip, 80) is None and probe(a4.netns_path, a1.ip, 81) is None
        assert probe(a3.netns_path, a1.ip, 81) == f"a1 {a3.ip}"
        assert probe(a3.netns_path, a1.ip, 5000, udp=True) == f"a1 {a3.ip}"
        # from outside through the FIP: the port range's ends, not past it (published, but not allowed)
        assert probe(out, FIP1, 8000) == f"a1 {outside}" and probe(out, FIP1, 8010) == f"a1 {outside}"
        assert probe(out, FIP1, 8011) is None
        # egress: only what the rules name
        assert probe(a1.netns_path, outside, 9000) == f"o {FIP1}"
        assert probe(a1.netns_path, outside, 9001) is None
        assert probe(a1.netns_path, outside, 7000, udp=True) == f"o {FIP1}"
        assert probe(a1.netns_path, a2.ip, 22) is None  # to its own tenant too
        # a container without a firewall is not affected by its neighbour's
        assert probe(a2.netns_path, outside, 9001) is not None


def test_a_removed_rule_cuts_an_established_connection_within_a_second(node: Node) -> None:
    a1, a2 = node.container(TENANT_A, 2), node.container(TENANT_A, 3)
    allow = rule("ingress", "tcp", [f"{a2.ip}/32"], 80, 80)
    other = rule("ingress", "tcp", [f"{a2.ip}/32"], 81, 81)
    with serve(a1.netns_path, 80, "a1"), serve(a1.netns_path, 81, "a1"):
        node.net.expose({a1.netns_path.name: Exposure(a1.ip, firewall=fw(allow, other))})
        with connection(a2.netns_path, a1.ip, 80) as sock:
            assert echoes(sock)
            start = time.monotonic()
            node.net.expose({a1.netns_path.name: Exposure(a1.ip, firewall=fw(other))})
            assert not echoes(sock, b"one", timeout=MOVE_BUDGET - (time.monotonic() - start))
            assert probe(a2.netns_path, a1.ip, 80) is None
            assert probe(a2.netns_path, a1.ip, 81) == f"a1 {a2.ip}"
            # the rule back: the same connection carries data again (nothing but the rule stopped it)
            node.net.expose({a1.netns_path.name: Exposure(a1.ip, firewall=fw(allow, other))})
            # (the dropped b"one" is retransmitted first, TCP's back-off deciding when)
            assert received(sock, b"onetwo", b"two", timeout=3.0)
        # a firewall taken away entirely: the default policy again
        node.net.expose({a1.netns_path.name: Exposure(a1.ip, firewall=fw())})
        assert probe(a2.netns_path, a1.ip, 81) is None
        node.net.expose({a1.netns_path.name: Exposure(a1.ip)})
        assert probe(a2.netns_path, a1.ip, 81) == f"a1 {a2.ip}"


def test_a_container_cannot_send_from_a_siblings_address(node: Node) -> None:
    a1, a2, a3 = node.container(TENANT_A, 2), node.container(TENANT_A, 3), node.container(TENANT_A, 4)
    # a1 lets only a2 send it UDP: a3 taking a2's address would get through, were sources not checked
    node.net.expose({a1.netns_path.name: Exposure(a1.ip, firewall=fw(rule("ingress", "udp", [f"{a2.ip}/32"]))),
                     a2.netns_path.name: Exposure(a2.ip), a3.netns_path.name: Exposure(a3.ip)})  # fmt: skip
    with IPRoute(netns=str(a3.netns_path), flags=0) as ns:
        ns.addr("add", index=ns.link_lookup(ifname="eth0")[0], address=str(a2.ip), prefixlen=32)
    with serve(a1.netns_path, 5000, "a1", udp=True):
        assert probe(a2.netns_path, a1.ip, 5000, udp=True) == f"a1 {a2.ip}"
        with ns_socket(a3.netns_path, socket.SOCK_DGRAM) as spoofer, ns_socket(a1.netns_path, socket.SOCK_DGRAM) as seen:
            seen.bind((str(a1.ip), 5001))
            seen.settimeout(0.5)
            spoofer.bind((str(a2.ip), 0))
            spoofer.sendto(b"spoofed", (str(a1.ip), 5001))
            with pytest.raises(TimeoutError):
                seen.recv(64)
            # control: from its own address, a3's datagram to an open port lands
            node.net.expose({a1.netns_path.name: Exposure(a1.ip), a2.netns_path.name: Exposure(a2.ip),
                             a3.netns_path.name: Exposure(a3.ip)})  # fmt: skip
            with ns_socket(a3.netns_path, socket.SOCK_DGRAM) as honest:
                honest.bind((str(a3.ip), 0))
                honest.sendto(b"honest", (str(a1.ip), 5001))
                assert seen.recv(64) == b"honest"


def test_containers_on_the_node_reach_its_fips_as_the_outside_does(node: Node) -> None:
    a1, a2 = node.container(TENANT_A, 2), node.container(TENANT_A, 3)
    b1, b2 = node.container(TENANT_B, 2), node.container(TENANT_B, 3)
    published = (PortMapping(container_port=80, fip_port=8080),)
    node.net.expose({a1.netns_path.name: Exposure(a1.ip, FIP1, published), b2.netns_path.name: Exposure(b2.ip, FIP2),
                     a2.netns_path.name: Exposure(a2.ip), b1.netns_path.name: Exposure(b1.ip)})  # fmt: skip
    with serve(a1.netns_path, 80, "a1"), serve(a1.netns_path, 81, "a1"):
        # another tenant: from its FIP if it has one, else from the node (never its private address)
        assert probe(b2.netns_path, FIP1, 8080) == f"a1 {FIP2}"
        assert probe(b1.netns_path, FIP1, 8080) == f"a1 {a1.gateway}"
        assert probe(a2.netns_path, FIP1, 8080) == f"a1 {a1.gateway}"  # its own tenant too (hairpin)
        assert probe(b1.netns_path, FIP1, 81) is None and probe(b1.netns_path, FIP1, 80) is None
        assert probe(b1.netns_path, a1.ip, 80) is None  # the private address stays closed
