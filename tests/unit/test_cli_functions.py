"""The `seabox func` commands against a fake /v1 server: request bodies, argument parsing, output and exit codes."""

from __future__ import annotations

from tests.unit import test_cli
from tests.unit.test_cli import FakeServer, cli

server = test_cli.server  # the fake /v1 server fixture

FN = {"id": "f1", "tenant": "t1", "secret": "s3cret", "generation": 1, "created_at": 0.0, "call_path": "/call/echo/s3cret",
      "spec": {"name": "echo", "image": "busybox", "cmd": ["cat"], "env": [], "size": "s1", "mode": "stdio",
               "timeout": 300, "concurrency": 10, "min_warm": 0, "port": 8080}}


def test_create_takes_options_anywhere_and_the_command_with_its_own_options(server: FakeServer) -> None:
    server.on("POST", "/v1/funcs", FN, status=201)
    result = cli("func", "create", "echo", "--timeout", "5", "busybox", "sh", "-c", "echo hi", "--size", "s1")
    assert result.exit_code == 0 and result.stdout == server.url + "/call/echo/s3cret\n", result.output
    assert server.calls[0].json() == {"name": "echo", "image": "busybox", "mode": "stdio", "timeout": 5, "size": "s1",
                                      "cmd": ["sh", "-c", "echo hi"]}


def test_a_sync_call_prints_the_reply_and_exits_with_the_functions_code(server: FakeServer) -> None:
    server.on("POST", "/v1/funcs/echo/call", "boom", status=500, headers={"X-Seabox-Exit-Code": "3"})
    result = cli("func", "call", "--sync", "echo")
    assert result.exit_code == 3 and result.stdout == '"boom"'
    assert server.calls[0].query == {"sync": "true"}


def test_get_of_a_call_still_running_exits_2(server: FakeServer) -> None:
    call_id = "a" * 32
    server.on("GET", f"/v1/funcs/calls/{call_id}", {"CallId": call_id, "Status": "running"}, status=202,
              headers={"X-Seabox-Call-Status": "running"})
    result = cli("func", "get", call_id)
    assert result.exit_code == 2 and "running" in result.output
