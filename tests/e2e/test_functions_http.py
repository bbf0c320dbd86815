"""http-mode functions against a real server: warm replicas serving HTTP on $PORT (busybox httpd with a CGI),
reuse, scale to zero and the held first call, --min-warm, scale-up under concurrent calls, the 1 MiB reply
bound, generations, a server restart, and a replica on a remote node (the HTTP node link)."""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_api import pull
from tests.e2e.test_network_resources import until
from tests.fixtures.cluster import Cluster
from tests.fixtures.images import SERVE_CGI
from tests.fixtures.server import Server, own_server

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for runc, netns and nftables"),
]

IDLE = 2.0  # [functions] idle_seconds of the test server
CONFIG = f"\n[functions]\nidle_seconds = {IDLE}\npool_interval = 0.3\nreplica_calls = 1\n"


@pytest.fixture(scope="module")
def fn_server(registry: str, busybox_image: str) -> Iterator[Server]:
    with own_server(registry, "fnhttp", config=CONFIG) as srv:
        yield srv


def _tenant_client(server: Server, tenant: str) -> Iterator[httpx.Client]:
    """TENANT's client; its functions and containers are removed afterwards."""
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": server.tenant(tenant)}, timeout=120) as client:
        yield client
        for fn in client.get("/v1/funcs").json():
            client.delete(f"/v1/funcs/{fn['spec']['name']}")
        for c in client.get("/v1/containers", params={"all": "true"}).json():
            client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})


@pytest.fixture
def carol(fn_server: Server, busybox_image: str) -> Iterator[httpx.Client]:
    for client in _tenant_client(fn_server, "carol"):
        pull(client, busybox_image)
        yield client


def create(client: httpx.Client, image: str, name: str, **spec: object) -> dict:
    r = client.post("/v1/funcs", json={"name": name, "image": image, "cmd": SERVE_CGI, "mode": "http", **spec})
    assert r.status_code == 201, r.text
    return r.json()


def call(client: httpx.Client, name: str, body: bytes = b"", query: str = "") -> httpx.Response:
    return client.post(f"/v1/funcs/{name}/call?sync=1{'&' + query if query else ''}", content=body,
                       headers={"X-Greeting": "hi"})


def replicas(client: httpx.Client, name: str) -> list[dict]:
    return [c for c in client.get("/v1/containers").json() if c["name"].startswith(f"{name}-fn-")]


def test_warm_calls_reuse_one_replica_and_answer_its_http_response(carol: httpx.Client, busybox_image: str) -> None:
    create(carol, busybox_image, "echo")
    answers = [call(carol, "echo", f"body {i}".encode()) for i in range(5)]
    assert [r.status_code for r in answers] == [200] * 5, answers[0].text
    assert answers[0].text == "method=POST greeting=hi\nbody 0"
    assert answers[0].headers["content-type"] == "text/plain"
    assert len({r.headers["x-replica"] for r in answers}) == 1  # warm: the same container each time
    (replica,) = replicas(carol, "echo")
    assert replica["id"].startswith(answers[0].headers["x-replica"])
    assert carol.get("/v1/funcs/echo/status").json()["warm_replicas"] == 1


def test_an_idle_function_scales_to_zero_and_holds_its_next_call_until_a_replica_is_ready(
    carol: httpx.Client, busybox_image: str
) -> None:
    create(carol, busybox_image, "sleepy", min_warm=0)
    first = call(carol, "sleepy", b"one")
    assert first.status_code == 200, first.text
    until(lambda: not replicas(carol, "sleepy"), IDLE + 5)
    assert carol.get("/v1/funcs/sleepy/status").json()["warm_replicas"] == 0
    held = call(carol, "sleepy", b"two")  # no replica: this call waits for a new one, it is not refused
    assert held.status_code == 200 and held.text.endswith("\ntwo"), held.text
    assert held.headers["x-replica"] != first.headers["x-replica"]


def test_min_warm_keeps_replicas_up_without_calls(carol: httpx.Client, busybox_image: str) -> None:
    create(carol, busybox_image, "warm", min_warm=2, concurrency=4)
    until(lambda: len(replicas(carol, "warm")) == 2, 30)
    time.sleep(IDLE + 1)
    assert len(replicas(carol, "warm")) == 2  # idle, but kept
    assert call(carol, "warm", b"x").status_code == 200
    assert carol.get("/v1/funcs/warm/status").json()["warm_replicas"] == 2


def test_concurrent_calls_start_more_replicas_up_to_the_functions_concurrency(
    carol: httpx.Client, busybox_image: str
) -> None:
    create(carol, busybox_image, "busy", concurrency=3)
    assert call(carol, "busy").status_code == 200
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: call(carol, "busy", f"{i}".encode(), "sleep=1"), range(6)))
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    assert len({r.headers["x-replica"] for r in answers}) == 3  # one call at a time each, at most 3 replicas
    assert len(replicas(carol, "busy")) == 3


def test_replicas_beyond_min_warm_go_when_idle_and_min_warm_stay(carol: httpx.Client, busybox_image: str) -> None:
    create(carol, busybox_image, "tide", concurrency=2, min_warm=1)
    until(lambda: len(replicas(carol, "tide")) == 1, 30)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda i: call(carol, "tide", b"", "sleep=1"), range(2)))
    assert [r.status_code for r in answers] == [200, 200]
    assert len(replicas(carol, "tide")) == 2
    until(lambda: len(replicas(carol, "tide")) == 1, IDLE + 5)
    time.sleep(1)
    assert len(replicas(carol, "tide")) == 1


def test_a_reply_over_1_mib_is_refused_with_509(carol: httpx.Client, busybox_image: str) -> None:
    create(carol, busybox_image, "big")
    r = call(carol, "big", query="big")
    assert r.status_code == 509, r.text
    assert "1 MiB" in r.json()["message"]
    assert call(carol, "big", b"small").status_code == 200  # the replica still serves


def test_a_replica_that_exits_fails_the_call_at_once_and_is_removed(carol: httpx.Client, busybox_image: str) -> None:
    create(carol, busybox_image, "broken", cmd=["sh", "-c", "exit 3"])
    started = time.monotonic()
    r = call(carol, "broken")
    assert r.status_code == 502 and "exited with code 3" in r.json()["message"], r.text
    assert time.monotonic() - started < 10  # not held until the function's timeout (300 s)
    until(lambda: not replicas(carol, "broken") and not [
        c for c in carol.get("/v1/containers", params={"all": "true"}).json() if c["name"].startswith("broken-fn-")], 10)


def test_a_replica_that_never_listens_times_the_call_out_and_is_removed(carol: httpx.Client, busybox_image: str) -> None:
    create(carol, busybox_image, "deaf", cmd=["sleep", "300"], timeout=2)
    r = call(carol, "deaf")
    assert r.status_code == 504, r.text
    until(lambda: not replicas(carol, "deaf"), 10)


def test_an_update_replaces_the_replicas_of_the_older_generation(carol: httpx.Client, busybox_image: str) -> None:
    create(carol, busybox_image, "gen", min_warm=1)
    before = call(carol, "gen", b"a")
    assert before.status_code == 200
    r = carol.patch("/v1/funcs/gen", json={"env": ["A=1"]})
    assert r.status_code == 200, r.text
    after = call(carol, "gen", b"b")
    assert after.status_code == 200 and after.headers["x-replica"] != before.headers["x-replica"]
    # only the new generation's replica is left
    until(lambda: [c["id"][:12] for c in replicas(carol, "gen")] == [after.headers["x-replica"]], 10)


def test_a_restarted_server_finds_its_warm_replicas_again(fn_server: Server, carol: httpx.Client,
                                                          busybox_image: str) -> None:
    create(carol, busybox_image, "keep", min_warm=1)
    # the call goes to the min-warm replica once it is up (a call before then may start a second one)
    until(lambda: carol.get("/v1/funcs/keep/status").json()["warm_replicas"] == 1, 30)
    before = call(carol, "keep", b"a")
    assert before.status_code == 200
    fn_server.stop()
    fn_server.start()
    after = call(carol, "keep", b"b")
    assert after.status_code == 200 and after.headers["x-replica"] == before.headers["x-replica"]
    time.sleep(1)
    assert len(replicas(carol, "keep")) == 1  # no second replica, no leak
    carol.delete("/v1/funcs/keep")
    until(lambda: not replicas(carol, "keep"), 10)


@pytest.fixture
def dave(cluster: Cluster, busybox_image: str) -> Iterator[httpx.Client]:
    for client in _tenant_client(cluster.server, "dave"):
        pull(client, busybox_image)
        yield client


def test_a_replica_on_a_remote_node_serves_calls_over_the_node_link(dave: httpx.Client, busybox_image: str) -> None:
    create(dave, busybox_image, "remote")
    answers = [call(dave, "remote", f"{i}".encode()) for i in range(3)]
    assert [r.status_code for r in answers] == [200] * 3, answers[0].text
    assert answers[2].text == "method=POST greeting=hi\n2"
    assert len({r.headers["x-replica"] for r in answers}) == 1
