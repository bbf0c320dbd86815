"""A service on two nodes: its replicas spread over them, a replica removed on one node is made again there (the
node with fewer of them), and a client on one node reaches replicas on both through the virtual IP."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.docker_fixtures import ok, until
from tests.e2e.test_cluster import placed
from tests.e2e.test_services import CLIENT, FAST, SERVE, Sb, hits, ready
from tests.fixtures.cluster import Cluster

TENANT = "svc-cluster"


@pytest.fixture
def sb(cluster: Cluster, busybox_image: str) -> Iterator[Sb]:
    def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return cluster.server.cli(*args, tenant=TENANT, **kw)  # type: ignore[arg-type]

    ok(run("pull", busybox_image))
    yield run
    for name in ok(run("service", "ls", "-q")).split():
        run("service", "rm", name)
    for cid in ok(run("ps", "-aq")).split():
        run("rm", "-f", cid)


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.server.url, headers={"X-Api-Key": cluster.server.tenant(TENANT)},
                      timeout=60) as client:
        yield client


def spread(cluster: Cluster, replicas: list[dict[str, str]]) -> dict[str, set[str]]:
    """Node name -> the short ids of REPLICAS on it."""
    return {n.name: {r["id"][:12] for r in replicas} & set(placed(cluster, n.name)) for n in cluster.nodes}


def test_replicas_spread_over_the_nodes_and_a_replacement_keeps_the_spread(
    cluster: Cluster, sb: Sb, api: httpx.Client, busybox_image: str,
) -> None:
    ok(sb("service", "create", "web", "--replicas", "4", "--port", "80", "--container-port", "8080", *FAST,
          busybox_image, *SERVE))
    replicas = until(lambda: ready(api, "web", 4), budget=60,
                     what="4 healthy replicas (the first start of the image on each node may take a while)")
    on = spread(cluster, replicas)
    assert sorted(len(v) for v in on.values()) == [2, 2], on
    gone = sorted(on["n1"])[0]
    ok(sb("rm", "-f", gone))
    started = time.monotonic()
    healed = until(lambda: ready(api, "web", 4), budget=30, what="a replacement")
    assert time.monotonic() - started < 10
    after = spread(cluster, healed)
    assert len(after["n1"]) == len(after["n2"]) == 2 and gone not in after["n1"], after


def test_a_client_reaches_replicas_on_both_nodes(cluster: Cluster, sb: Sb, api: httpx.Client, busybox_image: str) -> None:
    ok(sb("service", "create", "far", "--replicas", "2", "--port", "80", "--container-port", "8080", *FAST,
          busybox_image, *SERVE))
    replicas = until(lambda: ready(api, "far", 2), budget=30, what="2 healthy replicas")
    assert sorted(len(v) for v in spread(cluster, replicas).values()) == [1, 1]
    ok(sb("run", "-d", "--name", "client", busybox_image, *CLIENT))
    hostnames = {api.get(f"/v1/containers/{r['id']}").json()["spec"]["hostname"] for r in replicas}
    answers = hits(sb, "http://far/", 10)
    assert "FAIL" not in answers and set(answers) == hostnames, answers
