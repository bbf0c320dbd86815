"""Two `seabox server --no-node` on one PostgreSQL behind a balancer, and a node agent that joined through it:
requests alternate between the servers and get the same answers, a tenant's function calls on both stay within
its limits together; one server is killed and the other carries on."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seabox.store.db import open_engine
from seabox.store.leases import Leases
from tests.e2e.docker_fixtures import DOCKER, docker_config
from tests.e2e.test_api import pull, wait
from tests.e2e.test_cluster import until
from tests.fixtures.cluster import Cluster, running_cluster
from tests.fixtures.postgres import Cluster as PgCluster

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runc, netns, nftables"),
]


@pytest.fixture(scope="module")
def database(pg_cluster: PgCluster) -> Iterator[str]:
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture(scope="module")
def two(registry: str, busybox_image: str, database: str) -> Iterator[Cluster]:
    with running_cluster(registry, nodes=1, database_url=database, servers=2) as c:
        yield c


@pytest.fixture(scope="module")
def clients(two: Cluster, busybox_image: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    key = two.server.tenant("alice")
    a, b = (httpx.Client(base_url=s.url, headers={"X-Api-Key": key}, timeout=60) for s in two.servers)
    pull(a, busybox_image)
    yield a, b
    survivor = next(c for c, s in zip((a, b), two.servers) if s.proc is not None)
    for c in survivor.get("/v1/containers", params={"all": "true"}).json():
        survivor.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
    a.close()
    b.close()


def frames(body: bytes) -> dict[int, bytes]:
    """The payloads of a multiplexed Docker stream by stream number (1 stdout, 2 stderr)."""
    out: dict[int, bytes] = {1: b"", 2: b""}
    while len(body) >= 8:
        kind, size = body[0], struct.unpack(">I", body[4:8])[0]
        out[kind] = out.get(kind, b"") + body[8:8 + size]
        body = body[8 + size:]
    return out


def _node_poll(two: Cluster, server: int, etag: str) -> tuple[float, str]:
    """A long-poll for node n1's assignments on one server, as the node makes it: (when it returned, new etag)."""
    credential = json.loads((two.nodes[0].data_dir / "node.json").read_text())["credential"]
    r = httpx.get(two.servers[server].url + "/node/v1/assignments", params={"etag": etag, "timeout": "20"},
                  headers={"Authorization": f"Bearer {credential}"}, timeout=30)
    assert r.status_code == 200, r.text
    return time.monotonic(), r.json()["etag"]


class Background(threading.Thread):
    """TARGET(*ARGS) in a thread, started and given time to send its request; result() waits for its value."""

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        super().__init__(daemon=True)
        self._call = (target, args)
        self._value: Any = None
        self._error: BaseException | None = None
        self.start()
        time.sleep(0.3)  # the request is in and waiting

    def run(self) -> None:
        target, args = self._call
        try:
            self._value = target(*args)
        except BaseException as exc:  # handed to the test by result()
            self._error = exc

    def result(self, timeout: float) -> Any:
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"still waiting after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


def test_each_step_of_a_containers_life_may_go_to_either_server(
    two: Cluster, clients: tuple[httpx.Client, httpx.Client], busybox_image: str, tmp_path: Path
) -> None:
    a, b = clients
    r = a.post("/v1/containers", json={"image": busybox_image, "cmd": ["sh", "-c", "echo hello; sleep 300"],
                                       "name": "shared"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = b.post(f"/v1/containers/{cid}/start")
    assert r.status_code == 200 and r.json()["status"]["state"] == "running", r.text
    assert a.get(f"/v1/containers/{cid}").json()["status"]["state"] == "running"
    until(lambda: [x["data"] for x in map(json.loads, b.get(f"/v1/containers/{cid}/logs").text.splitlines())]
          == ["hello\n"], timeout=10, what="the container's output through the other server")

    # docker exec: create on A, start on B, inspect on A
    r = a.post(f"/containers/{cid}/exec", json={"Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"],
                                                 "AttachStdout": True, "AttachStderr": True})
    assert r.status_code == 201, r.text
    exec_id = r.json()["Id"]
    r = b.post(f"/exec/{exec_id}/start", json={})
    assert r.status_code == 200, r.text
    assert frames(r.content) == {1: b"out\n", 2: b"err\n"}
    got = a.get(f"/exec/{exec_id}/json").json()
    assert (got["Running"], got["ExitCode"], got["ContainerID"]) == (False, 3, cid)
    assert b.post(f"/exec/{exec_id}/start", json={}).status_code == 409  # once, on any server

    # a terminal exec started on B, resized through A while it runs
    script = "trap 'echo size $(stty size); sleep 0.5; exit 0' WINCH; echo ready; while sleep 0.1; do :; done"
    r = a.post(f"/containers/{cid}/exec", json={"Cmd": ["sh", "-c", script], "Tty": True, "AttachStdout": True})
    tty_id = r.json()["Id"]
    with b.stream("POST", f"/exec/{tty_id}/start", json={"Tty": True}) as started:
        chunks, out = started.iter_raw(), b""
        while b"ready" not in out:
            out += next(chunks)
        assert a.get(f"/exec/{tty_id}/json").json()["Running"] is True
        assert a.post(f"/exec/{tty_id}/resize", params={"h": "33", "w": "111"}).status_code == 200
        out += b"".join(chunks)
    assert b"size 33 111" in out, out
    assert b.get(f"/exec/{tty_id}/json").json()["ExitCode"] == 0

    # the docker CLI through the balancer, whose connections go to either server
    config = docker_config(two.server, "alice", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST="tcp://" + two.url.removeprefix("http://"), DOCKER_CONFIG=str(config),
               DOCKER_CLI_HINTS="false")
    for code in (4, 5):
        cli = subprocess.run([DOCKER, "exec", "shared", "sh", "-c", f"echo via-cli; exit {code}"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert (cli.returncode, cli.stdout) == (code, "via-cli\n"), cli.stderr

    # a change made through B reaches a follower on A at once (its own poll would take 5 s)
    def first_rename_event() -> float:
        with a.stream("GET", "/v1/events", params={"follow": "true", "since": str(time.time())}) as events:
            for line in events.iter_lines():
                if json.loads(line)["action"] == "rename":
                    return time.monotonic()
        raise AssertionError("the events stream ended")

    following = Background(first_rename_event)
    renamed_at = time.monotonic()
    assert b.post(f"/v1/containers/{cid}/rename", params={"name": "renamed"}).status_code == 200
    assert following.result(10) - renamed_at < 1.0

    # a node's long-poll on one server wakes at once on a change made through the other (its poll: 1 s)
    for poller, changer in ((0, b), (1, a)):
        _, etag = _node_poll(two, poller, "")
        polling = Background(_node_poll, two, poller, etag)
        changed_at = time.monotonic()
        assert changer.post(f"/v1/containers/{cid}/rename", params={"name": f"via-{poller}"}).status_code == 200
        returned_at, new_etag = polling.result(30)
        assert new_etag != etag
        assert returned_at - changed_at < 0.5, f"the long-poll on server {poller} woke late"

    r = a.post(f"/v1/containers/{cid}/stop", params={"t": "1"})
    assert r.status_code == 200 and r.json()["status"]["state"] == "exited", r.text
    assert wait(b, cid) in (137, 143)
    assert b.delete(f"/v1/containers/{cid}").status_code == 204
    assert a.get(f"/v1/containers/{cid}").status_code == 404


def test_a_tenants_function_calls_on_both_servers_stay_within_tenant_concurrency(
    clients: tuple[httpx.Client, httpx.Client], busybox_image: str
) -> None:
    a, b = clients
    r = a.post("/v1/funcs", json={"name": "nap", "image": busybox_image, "cmd": ["sh", "-c", "sleep 3; echo done"],
                                  "size": "s1", "concurrency": 100})
    assert r.status_code == 201, r.text
    limit = 10  # [functions] tenant_concurrency (the default), for both servers together
    calls = [(c, c.post("/v1/funcs/nap/call").json()["CallId"]) for c in (a, b) * 7]  # 14 calls, 7 on each
    most = queued = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = b.get("/v1/funcs/nap/status").json()
        most, queued = max(most, status["running"]), max(queued, status["queued"])
        if status["running"] + status["queued"] == 0:
            break
        time.sleep(0.05)
    assert most == limit and queued > 0, (most, queued)  # reached, never passed; the others waited
    results = [(b if c is a else a).get(f"/v1/funcs/calls/{call_id}", params={"wait": "1"}) for c, call_id in calls]
    assert [r.text for r in results] == ["done\n"] * 14
    assert a.delete("/v1/funcs/nap").status_code == 204


def test_when_a_server_is_killed_the_other_serves_and_runs_the_controllers(
    two: Cluster, clients: tuple[httpx.Client, httpx.Client], busybox_image: str, database: str
) -> None:
    engine = open_engine(database)
    holder = Leases(engine).holder("node-health")
    engine.dispose()
    assert holder is not None
    pids = [s.proc.pid if s.proc else 0 for s in two.servers]
    doomed = next(i for i, pid in enumerate(pids) if holder.owner.split(":")[1] == str(pid))
    doomed_client, client = clients[doomed], clients[1 - doomed]
    r = client.post("/v1/containers", params={"start": "true"},
                    json={"image": busybox_image, "cmd": ["sleep", "300"], "name": "stays"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = doomed_client.post(f"/containers/{cid}/exec", json={"Cmd": ["sleep", "300"]})
    exec_id = r.json()["Id"]
    assert doomed_client.post(f"/exec/{exec_id}/start", json={"Detach": True}).status_code == 200
    assert client.get(f"/exec/{exec_id}/json").json()["Running"] is True

    two.servers[doomed].stop(signal.SIGKILL)
    # the node's connections through the balancer move to the survivor; its containers keep running
    r = client.post("/v1/containers", params={"start": "true"},
                    json={"image": busybox_image, "cmd": ["sleep", "300"], "name": "after"})
    assert r.status_code == 201 and r.json()["status"]["state"] == "running", r.text
    # node health passes to the survivor once the dead server's lease expires: a node that goes away is seen
    node = two.nodes[0]
    node.stop(signal.SIGKILL)
    try:
        lost = until(lambda: (s := client.get(f"/v1/containers/{cid}").json()["status"])["state"] == "lost" and s,
                     timeout=30, what="the survivor's node health to mark the container lost")
        assert lost["error"].startswith("node n1 is down"), lost
    finally:
        node.start(two.url, None)
    two.wait_ready("n1")
    until(lambda: client.get(f"/v1/containers/{cid}").json()["status"]["state"] == "running", timeout=30,
          what="the container, still running on n1, to be found again")
    # the exec session the dead server relayed does not stay running
    ended = until(lambda: (got := client.get(f"/exec/{exec_id}/json").json())["Running"] is False and got,
                  timeout=30, what="the dead server's exec session to end")
    assert ended["ExitCode"] == 137
