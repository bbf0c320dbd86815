"""The `cluster` figure: create+start through a node agent in another network namespace, against the
embedded server's own node, on one control plane in the same run (root)."""

from __future__ import annotations

import os
import statistics
import subprocess

import httpx

from bench.results import report
from tests.fixtures.cluster import running_cluster
from tests.fixtures.images import built_busybox_layout, push_busybox
from tests.fixtures.registry import running_registry

STARTS = int(os.environ.get("BENCH_CLUSTER_STARTS", "30"))


def _starts(client: httpx.Client, image: str) -> list[float]:
    times = []
    body = {"image": image, "cmd": ["sleep", "300"], "size": "s1"}
    for _ in range(STARTS):
        r = client.post("/v1/containers", params={"start": "true"}, json=body)
        assert r.status_code == 201 and r.json()["status"]["state"] == "running", r.text
        times.append(r.elapsed.total_seconds())
    for c in client.get("/v1/containers", params={"all": "true"}).json():
        client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
    return times


def main() -> None:
    with built_busybox_layout() as layout, running_registry() as registry:
        image = push_busybox(registry, layout)
        with running_cluster(registry, nodes=1, server_flags=()) as cluster:
            client = httpx.Client(base_url=cluster.server.url, timeout=120,
                                  headers={"X-Api-Key": cluster.server.tenant("bench")})
            client.post("/v1/images/pull", json={"image": image}).raise_for_status()

            def on(node: str) -> list[float]:
                other = "local" if node == "n1" else "n1"
                subprocess.run(cluster.admin_argv("node", "cordon", other), check=True, capture_output=True)
                try:
                    return _starts(client, image)
                finally:
                    subprocess.run(cluster.admin_argv("node", "uncordon", other), check=True, capture_output=True)

            on("n1")  # warm-up: the remote node pulls the image once
            local, remote = [], []
            for _ in range(2):  # interleaved, so that drift on a shared machine hits both alike
                local += on("local")
                remote += on("n1")
    lm, rm = statistics.median(local) * 1000, statistics.median(remote) * 1000
    rows = [("create+start p50 through a node agent in another netns (target <= 1.3x; peer: the embedded node)",
             f"{rm:.1f} ms", f"{lm:.1f} ms", f"{rm / lm:.2f}x")]
    report("cluster", rows, f"`python -m bench cluster` ({2 * STARTS} starts each, interleaved), on a 2-core machine.", (
        "One control plane (`seabox server` with its embedded node `local`) and one node agent `n1` in a "
        "network namespace of its own, joined over an underlay bridge. Each start is `POST "
        "/v1/containers?start=true` until the answer says running; the other node is cordoned, so the "
        "scheduler puts every container on the node measured. The remote path adds the long-poll of "
        "the node's assignments and its report over HTTP.\n"
    ))
