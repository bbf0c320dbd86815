"""The tenant CLI against a fake /v1 server (aiohttp in a thread): argument handling, request bodies, output, errors."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import socket
import ssl
import stat
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from seabox.cli.client import human_bytes, parse_time
from seabox.cli.containers import status_text
from seabox.cli.main import main
from seabox.model.humanize import human_duration

CID = "3f2a" + "0" * 56
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeServer:
    """Answers each (method, path) with the next queued reply and records every request."""

    url: str = ""
    replies: dict[tuple[str, str], list[Handler]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def on(self, method: str, path: str, data: Any = None, status: int = 200, ndjson: list[Any] | None = None,
           headers: dict[str, str] | None = None) -> None:
        async def reply(request: web.Request) -> web.StreamResponse:
            if ndjson is None:
                if data is None:
                    return web.Response(status=status, headers=headers)
                return web.json_response(data, status=status, headers=headers)
            response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await response.prepare(request)
            for item in ndjson:
                await response.write(json.dumps(item).encode() + b"\n")
            await response.write_eof()
            return response

        self.replies.setdefault((method, path), []).append(reply)

    def called(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if (c.method, c.path) == (method, path)]

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.calls.append(Call(request.method, request.path, dict(request.query), body, dict(request.headers)))
        queue = self.replies.get((request.method, request.path))
        if not queue:
            return web.json_response({"message": f"fake: no reply for {request.method} {request.path}"}, status=599)
        return await (queue.pop(0) if len(queue) > 1 else queue[0])(request)


@contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[FakeServer]:
    """A FakeServer on 127.0.0.1 (over TLS with TLS), in a thread of its own until the block ends."""
    fake = FakeServer()
    app_ = web.Application(client_max_size=1 << 30)
    app_.router.add_route("*", "/{tail:.*}", fake.dispatch)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app_)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        loop.run_until_complete(site.start())
        fake.url = ("https" if tls else "http") + "://127.0.0.1:%d" % runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeServer]:
    with serving() as fake:
        monkeypatch.setenv("SEABOX_URL", fake.url)
        monkeypatch.setenv("SEABOX_API_KEY", "sbx-test-key")
        monkeypatch.setenv("SEABOX_CONFIG", str(tmp_path / "config.json"))
        monkeypatch.setenv("NO_COLOR", "1")
        yield fake


@dataclass
class Result:
    """What one `seabox ARGS` run in this process printed, and its exit code."""

    exit_code: int
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode()

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode()

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(*args: str) -> Result:
    """Run `seabox ARGS` in this process as the console script does (its main(), sys.argv), capturing its output."""
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in range(2))
    saved = sys.stdout, sys.stderr, sys.argv
    sys.stdout, sys.stderr, sys.argv = out, err, ["seabox", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        sys.stdout, sys.stderr, sys.argv = saved
    out.flush()
    err.flush()
    return Result(code, out.buffer.getvalue(), err.buffer.getvalue())  # type: ignore[attr-defined]


def iso(delta: float = 0) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=delta)).isoformat()


def container(name: str = "web", state: str = "running", **status: Any) -> dict[str, Any]:
    return {
        "id": CID,
        "name": name,
        "tenant": "t1",
        "created_at": iso(120),
        "spec": {"image": "docker.io/library/busybox:latest", "args": ["sh", "-c", "echo hello world; sleep 1000"],
                 "size": "s4"},
        "status": {"state": state, "ip": "10.208.0.2", "exit_code": 0, "started_at": iso(3), "finished_at": None,
                   **status},
    }


def expect_run(server: FakeServer, exit_code: int = 0, logs: list[Any] | None = None) -> None:
    server.on("POST", "/v1/containers", {"id": CID}, status=201)
    server.on("POST", f"/v1/containers/{CID}/start", container())
    server.on("GET", f"/v1/containers/{CID}/logs", ndjson=logs or [])
    server.on("POST", f"/v1/containers/{CID}/wait", {"exit_code": exit_code, "oom_killed": False, "error": ""})
    server.on("DELETE", f"/v1/containers/{CID}", status=204)


# arguments -> request bodies ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, cmd",
    [
        (["-d", "busybox", "sh", "-c", "echo hi"], ["sh", "-c", "echo hi"]),
        (["-d", "busybox", "ls", "-la", "/"], ["ls", "-la", "/"]),
        (["-d", "busybox", "--help"], ["--help"]),
        (["-d", "--name", "x", "busybox", "env", "-e", "A=1", "--rm", "--", "-d"],
         ["env", "-e", "A=1", "--rm", "--", "-d"]),
    ],
)
def test_command_after_the_image_passes_through_verbatim(server: FakeServer, args: list[str], cmd: list[str]) -> None:
    expect_run(server)
    result = cli("run", *args)
    assert result.exit_code == 0, result.output
    assert server.called("POST", "/v1/containers")[0].json()["cmd"] == cmd


def test_options_become_the_create_body(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HERE", "copied")
    monkeypatch.delenv("NOT_SET", raising=False)
    server.on("POST", "/v1/containers", {"id": CID}, status=201)
    result = cli(
        "create", "--name", "web", "--size", "m1", "-e", "A=1", "-e", "B=x=y", "-e", "FROM_HERE", "-e", "NOT_SET",
        "-l", "tier=front", "-l", "bare", "-v", "data:/data:ro", "-v", "logs:/var/log", "-w", "/app",
        "--entrypoint", "/bin/sh", "--restart", "on-failure:3", "-u", "1000:1000", "--hostname", "h1",
        "busybox", "-c", "echo hi",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == CID + "\n"
    assert server.called("POST", "/v1/containers")[0].json() == {
        "image": "busybox",
        "cmd": ["-c", "echo hi"],
        "name": "web",
        "size": "m1",
        "env": ["A=1", "B=x=y", "FROM_HERE=copied"],
        "labels": {"tier": "front", "bare": ""},
        "volumes": [
            {"volume": "data", "path": "/data", "readonly": True},
            {"volume": "logs", "path": "/var/log", "readonly": False},
        ],
        "workdir": "/app",
        "entrypoint": ["/bin/sh"],
        "restart": {"name": "on-failure", "max_retries": 3},
        "user": "1000:1000",
        "hostname": "h1",
    }


def test_defaults_are_left_to_the_server(server: FakeServer) -> None:
    server.on("POST", "/v1/containers", {"id": CID}, status=201)
    assert cli("create", "busybox").exit_code == 0
    assert server.called("POST", "/v1/containers")[0].json() == {"image": "busybox", "env": [], "labels": {},
                                                                  "volumes": []}


@pytest.mark.parametrize(
    "restart, body", [("always", {"name": "always", "max_retries": 0}), ("no", {"name": "no", "max_retries": 0}),
                      ("on-failure", {"name": "on-failure", "max_retries": 0})],
)
def test_restart_policies(server: FakeServer, restart: str, body: dict[str, Any]) -> None:
    server.on("POST", "/v1/containers", {"id": CID}, status=201)
    assert cli("create", "--restart", restart, "busybox").exit_code == 0
    assert server.called("POST", "/v1/containers")[0].json()["restart"] == body


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["--restart", "sometimes"], "restart policy must be"),
        (["--restart", "always:3"], "only on-failure takes a retry count"),
        (["-v", "/etc:/etc"], "host paths cannot be mounted"),
        (["-v", "data"], "volume must be NAME:/path"),
        (["-v", "data:/data:rx"], "volume mode must be ro or rw"),
        (["-e", "=x"], "environment entries must be KEY=VALUE"),
    ],
)
def test_bad_options_are_usage_errors_before_any_request(server: FakeServer, args: list[str], complaint: str) -> None:
    result = cli("create", *args, "busybox")
    assert result.exit_code == 2
    assert complaint in " ".join(result.stderr.split())
    assert server.calls == []


def test_exec_passes_the_command_verbatim_and_exits_with_its_code(server: FakeServer) -> None:
    server.on("POST", "/v1/containers/web/exec", ndjson=[
        {"stream": "stdout", "data": "out\n"}, {"stream": "stderr", "data": "err\n"}, {"exit_code": 7},
    ])
    result = cli("exec", "-e", "A=1", "-w", "/tmp", "web", "ls", "-la", "--color", "/")
    assert result.exit_code == 7
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert server.calls[0].json() == {"cmd": ["ls", "-la", "--color", "/"], "env": ["A=1"], "workdir": "/tmp",
                                      "user": ""}


# run ---------------------------------------------------------------------------------------------
def test_run_streams_output_raw_and_exits_with_the_container_code(server: FakeServer) -> None:
    binary = bytes([0xFF, 0x00, 0xFE])
    expect_run(server, exit_code=3, logs=[
        {"time": iso(), "stream": "stdout", "data": "hi"},
        {"time": iso(), "stream": "stderr", "data": "oops\n"},
        {"time": iso(), "stream": "stdout", "data": " there\n"},
        {"time": iso(), "stream": "stdout", "data": base64.b64encode(binary).decode(), "b64": True},
    ])
    result = cli("run", "busybox", "sh", "-c", "exit 3")
    assert result.exit_code == 3
    assert result.stdout_bytes == b"hi there\n" + binary
    assert result.stderr == "oops\n"
    calls = [(c.method, c.path) for c in server.calls]
    assert calls[:2] == [("POST", "/v1/containers"), ("POST", f"/v1/containers/{CID}/start")]
    # the wait is asked on a connection of its own while the output is followed: the order of the two is the server's
    assert sorted(calls[2:]) == [("GET", f"/v1/containers/{CID}/logs"), ("POST", f"/v1/containers/{CID}/wait")]
    assert server.called("GET", f"/v1/containers/{CID}/logs")[0].query == {"follow": "true"}
    assert "auto_remove" not in server.called("POST", "/v1/containers")[0].json()


@pytest.mark.parametrize("code", [0, 4])
def test_run_rm_lets_the_server_remove_it_and_exits_with_its_code(server: FakeServer, code: int) -> None:
    expect_run(server, exit_code=code, logs=[{"time": iso(), "stream": "stdout", "data": "bye\n"}])
    result = cli("run", "--rm", "busybox", "sh", "-c", f"echo bye; exit {code}")
    assert (result.exit_code, result.stdout) == (code, "bye\n"), result.output
    assert server.called("POST", "/v1/containers")[0].json()["auto_remove"] is True
    assert server.called("DELETE", f"/v1/containers/{CID}") == []  # no round trip after the wait


def test_run_rm_of_a_container_removed_before_its_logs_are_asked_still_exits_with_its_code(
        server: FakeServer) -> None:
    expect_run(server, exit_code=3)
    server.replies[("GET", f"/v1/containers/{CID}/logs")] = []
    server.on("GET", f"/v1/containers/{CID}/logs", {"message": f"no such container: {CID}"}, status=404)
    result = cli("run", "--rm", "busybox", "false")
    assert (result.exit_code, result.stderr) == (3, "")


def test_ctrl_c_during_run_rm_removes_the_container(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    expect_run(server, logs=[{"time": iso(), "stream": "stdout", "data": "tick\n"}])

    def interrupted(entry: dict[str, Any], timestamps: bool = False) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("seabox.cli.containers.write_entry", interrupted)
    result = cli("run", "--rm", "busybox", "sleep", "100")
    assert result.exit_code == 130
    (delete,) = server.called("DELETE", f"/v1/containers/{CID}")
    assert delete.query == {"force": "true"}


def test_run_detached_prints_the_full_id_and_does_not_follow(server: FakeServer) -> None:
    expect_run(server)
    result = cli("run", "-d", "busybox", "sleep", "100")
    assert (result.exit_code, result.stdout) == (0, CID + "\n")
    assert [c.path for c in server.calls] == ["/v1/containers", f"/v1/containers/{CID}/start"]


def test_run_rm_with_detach_asks_the_server_to_remove_it_on_exit(server: FakeServer) -> None:
    expect_run(server)
    result = cli("run", "-d", "--rm", "busybox", "true")
    assert (result.exit_code, result.stdout) == (0, CID + "\n")
    assert server.calls[0].json()["auto_remove"] is True
    assert [c.path for c in server.calls] == ["/v1/containers", f"/v1/containers/{CID}/start"]


def test_run_pulls_a_missing_image_and_retries_once(server: FakeServer) -> None:
    server.on("POST", "/v1/containers", {"message": "no such image: busybox (pull it first: seabox pull busybox)"},
              status=404)
    server.on("POST", "/v1/containers", {"id": CID}, status=201)
    layer = "sha256:" + "ab" * 32
    server.on("POST", "/v1/images/pull", ndjson=[
        {"progress": {"status": "resolving", "ref": "docker.io/library/busybox:latest", "layer": None, "size": None,
                      "detail": "registry-1.docker.io"}},
        {"progress": {"status": "downloading", "ref": "busybox", "layer": layer, "size": 2000000, "detail": ""}},
        {"progress": {"status": "done", "ref": "busybox", "layer": layer, "size": 2000000, "detail": ""}},
        {"progress": {"status": "complete", "ref": "busybox", "layer": None, "size": None,
                      "detail": "sha256:" + "cd" * 32}},
        {"image": {"id": "sha256:" + "cd" * 32, "repo_tags": ["docker.io/library/busybox:latest"], "size": 1}},
    ])
    server.on("POST", f"/v1/containers/{CID}/start", container())
    server.on("GET", f"/v1/containers/{CID}/logs", ndjson=[{"time": iso(), "stream": "stdout", "data": "hi\n"}])
    server.on("POST", f"/v1/containers/{CID}/wait", {"exit_code": 0, "oom_killed": False, "error": ""})
    result = cli("run", "busybox", "echo", "hi")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hi\n"  # the pull's progress goes to stderr only
    assert "Unable to find image 'busybox'" in result.stderr
    assert "Pull complete" in result.stderr
    assert [c.path for c in server.calls[:3]] == ["/v1/containers", "/v1/images/pull", "/v1/containers"]
    assert server.called("POST", "/v1/images/pull")[0].json() == {"image": "busybox"}


def test_run_fails_cleanly_when_the_pull_fails(server: FakeServer) -> None:
    server.on("POST", "/v1/containers", {"message": "no such image: nope"}, status=404)
    server.on("POST", "/v1/images/pull", ndjson=[
        {"error": {"status": 502, "message": "registry said: manifest unknown"}},
    ])
    result = cli("run", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "error: registry said: manifest unknown"
    assert len(server.called("POST", "/v1/containers")) == 1


def test_a_404_for_something_else_is_not_retried(server: FakeServer) -> None:
    server.on("POST", "/v1/containers", {"message": "no such volume: x"}, status=404)
    result = cli("run", "busybox")
    assert (result.exit_code, result.stderr) == (1, "error: no such volume: x\n")
    assert [c.path for c in server.calls] == ["/v1/containers"]


# errors --------------------------------------------------------------------------------------------
def test_an_api_error_is_one_line_on_stderr_and_exit_1(server: FakeServer) -> None:
    server.on("POST", "/v1/containers", {"message": "container name 'web' is already in use", "field": "name"},
              status=409)
    result = cli("create", "--name", "web", "busybox")
    assert result.exit_code == 1
    assert result.stderr == "error: container name 'web' is already in use\n"
    assert result.stdout == ""


def test_the_key_is_sent_and_a_bad_one_is_explained(server: FakeServer) -> None:
    server.on("GET", "/v1/info", {"message": "invalid API key"}, status=401)
    result = cli("info")
    assert server.calls[0].headers["X-Api-Key"] == "sbx-test-key"
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid API key (set SEABOX_API_KEY")


def test_an_error_without_json_still_reads_well(server: FakeServer) -> None:
    result = cli("ps")  # the fake answers 599 with a JSON message when nothing is queued
    assert result.exit_code == 1
    assert result.stderr == "error: fake: no reply for GET /v1/containers\n"


def test_an_unreachable_server_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SEABOX_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SEABOX_API_KEY", "k")
    result = cli("ps")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: the Seabox server at http://127.0.0.1:{port} is not reachable")
    assert "Traceback" not in result.output


def test_without_configuration_the_cli_says_how_to_configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEABOX_URL", raising=False)
    monkeypatch.delenv("SEABOX_API_KEY", raising=False)
    monkeypatch.setenv("SEABOX_CONFIG", str(tmp_path / "missing.json"))
    result = cli("ps")
    assert result.exit_code == 1
    assert "seabox login URL KEY" in result.stderr


def test_rm_goes_on_past_failures_and_exits_1(server: FakeServer) -> None:
    server.on("DELETE", "/v1/containers/a", status=204)
    server.on("DELETE", "/v1/containers/b", {"message": "no such container: b"}, status=404)
    server.on("DELETE", "/v1/containers/c", status=204)
    result = cli("rm", "-f", "a", "b", "c")
    assert result.exit_code == 1
    assert result.stdout == "a\nc\n"
    assert result.stderr == "error: no such container: b\n"
    assert all(c.query == {"force": "true"} for c in server.calls)


# login and configuration ------------------------------------------------------------------------------
def test_login_checks_the_key_then_saves_it_owner_only(server: FakeServer, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    url = server.url
    monkeypatch.delenv("SEABOX_URL")
    monkeypatch.delenv("SEABOX_API_KEY")
    server.on("GET", "/v1/info", {"version": "0.1.0", "tenant": "alice", "node": "n1", "containers": 0,
                                  "running": 0, "images": 0})
    server.on("GET", "/v1/containers", [])
    result = cli("login", url.removeprefix("http://"), "sbx-alice")
    assert result.exit_code == 0, result.output
    assert "as tenant alice" in result.stdout
    path = tmp_path / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": url, "api_key": "sbx-alice"}
    assert cli("ps").exit_code == 0  # later commands use the saved file
    assert [c.headers["X-Api-Key"] for c in server.calls] == ["sbx-alice", "sbx-alice"]


def test_login_with_a_bad_key_saves_nothing(server: FakeServer, tmp_path: Path) -> None:
    server.on("GET", "/v1/info", {"message": "invalid API key"}, status=401)
    result = cli("login", server.url, "wrong")
    assert result.exit_code == 1
    assert not (tmp_path / "config.json").exists()


def test_environment_overrides_the_login_file(server: FakeServer, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "api_key": "old"}))
    server.on("GET", "/v1/containers", [])
    assert cli("ps").exit_code == 0
    assert server.calls[0].headers["X-Api-Key"] == "sbx-test-key"


# output ---------------------------------------------------------------------------------------------
def test_ps_table(server: FakeServer) -> None:
    exited = container("old", "exited", exit_code=3, finished_at=iso(130)) | {"id": "9" * 64, "created_at": iso(4000)}
    server.on("GET", "/v1/containers", [exited, container()])
    result = cli("ps", "-a")
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout
    header, first, second = result.stdout.splitlines()
    assert header.split("   ")[0] == "CONTAINER ID"
    assert first.startswith(CID[:12] + " ")
    assert '"sh -c echo hello wo…"' in first
    assert "2 minutes ago" in first and "Up 3 seconds" in first and first.endswith("web")
    assert "Exited (3) 2 minutes ago" in second and "About an hour ago" in second
    for column in ("IMAGE", "STATUS", "SIZE", "IP", "NAMES"):  # aligned: every row has its cell where the header is
        at = header.index(column)
        assert first[at - 1] == " " and second[at - 1] == " " and first[at] != " "
    assert server.calls[0].query == {"all": "true"}


def test_ps_quiet(server: FakeServer) -> None:
    server.on("GET", "/v1/containers", [container()])
    result = cli("ps", "-q")
    assert result.stdout == CID[:12] + "\n"
    assert server.calls[0].query == {"all": "false"}


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def before_now(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat()


@pytest.mark.parametrize(
    "state, status, text",
    [
        ("running", {"started_at": before_now(3)}, "Up 3 seconds"),
        ("running", {"started_at": before_now(0.2)}, "Up Less than a second"),
        ("running", {"started_at": before_now(3 * 3600)}, "Up 3 hours"),
        ("exited", {"exit_code": 3, "finished_at": before_now(125)}, "Exited (3) 2 minutes ago"),
        ("exited", {"exit_code": 0, "finished_at": before_now(70)}, "Exited (0) About a minute ago"),
        ("created", {"started_at": None}, "Created"),
        ("restarting", {"exit_code": 1, "finished_at": before_now(5)}, "Restarting (1) 5 seconds ago"),
        ("restarting", {"finished_at": None}, "Restarting"),
        ("dead", {}, "Dead"),
    ],
)
def test_status_is_worded_like_docker(state: str, status: dict[str, Any], text: str) -> None:
    assert status_text(container(state=state, **status), now=NOW) == text


@pytest.mark.parametrize(
    "seconds, text",
    [(0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
     (61 * 60, "About an hour"), (47 * 3600, "47 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks"),
     (90 * 86400, "3 months"), (800 * 86400, "2 years")],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_bytes() -> None:
    assert human_bytes(4_261_134) == "4.261MB"
    assert human_bytes(512) == "512B"
    assert human_bytes(512 << 20, binary=True) == "512MiB"
    assert human_bytes(10 << 30, binary=True) == "10GiB"


def test_parse_time() -> None:
    assert abs(parse_time("10m") - (time.time() - 600)) < 2
    assert abs(parse_time("1h30m") - (time.time() - 5400)) < 2
    assert parse_time("1700000000") == 1700000000
    assert parse_time("2023-11-14T22:13:20Z") == 1700000000
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_logs_options(server: FakeServer) -> None:
    server.on("GET", "/v1/containers/web/logs", ndjson=[
        {"time": "2024-05-01T10:00:00.5+00:00", "stream": "stdout", "data": "a\n"},
        {"time": "2024-05-01T10:00:01+00:00", "stream": "stderr", "data": "b\n"},
    ])
    result = cli("logs", "-f", "--tail", "2", "-t", "--since", "1700000000", "web")
    assert result.exit_code == 0
    assert result.stdout == "2024-05-01T10:00:00.500000Z a\n"
    assert result.stderr == "2024-05-01T10:00:01.000000Z b\n"
    assert server.calls[0].query == {"follow": "true", "tail": "2", "since": "1700000000.0"}
    assert cli("logs", "--tail", "many", "web").exit_code == 2


def test_lifecycle_verbs_send_their_options(server: FakeServer) -> None:
    server.on("POST", "/v1/containers/web/stop", container())
    server.on("POST", "/v1/containers/web/kill", container())
    server.on("POST", "/v1/containers/web/restart", container())
    server.on("POST", "/v1/containers/web/wait", {"exit_code": 137, "oom_killed": False, "error": ""})
    server.on("POST", "/v1/containers/web/rename", container("front"))
    assert cli("stop", "-t", "2", "web").stdout == "web\n"
    assert cli("kill", "-s", "HUP", "web").stdout == "web\n"
    assert cli("restart", "web").stdout == "web\n"
    assert cli("wait", "web").stdout == "137\n"
    assert cli("rename", "web", "front").exit_code == 0
    assert [c.query for c in server.calls] == [{"t": "2.0"}, {"signal": "HUP"}, {}, {}, {"name": "front"}]


def test_inspect_prints_a_json_array_and_reports_the_missing(server: FakeServer) -> None:
    server.on("GET", "/v1/containers/web", container())
    server.on("GET", "/v1/containers/gone", {"message": "no such container: gone"}, status=404)
    result = cli("inspect", "web", "gone")
    assert result.exit_code == 1
    assert [c["name"] for c in json.loads(result.stdout)] == ["web"]
    assert result.stderr == "error: no such container: gone\n"


def test_images_table_and_rmi(server: FakeServer) -> None:
    server.on("GET", "/v1/images", [{
        "id": "sha256:" + "ab" * 32, "size": 4_261_134, "created": iso(3 * 86400),
        "repo_tags": ["docker.io/library/busybox:latest", "127.0.0.1:5000/tools/bb:1.36"],
    }])
    server.on("DELETE", "/v1/images/127.0.0.1:5000/tools/bb:1.36", {"untagged": ["127.0.0.1:5000/tools/bb:1.36"]})
    rows = [line.split() for line in cli("images").stdout.splitlines()]
    assert rows == [
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"],
        ["busybox", "latest", "abababababab", "3", "days", "ago", "4.261MB"],
        ["127.0.0.1:5000/tools/bb", "1.36", "abababababab", "3", "days", "ago", "4.261MB"],
    ]
    result = cli("rmi", "127.0.0.1:5000/tools/bb:1.36")
    assert (result.exit_code, result.stdout) == (0, "Untagged: 127.0.0.1:5000/tools/bb:1.36\n")


def test_image_import_streams_the_file(server: FakeServer, tmp_path: Path) -> None:
    archive = tmp_path / "app.tar"
    archive.write_bytes(os.urandom(3 << 20))
    server.on("POST", "/v1/images/import", [
        {"id": "sha256:" + "ef" * 32, "repo_tags": ["docker.io/library/app:1"], "size": 1},
        {"id": "sha256:" + "12" * 32, "repo_tags": [], "size": 1},
    ], status=201)
    result = cli("image", "import", str(archive))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Loaded image: docker.io/library/app:1\nLoaded image ID: sha256:{'12' * 32}\n"
    assert server.calls[0].body == archive.read_bytes()
    assert cli("image", "import", str(tmp_path / "missing.tar")).exit_code == 1


def test_pull_prints_the_pulled_image(server: FakeServer) -> None:
    server.on("POST", "/v1/images/pull", ndjson=[
        {"image": {"id": "sha256:" + "cd" * 32, "repo_tags": ["docker.io/library/busybox:latest"], "size": 1}},
    ])
    result = cli("image", "pull", "busybox")
    assert (result.exit_code, result.stdout) == (0, f"Pulled docker.io/library/busybox:latest ({'cd' * 6})\n")


def test_volume_create_and_ls(server: FakeServer) -> None:
    server.on("POST", "/v1/volumes", {"name": "data"}, status=201)
    server.on("GET", "/v1/volumes", [{"name": "data", "size": 1 << 30, "created_at": iso(10), "labels": {},
                                      "tenant": "t", "node": "n", "in_use_by": ["web"]}])
    assert cli("volume", "create", "--size", "1GiB", "-l", "a=b", "data").stdout == "data\n"
    assert server.calls[0].json() == {"name": "data", "size": "1GiB", "labels": {"a": "b"}}
    header, row = cli("volume", "ls").stdout.splitlines()
    assert re.split(r"\s{2,}", header) == ["VOLUME NAME", "SIZE", "CREATED", "IN USE BY"]
    assert re.split(r"\s{2,}", row) == ["data", "1GiB", "10 seconds ago", "web"]


def test_sizes_marks_the_default(server: FakeServer) -> None:
    server.on("GET", "/v1/sizes", [{"name": "s4", "memory_bytes": 512 << 20, "cpu_shares": 512, "cpus": 1.0,
                                    "disk_bytes": 10 << 30, "default": True},
                                   {"name": "m2", "memory_bytes": 2 << 30, "cpu_shares": 2048, "cpus": 2.0,
                                    "disk_bytes": 20 << 30, "default": False}])
    lines = cli("sizes").stdout.splitlines()
    assert lines[0].split() == ["SIZE", "MEMORY", "CPU", "SHARES", "CPUS", "DISK"]
    assert lines[1].split() == ["s4", "(default)", "512MiB", "512", "1", "10GiB"]
    assert lines[2].split() == ["m2", "2GiB", "2048", "2", "20GiB"]


def test_events(server: FakeServer) -> None:
    server.on("GET", "/v1/events", ndjson=[
        {"id": 1, "time": "2024-05-01T10:00:00+00:00", "tenant": "t", "type": "container", "action": "start",
         "resource_id": CID, "resource_name": "web", "attributes": {"image": "busybox"}},
        {"id": 2, "time": "2024-05-01T10:00:01+00:00", "tenant": "t", "type": "volume", "action": "create",
         "resource_id": "data", "resource_name": "data", "attributes": {}},
    ])
    result = cli("events", "--since", "10m", "-f")
    assert result.stdout.splitlines() == [
        f"2024-05-01T10:00:00.000000Z container start web (id={CID[:12]}, image=busybox)",
        "2024-05-01T10:00:01.000000Z volume create data",
    ]
    query = server.calls[0].query
    assert query["follow"] == "true" and abs(float(query["since"]) - (time.time() - 600)) < 5
    assert "until" not in query


def test_version_without_a_server_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEABOX_URL", raising=False)
    monkeypatch.delenv("SEABOX_API_KEY", raising=False)
    monkeypatch.setenv("SEABOX_CONFIG", str(tmp_path / "missing.json"))
    result = cli("version")
    assert (result.exit_code, result.stdout) == (0, "Client: 0.1.0\n")


def test_image_group_aliases_the_top_level_commands(server: FakeServer) -> None:
    server.on("GET", "/v1/images", [{"id": "sha256:" + "ab" * 32, "size": 1, "created": None, "repo_tags": []}])
    assert cli("image", "ls", "-q").stdout == cli("images", "-q").stdout == "ab" * 6 + "\n"
    assert cli("image", "ls").stdout.splitlines()[1].split() == ["<none>", "<none>", "ab" * 6, "1B"]


def test_the_create_options_the_api_honours_become_its_fields(server: FakeServer, tmp_path: Path) -> None:
    from seabox.model.container import ContainerCreate

    profile = tmp_path / "seccomp.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}')
    server.on("POST", "/v1/containers", {"id": CID}, status=201)
    result = cli(
        "create", "--tmpfs", "/run", "--tmpfs", "/cache:size=64m,mode=1777", "--init", "--group-add", "audio",
        "--group-add", "1001", "--cpuset-cpus", "0", "--memory-swappiness", "0", "--log-opt", "max-size=10m",
        "--log-opt", "max-file=1", "--network", "none", "--security-opt", "no-new-privileges",
        "--security-opt", f"seccomp={profile}", "--cap-add", "NET_RAW", "--health-cmd", "test -e /ok",
        "--health-interval", "1m30s", "--health-timeout", "500ms", "--health-start-period", "5s",
        "--health-retries", "2", "busybox",
    )
    assert result.exit_code == 0, result.output
    body = server.calls[0].json()
    assert {k: v for k, v in body.items() if k not in ("image", "env", "labels", "volumes")} == {
        "tmpfs": [{"path": "/run"}, {"path": "/cache", "options": "size=64m,mode=1777"}],
        "init": True,
        "group_add": ["audio", "1001"],
        "cpuset_cpus": "0",
        "memory_swappiness": 0,
        "log": {"options": {"max-size": "10m", "max-file": "1"}, "max_size": 10 << 20, "max_file": 1},
        "network": "none",
        "seccomp_profile": profile.read_text(),
        "cap_add": ["NET_RAW"],
        "healthcheck": {"test": ["CMD-SHELL", "test -e /ok"], "interval": 90.0, "timeout": 0.5, "start_period": 5.0,
                        "retries": 2},
    }
    ContainerCreate.model_validate(body)  # what the native API reads


def test_no_healthcheck_and_a_health_option_alone(server: FakeServer) -> None:
    server.on("POST", "/v1/containers", {"id": CID}, status=201)
    assert cli("create", "--no-healthcheck", "busybox").exit_code == 0
    assert cli("create", "--health-interval", "2s", "--memory-swappiness", "-1", "busybox").exit_code == 0
    first, second = (c.json() for c in server.calls)
    assert first["healthcheck"] == {"test": ["NONE"]}
    assert second["healthcheck"] == {"test": [], "interval": 2.0} and "memory_swappiness" not in second


@pytest.mark.parametrize("args, complaint", [
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck: conflicts with the --health-* options"),
    (["--network", "host"], "--network: must be none or default"),
    (["--log-opt", "compress=true"], "--log-opt: compress is not honoured: use max-size or max-file"),
    (["--log-opt", "max-size=lots"], "--log-opt: max-size must be a number of bytes"),
    (["--security-opt", "apparmor=unconfined"], "--security-opt: apparmor=unconfined cannot be honoured"),
    (["--security-opt", "seccomp=unconfined"], "--security-opt: seccomp=unconfined cannot be honoured"),
    (["--security-opt", "seccomp=/no/such/file"], "--security-opt: cannot read /no/such/file"),
    (["--health-interval", "often"], "argument --health-interval: expected a duration like 30s"),
    (["--health-retries", "0"], "argument --health-retries: must be at least 1, got 0"),
])
def test_create_options_that_cannot_be_honoured_are_usage_errors(server: FakeServer, args: list[str],
                                                                 complaint: str) -> None:
    result = cli("run", *args, "busybox")
    assert result.exit_code == 2
    assert complaint in " ".join(result.stderr.split())
    assert server.calls == []


def test_image_import_from_stdin_streams_it_chunked(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(3 << 20)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    server.on("POST", "/v1/images/import", [{"id": "sha256:" + "ef" * 32, "repo_tags": ["app:1"], "size": 1}],
              status=201)
    result = cli("image", "import", "-")
    assert (result.exit_code, result.stdout) == (0, "Loaded image: app:1\n"), result.output
    assert server.calls[0].body == data and server.calls[0].headers["Transfer-Encoding"] == "chunked"


def test_an_https_server_is_verified_against_the_trusted_certificates(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from seabox.tls import create_ca, issue

    ca = create_ca(tmp_path / "tls")
    issue(ca, "127.0.0.1", tmp_path / "server.pem", tmp_path / "server-key.pem", server_names=["127.0.0.1"])
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "server.pem", tmp_path / "server-key.pem")
    monkeypatch.setenv("SEABOX_API_KEY", "k")
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "none"))
    with serving(tls) as fake:
        fake.on("GET", "/v1/containers", [])
        monkeypatch.setenv("SEABOX_URL", fake.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
        assert cli("ps", "-q") == Result(0, b"", b"")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "server.pem"))  # a certificate that is no CA
        result = cli("ps")
        assert result.exit_code == 1 and "certificate verify failed" in result.stderr, result.stderr
    assert len(fake.calls) == 1


def test_sg_create_takes_the_name_from_the_file_unless_given(server: FakeServer, tmp_path: Path) -> None:
    group = tmp_path / "web.yaml"
    group.write_text("name: web\nrules: []\n")
    server.on("POST", "/v1/security-groups", {"name": "web"}, status=201)
    assert cli("sg", "create", "-f", str(group)).stdout == "web\n"
    assert cli("sg", "create", "-f", str(group), "front").exit_code == 0
    assert [c.query for c in server.calls] == [{}, {"name": "front"}]
    assert server.calls[0].body == group.read_bytes()
    assert cli("sg", "create", "front").exit_code == 2  # -f is required


def test_update_sends_a_size_and_restart_policy_or_groups_never_both(server: FakeServer) -> None:
    server.on("POST", f"/v1/containers/{CID[:12]}/update", container())
    result = cli("update", "--size", "m1", "--restart", "on-failure:3", CID[:12])
    assert result.exit_code == 0, result.output
    assert server.calls[0].json() == {"size": "m1", "restart": "on-failure:3"}
    assert cli("update", "--sg-add", "db", CID[:12]).exit_code == 0
    assert server.calls[1].json() == {"security_groups_add": ["db"], "security_groups_remove": []}
    mixed = cli("update", "--sg-add", "db", "--size", "m1", CID[:12])
    assert mixed.exit_code == 2 and "--size" in mixed.output
    assert len(server.calls) == 2  # the usage error sent nothing
