"""Load-balanced services on a real node table: TCP servers in container netns behind a VIP on their tenant
bridge (and a FIP on the node's public interface), clients in other container netns and an "outside" netns."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from seabox.config import NetworkConfig
from seabox.model import ipam
from seabox.model.firewall import Firewall, FirewallRule
from seabox.model.health import HealthCheck
from seabox.node.health import Prober
from seabox.node.health import Target as HealthTarget
from seabox.node.network.lb_rules import Algorithm, Target
from seabox.node.network.manager import Attachment, Exposure, NodeNetwork, Service
from seabox.node.network.names import NetNames
from tests.fixtures.public_net import (
    Outside, accepting, connection, echoes, fip_addresses, node_on_public, ns_socket, probe, serve,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and nftables"),
]

PID = os.getpid()
TABLE = f"seabox_lb_{PID}"
NAMES = NetNames.of_node(f"test-lb-{PID}", TABLE)
PUBLIC = f"sbtlb{PID % 100000}"
PUBLIC_SUBNET = IPv4Network("203.0.113.32/29")
FIP_RANGE = IPv4Network("198.18.0.0/15")
FIP = IPv4Address("198.18.16.1")
# Tenant indexes of this run: 1400..1499 of the default supernet, 2 per run.
TENANT = 1400 + (PID % 50) * 2
OTHER = TENANT + 1
CFG = NetworkConfig(public_interface=PUBLIC)
PORT = 80


def ip(tenant: int, n: int) -> IPv4Address:
    return ipam.tenant_subnet(CFG, tenant).network_address + n


VIP = ip(TENANT, 200)


@dataclass
class Node:
    net: NodeNetwork
    outside: Outside

    def container(self, n: int, tenant: int = TENANT) -> Attachment:
        return self.net.attach(secrets.token_hex(32), tenant, ip(tenant, n))

    def serve(self, backends: list[Attachment], algorithm: Algorithm = "roundrobin", *, fip: bool = False) -> None:
        targets = tuple(Target(b.ip, PORT) for b in backends)
        self.net.balance([Service("svc1", TENANT, VIP, PORT, algorithm, targets, FIP if fip else None, targets)])


def bridge_addresses(tenant: int = TENANT) -> set[str]:
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=NAMES.bridge(tenant))[0]
        return {a.get("address") for a in ipr.addr("dump", index=index, family=socket.AF_INET)}


def label(answer: str | None) -> str | None:
    return None if answer is None else answer.split()[0]


def refused(path: Path, address: IPv4Address, port: int) -> float | None:
    """Seconds until a connect from netns path is refused (a TCP reset), None if it is not refused."""
    with ns_socket(path) as sock:
        sock.settimeout(1.0)
        start = time.monotonic()
        try:
            sock.connect((str(address), port))
        except ConnectionRefusedError:
            return time.monotonic() - start
        except OSError:
            return None
        return None


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with node_on_public(tmp_path, CFG, NAMES, PUBLIC_SUBNET, FIP_RANGE, {TENANT, OTHER}) as (net, outside):
        yield Node(net, outside)


def test_roundrobin_spreads_evenly_and_the_backend_sees_the_client(node: Node) -> None:
    backends = [node.container(n) for n in (2, 3, 4)]
    client = node.container(10)
    node.serve(backends)
    assert str(VIP) in bridge_addresses()
    with serve(backends[0].netns_path, PORT, "b0"), serve(backends[1].netns_path, PORT, "b1"), \
            serve(backends[2].netns_path, PORT, "b2"):  # fmt: skip
        answers = [probe(client.netns_path, VIP, PORT) for _ in range(60)]
    assert Counter(label(a) for a in answers) == {"b0": 20, "b1": 20, "b2": 20}
    assert {a.split()[1] for a in answers if a} == {str(client.ip)}  # no masquerade: the client's own address


def test_source_keeps_each_client_on_one_backend(node: Node) -> None:
    backends = [node.container(n) for n in (2, 3)]
    clients = [node.container(n) for n in range(10, 18)]
    node.serve(backends, "source")
    with serve(backends[0].netns_path, PORT, "b0"), serve(backends[1].netns_path, PORT, "b1"):
        picks = {c.ip: {label(probe(c.netns_path, VIP, PORT)) for _ in range(8)} for c in clients}
    assert all(len(p) == 1 and None not in p for p in picks.values()), picks


def test_leastconn_sends_new_connections_to_the_idle_backend(node: Node) -> None:
    busy, idle = node.container(2), node.container(3)
    client = node.container(10)
    with serve(busy.netns_path, PORT, "busy"), serve(idle.netns_path, PORT, "idle"):
        node.serve([busy], "leastconn")
        with connection(client.netns_path, VIP, PORT) as c1, connection(client.netns_path, VIP, PORT) as c2:
            node.serve([busy, idle], "leastconn")
            assert node.net.rebalance()  # busy holds 2 open connections, idle none
            answers = [label(probe(client.netns_path, VIP, PORT)) for _ in range(10)]
            assert answers == ["idle"] * 10
            assert not node.net.rebalance()  # the probes closed: idle is still the least loaded
            assert echoes(c1) and echoes(c2)
        assert node.net.rebalance()  # both idle again: both in the map
        answers = [label(probe(client.netns_path, VIP, PORT)) for _ in range(10)]
        assert Counter(answers) == {"busy": 5, "idle": 5}


def test_no_backends_refuses_with_a_reset(node: Node) -> None:
    client = node.container(10)
    node.serve([])
    delay = refused(client.netns_path, VIP, PORT)
    assert delay is not None and delay < 0.2
    assert str(VIP) in bridge_addresses()


def test_changing_the_backends_keeps_established_connections(node: Node) -> None:
    first, second = node.container(2), node.container(3)
    client = node.container(10)
    with serve(first.netns_path, PORT, "first"), serve(second.netns_path, PORT, "second"):
        node.serve([first])
        with connection(client.netns_path, VIP, PORT) as old:
            node.serve([second])  # first drains: out of the map, its connection stays
            assert label(probe(client.netns_path, VIP, PORT)) == "second"
            assert echoes(old)
            node.serve([])
            assert echoes(old)
            assert refused(client.netns_path, VIP, PORT) is not None
            node.net.balance([])  # the service is gone: its VIP too, and nothing answers on it
            assert str(VIP) not in bridge_addresses()
            assert echoes(old)


def test_other_tenants_do_not_reach_the_vip(node: Node) -> None:
    backend = node.container(2)
    stranger = node.container(10, OTHER)
    node.serve([backend])
    with serve(backend.netns_path, PORT, "b"):
        assert probe(stranger.netns_path, VIP, PORT) is None


def test_a_replica_reaching_its_own_service(node: Node) -> None:
    backend = node.container(2)
    node.serve([backend])
    with serve(backend.netns_path, PORT, "b"):
        gateway = ipam.gateway(ipam.tenant_subnet(CFG, TENANT))
        assert probe(backend.netns_path, VIP, PORT) == f"b {gateway}"  # masqueraded: the reply comes back


def test_security_groups_of_the_backend_apply_to_vip_traffic(node: Node) -> None:
    backend = node.container(2)
    allowed, denied = node.container(10), node.container(11)
    wall = Firewall(rules=[FirewallRule(direction="ingress", protocol="tcp", port_min=PORT, port_max=PORT,
                                        remotes=[f"{allowed.ip}/32"])])  # fmt: skip
    node.net.expose({backend.netns_path.name: Exposure(backend.ip, firewall=wall),
                     allowed.netns_path.name: Exposure(allowed.ip), denied.netns_path.name: Exposure(denied.ip)})
    node.serve([backend])
    with serve(backend.netns_path, PORT, "b"):
        assert label(probe(allowed.netns_path, VIP, PORT)) == "b"
        assert probe(denied.netns_path, VIP, PORT) is None


def test_a_service_fip_reaches_the_backends_from_outside(node: Node) -> None:
    backends = [node.container(n) for n in (2, 3)]
    out = node.outside.path
    node.serve(backends, fip=True)
    assert fip_addresses(PUBLIC, FIP_RANGE) == {str(FIP)}
    with serve(backends[0].netns_path, PORT, "b0"), serve(backends[1].netns_path, PORT, "b1"):
        answers = [probe(out, FIP, PORT) for _ in range(10)]
        assert Counter(answers) == {f"b0 {node.outside.address}": 5, f"b1 {node.outside.address}": 5}
        assert probe(out, FIP, PORT + 1) is None  # only the service's port
        client = node.container(10)  # a container of the tenant through the FIP too
        assert label(probe(client.netns_path, FIP, PORT)) in ("b0", "b1")
        node.serve([], fip=True)
        assert refused(out, FIP, PORT) is not None
        node.net.balance([])
    assert fip_addresses(PUBLIC, FIP_RANGE) == set()


@contextmanager
def http_server(path: Path, port: int, status: list[int]) -> Iterator[None]:
    """An HTTP server in netns path answering every request with status[0] (the test changes it)."""
    server = ns_socket(path)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(16)

    def answer(conn: socket.socket, _peer: tuple[str, int]) -> None:
        conn.settimeout(0.5)
        with contextlib.suppress(OSError):
            conn.recv(4096)
            conn.sendall(f"HTTP/1.0 {status[0]} X\r\nContent-Length: 0\r\n\r\n".encode())

    with accepting(server, answer):
        yield


async def wait_for(changes: list[bool], expected: list[bool], budget: float) -> float:
    """Seconds until changes == expected (fails after budget)."""
    start = time.monotonic()
    while changes != expected and time.monotonic() - start < budget:
        await asyncio.sleep(0.02)
    assert changes == expected, f"after {time.monotonic() - start:.2f} s"
    return time.monotonic() - start


async def test_the_prober_follows_a_real_server_through_rise_and_fall(node: Node) -> None:
    c = await asyncio.to_thread(node.container, 2)  # pyroute2's sync calls refuse a running event loop
    neighbour = await asyncio.to_thread(node.container, 3)
    # a security group that lets nothing in: the node's probes still reach the container
    await asyncio.to_thread(node.net.expose, {c.netns_path.name: Exposure(c.ip, firewall=Firewall(rules=[]))})
    changes: list[bool] = []

    async def changed(cid: str, healthy: bool) -> None:
        changes.append(healthy)

    prober = Prober(changed)
    check = HealthCheck(port=PORT, interval=0.2, rise=2, fall=3)
    try:
        with serve(c.netns_path, PORT, "c"):
            prober.watch("c", HealthTarget(c.ip, check))
            assert await wait_for(changes, [True], 1.0) >= 0.2  # two passes: the second one interval later
            assert prober.healthy("c") is True
            assert await asyncio.to_thread(probe, neighbour.netns_path, c.ip, PORT) is None  # the group holds
        assert await wait_for(changes, [True, False], 1.5) >= 0.4  # three failures in a row
        with serve(c.netns_path, PORT, "c"):
            await wait_for(changes, [True, False, True], 1.0)
        status = [200]
        with http_server(c.netns_path, PORT + 1, status):
            prober.watch("c", HealthTarget(c.ip, HealthCheck(protocol="http", port=PORT + 1, path="/healthz",
                                                             interval=0.2, rise=1, fall=1)))  # fmt: skip
            assert prober.healthy("c") is None  # another check: undecided again
            await wait_for(changes, [True, False, True, True], 1.0)
            status[0] = 503
            await wait_for(changes, [True, False, True, True, False], 1.0)
            status[0] = 301
            await wait_for(changes, [True, False, True, True, False, True], 1.0)
    finally:
        await prober.close()


def test_a_restarted_node_keeps_serving_from_its_first_table(node: Node, tmp_path: Path) -> None:
    backend, client = node.container(2), node.container(10)
    node.serve([backend])
    service = node.net._services["svc1"]
    with serve(backend.netns_path, PORT, "b"), connection(client.netns_path, VIP, PORT) as old:
        again = NodeNetwork(CFG, tmp_path / "run", NAMES)  # the agent restarted: a new process, same node
        again.balance([service], apply=False)  # as the converger does with the first batch
        again.expose({})
        assert label(probe(client.netns_path, VIP, PORT)) == "b"
        again.reconcile({TENANT, OTHER}, {backend.netns_path.name, client.netns_path.name})
        assert str(VIP) in bridge_addresses()
        assert label(probe(client.netns_path, VIP, PORT)) == "b" and echoes(old)


def table_chains() -> set[str]:
    listing = subprocess.run(["nft", "-j", "list", "table", "inet", TABLE], capture_output=True, text=True, check=True)
    return {item["chain"]["name"] for item in json.loads(listing.stdout)["nftables"] if "chain" in item}


def test_a_tenant_leaving_the_node_takes_its_services_along(node: Node) -> None:
    backend = node.container(2)
    node.serve([backend])
    assert {"lb_0", "lb_0_0"} <= table_chains()
    node.net.detach(backend.netns_path.name)
    node.net.reconcile({OTHER}, set())  # the tenant's last container left; the batch may still list its service
    assert not any(name.startswith("lb_") for name in table_chains())
    with IPRoute() as ipr:
        assert ipr.link_lookup(ifname=NAMES.bridge(TENANT)) == []  # the VIP and neighbours went with the bridge
