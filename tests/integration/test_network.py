"""Real tenant networks on this host: netns, veth, bridges and an nftables table, all test-owned and removed."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from seabox.config import NetworkConfig
from seabox.errors import Conflict, InvalidArgument
from seabox.model import ipam
from seabox.node.network import links, netns, nft
from seabox.node.network.manager import Attachment, NodeNetwork
from seabox.node.network.names import NetNames
from tests.fixtures.public_net import accepting, ns_socket

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and nftables"),
]

PID = os.getpid()
TABLE = f"seabox_test_{PID}"
NAMES = NetNames.of_node(f"test-network-{PID}", TABLE)
# Tenant indexes of this run: 900..1099 of the default supernet, 4 per run.
BASE = 900 + (PID % 50) * 4
TENANT_A, TENANT_B, TENANT_C, TENANT_FOREIGN = BASE, BASE + 1, BASE + 2, BASE + 3
OUTSIDE_HOST = IPv4Address("198.18.255.1")
OUTSIDE_PEER = IPv4Address("198.18.255.2")
OUTSIDE_LINK = f"sbtout{PID % 100000}"
PROBE_TIMEOUT = 0.5
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


GATEWAY_PORT = free_port()
GATEWAY_SERVICES = (nft.GatewayService("tcp", GATEWAY_PORT),)


def cid() -> str:
    return secrets.token_hex(32)


def host_ip(tenant_index: int, n: int) -> IPv4Address:
    return ipam.tenant_subnet(NetworkConfig(), tenant_index).network_address + n


@contextmanager
def echo_peer(path: Path | None, address: IPv4Address | str, port: int = 0) -> Iterator[int]:
    """A TCP server in netns path that answers each connection with the peer address it saw; yields its port."""
    server = ns_socket(path)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((str(address), port))
    server.listen(16)
    with accepting(server, lambda conn, peer: conn.sendall(peer[0].encode())):
        yield server.getsockname()[1]


def probe(path: Path | None, address: IPv4Address, port: int) -> str | None:
    """Connect from netns path; the peer address the server reported, or None if no connection was made."""
    with ns_socket(path) as sock:
        sock.settimeout(PROBE_TIMEOUT)
        try:
            sock.connect((str(address), port))
            return sock.recv(64).decode()
        except OSError:
            return None


def owned_links() -> list[links.OwnedLink]:
    with IPRoute() as ipr:
        return links.owned(ipr, NAMES)


def table_chains() -> set[str]:
    out = subprocess.run(["nft", "-j", "list", "table", "inet", TABLE], capture_output=True, text=True, check=True)
    return {item["chain"]["name"] for item in json.loads(out.stdout)["nftables"] if "chain" in item}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def net(run_dir: Path) -> Iterator[NodeNetwork]:
    forward_before = IP_FORWARD.read_text()
    node = NodeNetwork(NetworkConfig(), run_dir, NAMES, gateway_services=GATEWAY_SERVICES)
    try:
        yield node
    finally:
        try:
            node.teardown()
        finally:
            IP_FORWARD.write_text(forward_before)
        assert owned_links() == []
        assert not (run_dir / "netns").exists()
        assert not nft.table_exists(TABLE)


@dataclass
class Outside:
    """A test-owned netns standing in for the internet, reached from the host over a veth."""

    path: Path


@contextmanager
def outside_netns(
    path: Path, link: str, host_end: IPv4Address, peer: IPv4Address, extra: tuple[IPv4Address, ...] = ()
) -> Iterator[Path]:
    """A netns at path whose eth0 faces the host's link on a /30 (host_end, peer); it also holds each
    extra address, routed to it from the host. All of it is removed on exit."""
    netns.create(path)
    try:
        fd = os.open(path, os.O_RDONLY)
        with IPRoute() as ipr:
            try:
                ipr.link("add", ifname=link, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
            finally:
                os.close(fd)
            index = ipr.link_lookup(ifname=link)[0]
            ipr.addr("add", index=index, address=str(host_end), prefixlen=30)
            ipr.link("set", index=index, state="up")
            for address in extra:  # removed with the link
                ipr.route("add", dst=f"{address}/32", gateway=str(peer), oif=index)
        with IPRoute(netns=str(path), flags=0) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            eth0 = ns.link_lookup(ifname="eth0")[0]
            ns.addr("add", index=eth0, address=str(peer), prefixlen=30)
            for address in extra:
                ns.addr("add", index=eth0, address=str(address), prefixlen=32)
            ns.link("set", index=eth0, state="up")
        yield path
    finally:
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=link):
                ipr.link("del", index=index)
        netns.remove(path)
        netns.release_dir(path.parent)
        with IPRoute() as ipr:
            assert ipr.link_lookup(ifname=link) == []


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Outside]:
    with outside_netns(tmp_path / "outside" / "ns", OUTSIDE_LINK, OUTSIDE_HOST, OUTSIDE_PEER) as path:
        yield Outside(path)


def test_same_tenant_containers_talk_over_the_bridge(net: NodeNetwork) -> None:
    a1 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 2))
    a2 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 3))
    bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    with echo_peer(a1.netns_path, "0.0.0.0") as port:
        # The server sees A2's own address: bridged, not NATed, not dropped, br_netfilter or not.
        assert probe(a2.netns_path, a1.ip, port) == str(a2.ip), (
            f"bridge-nf-call-iptables={bridge_nf.read_text().strip() if bridge_nf.exists() else 'absent'}"
        )
    with echo_peer(a2.netns_path, a2.ip) as port:
        assert probe(a1.netns_path, a2.ip, port) == str(a1.ip)


def test_container_interface_inside_netns(net: NodeNetwork) -> None:
    att = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 9))
    assert att.gateway == host_ip(TENANT_A, 1) and att.prefixlen == 24
    with IPRoute(netns=str(att.netns_path), flags=0) as ns:
        eth0 = ns.link("get", ifname="eth0")[0]
        assert eth0.get("address") == att.mac
        assert eth0.get("operstate") == "UP"
        dump = ns.addr("dump", index=eth0["index"], family=socket.AF_INET)
        addrs = [(a.get("address"), a["prefixlen"]) for a in dump]
        assert addrs == [(str(att.ip), 24)]
        defaults = [r.get("gateway") for r in ns.route("dump", family=socket.AF_INET, table=254) if r["dst_len"] == 0]
        assert defaults == [str(att.gateway)]
        assert ns.link("get", ifname="lo")[0].get("operstate") in ("UNKNOWN", "UP")


def test_other_tenant_cannot_reach(net: NodeNetwork) -> None:
    a1 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 2))
    b1 = net.attach(cid(), TENANT_B, host_ip(TENANT_B, 2))
    with echo_peer(a1.netns_path, "0.0.0.0") as port:
        assert probe(b1.netns_path, a1.ip, port) is None
        with echo_peer(b1.netns_path, "0.0.0.0") as back:
            assert probe(a1.netns_path, b1.ip, back) is None
            # Replies in the allowed direction do not open the other one: a sanity check that A1 still serves.
            a2 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 3))
            assert probe(a2.netns_path, a1.ip, port) == str(a2.ip)
            # Control: it is the table that separates them (the host routes between bridges otherwise).
            nft.apply(nft.delete_batch(TABLE))
            assert probe(b1.netns_path, a1.ip, port) == str(b1.ip)
            net.reconcile({TENANT_A, TENANT_B}, {a1.netns_path.name, a2.netns_path.name, b1.netns_path.name})
            assert probe(b1.netns_path, a1.ip, port) is None


def test_gateway_reachable_only_for_allowed_services_of_own_tenant(net: NodeNetwork) -> None:
    a1 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 2))
    b1 = net.attach(cid(), TENANT_B, host_ip(TENANT_B, 2))
    with echo_peer(None, a1.gateway, GATEWAY_PORT) as port, echo_peer(None, a1.gateway) as other:
        assert probe(a1.netns_path, a1.gateway, port) == str(a1.ip)
        assert probe(a1.netns_path, a1.gateway, other) is None
        # Another tenant's gateway is a host address like any other: closed.
        assert probe(b1.netns_path, a1.gateway, port) is None
    # The host itself can still open connections into a container (e.g. health checks).
    with echo_peer(a1.netns_path, "0.0.0.0") as port:
        assert probe(None, a1.ip, port) == str(a1.gateway)


def test_outbound_is_masqueraded_and_host_stays_closed(net: NodeNetwork, outside: Outside) -> None:
    a1 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 2))
    with echo_peer(outside.path, OUTSIDE_PEER) as port:
        # The outside netns has no route to the tenant subnet: only NAT makes this work.
        assert probe(a1.netns_path, OUTSIDE_PEER, port) == str(OUTSIDE_HOST)
    with echo_peer(None, OUTSIDE_HOST, GATEWAY_PORT) as port:
        assert probe(a1.netns_path, OUTSIDE_HOST, port) is None
    # Even with a route to the tenant subnet, the outside cannot open a connection into it.
    with IPRoute(netns=str(outside.path), flags=0) as ns:
        ns.route("add", dst=str(net.tenant(TENANT_A).subnet), gateway=str(OUTSIDE_HOST))
    with echo_peer(a1.netns_path, "0.0.0.0") as port:
        assert probe(outside.path, a1.ip, port) is None


def test_ensure_tenant_and_attach_are_idempotent(net: NodeNetwork, run_dir: Path) -> None:
    first = net.ensure_tenant(TENANT_A)
    assert net.ensure_tenant(TENANT_A) == first
    container = cid()
    att = net.attach(container, TENANT_A, host_ip(TENANT_A, 5))
    with IPRoute() as ipr:
        before = links.lookup(ipr, NAMES.veth(container))["index"]
    assert net.attach(container, TENANT_A, host_ip(TENANT_A, 5)) == att
    # After an agent restart, a fresh manager adopts what is there and returns the same attachment.
    restarted = NodeNetwork(NetworkConfig(), run_dir, NAMES, gateway_services=GATEWAY_SERVICES)
    assert restarted.attach(container, TENANT_A, host_ip(TENANT_A, 5)) == att
    with IPRoute() as ipr:
        assert links.lookup(ipr, NAMES.veth(container))["index"] == before
    assert {"tenant_%d" % TENANT_A, "tenant_%d_in" % TENANT_A} <= table_chains()
    with echo_peer(None, att.gateway, GATEWAY_PORT) as port:
        assert probe(att.netns_path, att.gateway, port) == str(att.ip)


def test_attach_recreates_a_lost_pair(net: NodeNetwork) -> None:
    container = cid()
    att = net.attach(container, TENANT_A, host_ip(TENANT_A, 6))
    with IPRoute() as ipr:
        ipr.link("del", ifname=NAMES.veth(container))
    assert net.attach(container, TENANT_A, host_ip(TENANT_A, 6)) == att
    with echo_peer(None, att.gateway, GATEWAY_PORT) as port:
        assert probe(att.netns_path, att.gateway, port) == str(att.ip)


def test_detach_cleans_and_is_idempotent(net: NodeNetwork) -> None:
    container = cid()
    att = net.attach(container, TENANT_A, host_ip(TENANT_A, 7))
    net.detach(container)
    net.detach(container)
    assert not att.netns_path.exists()
    assert [link for link in owned_links() if link.tenant_index is None] == []


def test_reconcile_removes_orphans_and_keeps_the_desired(net: NodeNetwork, run_dir: Path) -> None:
    keep, orphan_same_tenant, orphan_other_tenant = cid(), cid(), cid()
    kept: Attachment = net.attach(keep, TENANT_A, host_ip(TENANT_A, 2))
    net.attach(orphan_same_tenant, TENANT_A, host_ip(TENANT_A, 3))
    net.attach(orphan_other_tenant, TENANT_B, host_ip(TENANT_B, 2))
    stale = run_dir / "netns" / cid()
    stale.touch()
    # An untagged link with a Seabox veth name: a crash between creating and tagging it.
    leftover = NAMES.veth(cid())
    with IPRoute() as ipr:
        ipr.link("add", ifname=leftover, kind="veth", peer=leftover[:-1] + "p")
    net.reconcile({TENANT_A, TENANT_C}, {keep})
    remaining = owned_links()
    assert {link.container_id for link in remaining if link.tenant_index is None} == {keep}
    assert {link.tenant_index for link in remaining if link.tenant_index is not None} == {TENANT_A, TENANT_C}
    assert netns.names(run_dir / "netns") == [keep]
    chains = table_chains()
    assert f"tenant_{TENANT_C}" in chains and f"tenant_{TENANT_B}" not in chains
    with IPRoute() as ipr:
        assert links.lookup(ipr, leftover) is None
    with echo_peer(None, kept.gateway, GATEWAY_PORT) as port:
        assert probe(kept.netns_path, kept.gateway, port) == str(kept.ip)


def test_links_of_another_owner_are_refused_and_left_alone(net: NodeNetwork) -> None:
    name = NAMES.bridge(TENANT_FOREIGN)
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="bridge")
        ipr.link("set", ifname=name, ifalias="seabox:someone_else")
    try:
        with pytest.raises(Conflict):
            net.ensure_tenant(TENANT_FOREIGN)
        with pytest.raises(Conflict):
            net.attach(cid(), TENANT_FOREIGN, host_ip(TENANT_FOREIGN, 2))
        net.teardown()
        with IPRoute() as ipr:
            assert links.lookup(ipr, name) is not None
    finally:
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=name):
                ipr.link("del", index=index)


def test_bad_arguments_are_rejected(net: NodeNetwork) -> None:
    with pytest.raises(InvalidArgument):
        net.attach("not-hex", TENANT_A, host_ip(TENANT_A, 2))
    with pytest.raises(InvalidArgument):
        net.attach(cid(), TENANT_A, host_ip(TENANT_A, 1))
    with pytest.raises(InvalidArgument):
        net.attach(cid(), TENANT_A, host_ip(TENANT_B, 2))
    with pytest.raises(InvalidArgument):
        net.ensure_tenant(1 << 20)
    assert owned_links() == []


def test_teardown_removes_everything(net: NodeNetwork, run_dir: Path) -> None:
    net.attach(cid(), TENANT_A, host_ip(TENANT_A, 2))
    net.attach(cid(), TENANT_B, host_ip(TENANT_B, 2))
    assert nft.table_exists(TABLE)
    net.teardown()
    assert owned_links() == []
    assert not (run_dir / "netns").exists()
    assert not nft.table_exists(TABLE)
    net.teardown()


def test_a_second_table_on_the_host_neither_breaks_nor_bridges_this_one(net: NodeNetwork, run_dir: Path) -> None:
    """Two Seabox tables on one host (a second server, or a leftover): each keeps its tenants working and apart."""
    names = NetNames.of_node(f"test-network-other-{PID}", f"{TABLE}_b")
    other = NodeNetwork(NetworkConfig(), run_dir / "other", names, gateway_services=GATEWAY_SERVICES)
    tenant_c = TENANT_B + 1
    try:
        a1 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 2))
        a2 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 3))
        c1 = other.attach(cid(), tenant_c, host_ip(tenant_c, 2))
        c2 = other.attach(cid(), tenant_c, host_ip(tenant_c, 3))
        with echo_peer(a1.netns_path, "0.0.0.0") as port:
            assert probe(a2.netns_path, a1.ip, port) == str(a2.ip)
            assert probe(c1.netns_path, a1.ip, port) is None
        with echo_peer(c1.netns_path, "0.0.0.0") as port:
            assert probe(c2.netns_path, c1.ip, port) == str(c2.ip)
            assert probe(a1.netns_path, c1.ip, port) is None
    finally:
        other.teardown()


def wait_for_no_carrier(ifname: str) -> None:
    deadline = time.monotonic() + 5
    with IPRoute() as ipr:
        while ipr.link("get", ifname=ifname)[0].get("operstate") != "DOWN":
            assert time.monotonic() < deadline, f"{ifname} still has a carrier"
            time.sleep(0.05)


def test_another_node_with_the_same_tenant_subnet_leaves_this_one_working(net: NodeNetwork, run_dir: Path) -> None:
    """Two nodes of two clouds on one host (a `make up` server and a test server): the same tenant index,
    so the same subnet and gateway, on two bridges. Each one's containers talk over their own bridge
    (neither table masquerades what the other bridges), and an idle bridge does not take the host's route."""
    other = NodeNetwork(NetworkConfig(), run_dir / "other", NetNames.of_node(f"test-network-same-{PID}", f"{TABLE}_s"))
    try:
        idle = other.ensure_tenant(TENANT_A)  # made first: its route is the first one for the subnet
        wait_for_no_carrier(idle.bridge)  # as a leftover bridge is: the kernel notes it within a second
        a1 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 2))
        a2 = net.attach(cid(), TENANT_A, host_ip(TENANT_A, 3))
        with echo_peer(a1.netns_path, "0.0.0.0") as port:
            assert probe(a2.netns_path, a1.ip, port) == str(a2.ip)
            assert probe(None, a1.ip, port) == str(a1.gateway)
        o1 = other.attach(cid(), TENANT_A, host_ip(TENANT_A, 2))
        o2 = other.attach(cid(), TENANT_A, host_ip(TENANT_A, 3))
        with echo_peer(o1.netns_path, "0.0.0.0") as port:
            assert probe(o2.netns_path, o1.ip, port) == str(o2.ip)
        with echo_peer(a1.netns_path, "0.0.0.0") as port:
            assert probe(a2.netns_path, a1.ip, port) == str(a2.ip)
    finally:
        other.teardown()
