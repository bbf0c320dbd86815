"""The `seabox fip` commands and `run -p/-P/--fip` against a fake /v1 server: request bodies, output, usage errors."""

from __future__ import annotations

import re

from tests.unit.test_cli import CID, FakeServer, cli, container, expect_run, server  # noqa: F401  (fixture)

FIP = {"address": "198.18.0.1", "tenant": "t1", "name": "front", "container": CID, "container_name": "web",
       "created_at": "2026-12-02T06:00:00+00:00"}
DANGLING = {**FIP, "address": "198.18.0.2", "name": None, "container": None, "container_name": None}


def test_allocate_sends_count_and_pick_and_prints_the_addresses(server: FakeServer) -> None:  # noqa: F811
    server.on("POST", "/v1/fips", [FIP, DANGLING], status=201)
    result = cli("fip", "allocate", "2", "--pick")
    assert result.exit_code == 0 and result.stdout == "198.18.0.1\n198.18.0.2\n"
    assert server.calls[0].json() == {"count": 2, "pick": True}
    assert cli("fip", "allocate", "0").exit_code == 2  # a usage error, nothing sent
    assert len(server.calls) == 1
    assert cli("fip", "allocate").stdout == "198.18.0.1\n198.18.0.2\n"  # COUNT left out: 1
    assert server.calls[1].json() == {"count": 1, "pick": False}


def test_ls_shows_the_columns_and_filters_dangling(server: FakeServer) -> None:  # noqa: F811
    server.on("GET", "/v1/fips", [FIP, DANGLING])
    header, first, second = cli("fip", "ls").stdout.splitlines()
    assert re.split(r"\s{2,}", header) == ["FLOATING IP", "NAME", "CONTAINER", "SERVICE"]
    assert re.split(r"\s{2,}", first) == ["198.18.0.1", "front", "web"] and second == "198.18.0.2"
    assert server.calls[0].query == {}
    assert cli("fip", "ls", "-q", "-f", "dangling=true").stdout == "198.18.0.1\n198.18.0.2\n"
    assert server.calls[1].query == {"dangling": "true"}
    result = cli("fip", "ls", "-f", "container=web")
    assert result.exit_code == 2 and "dangling=true" in result.output and len(server.calls) == 2


def test_attach_detach_release_and_name_requests(server: FakeServer) -> None:  # noqa: F811
    server.on("POST", "/v1/fips/front/attach", FIP)
    server.on("POST", "/v1/fips/detach", FIP)
    server.on("DELETE", "/v1/fips/front", status=204)
    server.on("DELETE", "/v1/fips/198.18.0.2", {"message": "floating IP 198.18.0.2 is attached"}, status=409)
    server.on("POST", "/v1/fips/198.18.0.2/name", FIP)
    assert cli("fip", "attach", "-f", "front", "web").stdout == "198.18.0.1\n"
    assert server.called("POST", "/v1/fips/front/attach")[0].json() == {"container": "web", "force": True}
    assert cli("fip", "detach", "web").stdout == "198.18.0.1\n"
    assert server.called("POST", "/v1/fips/detach")[0].json() == {"container": "web"}
    result = cli("fip", "release", "front", "198.18.0.2")
    assert result.exit_code == 1 and result.stdout == "front\n" and "is attached" in result.stderr
    assert cli("fip", "name", "198.18.0.2", "back").exit_code == 0
    assert server.called("POST", "/v1/fips/198.18.0.2/name")[0].json() == {"name": "back"}


def test_run_sends_published_ports_and_the_floating_ip(server: FakeServer) -> None:  # noqa: F811
    expect_run(server)
    result = cli("run", "-d", "-p", "8080:80", "-p", "53/udp", "-P", "--fip", "auto", "busybox", "sleep", "9")
    assert result.exit_code == 0, result.output
    body = server.called("POST", "/v1/containers")[0].json()
    assert body["ports"] == ["8080:80", "53/udp"] and body["publish_all"] is True and body["fip"] == "auto"
    assert body["cmd"] == ["sleep", "9"]


def test_ps_shows_ports_on_the_floating_ip_or_alone(server: FakeServer) -> None:  # noqa: F811
    ports = [{"container_port": 80, "fip_port": 8080, "protocol": "tcp"},
             {"container_port": 80, "fip_port": 8081, "protocol": "tcp"}]
    with_fip = container() | {"fip": "198.18.0.1"}
    with_fip["spec"] = {**with_fip["spec"], "ports": ports}
    without = container("idle") | {"id": "9" * 64}
    without["spec"] = {**without["spec"], "ports": ports}
    server.on("GET", "/v1/containers", [with_fip, without])
    header, *rows = cli("ps").stdout.splitlines()
    shown = {row.split()[-1]: row for row in rows}
    assert "PORTS" in header
    assert "198.18.0.1:8080->80/tcp, 198.18.0.1:8081->80/tcp" in shown["web"]
    assert " 80/tcp " in shown["idle"] and "->" not in shown["idle"]  # published nowhere yet: the port once
