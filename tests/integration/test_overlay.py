"""Tenant networks across hosts over VXLAN: two "hosts" (network namespaces on an underlay the test builds,
192.0.2.0/24), each running a node's NodeNetwork inside it; traffic crosses in its tenant's VNI only."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from seabox.config import NetworkConfig
from seabox.node.network import netns, vxlan
from seabox.node.network.names import NetNames
from tests.fixtures.public_net import probe as public_probe
from tests.fixtures.public_net import serve
from tests.integration.test_network import echo_peer, host_ip, probe

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and nftables"),
]

NSENTER = "/usr/bin/nsenter"
TENANT, OTHER = 5, 6
UNDERLAY_PREFIX = 24
PAYLOAD = 1 << 20  # a stream of full-sized segments, not just a handshake
WORKTREE = Path(__file__).resolve().parents[2]
SETTLE = 5.0


@dataclass
class Host:
    """A network namespace acting as one node's host, with its underlay address."""

    name: str
    path: Path
    run_dir: Path
    address: IPv4Address

    @property
    def names(self) -> NetNames:
        return NetNames.of_node(self.name)

    def node(self, *args: str) -> None:
        """Run one NodeNetwork call inside this host's netns."""
        argv = [NSENTER, f"--net={self.path}", sys.executable, "-m", "tests.integration.overlay_host"]
        out = subprocess.run([*argv, str(self.run_dir), self.name, *args], capture_output=True, text=True, cwd=WORKTREE)
        assert out.returncode == 0, out.stderr

    def container(self, tenant: int, n: int) -> Path:
        cid = secrets.token_hex(32)
        self.node("attach", cid, str(tenant), str(host_ip(tenant, n)))
        return self.run_dir / "netns" / cid

    def flood_list(self, tenant: int) -> set[IPv4Address] | None:
        with IPRoute(use_socket=netns.netlink_socket(self.path)) as ipr:
            found = ipr.link_lookup(ifname=self.names.vxlan(tenant))
            return vxlan.flood_list(ipr, found[0]) if found else None


def _ipr(path: Path) -> IPRoute:
    return IPRoute(use_socket=netns.netlink_socket(path))


@contextmanager
def underlay(tmp_path: Path, count: int = 2) -> Iterator[list[Host]]:
    """A switch netns with a bridge, and COUNT host netns each on a veth to it (192.0.2.1, .2, ... /24)."""
    switch = tmp_path / "ns" / "switch"
    hosts = [Host(name, tmp_path / "ns" / name, tmp_path / name / "run", IPv4Address(f"192.0.2.{i}"))
             for i, name in ((i, f"host{'abc'[i - 1]}{os.getpid()}") for i in range(1, count + 1))]  # fmt: skip
    try:
        netns.create(switch)
        with _ipr(switch) as sw:
            sw.link("add", ifname="br0", kind="bridge")
            bridge = sw.link_lookup(ifname="br0")[0]
            sw.link("set", index=bridge, state="up")
            for number, host in enumerate(hosts):
                netns.create(host.path)
                fd = os.open(host.path, os.O_RDONLY)
                try:
                    sw.link("add", ifname=f"port{number}", kind="veth", peer={"ifname": "ul0", "net_ns_fd": fd})
                finally:
                    os.close(fd)
                sw.link("set", index=sw.link_lookup(ifname=f"port{number}")[0], master=bridge, state="up")
                with _ipr(host.path) as ipr:
                    ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
                    ul0 = ipr.link_lookup(ifname="ul0")[0]
                    ipr.addr("add", index=ul0, address=str(host.address), prefixlen=UNDERLAY_PREFIX)
                    ipr.link("set", index=ul0, state="up")
        yield hosts
    finally:
        for host in hosts:
            for name in netns.names(host.run_dir / "netns"):
                netns.remove(host.run_dir / "netns" / name)
            netns.release_dir(host.run_dir / "netns")
            netns.remove(host.path)  # its links and nft table go with it
        netns.remove(switch)
        netns.release_dir(switch.parent)


@contextmanager
def sink(path: Path, address: IPv4Address) -> Iterator[int]:
    """A TCP server in netns path that reads a whole stream and answers with its length; yields its port."""
    server = pr_netns.create_socket(str(path), flags=0)
    server.bind((str(address), 0))
    server.listen(4)
    server.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            total = 0
            while chunk := conn.recv(65536):
                total += len(chunk)
            conn.sendall(str(total).encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        thread.join()


def reach(path: Path, address: IPv4Address, port: int) -> str | None:
    """probe, retried for a few seconds: the first frames over a new overlay wait for ARP across it."""
    deadline = time.monotonic() + SETTLE
    while (seen := probe(path, address, port)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return seen


def send_all(path: Path, address: IPv4Address, port: int) -> str:
    with pr_netns.create_socket(str(path), flags=0) as sock:
        sock.settimeout(5)
        sock.connect((str(address), port))
        sock.sendall(b"x" * PAYLOAD)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(64).decode()


def test_a_tenant_network_spans_two_hosts_and_only_its_own_vni(tmp_path: Path) -> None:
    with ExitStack() as stack:
        a, b = stack.enter_context(underlay(tmp_path))
        web = a.container(TENANT, 2)
        client = b.container(TENANT, 3)
        with echo_peer(web, "0.0.0.0") as port:
            assert probe(client, host_ip(TENANT, 2), port) is None  # no overlay yet: two separate networks
            a.node("overlay", str(TENANT), str(a.address), str(b.address))
            b.node("overlay", str(TENANT), str(b.address), str(a.address), str(b.address))  # own address left out
            assert reach(client, host_ip(TENANT, 2), port) == str(host_ip(TENANT, 3))
        with sink(web, host_ip(TENANT, 2)) as port:
            assert send_all(client, host_ip(TENANT, 2), port) == str(PAYLOAD)
        assert b.flood_list(TENANT) == {a.address}
        cfg = NetworkConfig()
        with IPRoute(use_socket=netns.netlink_socket(a.path)) as ipr:
            device = ipr.link("get", ifname=a.names.vxlan(TENANT))[0]
            assert device.get(("linkinfo", "data", "vxlan_id")) == cfg.vxlan_vni_base + TENANT
            assert device.get("master") == ipr.link_lookup(ifname=a.names.bridge(TENANT))[0]
            # VXLAN's 50 bytes fit in the 1500-byte underlay without fragmenting the outer packets.
            assert device.get("mtu") == cfg.tenant_mtu == 1500 - 50
        with IPRoute(use_socket=netns.netlink_socket(client)) as ns:
            assert ns.link("get", ifname="eth0")[0].get("mtu") == cfg.tenant_mtu

        # Another tenant's VNI between the same hosts: a container of it on B that takes an address of
        # TENANT's subnet (spoofed inside its own netns) still cannot reach TENANT's container on A.
        intruder = b.container(OTHER, 2)
        a.node("overlay", str(OTHER), str(a.address), str(b.address))
        b.node("overlay", str(OTHER), str(b.address), str(a.address))
        with IPRoute(use_socket=netns.netlink_socket(intruder)) as ns:
            ns.addr("add", index=ns.link_lookup(ifname="eth0")[0], address=str(host_ip(TENANT, 50)), prefixlen=24)
        other_web = a.container(OTHER, 3)
        with echo_peer(web, "0.0.0.0") as port, echo_peer(other_web, "0.0.0.0") as other_port:
            assert reach(intruder, host_ip(OTHER, 3), other_port) == str(host_ip(OTHER, 2))  # its own VNI works
            assert probe(intruder, host_ip(TENANT, 2), port) is None
            assert reach(client, host_ip(TENANT, 2), port) == str(host_ip(TENANT, 3))

            # Converge: the same call changes nothing; removal cuts the tenant apart again.
            a.node("overlay", str(TENANT), str(a.address), str(b.address))
            assert a.flood_list(TENANT) == {b.address}
            a.node("overlay", str(TENANT), str(a.address))
            assert a.flood_list(TENANT) == set()
            a.node("overlay", str(TENANT), str(a.address), str(b.address))
            assert reach(client, host_ip(TENANT, 2), port) == str(host_ip(TENANT, 3))
            a.node("remove-overlay", str(TENANT))
            assert a.flood_list(TENANT) is None
            assert probe(client, host_ip(TENANT, 2), port) is None

        # Reconcile at start-up: overlays of tenants not listed go, listed ones are made.
        b.node("reconcile-overlays", str(b.address), '{"%d": ["%s"]}' % (OTHER, a.address))
        assert b.flood_list(TENANT) is None and b.flood_list(OTHER) == {a.address}
        b.node("teardown")
        assert b.flood_list(OTHER) is None


def _lands(stranger: Path, web: Path, address: IPv4Address) -> bool:
    """Whether one UDP datagram sent from stranger's netns reaches a socket in web's (one way: no answer needed)."""
    with pr_netns.create_socket(str(web), socket.AF_INET, socket.SOCK_DGRAM, flags=0) as sink_sock, \
            pr_netns.create_socket(str(stranger), socket.AF_INET, socket.SOCK_DGRAM, flags=0) as source:
        sink_sock.bind((str(address), 0))
        sink_sock.settimeout(1.0)
        source.sendto(b"injected", (str(address), sink_sock.getsockname()[1]))
        try:
            return sink_sock.recv(64) == b"injected"
        except TimeoutError:
            return False


def test_only_an_overlays_peers_can_send_into_it(tmp_path: Path) -> None:
    with ExitStack() as stack:
        a, b, stranger = stack.enter_context(underlay(tmp_path, count=3))
        web = a.container(TENANT, 2)
        a.node("overlay", str(TENANT), str(a.address), str(b.address))
        # A host on the underlay that is no peer of the overlay builds a VXLAN device of the tenant's VNI
        # toward A, takes an address in the tenant's subnet and knows the web container's MAC: the frames
        # it sends need no answer, and A drops them.
        cfg = NetworkConfig()
        with _ipr(web) as ns:
            web_mac = ns.link("get", ifname="eth0")[0].get("IFLA_ADDRESS")
        with _ipr(stranger.path) as ipr:
            ipr.link("add", ifname="vx0", kind="vxlan", vxlan_id=cfg.vxlan_vni_base + TENANT,
                     vxlan_local=str(stranger.address), vxlan_port=cfg.vxlan_port, vxlan_learning=0)  # fmt: skip
            vx0 = ipr.link_lookup(ifname="vx0")[0]
            ipr.fdb("append", ifindex=vx0, lladdr=vxlan.FLOOD_MAC, dst=str(a.address))
            ipr.addr("add", index=vx0, address=str(host_ip(TENANT, 60)), prefixlen=24)
            ipr.link("set", index=vx0, state="up", mtu=cfg.tenant_mtu)
            ipr.neigh("add", dst=str(host_ip(TENANT, 2)), lladdr=web_mac, ifindex=vx0, state="permanent")
        assert not _lands(stranger.path, web, host_ip(TENANT, 2))
        # made a peer, the same host gets through: what stopped it was the peer check
        a.node("overlay", str(TENANT), str(a.address), str(b.address), str(stranger.address))
        assert _lands(stranger.path, web, host_ip(TENANT, 2))
        a.node("overlay", str(TENANT), str(a.address), str(b.address))
        assert not _lands(stranger.path, web, host_ip(TENANT, 2))


def test_a_service_vip_reaches_backends_on_another_host(tmp_path: Path) -> None:
    """The client's node DNATs; the remote backend answers the client directly over the overlay, and the
    client's node un-NATs that answer as its bridge carries it (no masquerade: the backend sees the client)."""
    with ExitStack() as stack:
        a, b = stack.enter_context(underlay(tmp_path))
        far = a.container(TENANT, 2)
        near, client = b.container(TENANT, 4), b.container(TENANT, 3)
        a.node("overlay", str(TENANT), str(a.address), str(b.address))
        b.node("overlay", str(TENANT), str(b.address), str(a.address))
        vip = host_ip(TENANT, 200)
        for host in (a, b):  # every node of the tenant serves the VIP, as the batch has it
            host.node("balance", str(TENANT), str(vip), "80", str(host_ip(TENANT, 2)), str(host_ip(TENANT, 4)))
        with serve(far, 80, "far"), serve(near, 80, "near"):
            assert reach(client, host_ip(TENANT, 2), 80) is not None  # ARP across the overlay settled
            answers = [public_probe(client, vip, 80) for _ in range(10)]
        assert sorted(map(str, answers)) == [f"far {host_ip(TENANT, 3)}"] * 5 + [f"near {host_ip(TENANT, 3)}"] * 5
