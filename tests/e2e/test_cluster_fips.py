"""Floating IPs across nodes: each node's eth0 on the underlay is its public interface, and an "outside"
netns on the underlay bridge reaches the FIPs on-link (it asks ARP); a FIP moved to a container on
another node takes new connections within a second (the new node's gratuitous ARP)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_api import pull
from tests.e2e.test_cluster import _named_on, alice  # noqa: F401 (a fixture)
from tests.e2e.test_network_resources import BUDGET, FIP_RANGE, READY, http_get, httpd, until
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
