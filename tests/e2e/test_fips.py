"""Floating IPs and published ports end to end through the real server: the CLI, /v1/fips and the docker CLI.

(Traffic to a floating IP is the node's and is tested with the node's nftables; these tests cover what
the control plane records and shows, and that every refusal leaves the store as it was.)
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.docker_fixtures import DockerCli, docker_config, native, ok, pull, unique, wiped_tenant
from tests.fixtures.server import Server

SLEEP = ["sleep", "300"]


@pytest.fixture
def tenant(server: Server, busybox_image: str) -> Iterator[str]:
    """A tenant of its own (the fips quota is per tenant), wiped afterwards."""
    with wiped_tenant(server, "fips", "containers", "fips") as name:
        yield name


@pytest.fixture
def other(server: Server) -> Iterator[str]:
    with wiped_tenant(server, "fips-other", "containers", "fips") as name:
        yield name


@pytest.fixture
def sb(server: Server, tenant: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    return lambda *args, **kw: server.cli(*args, tenant=tenant, **kw)


@pytest.fixture
def api(server: Server, tenant: str) -> Iterator[httpx.Client]:
    with native(server, tenant) as client:
        yield client


def fip_rows(sb: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> list[list[str]]:
    """`fip ls` as rows of cells (columns split on runs of 2+ spaces; empty cells dropped)."""
    header, *rows = ok(sb("fip", "ls", *args)).splitlines()
    assert header.split() == ["FLOATING", "IP", "NAME", "CONTAINER", "SERVICE"]
    return [re.split(r"\s{2,}", row.strip()) for row in rows]


def state(api: httpx.Client) -> tuple[list[Any], list[tuple[str, str | None]]]:
    """What the tenant has: its floating IPs (address, name, container) and its containers (name, fip)."""
    fips = [(f["address"], f["name"], f["container"]) for f in api.get("/v1/fips").json()]
    containers = [(c["name"], c["fip"]) for c in api.get("/v1/containers", params={"all": "true"}).json()]
    return fips, sorted(containers)


def test_allocate_within_the_quota_and_a_clear_403_past_it(sb: Callable[..., Any], api: httpx.Client) -> None:
    first = ok(sb("fip", "allocate")).split()
    assert len(first) == 1 and first[0].startswith("198.1")
    r = sb("fip", "allocate", "2")
    assert r.returncode == 1 and "fips quota of 2 reached" in r.stderr, r.stderr
    assert ok(sb("fip", "ls", "-q")).split() == first  # nothing allocated by the refused call
    second = ok(sb("fip", "allocate")).split()
    resp = api.post("/v1/fips", json={})
    assert resp.status_code == 403 and resp.json()["field"] == "fips" and "fips quota of 2" in resp.json()["message"]
    assert sorted(ok(sb("fip", "ls", "-q")).split()) == sorted(first + second)


def test_attach_force_detach_release_names_and_the_dangling_filter(
    sb: Callable[..., Any], api: httpx.Client, busybox_image: str
) -> None:
    web, db = unique("web"), unique("db")
    ok(sb("run", "-d", "--name", web, busybox_image, *SLEEP))
    ok(sb("create", "--name", db, busybox_image, *SLEEP))
    a, b = ok(sb("fip", "allocate", "2")).split()
    ok(sb("fip", "name", a, "front"))
    assert ok(sb("fip", "attach", "front", web)).strip() == a  # the name works where the address does
    assert fip_rows(sb) == [[a, "front", web], [b]]
    assert fip_rows(sb, "-f", "dangling=true") == [[b]]
    assert fip_rows(sb, "-f", "dangling=false") == [[a, "front", web]]
    [info] = json.loads(ok(sb("inspect", web)))
    assert info["fip"] == a

    r = sb("fip", "attach", a, db)  # held by web: only with -f
    assert r.returncode == 1 and f"attached to container {web}" in r.stderr and "-f" in r.stderr, r.stderr
    r = sb("fip", "attach", b, web)  # web has one already
    assert r.returncode == 1 and "one per container" in r.stderr, r.stderr
    r = sb("fip", "release", "front")
    assert r.returncode == 1 and "detach it first" in r.stderr, r.stderr
    assert state(api)[0] == [(a, "front", api.get(f"/v1/containers/{web}").json()["id"]), (b, None, None)]

    ok(sb("fip", "attach", "-f", a, db))  # moved: web has none now
    assert fip_rows(sb) == [[a, "front", db], [b]]
    assert api.get(f"/v1/containers/{web}").json()["fip"] is None
    r = sb("fip", "name", b, "front")
    assert r.returncode == 1 and "already in use" in r.stderr
    assert ok(sb("fip", "detach", db)).strip() == a
    r = sb("fip", "detach", db)
    assert r.returncode == 1 and "has no floating IP" in r.stderr
    assert ok(sb("fip", "allocate", "--pick")).split() == [a]  # a dangling one is picked, none allocated
    ok(sb("fip", "release", "front", b))
    assert ok(sb("fip", "ls", "-q")) == ""


def test_a_floating_ip_stays_through_stop_start_and_restart_and_rm_detaches_it(
    sb: Callable[..., Any], api: httpx.Client, busybox_image: str
) -> None:
    web = unique("web")
    ok(sb("run", "-d", "--name", web, "-p", "8080:80", "-p", "5000-5001:6000-6001/udp", busybox_image, *SLEEP))
    [fip] = ok(sb("fip", "allocate")).split()
    ok(sb("fip", "attach", fip, web))
    ok(sb("stop", "-t", "1", web))
    ok(sb("start", web))
    ok(sb("restart", "-t", "1", web))
    c = api.get(f"/v1/containers/{web}").json()
    assert c["fip"] == fip and c["status"]["state"] == "running"
    assert [(p["fip_port"], p["container_port"], p["protocol"]) for p in c["spec"]["ports"]] == [
        (8080, 80, "tcp"), (5000, 6000, "udp"), (5001, 6001, "udp")]
    ps = ok(sb("ps"))
    assert f"{fip}:8080->80/tcp, {fip}:5000->6000/udp, {fip}:5001->6001/udp" in ps and "PORTS" in ps
    ok(sb("rm", "-f", web))
    assert fip_rows(sb) == [[fip]]  # detached, still the tenant's


def test_run_fip_auto_picks_a_dangling_one_then_allocates_and_a_refusal_makes_no_container(
    sb: Callable[..., Any], api: httpx.Client, busybox_image: str
) -> None:
    [held] = ok(sb("fip", "allocate")).split()
    one, two, three = unique("one"), unique("two"), unique("three")
    ok(sb("create", "--name", one, "--fip", "auto", busybox_image, *SLEEP))
    assert api.get(f"/v1/containers/{one}").json()["fip"] == held
    ok(sb("create", "--name", two, "--fip", "auto", busybox_image, *SLEEP))
    new = api.get(f"/v1/containers/{two}").json()["fip"]
    assert new and new != held
    before = state(api)
    for fip, says in (("auto", "fips quota of 2 reached"), (held, f"attached to container {one}"),
                      ("nosuch", "no such floating IP: nosuch")):
        r = sb("create", "--name", three, "--fip", fip, busybox_image, *SLEEP)
        assert r.returncode == 1 and says in r.stderr, (fip, r.stderr)
    r = sb("run", "-d", "--name", three, "-p", "1-33", busybox_image, *SLEEP)
    assert r.returncode == 1 and "ports" in r.stderr and "at most 32" in r.stderr, r.stderr
    assert state(api) == before


def test_another_tenants_floating_ip_is_not_found(
    server: Server, sb: Callable[..., Any], api: httpx.Client, other: str, busybox_image: str
) -> None:
    mine = unique("mine")
    ok(sb("create", "--name", mine, busybox_image, *SLEEP))
    [fip] = ok(sb("fip", "allocate")).split()
    ok(sb("fip", "name", fip, "shared-name"))
    ok(sb("fip", "attach", fip, mine))
    theirs = unique("theirs")
    ok(server.cli("create", "--name", theirs, busybox_image, *SLEEP, tenant=other))
    [own] = ok(server.cli("fip", "allocate", tenant=other)).split()
    before = state(api)
    with native(server, other) as them:
        for ref in (fip, "shared-name"):
            for method, path, body in (("GET", f"/v1/fips/{ref}", None), ("DELETE", f"/v1/fips/{ref}", None),
                                       ("POST", f"/v1/fips/{ref}/attach", {"container": theirs, "force": True}),
                                       ("POST", f"/v1/fips/{ref}/name", {"name": "stolen"})):
                r = them.request(method, path, json=body)
                assert r.status_code == 404 and r.json() == {"message": f"no such floating IP: {ref}", "field": "fip"}
        r = them.post(f"/v1/fips/{own}/attach", json={"container": mine})  # not onto my container either
        assert r.status_code == 404 and "no such container" in r.json()["message"]
        r = them.post("/v1/fips/detach", json={"container": mine})
        assert r.status_code == 404
        assert [f["address"] for f in them.get("/v1/fips").json()] == [own]
    assert state(api) == before


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), [
    ("POST", "/v1/fips", {"count": 0}, 400, "count"),
    ("POST", "/v1/fips", {"count": "many"}, 400, "count"),
    ("POST", "/v1/fips", {"count": 1, "colour": "red"}, 400, "colour"),
    ("POST", "/v1/fips", {"count": 3}, 403, "fips"),
    ("POST", "/v1/fips/{fip}/attach", {}, 400, "container"),
    ("POST", "/v1/fips/{fip}/attach", {"container": "nosuch"}, 404, None),
    ("POST", "/v1/fips/{fip}/attach", {"container": "{web}", "force": "please"}, 400, "force"),
    ("POST", "/v1/fips/nosuch/attach", {"container": "{web}"}, 404, "fip"),
    ("POST", "/v1/fips/{fip}/name", {"name": "198.18.0.9"}, 400, "name"),
    ("POST", "/v1/fips/{fip}/name", {"name": "auto"}, 400, "name"),
    ("POST", "/v1/fips/{fip}/name", {"name": "-bad"}, 400, "name"),
    ("POST", "/v1/fips/detach", {"container": "{web}"}, 409, "container"),
    ("DELETE", "/v1/fips/198.18.255.254", None, 404, "fip"),
    ("GET", "/v1/fips?dangling=maybe", None, 400, "dangling"),
    ("POST", "/v1/containers", {"image": "{image}", "ports": ["0:80"]}, 400, "ports"),
    ("POST", "/v1/containers", {"image": "{image}", "ports": ["80", "80"]}, 400, "ports"),
    ("POST", "/v1/containers", {"image": "{image}", "ports": ["8000-8040"]}, 400, "ports"),
    ("POST", "/v1/containers", {"image": "{image}", "ports": [{"container_port": 80, "fip_port": 99999}]}, 400,
     "ports.0.fip_port"),
    ("POST", "/v1/containers", {"image": "{image}", "ports": ["80/sctp"]}, 400, "ports"),
    ("POST", "/v1/containers", {"image": "{image}", "fip": ""}, 400, "fip"),
])
def test_bad_input_is_4xx_json_naming_the_field_and_changes_nothing(
    sb: Callable[..., Any], api: httpx.Client, busybox_image: str,
    method: str, path: str, body: dict[str, Any] | None, status: int, field: str | None
) -> None:
    web = unique("web")
    ok(sb("create", "--name", web, busybox_image, *SLEEP))
    [fip] = ok(sb("fip", "allocate")).split()
    ok(sb("fip", "name", fip, "kept"))
    fill = {"{fip}": fip, "{web}": web, "{image}": busybox_image}
    text = json.dumps(body) if body is not None else None
    for key, value in fill.items():
        path = path.replace(key, value)
        text = text.replace(key, value) if text else text
    before = state(api)
    r = api.request(method, path, content=text, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json().get("field") == field and r.json()["message"], r.json()
    assert state(api) == before


def test_the_docker_cli_publishes_ports_on_the_floating_ip(
    server: Server, tenant: str, busybox_image: str, tmp_path: Path
) -> None:
    dcli = DockerCli(server, tenant, docker_config(server, tenant, tmp_path))
    pull(server, tenant, busybox_image)
    web = unique("web")
    dcli.ok("run", "-d", "--name", web, "-p", "8080:80", "-p", "53/udp", "--expose", "7000", "-P", busybox_image,
            *SLEEP)
    ports = lambda: dcli.ok("ps", "--format", "{{.Ports}}", "--filter", f"name={web}").strip()  # noqa: E731
    assert set(ports().split(", ")) == {"80/tcp", "53/udp", "7000/tcp"}  # no floating IP yet: published nowhere
    [info] = dcli.inspect(web)
    assert info["NetworkSettings"]["Ports"] == {"80/tcp": None, "53/udp": None, "7000/tcp": None}
    [fip] = ok(server.cli("fip", "allocate", tenant=tenant)).split()
    ok(server.cli("fip", "attach", fip, web, tenant=tenant))
    assert set(ports().split(", ")) == {f"{fip}:8080->80/tcp", f"{fip}:53->53/udp", f"{fip}:7000->7000/tcp"}
    [info] = dcli.inspect(web)
    assert info["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": fip, "HostPort": "8080"}]
    assert info["HostConfig"]["PortBindings"]["80/tcp"] == [{"HostIp": "", "HostPort": "8080"}]
    assert f"80/tcp -> {fip}:8080" in dcli.lines("port", web)

    before = dcli.lines("ps", "-a", "-q")
    r = dcli("run", "-d", "-p", "127.0.0.1:8081:80", busybox_image, "true")
    assert r.returncode == 125 and "host address (127.0.0.1)" in r.stderr and "floating IP" in r.stderr, r.stderr
    r = dcli("run", "-d", "-p", "8081:80/sctp", busybox_image, "true")
    assert r.returncode == 125 and "tcp or udp" in r.stderr, r.stderr
    assert dcli.lines("ps", "-a", "-q") == before
