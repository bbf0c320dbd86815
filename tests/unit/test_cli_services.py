"""The `seabox service` commands against a fake /v1 server: request bodies, the argument order of create, output."""

from __future__ import annotations

import re

from tests.unit.test_cli import FakeServer, cli, server  # noqa: F401  (fixture)

SERVICE = {"id": "s1", "name": "web", "tenant": "t1", "vip": "10.208.1.254", "fip": "198.18.0.1",
           "created_at": "2026-12-02T06:00:00+00:00",
           "spec": {"image": "busybox", "cmd": None, "env": [], "volumes": [], "size": "s4", "security_groups": [],
                    "replicas": 3, "port": 80, "container_port": 8080, "algorithm": "roundrobin", "generation": 1,
                    "health": {"protocol": "tcp", "port": 8080, "path": "/", "interval": 3, "rise": 2, "fall": 3}},
           "status": {"state": "degraded", "ready": 2, "desired": 3, "message": "2/3 ready"}, "replicas": []}


def test_create_takes_options_around_name_and_the_command_verbatim(server: FakeServer) -> None:  # noqa: F811
    server.on("POST", "/v1/services", SERVICE, status=201)
    result = cli("service", "create", "web", "--replicas", "3", "--port", "80", "--algorithm", "source",
                 "-e", "A=1", "busybox", "sh", "-c", "httpd --port 1 -f")
    assert result.exit_code == 0 and result.stdout == "10.208.1.254\n"
    body = server.calls[0].json()
    assert (body["name"], body["image"], body["cmd"]) == ("web", "busybox", ["sh", "-c", "httpd --port 1 -f"])
    assert (body["replicas"], body["port"], body["algorithm"], body["env"]) == (3, 80, "source", ["A=1"])
    assert "container_port" not in body  # the server defaults it to port
    result = cli("service", "create", "--port=81", "--health-path", "/hz", "--protocol", "http", "web", "busybox")
    assert result.exit_code == 0
    body = server.calls[1].json()
    assert (body["port"], body["health_path"], body["protocol"], "cmd" in body) == (81, "/hz", "http", False)
    assert cli("service", "create", "web", "busybox").exit_code == 2  # --port is required: nothing sent
    assert len(server.calls) == 2


def test_ls_scale_update_fip_and_rm(server: FakeServer) -> None:  # noqa: F811
    server.on("GET", "/v1/services", [SERVICE])
    header, row = cli("service", "ls").stdout.splitlines()
    assert re.split(r"\s{2,}", header) == ["NAME", "IP", "FIP", "REPLICAS", "STATUS", "MESSAGE"]
    assert re.split(r"\s{2,}", row) == ["web", "10.208.1.254", "198.18.0.1", "2/3", "degraded", "2/3 ready"]
    server.on("POST", "/v1/services/web/scale", SERVICE)
    assert cli("service", "scale", "web=5").exit_code == 0
    assert server.calls[-1].json() == {"replicas": 5}
    assert cli("service", "scale", "web").exit_code == 2
    server.on("POST", "/v1/services/web/update", SERVICE)
    assert cli("service", "update", "--image", "busybox:2", "web").exit_code == 0
    assert server.calls[-1].json() == {"image": "busybox:2"}
    server.on("POST", "/v1/services/web/fip", SERVICE)
    assert cli("service", "attach-fip", "front", "web").stdout == "198.18.0.1\n"
    assert server.calls[-1].json() == {"fip": "front"}
    server.on("DELETE", "/v1/services/web/fip", SERVICE)
    assert cli("service", "detach-fip", "web").exit_code == 0
    server.on("DELETE", "/v1/services/web", None, status=204)
    assert cli("service", "rm", "--keep", "web").stdout == "web\n"
    assert server.calls[-1].query == {"keep": "true"}
