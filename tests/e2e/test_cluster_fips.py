"""Floating IPs across nodes: each node's eth0 on the underlay is its public interface, and an "outside"
netns on the underlay bridge reaches the FIPs on-link (it asks ARP); a FIP moved to a container on
another node takes new connections within a second (the new node's gratuitous ARP); a service's FIP
reaches its replicas on both nodes, subject to their security groups."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.docker_fixtures import until as wait_for
from tests.e2e.test_api import pull
from tests.e2e.test_cluster import _named_on, alice  # noqa: F401 (a fixture)
from tests.e2e.test_cluster_services import spread
from tests.e2e.test_network_resources import BUDGET, FIP_RANGE, READY, group, http_get, httpd, ingress_tcp, until
from tests.e2e.test_services import FAST, SERVE, ready
from tests.fixtures.cluster import Cluster, _ip, running_cluster
from tests.fixtures.public_net import serve

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runc, netns, nftables"),
]

TAG = os.getpid() % 10000
OUTSIDE_ADDRESS = "198.51.100.200"


@pytest.fixture(scope="module")
def cluster(registry: str, busybox_image: str) -> Iterator[Cluster]:
    """Two nodes whose public interface is their underlay interface, eth0."""
    with running_cluster(registry, node_network='public_interface = "eth0"') as c:
        yield c


@pytest.fixture(scope="module")
def outside(cluster: Cluster) -> Iterator[Path]:
    """A netns on the underlay bridge (198.51.100.200) that routes the FIP range on-link."""
    name, host_end, inner = f"sbxo{TAG}", f"sbo{TAG}", f"sbp{TAG}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", inner)
        _ip("link", "set", host_end, "master", cluster.bridge, "up")
        _ip("link", "set", inner, "netns", name)
        _ip("link", "set", "lo", "up", netns=name)
        _ip("link", "set", inner, "name", "eth0", netns=name)
        _ip("addr", "add", f"{OUTSIDE_ADDRESS}/24", "dev", "eth0", netns=name)
        _ip("link", "set", "eth0", "up", netns=name)
        _ip("route", "add", str(FIP_RANGE), "dev", "eth0", netns=name)
        yield Path("/run/netns", name)
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_a_fip_moved_to_another_nodes_container_takes_new_connections_within_a_second(
    cluster: Cluster, outside: Path, alice: httpx.Client, busybox_image: str  # noqa: F811
) -> None:
    pull(alice, busybox_image)
    one = _named_on(cluster, alice, busybox_image, "n1", "one", cmd=httpd("on-n1", 80), ports=["8080:80"], fip="auto")
    _named_on(cluster, alice, busybox_image, "n2", "two", cmd=httpd("on-n2", 80), ports=["8080:80"])
    fip = alice.get(f"/v1/containers/{one['id']}").json()["fip"]
    assert fip
    until(lambda: http_get(outside, fip, 8080) == "on-n1", READY)
    with serve(outside, 9000, "outside"):
        r = cluster.server.cli("exec", "one", "nc", "-w", "2", OUTSIDE_ADDRESS, "9000", tenant="alice")
        assert r.stdout.strip() == f"outside {fip}", (r.stdout, r.stderr)
    r = cluster.server.cli("fip", "attach", "-f", fip, "two", tenant="alice")
    assert r.returncode == 0, r.stderr
    took = until(lambda: http_get(outside, fip, 8080, timeout=0.2) == "on-n2", BUDGET)
    print(f"the FIP moved across nodes reached traffic {took:.3f} s after the CLI returned")
    with serve(outside, 9000, "outside"):
        r = cluster.server.cli("exec", "two", "nc", "-w", "2", OUTSIDE_ADDRESS, "9000", tenant="alice")
        assert r.stdout.strip() == f"outside {fip}", (r.stdout, r.stderr)


def test_a_service_fip_reaches_its_replicas_on_both_nodes_as_their_security_groups_allow(
    cluster: Cluster, outside: Path, alice: httpx.Client, busybox_image: str, tmp_path: Path  # noqa: F811
) -> None:
    def cli(*args: str) -> str:
        r = cluster.server.cli(*args, tenant="alice")
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    pull(alice, busybox_image)
    cli("sg", "create", "-f", group(tmp_path, "pub", ingress_tcp(8080, 8080, "remote_ip_prefix: 203.0.113.0/24")))
    try:
        cli("service", "create", "pub", "--replicas", "2", "--port", "80", "--container-port", "8080", "--sg", "pub",
            *FAST, busybox_image, *SERVE)
        replicas = wait_for(lambda: ready(alice, "pub", 2), READY, what="2 healthy replicas")
        assert sorted(len(v) for v in spread(cluster, replicas).values()) == [1, 1]
        hostnames = {alice.get(f"/v1/containers/{r['id']}").json()["spec"]["hostname"] for r in replicas}
        fip = cli("fip", "allocate")
        cli("service", "attach-fip", fip, "pub")
        time.sleep(1.0)  # the FIP is up on its node by now: what follows is the group's doing
        assert {http_get(outside, fip, 80) for _ in range(6)} == {None}  # the outside is not in 203.0.113.0/24
        allowed = f"remote_ip_prefix: {OUTSIDE_ADDRESS}/32"
        cli("sg", "update", "-f", group(tmp_path, "pub", ingress_tcp(8080, 8080, allowed)), "pub")
        seen: set[str | None] = set()
        # each node applies the update on its own heartbeat: wait until the replicas on both have answered
        until(lambda: seen.add(http_get(outside, fip, 80)) or hostnames <= seen, READY)
        answers = [http_get(outside, fip, 80) for _ in range(12)]
        assert set(answers) == hostnames, answers  # once both nodes have the rule, no request fails
    finally:
        cluster.server.cli("service", "rm", "pub", tenant="alice")
        cluster.server.cli("sg", "rm", "pub", tenant="alice")
