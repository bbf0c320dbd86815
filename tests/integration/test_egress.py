"""Tenant egress on a real node network: the outside is reachable; link-local, host addresses, host loopback,
operator-listed ranges and control-plane listeners are not. Every address used here is one the test creates."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from seabox.config import NetworkConfig
from seabox.model import ipam
from seabox.node.network import nft
from seabox.node.network.manager import Attachment, NodeNetwork
from seabox.node.network.names import NetNames
from tests.integration.test_network import cid, echo_peer, free_port, outside_netns, probe

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and nftables"),
]

PID = os.getpid()
TABLE = f"seabox_egress_{PID}"
# Tenant indexes of this run: 1100..1199 of the default supernet (test_network.py uses 900..1099).
TENANT = 1100 + (PID % 50) * 2
TENANT_OTHER = TENANT + 1
LINK = f"sbteo{PID % 100000}"  # the host's end of the veth to the outside netns
EXTRA_LINK = f"sbtex{PID % 100000}"  # a port-less bridge holding an extra host address (no dummy module here)
# The host and the outside netns face each other on 203.0.113.0/30.
HOST_END = IPv4Address("203.0.113.1")
OUTSIDE = IPv4Address("203.0.113.2")
# More addresses of the outside netns, routed to it from the host (/32 each).
CONTROL_PLANE = IPv4Address("203.0.113.9")  # a control-plane listener on another machine (a VIP)
LINK_LOCAL = IPv4Address("169.254.83.2")  # a metadata-like service
BLOCKED_RANGE = "198.51.100.0/24"  # the operator's internal range
BLOCKED = IPv4Address("198.51.100.2")
RESOLVER = IPv4Address("198.51.100.53")  # a resolver of the host's resolv.conf, inside the blocked range
OUTSIDE_ADDRESSES = (CONTROL_PLANE, LINK_LOCAL, BLOCKED, RESOLVER)
HOST_ADDRESS = IPv4Address("203.0.113.200")  # on EXTRA_LINK
CONTROL_PLANE_PORT = 8470
API_PORT = free_port()  # the control plane's port on the host; HOST_ADDRESS:API_PORT is given to tenants
SERVICE_PORT = 8080  # any other service in the outside netns


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A test-owned netns standing in for the internet and the operator's internal networks."""
    with outside_netns(tmp_path / "outside" / "ns", LINK, HOST_END, OUTSIDE, OUTSIDE_ADDRESSES) as path:
        with IPRoute(netns=str(path), flags=0) as ns:
            # A way back to the tenants, so that without the table (the controls below) nothing but
            # the table stands between them; with it, outbound traffic is masqueraded anyway.
            ns.route("add", dst=NetworkConfig().tenant_supernet, gateway=str(HOST_END))
        yield path


@pytest.fixture
def host_address() -> Iterator[IPv4Address]:
    """HOST_ADDRESS on an extra link of the host: one of the node's own addresses."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=EXTRA_LINK, kind="bridge")
        try:
            index = ipr.link_lookup(ifname=EXTRA_LINK)[0]
            ipr.addr("add", index=index, address=str(HOST_ADDRESS), prefixlen=32)
            ipr.link("set", index=index, state="up")
            yield HOST_ADDRESS
        finally:
            for index in ipr.link_lookup(ifname=EXTRA_LINK):
                ipr.link("del", index=index)
            assert ipr.link_lookup(ifname=EXTRA_LINK) == []


@pytest.fixture
def net(tmp_path: Path) -> Iterator[NodeNetwork]:
    """A node whose control plane listens on CONTROL_PLANE and on every host address (API_PORT), and
    tells tenants HOST_ADDRESS:API_PORT; the operator blocks BLOCKED_RANGE; RESOLVER is the host's resolver."""
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(f"nameserver 127.0.0.53\nnameserver {RESOLVER}\n")
    cfg = NetworkConfig(blocked_egress=[BLOCKED_RANGE], tenant_api=f"{HOST_ADDRESS}:{API_PORT}")
    listeners = [f"{CONTROL_PLANE}:{CONTROL_PLANE_PORT}", f"0.0.0.0:{API_PORT}"]
    names = NetNames.of_node(f"test-egress-{PID}", TABLE)
    node = NodeNetwork(cfg, tmp_path / "run", names, listeners=listeners, resolv_conf=resolv_conf)
    try:
        yield node
    finally:
        try:
            node.teardown()
        finally:
            Path("/proc/sys/net/ipv4/ip_forward").write_text(forward_before)
        assert not nft.table_exists(TABLE)


@contextmanager
def table_removed(net: NodeNetwork, *containers: Attachment) -> Iterator[None]:
    """The control: the same hosts and routes without the table; it is re-applied afterwards."""
    nft.apply(nft.delete_batch(TABLE))
    try:
        yield
    finally:
        tenants = {t for t in (TENANT, TENANT_OTHER) if any(c.ip in net.tenant(t).subnet for c in containers)}
        net.reconcile(tenants, {c.netns_path.name for c in containers})


def container(net: NodeNetwork, tenant_index: int = TENANT, n: int = 2) -> Attachment:
    return net.attach(cid(), tenant_index, net.tenant(tenant_index).subnet.network_address + n)


def test_outside_world_is_reachable_and_masqueraded(net: NodeNetwork, outside: Path) -> None:
    c = container(net)
    with echo_peer(outside, OUTSIDE, SERVICE_PORT):
        assert probe(c.netns_path, OUTSIDE, SERVICE_PORT) == str(HOST_END)
    # Only the control plane's port is closed on CONTROL_PLANE, not the machine.
    with echo_peer(outside, CONTROL_PLANE, SERVICE_PORT):
        assert probe(c.netns_path, CONTROL_PLANE, SERVICE_PORT) == str(HOST_END)


@pytest.mark.parametrize(
    ("address", "port"),
    [(LINK_LOCAL, 80), (BLOCKED, SERVICE_PORT), (CONTROL_PLANE, CONTROL_PLANE_PORT), (RESOLVER, SERVICE_PORT)],
    ids=["link-local", "operator-range", "control-plane-listener", "resolver-other-port"],
)
def test_blocked_destinations_beyond_the_host(
    net: NodeNetwork, outside: Path, address: IPv4Address, port: int
) -> None:
    c = container(net)
    with echo_peer(outside, address, port):
        assert probe(c.netns_path, address, port) is None
        with table_removed(net, c):
            assert probe(c.netns_path, address, port) == str(c.ip)
        assert probe(c.netns_path, address, port) is None


def test_resolvers_of_resolv_conf_stay_reachable_on_port_53(net: NodeNetwork, outside: Path) -> None:
    c = container(net)
    with echo_peer(outside, RESOLVER, 53):
        assert probe(c.netns_path, RESOLVER, 53) == str(HOST_END)


def test_a_new_resolver_is_opened_at_the_next_attach(net: NodeNetwork, outside: Path) -> None:
    c = container(net)
    with echo_peer(outside, BLOCKED, 53):
        assert probe(c.netns_path, BLOCKED, 53) is None
        net.resolv_conf.write_text(f"nameserver {BLOCKED}\n")
        container(net, n=3)  # a container start re-reads resolv.conf
        assert probe(c.netns_path, BLOCKED, 53) == str(HOST_END)
    with echo_peer(outside, RESOLVER, 53):
        assert probe(c.netns_path, RESOLVER, 53) is None


def test_host_addresses_are_closed_but_the_tenant_api(
    net: NodeNetwork, outside: Path, host_address: IPv4Address
) -> None:
    c = container(net)
    other = container(net, TENANT_OTHER)
    # The control plane's port on the host, on each of its addresses; only the one given to tenants answers.
    own_addresses = [HOST_END, c.gateway, other.gateway]
    with echo_peer(None, host_address, API_PORT):
        assert probe(c.netns_path, host_address, API_PORT) == str(c.ip)
        for address in own_addresses:
            with echo_peer(None, address, API_PORT):
                assert probe(c.netns_path, address, API_PORT) is None, address
    with echo_peer(None, host_address) as port:
        assert probe(c.netns_path, host_address, port) is None
        with table_removed(net, c, other):
            assert probe(c.netns_path, host_address, port) == str(c.ip)
        assert probe(c.netns_path, host_address, port) is None


def checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def udp_frame(src_mac: str, dst_mac: str, src: IPv4Address, dst: IPv4Address, port: int, payload: bytes) -> bytes:
    """An Ethernet frame carrying a UDP datagram, as a container with a raw socket can send to its gateway."""
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0, src.packed, dst.packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    macs = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    return macs + b"\x08\x00" + header + udp


def reaches_host_loopback(c: Attachment) -> bool:
    """Whether a datagram for 127.0.0.1, sent straight to the gateway's MAC, reaches a host socket there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(0.5)
        port = server.getsockname()[1]
        frame = udp_frame(c.mac, ipam.mac_address(c.gateway), c.ip, IPv4Address("127.0.0.1"), port, b"in")
        with pr_netns.create_socket(str(c.netns_path), socket.AF_PACKET, socket.SOCK_RAW, flags=0) as raw:
            raw.sendto(frame, ("eth0", 0))
        try:
            return server.recv(16) == b"in"
        except TimeoutError:
            return False


def test_host_loopback_is_closed_whatever_route_localnet_says(net: NodeNetwork) -> None:
    c = container(net)
    localnet = Path(f"/proc/sys/net/ipv4/conf/{net.tenant(TENANT).bridge}/route_localnet")
    everywhere = Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text().strip()
    assert localnet.read_text().strip() == "0"
    assert not reaches_host_loopback(c)
    if everywhere == "0":
        # The kernel's own guard: with route_localnet off it drops such packets as martians.
        with table_removed(net, c):
            assert not reaches_host_loopback(c)
    # Hosts that run kube-proxy or Docker may turn it on; then only the table's rule stands.
    localnet.write_text("1")
    try:
        assert not reaches_host_loopback(c)
        with table_removed(net, c):
            assert reaches_host_loopback(c)
        assert not reaches_host_loopback(c)
    finally:
        localnet.write_text("0")
