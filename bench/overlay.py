"""The `overlay` figure: TCP throughput between two containers of one tenant on two nodes (over VXLAN),
against the same two containers' traffic on one node, in the same run (root)."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Iterator

import httpx

from bench.results import report
from tests.fixtures.cluster import Cluster, running_cluster
from tests.fixtures.debian import push_python_image
from tests.fixtures.registry import running_registry

ROUNDS = int(os.environ.get("BENCH_OVERLAY_ROUNDS", "4"))
MIB = int(os.environ.get("BENCH_OVERLAY_MIB", "512"))
PORT = 9000

# Reads each connection to its end and answers with the byte count.
SINK = f"""
import socket
s = socket.create_server(("0.0.0.0", {PORT}))
while True:
    c, _ = s.accept()
    n = 0
    while chunk := c.recv(1 << 20):
        n += len(chunk)
    c.sendall(str(n).encode())
    c.close()
"""
# Sends MIB MiB and prints MB/s, timed from connect to the sink's answer.
SOURCE = """
import socket, sys, time
block = b"x" * (1 << 20)
t = time.perf_counter()
c = socket.create_connection((sys.argv[1], {port}))
for _ in range({mib}):
    c.sendall(block)
c.shutdown(socket.SHUT_WR)
assert int(c.recv(64)) == {mib} << 20
print({mib} * 1.048576 / (time.perf_counter() - t))
""".format(port=PORT, mib=MIB)


@contextlib.contextmanager
def _only(cluster: Cluster, node: str) -> Iterator[None]:
    """Every other node cordoned: the scheduler puts what is created meanwhile on NODE."""
    others = [n.name for n in cluster.nodes if n.name != node]
    for other in others:
        assert cluster.admin("node", "cordon", other).returncode == 0
    try:
        yield
    finally:
        for other in others:
            cluster.admin("node", "uncordon", other)


def _run(client: httpx.Client, image: str, script: str, *args: str) -> dict:
    r = client.post("/v1/containers", params={"start": "true"},
                    json={"image": image, "cmd": ["python3", "-c", script, *args], "size": "m1"})
    assert r.status_code == 201, r.text
    return r.json()


def _rate(client: httpx.Client, cluster: Cluster, node: str, image: str, target: str) -> float:
    with _only(cluster, node):
        c = _run(client, image, SOURCE, target)
    r = client.post(f"/v1/containers/{c['id']}/wait", timeout=300)
    assert r.status_code == 200 and r.json()["exit_code"] == 0, r.text
    out = [json.loads(line) for line in client.get(f"/v1/containers/{c['id']}/logs").text.splitlines()]
    client.delete(f"/v1/containers/{c['id']}")
    return float("".join(x["data"] for x in out if x["stream"] == "stdout"))


def main() -> None:
    with running_registry() as registry:
        image = push_python_image(registry)
        with running_cluster(registry, nodes=2) as cluster:
            client = httpx.Client(base_url=cluster.server.url, timeout=300,
                                  headers={"X-Api-Key": cluster.server.tenant("bench")})
            client.post("/v1/images/pull", json={"image": image}, timeout=600).raise_for_status()
            with _only(cluster, "n1"):
                sink = _run(client, image, SINK)
            time.sleep(1.0)  # python's start-up before the sink listens
            address = sink["status"]["ip"]
            _rate(client, cluster, "n2", image, address)  # warm-up: n2 pulls the image, the overlay comes up
            same, across = [], []
            for _ in range(ROUNDS):  # interleaved, so that drift on a shared machine hits both alike
                same.append(_rate(client, cluster, "n1", image, address))
                across.append(_rate(client, cluster, "n2", image, address))
            client.delete(f"/v1/containers/{sink['id']}", params={"force": "true"})
    sm, am = statistics.median(same), statistics.median(across)
    rows = [(f"TCP throughput, {MIB} MiB, containers on two nodes over VXLAN (target >= 0.8x; peer: both on one node)",
             f"{am:.0f} MB/s", f"{sm:.0f} MB/s", f"{am / sm:.2f}x")]
    report("overlay", rows, f"`python -m bench overlay` ({ROUNDS} transfers each, interleaved), on a 2-core machine.", (
        "Two node agents, each in a network namespace of its own on an underlay bridge (1500 MTU), one "
        "tenant: a sink container on n1 and a source container (Python sockets, 1 MiB writes) either on n1 "
        "too (bridge only) or on n2 (its bridge, VXLAN over the underlay veths, n1's bridge). Both nodes "
        "share the machine's two cores, so the cross-node figure also pays for both nodes' VXLAN work on "
        "the same CPUs that run both containers.\n"
    ))
