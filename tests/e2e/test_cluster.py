"""Many nodes: node agents in their own network namespaces join a --no-node control plane and run its
tenants' containers (placement, streams, crash of a node agent, join errors)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e.docker_fixtures import DockerCli, docker_config
from tests.e2e.test_api import pull, wait
from tests.e2e.test_dns import execute, netns_client
from tests.e2e.test_docker_files import host_tree
from tests.fixtures.cluster import NODE_LINK_PORT, UNDERLAY_GATEWAY, Cluster
from tests.fixtures.server import SEABOX


@pytest.fixture
def alice(cluster: Cluster) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=cluster.server.url, headers={"X-Api-Key": cluster.server.tenant("alice")}, timeout=120)
    yield client
    for c in client.get("/v1/containers", params={"all": "true"}).json():
        client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
    client.close()


def placed(cluster: Cluster, node: str) -> list[str]:
    out = cluster.admin("node", "ps", node)
    assert out.returncode == 0, out.stderr
    return [line.split()[0] for line in out.stdout.splitlines()[1:] if line.strip()]


def test_a_tenants_containers_spread_over_the_nodes_and_work_on_each(
    cluster: Cluster, alice: httpx.Client, busybox_image: str
) -> None:
    pull(alice, busybox_image)
    ids = []
    for i in range(2):
        r = alice.post("/v1/containers", params={"start": "true"},
                       json={"image": busybox_image, "cmd": ["sh", "-c", f"echo hello {i}; sleep 300"]})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    on = {n.name: placed(cluster, n.name) for n in cluster.nodes}
    assert sorted(len(v) for v in on.values()) == [1, 1], on
    assert "node" not in json.dumps(alice.get(f"/v1/containers/{ids[0]}").json()["spec"]).lower().replace("no-new", "")
    for i, cid in enumerate(ids):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [json.loads(x) for x in alice.get(f"/v1/containers/{cid}/logs").text.splitlines()]
            if lines:
                break
            time.sleep(0.2)
        assert [(x["stream"], x["data"]) for x in lines] == [("stdout", f"hello {i}\n")], lines
        r = alice.post(f"/v1/containers/{cid}/exec", json={"cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
        assert r.status_code == 200, r.text
        frames = [json.loads(x) for x in r.text.splitlines()]
        assert sorted((f["stream"], f["data"]) for f in frames if "data" in f) == [("stderr", "err\n"), ("stdout", "out\n")]
        assert frames[-1] == {"exit_code": 3}, frames
        assert alice.get(f"/v1/containers/{cid}/top").status_code == 200
        r = alice.post(f"/v1/containers/{cid}/stop", params={"t": "1"})
        assert r.status_code == 200 and r.json()["status"]["state"] == "exited", r.text
        assert wait(alice, cid) in (137, 143)
        assert alice.delete(f"/v1/containers/{cid}").status_code == 204
    assert all(placed(cluster, n.name) == [] for n in cluster.nodes)


def _named_on(cluster: Cluster, alice: httpx.Client, image: str, node: str, name: str | None = None,
              **spec: object) -> dict:
    """A container (sleep 300, named NAME, SPEC: more of its create body) placed on NODE: the other nodes
    are cordoned meanwhile."""
    with cluster.only_on(node):
        r = alice.post("/v1/containers", params={"start": "true"},
                       json={"image": image, "cmd": ["sleep", "300"], **({"name": name} if name else {}), **spec})
        assert r.status_code == 201, r.text
    assert r.json()["id"][:12] in placed(cluster, node)
    return r.json()


def test_a_container_resolves_its_tenants_names_on_another_node_within_a_second(
    cluster: Cluster, alice: httpx.Client, busybox_image: str
) -> None:
    pull(alice, busybox_image)
    web = _named_on(cluster, alice, busybox_image, "n1", "web")
    client = _named_on(cluster, alice, busybox_image, "n2")
    for name in ("web", "web.alice.seabox.internal", web["id"][:12]):
        code, out = execute(alice, client["id"], "nslookup", name)
        assert code == 0 and f"Address: {web['status']['ip']}" in out, (name, out)
    with netns_client(cluster.nodes[1].data_dir, client) as resolver:
        assert alice.delete(f"/v1/containers/{web['id']}", params={"force": "true"}).status_code == 204
        assert resolver.until("web", []) < 1.0
        again = _named_on(cluster, alice, busybox_image, "n1", "web")
        assert resolver.until("web", [again["status"]["ip"]]) < 1.0


def test_a_killed_node_agent_leaves_its_containers_running_and_adopts_them_again(
    cluster: Cluster, alice: httpx.Client, busybox_image: str
) -> None:
    pull(alice, busybox_image)
    r = alice.post("/v1/containers", params={"start": "true"}, json={"image": busybox_image, "cmd": ["sleep", "300"]})
    assert r.status_code == 201, r.text
    c = r.json()
    node = next(n for n in cluster.nodes if c["id"][:12] in placed(cluster, n.name))
    node.stop(signal.SIGKILL)
    try:
        assert node.runc_state(c["id"]) == "running"
    finally:
        node.start(cluster.server.url, None)  # the saved credential: no token needed
    cluster.wait_ready(node.name)
    got = alice.get(f"/v1/containers/{c['id']}").json()
    assert got["status"]["state"] == "running" and got["status"]["pid"] == c["status"]["pid"]
    r = alice.post(f"/v1/containers/{c['id']}/stop", params={"t": "1"})
    assert r.status_code == 200 and r.json()["status"]["state"] == "exited", r.text


def test_placement_refuses_what_no_node_can_take(cluster: Cluster, alice: httpx.Client, busybox_image: str) -> None:
    pull(alice, busybox_image)
    r = alice.post("/v1/containers", json={"image": busybox_image, "cmd": ["true"], "size": "l3"})
    assert r.status_code == 409 and "no node has" in r.json()["message"], r.text
    for n in cluster.nodes:
        assert cluster.admin("node", "cordon", n.name).returncode == 0
    try:
        r = alice.post("/v1/containers", json={"image": busybox_image, "cmd": ["true"]})
        assert r.status_code == 409 and r.json()["message"].startswith("no node is ready"), r.text
    finally:
        for n in cluster.nodes:
            assert cluster.admin("node", "uncordon", n.name).returncode == 0
    out = cluster.admin("node", "cordon", "nosuchnode")
    assert out.returncode == 1 and "no such node: nosuchnode" in out.stdout + out.stderr


def test_join_refuses_bad_tokens_and_credentials_stay_on_their_side(cluster: Cluster, tmp_path: Path) -> None:
    scratch = tmp_path / "node"
    url = cluster.server.url
    body = {"name": "x1", "address": "198.51.100.99:7000", "memory_bytes": 1 << 30, "cpus": 1, "link_secret": "s" * 40}
    r = httpx.post(url + "/node/v1/register", json={**body, "token": "sbxj_nope"})
    assert r.status_code == 401 and "unknown join token" in r.json()["message"]
    used = cluster.token()
    assert httpx.post(url + "/node/v1/register", json={**body, "token": used}).status_code == 201
    r = httpx.post(url + "/node/v1/register", json={**body, "name": "x2", "token": used})
    assert r.status_code == 401 and "already used (by node x1)" in r.json()["message"]
    r = httpx.post(url + "/node/v1/register", json={**body, "token": cluster.token()})
    assert r.status_code == 409 and "x1 is already registered" in r.json()["message"]
    expired = cluster.token("1s")
    time.sleep(1.5)
    r = httpx.post(url + "/node/v1/register", json={**body, "name": "x3", "token": expired})
    assert r.status_code == 401 and "expired" in r.json()["message"]
    r = httpx.post(url + "/node/v1/register", json={**body, "name": "Bad Name", "token": cluster.token()})
    assert r.status_code == 400 and "invalid node name" in r.json()["message"]
    out = cluster.admin("node", "token", "--ttl", "soon")
    assert out.returncode == 1 and "--ttl" in out.stdout + out.stderr
    credential = json.loads((cluster.nodes[0].data_dir / "node.json").read_text())["credential"]
    r = httpx.get(url + "/v1/containers", headers={"Authorization": f"Bearer {credential}"})
    assert r.status_code == 401 and "node credential is not a tenant API key" in r.json()["message"]
    key = cluster.server.tenant("alice")
    r = httpx.get(url + "/node/v1/assignments", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401 and "tenant API key is not a node credential" in r.json()["message"]
    first_join = subprocess.run([*SEABOX, "node", "--join", url, "--token", used, "--name", "x9",
                                 "--data-dir", str(scratch), "--advertise", "198.51.100.99:7000"],
                                capture_output=True, text=True, timeout=60)
    assert first_join.returncode == 1 and "already used" in first_join.stderr, first_join.stderr
    listing = cluster.admin("node", "ls").stdout
    assert "x1" in listing and "x2" not in listing and "x3" not in listing


def until(check, timeout: float = 30, what: str = ""):  # type: ignore[no-untyped-def]
    """Poll CHECK until it returns something true; that value (or an AssertionError naming WHAT)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _on_n1(cluster: Cluster, alice: httpx.Client, image: str, **policies: str) -> dict[str, dict]:
    """Containers (sleep 300) with the given restart policies, all placed on n1.

    sleep as PID 1 ignores SIGTERM: a stop timeout of 1 s (not the default 10 s) keeps a drain, which
    stops each container in turn, well inside the tests' waits on a loaded machine.
    """
    cluster.admin("node", "cordon", "n2")
    try:
        out = {}
        for label, restart in policies.items():
            r = alice.post("/v1/containers", params={"start": "true"},
                           json={"image": image, "cmd": ["sleep", "300"], "restart": restart, "stop_timeout": 1})
            assert r.status_code == 201, r.text
            out[label] = r.json()
    finally:
        cluster.admin("node", "uncordon", "n2")
    assert sorted(placed(cluster, "n1")) == sorted(c["id"][:12] for c in out.values())
    return out


def test_drain_moves_what_can_move_and_stops_the_rest(cluster: Cluster, alice: httpx.Client, busybox_image: str) -> None:
    pull(alice, busybox_image)
    c = _on_n1(cluster, alice, busybox_image, moves="always", stops="no")
    assert cluster.admin("node", "drain", "n1").returncode == 0
    try:
        until(lambda: alice.get(f"/v1/containers/{c['stops']['id']}").json()["status"]["state"] == "exited",
              what="the container without a restart policy to stop")
        until(lambda: placed(cluster, "n2") == [c["moves"]["id"][:12]]
              and alice.get(f"/v1/containers/{c['moves']['id']}").json()["status"]["state"] == "running",
              what="the always-restarted container to run on n2")
        assert cluster.nodes[0].runc_state(c["moves"]["id"]) is None  # not also on n1
        r = alice.post("/v1/containers", json={"image": busybox_image, "cmd": ["true"]})
        assert r.status_code == 201 and r.json()["id"][:12] in placed(cluster, "n2")
        assert " draining " in cluster.admin("node", "ls").stdout
    finally:
        cluster.admin("node", "uncordon", "n1")


def test_a_node_that_stays_away_loses_its_containers_and_drops_the_moved_copies_when_back(
    cluster: Cluster, alice: httpx.Client, busybox_image: str
) -> None:
    pull(alice, busybox_image)
    c = _on_n1(cluster, alice, busybox_image, moves="always", stays="no")
    n1 = cluster.nodes[0]
    n1.stop(signal.SIGKILL)
    try:
        lost = until(lambda: (s := alice.get(f"/v1/containers/{c['stays']['id']}").json()["status"])["state"] == "lost"
                     and s, what="the container of the down node to be lost")
        assert lost["error"].startswith("node n1 is down"), lost
        until(lambda: c["moves"]["id"][:12] in placed(cluster, "n2")
              and alice.get(f"/v1/containers/{c['moves']['id']}").json()["status"]["state"] == "running",
              what="the always-restarted container to run again on n2")
        assert " down " in cluster.admin("node", "ls").stdout
        assert n1.runc_state(c["moves"]["id"]) == "running"  # the old copy, unreachable meanwhile
    finally:
        n1.start(cluster.server.url, None)
    cluster.wait_ready("n1")
    until(lambda: n1.runc_state(c["moves"]["id"]) is None, what="n1 to remove its moved copy")
    until(lambda: alice.get(f"/v1/containers/{c['stays']['id']}").json()["status"]["state"] == "running",
          what="the lost container, still running on n1, to be found again")
    assert alice.get(f"/v1/containers/{c['moves']['id']}").json()["status"]["state"] == "running"

    # it ran all along while its node was away: it is billed for all of it, not only up to the node's
    # last heartbeat (its node agent was killed with SIGKILL, then reported it running)
    stays = c["stays"]["id"]
    assert alice.post(f"/v1/containers/{stays}/stop", params={"t": "1"}).status_code == 200
    status = alice.get(f"/v1/containers/{stays}").json()["status"]
    ran = datetime.fromisoformat(status["finished_at"]) - datetime.fromisoformat(status["started_at"])
    lines = alice.get("/v1/usage", params={"by": "container"}).json()["lines"]
    billed = sum(Decimal(x["quantity"]) for x in lines
                 if x["key"] == c["stays"]["name"] and x["meter"].startswith("container."))
    assert abs(billed - Decimal(ran.total_seconds())) <= 1, (billed, ran)


def _run_on(cluster: Cluster, client: httpx.Client, node: str, image: str, cmd: list[str], *, start: bool = True,
            **extra: object) -> dict:
    with cluster.only_on(node):
        r = client.post("/v1/containers", params={"start": str(start).lower()}, json={"image": image, "cmd": cmd, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _fetch_on(cluster: Cluster, client: httpx.Client, node: str, image: str, target: str) -> tuple[int, str]:
    get = f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc {target} 8080; exit $?"
    c = _run_on(cluster, client, node, image, ["sh", "-c", get])
    code = wait(client, c["id"])
    out = "".join(json.loads(x)["data"] for x in client.get(f"/v1/containers/{c['id']}/logs").text.splitlines()
                  if json.loads(x)["stream"] == "stdout")
    client.delete(f"/v1/containers/{c['id']}")
    return code, out.rpartition("\r\n\r\n")[2]


def test_a_tenant_network_spans_nodes_and_other_tenants_stay_out(
    cluster: Cluster, alice: httpx.Client, busybox_image: str
) -> None:
    bob = httpx.Client(base_url=cluster.server.url, headers={"X-Api-Key": cluster.server.tenant("bob")}, timeout=120)
    try:
        for client in (alice, bob):
            pull(client, busybox_image)
        serve = ["sh", "-c", "mkdir -p /www && echo hello-across > /www/index.html && httpd -f -p 8080 -h /www"]
        web = _run_on(cluster, alice, "n1", busybox_image, serve, name="web")
        assert _fetch_on(cluster, alice, "n2", busybox_image, web["status"]["ip"]) == (0, "hello-across\n")
        assert _fetch_on(cluster, alice, "n2", busybox_image, "web") == (0, "hello-across\n")
        code, out = _fetch_on(cluster, bob, "n2", busybox_image, web["status"]["ip"])
        assert code != 0 and out == ""
    finally:
        for c in bob.get("/v1/containers", params={"all": "true"}).json():
            bob.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
        bob.close()


def test_an_imported_image_runs_where_it_was_imported_and_attach_reaches_a_remote_node(
    cluster: Cluster, alice: httpx.Client, busybox_docker_archive: Path, busybox_image: str, tmp_path: Path
) -> None:
    out = cluster.server.cli("image", "import", str(busybox_docker_archive), tenant="alice")
    assert out.returncode == 0, out.stderr
    # no node could pull busybox:imported: every container of it goes to the node that holds the import
    ids = []
    for _ in range(3):
        r = alice.post("/v1/containers", params={"start": "true"},
                       json={"image": "busybox:imported", "cmd": ["sleep", "300"], "restart": {"name": "always"}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    holder = next(n.name for n in cluster.nodes if placed(cluster, n.name))
    assert sorted(placed(cluster, holder)) == sorted(i[:12] for i in ids)
    for cid in ids:
        alice.delete(f"/v1/containers/{cid}", params={"force": "true"})

    # docker attach to a container on the other node: stdin in, output out, over the node link
    other = next(n.name for n in cluster.nodes if n.name != holder)
    pull(alice, busybox_image)
    echo = _run_on(cluster, alice, other, busybox_image, ["sh", "-c", "read line; echo got $line"],
                   start=False, stdin_open=True)
    docker = DockerCli(cluster.server, "alice", docker_config(cluster.server, "alice", tmp_path))
    attached = docker("start", "-a", "-i", echo["id"], input="across\n")
    assert (attached.returncode, attached.stdout) == (0, "got across\n"), attached.stderr
    assert placed(cluster, other) == [echo["id"][:12]]


def test_docker_cp_export_and_diff_of_a_container_on_the_second_node(
    cluster: Cluster, alice: httpx.Client, busybox_image: str, tmp_path: Path
) -> None:
    """The server reaches the files of a container on n2 over its HTTP link (the node's /files routes)."""
    pull(alice, busybox_image)
    docker = DockerCli(cluster.server, "alice", docker_config(cluster.server, "alice", tmp_path))
    with cluster.only_on("n2"):
        cid = docker.ok("run", "-d", busybox_image, "sh", "-c", "rm /bin/ls; exec sleep 300").strip()
    assert placed(cluster, "n2") == [cid[:12]]
    docker.ok("cp", str(host_tree(tmp_path / "in", "from the host\n", 0o750)), f"{cid}:/copied")
    assert docker.ok("exec", cid, "cat", "/copied/sub/hello.txt") == "from the host\n"
    assert docker.ok("exec", cid, "stat", "-c", "%a", "/copied/run.sh") == "750\n"
    docker.ok("exec", cid, "sh", "-c", "echo made on n2 > /copied/inside.txt")
    assert {"A /copied", "A /copied/sub/hello.txt", "A /copied/inside.txt", "D /bin/ls", "C /bin"} <= set(
        docker.lines("diff", cid))
    docker.ok("export", "-o", str(tmp_path / "fs.tar"), cid)
    with tarfile.open(tmp_path / "fs.tar") as tar:
        names = set(tar.getnames())
        assert {"bin/sh", "copied/run.sh", "copied/inside.txt"} <= names and "bin/ls" not in names
        assert tar.extractfile("copied/sub/hello.txt").read() == b"from the host\n"  # type: ignore[union-attr]
        assert tar.getmember("copied/run.sh").mode & 0o777 == 0o750
    docker.ok("stop", "-t", "0", cid)
    docker.ok("cp", f"{cid}:/copied", str(tmp_path / "out"))  # out of the stopped container
    assert (tmp_path / "out" / "inside.txt").read_text() == "made on n2\n"
    assert (tmp_path / "out" / "sub" / "hello.txt").read_text() == "from the host\n"
    r = docker("cp", f"{cid}:/no/such", str(tmp_path / "x"))
    assert r.returncode == 1 and "Could not find the file /no/such" in r.stderr, r.stderr
    assert docker.ok("rm", cid) == f"{cid}\n"


def test_a_fenced_node_cut_off_stops_what_moves_so_that_one_copy_runs(
    cluster: Cluster, alice: httpx.Client, busybox_image: str
) -> None:
    n1 = cluster.nodes[0]
    config = n1.data_dir / "config.toml"
    plain = config.read_text()

    def link(state: str) -> None:
        subprocess.run(["ip", "-n", n1.netns, "link", "set", "eth0", state], check=True, capture_output=True)
        if state == "up":
            subprocess.run(["ip", "-n", n1.netns, "route", "replace", "default", "via", UNDERLAY_GATEWAY],
                           check=True, capture_output=True)

    def restart() -> None:
        n1.stop()
        n1.start(cluster.server.url, None)
        cluster.wait_ready("n1")  # (its last heartbeat may be the old agent's: wait for its link listener too)
        until(lambda: _listens(n1.address, NODE_LINK_PORT), what="n1's link listener")

    # the servers call a node down after 3 s: n1 fences after 2 s without the control plane
    config.write_text(plain + "\n[nodes]\nfence_after = 2\n")
    restart()
    try:
        pull(alice, busybox_image)
        c = _on_n1(cluster, alice, busybox_image, moves="always", stays="no")
        link("down")
        try:
            until(lambda: n1.runc_state(c["moves"]["id"]) != "running", what="n1 to fence its movable container")
            assert n1.runc_state(c["stays"]["id"]) == "running"  # pinned to n1: it runs on
            until(lambda: c["moves"]["id"][:12] in placed(cluster, "n2")
                  and alice.get(f"/v1/containers/{c['moves']['id']}").json()["status"]["state"] == "running",
                  what="the control plane to run it on n2")
            assert n1.runc_state(c["moves"]["id"]) != "running"
        finally:
            link("up")
        until(lambda: n1.runc_state(c["moves"]["id"]) is None, what="n1 to remove its moved copy")
        until(lambda: alice.get(f"/v1/containers/{c['stays']['id']}").json()["status"]["state"] == "running",
              what="n1's pinned container to be found again (reported again once the control plane answers)")
    finally:
        config.write_text(plain)
        restart()


def _listens(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0
