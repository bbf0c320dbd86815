"""Load-balanced services through the real server and the CLI: create, ls, inspect, scale, rm (--keep), floating
IPs, bad input refused with nothing changed, and replicas replaced when they exit."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.docker_fixtures import native, ok, until, wiped_tenant
from tests.fixtures.server import SEABOX as SEABOX_CLI
from tests.fixtures.server import Server

Sb = Callable[..., subprocess.CompletedProcess[str]]
SERVE = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]


@pytest.fixture
def tenant(server: Server, busybox_image: str) -> Iterator[str]:
    with wiped_tenant(server, "svc", "services", "containers", "fips") as name:
        yield name


@pytest.fixture
def sb(server: Server, tenant: str) -> Sb:
    return lambda *args, **kw: server.cli(*args, tenant=tenant, **kw)


@pytest.fixture
def api(server: Server, tenant: str) -> Iterator[httpx.Client]:
    with native(server, tenant) as client:
        yield client


def rows(sb: Sb) -> list[list[str]]:
    header, *lines = ok(sb("service", "ls")).splitlines()
    assert header.split() == ["NAME", "IP", "FIP", "REPLICAS", "STATUS", "MESSAGE"]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def running_replicas(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    return [r for r in api.get(f"/v1/services/{name}").json()["replicas"] if r["state"] == "running" and not r["draining"]]


def test_create_ls_inspect_scale_and_rm(sb: Sb, api: httpx.Client, busybox_image: str, tenant: str) -> None:
    vip = ok(sb("service", "create", "web", "--replicas", "2", "--port", "80", "--container-port", "8080",
                busybox_image, *SERVE)).strip()
    assert re.fullmatch(r"10\.\d+\.\d+\.\d+", vip)
    until(lambda: len(running_replicas(api, "web")) == 2, what="2 replicas running")
    [row] = rows(sb)
    assert row[:2] == ["web", vip] and row[2].endswith("/2")
    [svc] = json.loads(ok(sb("service", "inspect", "web")))
    assert svc["vip"] == vip and svc["spec"]["port"] == 80 and svc["spec"]["container_port"] == 8080
    assert svc["spec"]["health"] == {"protocol": "tcp", "port": 8080, "path": "/", "interval": 3.0, "rise": 2, "fall": 3}
    names = {r["name"] for r in svc["replicas"]}
    assert all(re.fullmatch(r"web-[0-9a-f]{6}", n) for n in names)
    ps = ok(sb("ps"))
    assert all(n in ps for n in names)
    # the virtual IP is from the top of the tenant's subnet, and no container gets it
    assert all(c["status"]["ip"] != vip for c in api.get("/v1/containers", params={"all": "true"}).json())

    ok(sb("service", "scale", "web=3"))
    until(lambda: len(running_replicas(api, "web")) == 3, what="scaled up to 3")
    ok(sb("service", "scale", "web=1"))
    until(lambda: len(api.get("/v1/services/web").json()["replicas"]) == 1, what="scaled down to 1 (drained, removed)")
    [left] = api.get("/v1/services/web").json()["replicas"]
    assert left["name"] in names or left["name"].startswith("web-")

    ok(sb("service", "rm", "web"))
    assert api.get("/v1/services/web").status_code == 404
    assert not [c for c in api.get("/v1/containers", params={"all": "true"}).json() if c["name"].startswith("web-")]


def test_rm_keep_leaves_the_replicas_as_containers(sb: Sb, api: httpx.Client, busybox_image: str) -> None:
    ok(sb("service", "create", "keep", "--replicas", "1", "--port", "8080", busybox_image, *SERVE))
    [replica] = until(lambda: running_replicas(api, "keep"), what="a replica running")
    ok(sb("service", "rm", "--keep", "keep"))
    assert api.get("/v1/services/keep").status_code == 404
    c = api.get(f"/v1/containers/{replica['name']}").json()
    assert c["status"]["state"] == "running"
    time.sleep(0.5)  # no controller touches it any more
    assert api.get(f"/v1/containers/{replica['name']}").json()["status"]["state"] == "running"


def test_an_exited_replica_is_replaced(sb: Sb, api: httpx.Client, busybox_image: str) -> None:
    ok(sb("service", "create", "heal", "--replicas", "2", "--port", "8080", busybox_image, *SERVE))
    first = until(lambda: running_replicas(api, "heal") if len(running_replicas(api, "heal")) == 2 else None,
                  what="2 replicas")
    ok(sb("kill", first[0]["name"]))
    started = time.monotonic()
    until(lambda: len(running_replicas(api, "heal")) == 2 and first[0]["id"] not in
          {r["id"] for r in running_replicas(api, "heal")}, what="a replacement")
    assert time.monotonic() - started < 5


def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    sb: Sb, api: httpx.Client, busybox_image: str,
) -> None:
    ok(sb("pull", busybox_image))
    good = {"name": "bad", "image": busybox_image, "cmd": SERVE, "port": 8080}
    cases = [
        ({"replicas": -1}, 400, "replicas"),
        ({"replicas": 101}, 400, "replicas"),
        ({"port": 0}, 400, "port"),
        ({"port": 65536}, 400, "port"),
        ({"container_port": 70000}, 400, "container_port"),
        ({"algorithm": "random"}, 400, "algorithm"),
        ({"protocol": "udp"}, 400, "protocol"),
        ({"name": "-x"}, 400, "name"),
        ({"health_rise": 0}, 400, "health_rise"),
        ({"image": "nosuch/image:1"}, 404, "image"),
        ({"security_groups": ["nosuch"]}, 404, "security_groups"),
        ({"size": "xxl"}, 400, "size"),
        ({"bogus": 1}, 400, "bogus"),
    ]
    for change, status, field in cases:
        r = api.post("/v1/services", json={**good, **change})
        assert r.status_code == status, (change, r.text)
        assert r.json().get("field") == field, (change, r.text)
    assert api.get("/v1/services").json() == []
    assert api.get("/v1/containers", params={"all": "true"}).json() == []
    r = sb("service", "create", "bad", "--replicas", "-1", "--port", "80", busybox_image)
    assert r.returncode != 0 and "replicas" in r.stderr
    r = sb("service", "create", "bad", "--port", "99999", busybox_image)
    assert r.returncode != 0 and "port" in r.stderr
    assert api.get("/v1/services").json() == []


def test_names_clash_with_containers_and_other_services(sb: Sb, api: httpx.Client, busybox_image: str) -> None:
    ok(sb("run", "-d", "--name", "taken", busybox_image, "sleep", "300"))
    r = api.post("/v1/services", json={"name": "taken", "image": busybox_image, "cmd": SERVE, "port": 80})
    assert r.status_code == 409 and r.json()["field"] == "name"
    ok(sb("service", "create", "svc", "--replicas", "0", "--port", "80", busybox_image, *SERVE))
    r = api.post("/v1/services", json={"name": "svc", "image": busybox_image, "cmd": SERVE, "port": 80})
    assert r.status_code == 409 and r.json()["field"] == "name"
    r = sb("run", "-d", "--name", "svc", busybox_image, "sleep", "300")
    assert r.returncode != 0 and "in use" in r.stderr
    r = sb("rename", "taken", "svc")
    assert r.returncode != 0 and "in use" in r.stderr
    [row] = [x for x in rows(sb) if x[0] == "svc"]
    assert row[2:] == ["0/0", "stopped", "0/0 ready"]  # (no FIP: that cell is empty)


def test_a_floating_ip_attaches_to_a_service(sb: Sb, api: httpx.Client, busybox_image: str) -> None:
    ok(sb("service", "create", "pub", "--replicas", "0", "--port", "80", busybox_image, *SERVE))
    fip = ok(sb("fip", "allocate")).strip()
    assert ok(sb("service", "attach-fip", fip, "pub")).strip() == fip
    [row] = rows(sb)
    assert row[2] == fip
    fips = ok(sb("fip", "ls")).splitlines()[1:]
    assert re.split(r"\s{2,}", fips[0].strip()) == [fip, "pub"]
    r = sb("fip", "release", fip)
    assert r.returncode != 0 and "service pub" in r.stderr
    other = api.post("/v1/fips").json()[0]["address"]
    r = sb("service", "attach-fip", other, "pub")
    assert r.returncode != 0 and "one per service" in r.stderr
    ok(sb("service", "detach-fip", "pub"))
    assert api.get("/v1/services/pub").json()["fip"] is None
    r = sb("service", "detach-fip", "pub")
    assert r.returncode != 0 and "no floating IP" in r.stderr
    ok(sb("service", "attach-fip", fip, "pub"))
    ok(sb("service", "rm", "pub"))
    assert [f["address"] for f in api.get("/v1/fips", params={"dangling": "true"}).json()] == sorted([fip, other], key=lambda a: tuple(map(int, a.split("."))))


# real traffic through the virtual IP (the node programs it: node/network/lb_rules.py) -------------------------
FAST = ["--health-check-interval", "0.3", "--health-check-rise", "1", "--health-check-fall", "1"]
# busybox `timeout` leaves its watchdog child to PID 1: a shell there reaps it (sleep would not)
CLIENT = ["sh", "-c", "while true; do sleep 1; done"]


def ready(api: httpx.Client, name: str, count: int, generation: int = 1) -> list[dict[str, Any]]:
    """The replicas of NAME once COUNT of GENERATION are healthy (and none other is left), else []."""
    svc = api.get(f"/v1/services/{name}").json()
    up = [r for r in svc["replicas"] if r["healthy"] and not r["draining"] and r["generation"] == generation]
    return up if len(up) == count and len(svc["replicas"]) == count else []


def hits(sb: Sb, url: str, count: int, client: str = "client") -> list[str]:
    """What COUNT requests to URL from container CLIENT answered, in order ("FAIL" for a failed one)."""
    loop = f"for i in $(seq {count}); do timeout 2 wget -q -O - {url} || echo FAIL; done"
    return ok(sb("exec", client, "sh", "-c", loop)).split()


def test_traffic_to_the_service_name_spreads_over_healthy_replicas_and_heals(
    sb: Sb, api: httpx.Client, busybox_image: str, tenant: str,
) -> None:
    ok(sb("service", "create", "web", "--replicas", "3", "--port", "80", "--container-port", "8080", *FAST,
          busybox_image, *SERVE))
    replicas = until(lambda: ready(api, "web", 3), what="3 healthy replicas")
    [svc] = [r for r in rows(sb) if r[0] == "web"]
    assert svc[2:] == ["3/3", "ready", "3/3 ready"]
    hostnames = {api.get(f"/v1/containers/{r['id']}").json()["spec"]["hostname"] for r in replicas}
    ok(sb("run", "-d", "--name", "client", busybox_image, *CLIENT))
    answers = hits(sb, "http://web/", 30)
    assert "FAIL" not in answers
    assert set(answers) == hostnames  # round robin: every replica answers
    assert max(answers.count(h) for h in hostnames) <= 12
    assert set(hits(sb, f"http://web.{tenant}.seabox.internal/", 3)) <= hostnames

    killed = replicas[0]
    ok(sb("kill", killed["name"]))
    started = time.monotonic()
    until(lambda: "FAIL" not in hits(sb, "http://web/", 6), what="no failure right after the kill")
    healed = until(lambda: ready(api, "web", 3), what="a healthy replacement")
    assert killed["id"] not in {r["id"] for r in healed}
    assert time.monotonic() - started < 10
    assert "FAIL" not in hits(sb, "http://web/", 9)


def test_a_rolling_update_and_a_scale_down_drop_no_request(
    sb: Sb, api: httpx.Client, busybox_image: str, server: Server, tenant: str,
) -> None:
    ok(sb("service", "create", "roll", "--replicas", "2", "--port", "80", "--container-port", "8080", *FAST,
          busybox_image, *SERVE))
    until(lambda: ready(api, "roll", 2), what="2 healthy replicas")
    ok(sb("run", "-d", "--name", "client", busybox_image, *CLIENT))
    loop = ("while [ ! -e /tmp/stop ]; do timeout 2 wget -q -O - http://roll/ >/dev/null && echo OK || echo FAIL; "
            "done")
    with subprocess.Popen([*SEABOX_CLI, "exec", "client", "sh", "-c", loop], env=server.env(tenant),
                          stdout=subprocess.PIPE, text=True) as requests:
        try:
            time.sleep(0.5)
            ok(sb("service", "update", "--image", busybox_image, "roll"))
            assert api.get("/v1/services/roll").json()["status"]["state"] in ("updating", "ready")
            until(lambda: ready(api, "roll", 2, generation=2), budget=30, what="both replicas replaced")
            ok(sb("service", "scale", "roll=1"))
            until(lambda: ready(api, "roll", 1, generation=2), what="scaled down to 1")
        finally:
            ok(sb("exec", "client", "touch", "/tmp/stop"))
            out, _ = requests.communicate(timeout=10)
    results = out.split()
    assert len(results) > 20 and results.count("FAIL") == 0, results.count("FAIL")


def test_an_unhealthy_replica_gets_no_traffic_until_it_is_healthy_again(
    sb: Sb, api: httpx.Client, busybox_image: str,
) -> None:
    serve = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo ok > /www/healthz && "
             "exec httpd -f -p 8080 -h /www"]
    ok(sb("service", "create", "hc", "--replicas", "2", "--port", "80", "--container-port", "8080", "--protocol",
          "http", "--health-path", "/healthz", *FAST, busybox_image, *serve))
    sick, well = until(lambda: ready(api, "hc", 2), what="2 healthy replicas")
    name = {r["id"]: api.get(f"/v1/containers/{r['id']}").json()["spec"]["hostname"] for r in (sick, well)}
    ok(sb("run", "-d", "--name", "client", busybox_image, *CLIENT))
    assert set(hits(sb, "http://hc/", 8)) == set(name.values())
    ok(sb("exec", sick["name"], "rm", "/www/healthz"))
    until(lambda: api.get("/v1/services/hc").json()["status"]["message"] == "1/2 ready", what="one unhealthy")
    assert set(hits(sb, "http://hc/", 8)) == {name[well["id"]]}  # the unhealthy one is out; it still runs
    [row] = [r for r in rows(sb) if r[0] == "hc"]
    assert row[2:] == ["1/2", "degraded", "1/2 ready"]
    ok(sb("exec", sick["name"], "sh", "-c", "echo ok > /www/healthz"))
    until(lambda: ready(api, "hc", 2), what="healthy again")
    assert {r["id"] for r in ready(api, "hc", 2)} == {sick["id"], well["id"]}  # the same replicas: none replaced
    until(lambda: set(hits(sb, "http://hc/", 8)) == set(name.values()), budget=3, what="back in the backends")


def test_the_source_algorithm_keeps_a_client_on_one_replica(sb: Sb, api: httpx.Client, busybox_image: str) -> None:
    ok(sb("service", "create", "sticky", "--replicas", "3", "--port", "80", "--container-port", "8080",
          "--algorithm", "source", *FAST, busybox_image, *SERVE))
    until(lambda: ready(api, "sticky", 3), what="3 healthy replicas")
    ok(sb("run", "-d", "--name", "client", busybox_image, *CLIENT))
    answers = hits(sb, "http://sticky/", 12)
    assert "FAIL" not in answers and len(set(answers)) == 1, answers


def held(sb: Sb, replica: str, client_ip: str) -> int:
    """How many TCP connections from CLIENT_IP are open on REPLICA's port 8080, as the replica sees them (httpd
    listens on an IPv6 socket: netstat shows IPv4 peers as ::ffff:A.B.C.D:PORT)."""
    count = 0
    for line in ok(sb("exec", replica, "netstat", "-tn")).splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5] == "ESTABLISHED" and fields[3].endswith(":8080"):
            count += fields[4].removeprefix("::ffff:").rsplit(":", 1)[0] == client_ip
    return count


def test_leastconn_sends_new_connections_to_the_replica_holding_fewer(
    sb: Sb, api: httpx.Client, busybox_image: str,
) -> None:
    ok(sb("service", "create", "least", "--replicas", "1", "--port", "80", "--container-port", "8080",
          "--algorithm", "leastconn", *FAST, busybox_image, *SERVE))
    [busy] = until(lambda: ready(api, "least", 1), what="1 healthy replica")
    # three connections held open (nc waits on its stdin) while the service has only this replica
    holding = "for i in 1 2 3; do sleep 120 | nc least 80 >/dev/null & done; while true; do sleep 1; done"
    ok(sb("run", "-d", "--name", "client", busybox_image, "sh", "-c", holding))
    client_ip = api.get("/v1/containers/client").json()["status"]["ip"]
    until(lambda: held(sb, busy["name"], client_ip) == 3, what="3 connections open on the first replica")

    ok(sb("service", "scale", "least=2"))
    [idle] = [r for r in until(lambda: ready(api, "least", 2), what="2 healthy replicas") if r["id"] != busy["id"]]
    name = {r["id"]: api.get(f"/v1/containers/{r['id']}").json()["spec"]["hostname"] for r in (busy, idle)}
    # the node's next leastconn pass (every 0.5 s) sees 3 open connections on busy, none on idle
    until(lambda: hits(sb, "http://least/", 3) == [name[idle["id"]]] * 3, budget=5, what="only idle answers")
    assert hits(sb, "http://least/", 10) == [name[idle["id"]]] * 10
    assert held(sb, busy["name"], client_ip) == 3  # the held connections stayed with busy

    ok(sb("exec", "client", "killall", "nc"))  # both replicas now hold none: both answer again
    until(lambda: set(hits(sb, "http://least/", 8)) == set(name.values()), budget=5, what="both answer again")
