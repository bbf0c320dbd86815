"""The docker SDK for Python (docker-py) against a real Seabox server, as a tenant's program would use it."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from seabox.model.runtime import RUNTIME_CLASSES
from tests.e2e.docker_fixtures import cleaned, pull, sdk_client, unique
from tests.fixtures.server import Server, class_tenant, param_of


@pytest.fixture
def tenant(request: pytest.FixtureRequest, server: Server) -> str:
    """Tenant dockersdk (in a runtime class: see each_class)."""
    return class_tenant(server, "dockersdk", param_of(request))


# the test runs once per runtime class, as a tenant whose containers run in that class by default
each_class = pytest.mark.parametrize("tenant", RUNTIME_CLASSES, indirect=True)


@pytest.fixture
def sdk(server: Server, tenant: str, tmp_path: Path) -> Iterator[docker.DockerClient]:
    """A docker-py client as the tenant; everything the tenant made is removed afterwards."""
    with cleaned(server, tenant):
        client = sdk_client(server, tenant, tmp_path)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def other_sdk(server: Server, tmp_path: Path) -> Iterator[docker.DockerClient]:
    """A docker-py client as a second tenant, dockersdk2."""
    with cleaned(server, "dockersdk2"):
        client = sdk_client(server, "dockersdk2", tmp_path)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def image(server: Server, tenant: str, busybox_image: str) -> str:
    """busybox, already pulled by the tenant."""
    pull(server, tenant, busybox_image)
    return busybox_image


def read_frames(sock: socket.socket) -> bytes:
    """Every payload of a multiplexed attach stream until the server closes it."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    out = b""
    while data:
        _, size = struct.unpack(">BxxxL", data[:8])
        out, data = out + data[8 : 8 + size], data[8 + size :]
    return out


def test_version_info_and_ping(sdk: docker.DockerClient) -> None:
    assert sdk.ping() is True
    assert sdk.version()["ApiVersion"] == "1.50" and sdk.api.api_version == "1.50"
    assert sdk.info()["OperatingSystem"].startswith("Seabox")
    with pytest.raises(docker.errors.APIError) as err:
        sdk.swarm.init()
    assert err.value.status_code == 501 and "not supported" in str(err.value.explanation)


@each_class
def test_run_returns_the_output_or_the_container(sdk: docker.DockerClient, image: str) -> None:
    assert sdk.containers.run(image, ["sh", "-c", "echo out; echo err >&2"]) == b"out\n"
    assert sdk.containers.run(image, ["sh", "-c", "echo out; echo err >&2"], stderr=True) == b"out\nerr\n"
    gone = unique("gone")
    assert sdk.containers.run(image, ["echo", "removed"], name=gone, remove=True) == b"removed\n"
    assert sdk.containers.list(all=True, filters={"name": gone}) == []
    with pytest.raises(docker.errors.ContainerError) as err:
        sdk.containers.run(image, ["sh", "-c", "echo bad >&2; exit 3"])
    assert err.value.exit_status == 3 and err.value.stderr == b"bad\n"

    name = unique("detached")
    c = sdk.containers.run(image, ["sleep", "300"], detach=True, name=name, labels={"team": "x"},
                           environment={"A": "1"}, mem_limit="100m")
    assert isinstance(c, Container) and c.name == name
    c.reload()
    assert c.status == "running" and c.labels == {"team": "x", "sh_hyper_instancetype": "s2"}
    assert "A=1" in c.attrs["Config"]["Env"] and c.attrs["HostConfig"]["Memory"] == 128 << 20


@each_class
def test_list_get_logs_exec_stats_stop_and_remove(sdk: docker.DockerClient, tenant: str, image: str) -> None:
    name = unique("worker")
    c = sdk.containers.run(image, ["sh", "-c", "echo line1; echo line2; echo line3; sleep 300"], detach=True,
                           name=name)
    assert [x.id for x in sdk.containers.list()] == [c.id]
    assert c.id in [x.id for x in sdk.containers.list(all=True)]
    assert sdk.containers.get(name).id == c.id and sdk.containers.get(c.id[:12]).name == name

    lines = c.logs(stream=True)  # follows: ends only when closed or the container stops
    try:
        assert [next(lines) for _ in range(3)] == [b"line1\n", b"line2\n", b"line3\n"]
    finally:
        lines.close()
    assert c.logs() == b"line1\nline2\nline3\n"

    assert tuple(c.exec_run(["sh", "-c", "echo hi; exit 4"])) == (4, b"hi\n")
    assert c.exec_run("echo plain").output == b"plain\n"
    assert c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True).output == (b"o\n", b"e\n")
    assert c.exec_run("pwd", workdir="/tmp", environment={"X": "y"}).output == b"/tmp\n"

    assert c.stats(stream=False)["memory_stats"]["usage"] > 0
    # gVisor's Sentry lists its processes by name only (docs/security.md)
    command = "sleep" if tenant.endswith("gvisor") else "sleep 300"
    assert any(p[-1] == command for p in c.top()["Processes"]), c.top()

    c.stop(timeout=1)
    c.reload()
    # 137: runc's init ignores SIGTERM (no handler), killed after the timeout; gVisor's dies of it (143)
    assert c.status == "exited" and c.wait()["StatusCode"] == c.attrs["State"]["ExitCode"] in (137, 143)
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get(name)


@each_class
def test_attach_socket_carries_stdin_and_output(sdk: docker.DockerClient, image: str) -> None:
    c = sdk.containers.create(image, ["sh", "-c", "cat; echo done"], stdin_open=True)
    attached = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    sock: socket.socket = attached._sock
    sock.settimeout(30)
    try:
        c.start()
        sock.sendall(b"hello\n")
        sock.shutdown(socket.SHUT_WR)
        assert read_frames(sock) == b"hello\ndone\n"
    finally:
        attached.close()
        sock.close()
    assert c.wait()["StatusCode"] == 0


def test_images_pull_list_get_and_remove(sdk: docker.DockerClient, busybox_image: str) -> None:
    assert sdk.images.list() == []
    img = sdk.images.pull(busybox_image)
    assert img.tags == [busybox_image] and img.id.startswith("sha256:")
    assert [i.id for i in sdk.images.list()] == [img.id]
    got = sdk.images.get(busybox_image)
    assert got.id == img.id and got.attrs["Config"]["Cmd"] == ["sh"]
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.images.get("127.0.0.1:1/not/pulled:1")
    sdk.images.remove(busybox_image)
    assert sdk.images.list() == []


@each_class
def test_volumes_create_list_use_and_remove(sdk: docker.DockerClient, image: str) -> None:
    name = unique("sdkvol")
    vol = sdk.volumes.create(name)
    assert vol.name == name and [v.name for v in sdk.volumes.list()] == [name]
    assert sdk.volumes.get(name).attrs["Driver"] == "local"
    mount = {name: {"bind": "/d", "mode": "rw"}}
    sdk.containers.run(image, ["sh", "-c", "echo kept > /d/f"], volumes=mount, remove=True)
    assert sdk.containers.run(image, ["cat", "/d/f"], volumes=mount, remove=True) == b"kept\n"
    vol.remove()
    assert sdk.volumes.list() == []
    with pytest.raises(docker.errors.NotFound):
        sdk.volumes.get(name)


def test_a_missing_container_is_not_found(sdk: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.NotFound) as err:
        sdk.containers.get("no-such-container")
    assert err.value.status_code == 404 and "no such container" in str(err.value.explanation).lower()


def test_published_ports_are_shown_and_a_host_address_is_refused_with_400(sdk: docker.DockerClient,
                                                                           image: str) -> None:
    c = sdk.containers.create(image, "true", ports={"80/tcp": 8080})
    assert c.attrs["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert c.ports == {"80/tcp": None}  # no floating IP attached: published nowhere yet
    c.remove()
    with pytest.raises(docker.errors.APIError) as err:
        sdk.containers.run(image, "true", ports={"80/tcp": ("127.0.0.1", 8080)})
    assert err.value.status_code == 400 and "floating IP" in str(err.value.explanation)
    assert sdk.containers.list(all=True) == []


def test_tenants_do_not_see_each_others_containers(
    sdk: docker.DockerClient, other_sdk: docker.DockerClient, image: str
) -> None:
    c = sdk.containers.run(image, ["sleep", "300"], detach=True, name=unique("mine"))
    assert other_sdk.containers.list(all=True) == []
    for ref in (c.id, c.name):
        with pytest.raises(docker.errors.NotFound):
            other_sdk.containers.get(ref)
    with pytest.raises(docker.errors.NotFound):
        other_sdk.api.remove_container(c.id, force=True)
    c.reload()
    assert c.status == "running"
