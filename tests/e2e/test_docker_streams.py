"""Interactive streams through the real docker CLI (on a pty) and the docker SDK: detach keys, exec failures,
an exec's terminal, logs --until, attach with logs, environment entries without '='."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from datetime import datetime, timedelta
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from seabox.model.runtime import RUNTIME_CLASSES
from tests.e2e.docker_fixtures import DOCKER, DockerCli, cleaned, docker_config, pull, sdk_client, unique, until
from tests.fixtures.server import Server, class_tenant, param_of

TENANT = "dockerstreams"


@pytest.fixture
def dcli(request: pytest.FixtureRequest, server: Server, tmp_path: Path, busybox_image: str) -> Iterator[DockerCli]:
    """The docker CLI as tenant dockerstreams (in a runtime class when parametrized), busybox pulled; what it
    made is removed afterwards."""
    tenant = class_tenant(server, TENANT, param_of(request))
    with cleaned(server, tenant):
        pull(server, tenant, busybox_image)
        yield DockerCli(server, tenant, docker_config(server, tenant, tmp_path))


@pytest.fixture
def sdk(dcli: DockerCli, tmp_path: Path) -> Iterator[docker.DockerClient]:
    client = sdk_client(dcli.server, dcli.tenant, tmp_path)
    try:
        yield client
    finally:
        client.close()


def running(dcli: DockerCli, name: str) -> bool:
    return dcli.ok("inspect", "-f", "{{.State.Running}}", name).strip() == "true"


@pytest.mark.parametrize("keys", [None, "ctrl-a,b"])
def test_detach_keys_end_docker_attach_and_leave_the_container_running(
    dcli: DockerCli, busybox_image: str, keys: str | None
) -> None:
    """The CLI reads the keys itself and ends its input; the server then ends the stream at once, as Docker
    does for a terminal. (Over plain TCP the CLI 28 then waits for the container's exit: its io.Copy into a
    TCP connection wraps the escape error, so it takes the detach for an end of input.)"""
    name = unique("attached")
    dcli.ok("run", "-dit", "--name", name, busybox_image, "sh")
    flags = ["--detach-keys", keys] if keys else []
    typed = b"\x01b" if keys else b"\x10\x11"
    for _ in range(2):  # a second attach still reaches the shell's input
        term = dcli.terminal("-D", "attach", *flags, name)
        try:
            assert term.detach(typed, b"End of stdout") < 2
        finally:
            term.close()
        assert running(dcli, name)


def test_detach_keys_end_docker_exec_and_leave_its_process_running(dcli: DockerCli, busybox_image: str) -> None:
    name = unique("execd")
    dcli.ok("run", "-d", "--name", name, busybox_image, "sleep", "300")
    term = dcli.terminal("exec", "-it", name, "sh", "-c", "echo ready; exec sleep 120")
    try:
        term.read_until(b"ready")
        started = time.monotonic()
        term.type(b"\x10\x11")
        code = term.wait(5)
    finally:
        term.close()
    assert code == 0 and time.monotonic() - started < 2
    assert running(dcli, name)
    assert "sleep 120" in dcli.ok("top", name)  # the exec was detached, not killed


def test_the_server_reads_detach_keys_from_a_raw_client_and_refuses_invalid_ones(
    dcli: DockerCli, sdk: docker.DockerClient, busybox_image: str
) -> None:
    c = sdk.containers.run(busybox_image, "sh", tty=True, stdin_open=True, detach=True)
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.attach_socket(c.id, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-1"})
    assert err.value.status_code == 400 and "invalid detach keys (ctrl-1)" in str(err.value)
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.exec_create(c.id, "sh", tty=True, stdin=True, detach_keys="nope")
    assert err.value.status_code == 400 and "invalid detach keys (nope)" in str(err.value)
    attached = sdk.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x"})
    sock: socket.socket = attached._sock
    sock.settimeout(5)
    try:
        sock.sendall(b"echo hi\r\x18")  # split keys would do too: the server keeps a partial match
        started = time.monotonic()
        while sock.recv(65536):  # the server ends the stream
            pass
        assert time.monotonic() - started < 3
    finally:
        sock.close()
        attached.close()
    c.reload()
    assert c.status == "running"


@pytest.mark.parametrize("dcli", RUNTIME_CLASSES, indirect=True)
def test_an_exec_of_a_missing_or_unexecutable_binary_ends_with_127_or_126(
    dcli: DockerCli, sdk: docker.DockerClient, busybox_image: str
) -> None:
    name = unique("failing")
    dcli.ok("run", "-d", "--name", name, busybox_image, "sleep", "300")
    gvisor = dcli.tenant.endswith("gvisor")  # runsc says it in its own words
    for command, code, says in (("no-such-binary", 127, "in PATH" if gvisor else "executable file not found"),
                                ("/etc/passwd", 126, "permission denied")):
        started = time.monotonic()
        r = dcli("exec", name, command, timeout=10)
        assert time.monotonic() - started < 2, r
        assert r.returncode == code and says in r.stdout and "OCI runtime exec failed" in r.stdout, r
    exec_id = sdk.api.exec_create(name, "no-such-binary")["Id"]
    assert (b"in PATH" if gvisor else b"executable file not found") in sdk.api.exec_start(exec_id)
    assert sdk.api.exec_inspect(exec_id)["ExitCode"] == 127
    assert running(dcli, name)


def test_an_exec_created_with_a_terminal_keeps_it_whatever_the_start_says(
    sdk: docker.DockerClient, busybox_image: str
) -> None:
    c = sdk.containers.run(busybox_image, ["sleep", "300"], detach=True)
    exec_id = sdk.api.exec_create(c.id, ["sh", "-c", "test -t 1 && echo has-tty"], tty=True)["Id"]
    assert sdk.api.exec_start(exec_id, tty=False) == b"has-tty\r\n"  # framed as asked, from a terminal
    assert sdk.api.exec_inspect(exec_id)["ProcessConfig"]["tty"] is True
    exec_id = sdk.api.exec_create(c.id, ["sh", "-c", "test -t 1 || echo no-tty"], tty=False)["Id"]
    assert sdk.api.exec_start(exec_id, tty=True) == b"no-tty\n"


def test_logs_until_leaves_out_what_came_later_and_ends_a_follow(dcli: DockerCli, busybox_image: str) -> None:
    name = unique("talker")
    dcli.ok("run", "-d", "--name", name, busybox_image, "sh", "-c", "echo early; sleep 1; echo late; sleep 300")
    stamped = until(lambda: (lines := dcli.lines("logs", "-t", name)) and len(lines) == 2 and lines, what="both lines")
    early_at = datetime.fromisoformat(stamped[0].split(" ", 1)[0][:26].rstrip("Z") + "+00:00")
    between = (early_at + timedelta(seconds=0.5)).isoformat().replace("+00:00", "Z")
    assert dcli.ok("logs", "--until", between, name) == "early\n"
    assert dcli.ok("logs", "--since", between, name) == "late\n"
    started = time.monotonic()
    assert dcli.ok("logs", "-f", "--until", between, name, timeout=10) == "early\n"  # ends: until has passed
    assert time.monotonic() - started < 5


def test_attach_with_logs_and_no_stream_returns_the_log_so_far_and_ends(
    dcli: DockerCli, busybox_image: str
) -> None:
    name = unique("logged")
    dcli.ok("run", "-d", "--name", name, busybox_image, "sh", "-c", "echo one; echo two >&2; sleep 300")
    until(lambda: dcli.ok("logs", name) == "one\n", what="the first line")
    server = dcli.server
    started = time.monotonic()
    r = httpx.post(f"{server.url}/v1.47/containers/{name}/attach", params={"logs": 1, "stream": 0, "stdout": 1,
                   "stderr": 1}, headers={"X-Api-Key": server.tenant(TENANT)}, timeout=10)
    assert r.status_code == 200 and time.monotonic() - started < 3
    assert frames(r.content) == [(1, b"one\n"), (2, b"two\n")]


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        kind, size = struct.unpack(">BxxxL", data[:8])
        out.append((kind, data[8 : 8 + size]))
        data = data[8 + size :]
    return out


@pytest.mark.parametrize("dcli", RUNTIME_CLASSES, indirect=True)
def test_env_entries_without_equals_are_taken_from_the_client_or_unset(
    dcli: DockerCli, sdk: docker.DockerClient, busybox_image: str
) -> None:
    env = {**dcli.env, "FROM_CLIENT": "here"}
    env.pop("NOT_SET", None)
    r = subprocess.run([DOCKER, "run", "--rm", "-e", "FROM_CLIENT", "-e", "NOT_SET", busybox_image, "env"], env=env,
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    assert "FROM_CLIENT=here" in r.stdout.splitlines() and "NOT_SET" not in r.stdout
    # through the API a bare KEY is kept in Config.Env, as Docker, and unsets KEY in the process
    c = sdk.containers.run(busybox_image, ["sleep", "300"], environment=["BARE", "SET=1"], detach=True)
    assert "BARE" in c.attrs["Config"]["Env"] and "SET=1" in c.attrs["Config"]["Env"]
    out = c.exec_run(["/bin/env"]).output.decode().splitlines()
    assert "SET=1" in out and not any(line.startswith("BARE") for line in out), out
    out = c.exec_run(["/bin/env"], environment=["ALSO_BARE", "X=y"]).output.decode().splitlines()
    assert "X=y" in out and not any(line.startswith("ALSO_BARE") for line in out), out


@pytest.mark.parametrize("dcli", RUNTIME_CLASSES, indirect=True)
def test_a_bare_key_removes_what_the_image_or_the_container_sets(
    dcli: DockerCli, sdk: docker.DockerClient, busybox_image: str
) -> None:
    base = sdk.containers.run(busybox_image, ["true"], detach=True)
    assert base.wait()["StatusCode"] == 0
    image = base.commit(repository=unique("envimage"), tag="1", changes=["ENV FOO=from-image BAR=image-bar"])
    c = sdk.containers.run(image.id, ["sleep", "300"], environment=["FOO", "KEEP=1"], detach=True)
    assert "FOO" in c.attrs["Config"]["Env"] and "BAR=image-bar" in c.attrs["Config"]["Env"]

    def env(*given: str, tty: bool = False) -> list[str]:
        return c.exec_run(["/bin/env"], environment=list(given), tty=tty).output.decode().splitlines()

    out = env()
    assert "BAR=image-bar" in out and "KEEP=1" in out and not any(line.startswith("FOO") for line in out), out
    out = env("BAR", "KEEP", "NEW=x", "PATH=/bin")  # as docker exec -e BAR -e KEEP -e NEW=x: BAR and KEEP go
    assert "NEW=x" in out and "PATH=/bin" in out and not any(line.startswith(("BAR", "KEEP")) for line in out), out
    assert sum(line.startswith("PATH=") for line in out) == 1, out
    out = [line.rstrip("\r") for line in env("BAR", tty=True)]
    assert "TERM=xterm" in out and "KEEP=1" in out and not any(line.startswith("BAR") for line in out), out
