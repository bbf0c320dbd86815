"""Issue 17's commands and options through the docker SDK (docker-py 7) where only the CLI had a test:
security options seen from inside, the files of a stopped container, image tag/import/build, stream details,
volume filters and names, and the image reference a container keeps."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.e2e.docker_fixtures import native, pulled_tenant, sdk_client, unique, wait_for
from tests.e2e.test_docker_create_options import DENY_MKDIR, NET_BIND_SERVICE_BIT, status_field
from tests.e2e.test_docker_images import _rootfs_tar
from tests.fixtures.server import Server

CAP_CHOWN_BIT, CAP_NET_RAW_BIT = 1 << 0, 1 << 13
STATUS = "cat /proc/self/status; touch /written 2>/dev/null; echo touch=$?"


@pytest.fixture(scope="module")
def tenant(server: Server, busybox_image: str) -> Iterator[str]:
    """One tenant for the module, busybox pulled once; everything it made is removed at the end."""
    with pulled_tenant(server, "depthsdk", busybox_image) as name:
        yield name


@pytest.fixture
def sdk(server: Server, tenant: str, tmp_path: Path) -> Iterator[docker.DockerClient]:
    """The tenant's docker-py client; the test's containers and volumes are removed afterwards."""
    client = sdk_client(server, tenant, tmp_path)
    try:
        yield client
    finally:
        client.close()
        with native(server, tenant) as api:
            for c in api.get("/v1/containers", params={"all": "true"}).json():
                api.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
            for v in api.get("/v1/volumes").json():
                api.delete(f"/v1/volumes/{v['name']}")


def run_output(sdk: docker.DockerClient, image: str, command: str, **options: object) -> str:
    return sdk.containers.run(image, ["sh", "-c", command], remove=True, **options).decode()


def test_security_options_hold_inside_the_container(sdk: docker.DockerClient, busybox_image: str) -> None:
    default = int(status_field(run_output(sdk, busybox_image, STATUS), "CapEff"), 16)
    assert default & CAP_CHOWN_BIT and default & CAP_NET_RAW_BIT  # Docker's default set holds both
    out = run_output(sdk, busybox_image, STATUS, cap_drop=["CHOWN", "NET_RAW"])
    assert int(status_field(out, "CapEff"), 16) == default & ~(CAP_CHOWN_BIT | CAP_NET_RAW_BIT)
    assert "touch=0" in out  # writable without --read-only
    out = run_output(sdk, busybox_image, STATUS, cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"], read_only=True,
                     security_opt=["no-new-privileges"])
    assert int(status_field(out, "CapEff"), 16) == NET_BIND_SERVICE_BIT
    assert status_field(out, "NoNewPrivs") == "1" and status_field(out, "Seccomp") == "2" and "touch=1" in out
    out = run_output(sdk, busybox_image, STATUS, cap_drop=["ALL"])
    assert int(status_field(out, "CapEff"), 16) == 0


def test_a_seccomp_profile_narrows_the_default_and_unconfined_is_refused(
        sdk: docker.DockerClient, busybox_image: str) -> None:
    # the docker CLI reads --security-opt seccomp=FILE and sends the profile itself, as the SDK user must
    out = run_output(sdk, busybox_image, "mkdir /tmp/d 2>/dev/null; echo mkdir=$?; touch /tmp/f; echo touch=$?",
                     security_opt=["seccomp=" + json.dumps(DENY_MKDIR)])
    assert "mkdir=1" in out and "touch=0" in out
    for opt, words in (("seccomp=unconfined", "seccomp=unconfined is not supported"),
                       ("no-new-privileges=false", "no-new-privileges is always on"),
                       ("apparmor=unconfined", "not supported")):
        with pytest.raises(docker.errors.APIError) as err:
            sdk.containers.create(busybox_image, "true", security_opt=[opt])
        assert err.value.status_code == 400 and words in str(err.value.explanation), (opt, err.value)
        assert err.value.response.json()["field"] == "HostConfig.SecurityOpt"
    with pytest.raises(docker.errors.APIError) as err:
        sdk.containers.create(busybox_image, "true", cap_add=["NET_ADMIN"])
    assert err.value.status_code == 400 and err.value.response.json()["field"] == "HostConfig.CapAdd"
    assert sdk.containers.list(all=True) == []


def test_init_group_add_cpuset_and_network_none(sdk: docker.DockerClient, busybox_image: str) -> None:
    out = run_output(sdk, busybox_image, "echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline); echo groups=$(id -G);"
                     " grep Cpus_allowed_list /proc/self/status; echo nets=$(ls /sys/class/net)",
                     init=True, group_add=["1234", "nogroup"], cpuset_cpus="0", network_mode="none")
    assert "pid1=/sbin/docker-init -- sh -c" in out, out
    assert {"1234", "65534"} <= set(out.rsplit("groups=", 1)[1].splitlines()[0].split()), out  # the image's nogroup
    assert "Cpus_allowed_list:\t0\n" in out and "nets=lo\n" in out, out
    out = run_output(sdk, busybox_image, "echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline)")
    assert "pid1=sh -c" in out  # without init the command is PID 1
    c = sdk.containers.create(busybox_image, "true", group_add=["nosuch"])
    started = time.monotonic()
    with pytest.raises(docker.errors.APIError) as err:  # found missing at the start, in the image's /etc/group
        c.start()
    assert time.monotonic() - started < 5 and err.value.status_code == 400, err.value
    assert "unable to find group nosuch" in str(err.value.explanation)
    assert err.value.response.json()["field"] == "group_add"
    c.reload()
    assert c.status == "created" and "unable to find group nosuch" in c.attrs["State"]["Error"]


def test_stop_signal_is_what_stop_sends(sdk: docker.DockerClient, busybox_image: str) -> None:
    trap = "trap 'echo got-usr1; exit 0' USR1; echo ready; while true; do sleep 0.1; done"
    c = sdk.containers.run(busybox_image, ["sh", "-c", trap], detach=True, stop_signal="SIGUSR1")
    assert c.attrs["Config"]["StopSignal"] == "SIGUSR1"
    wait_for(lambda: c.logs() == b"ready\n")
    started = time.monotonic()
    c.stop(timeout=20)
    assert time.monotonic() - started < 10  # the trap ended it: no kill after the timeout
    assert c.wait()["StatusCode"] == 0 and c.logs() == b"ready\ngot-usr1\n"
    with pytest.raises(docker.errors.APIError) as err:
        sdk.containers.create(busybox_image, "true", stop_signal="SIGNOPE")
    assert err.value.status_code == 400


def test_log_max_size_bounds_the_log_and_other_drivers_are_refused(sdk: docker.DockerClient,
                                                                   busybox_image: str) -> None:
    c = sdk.containers.run(busybox_image, ["sh", "-c", "for i in $(seq 1000); do echo line-$i-padding-padding; done"],
                           detach=True, log_config=docker.types.LogConfig(type="json-file", config={"max-size": "8k"}))
    assert c.wait()["StatusCode"] == 0
    c.reload()
    assert c.attrs["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "8k"}}
    out = c.logs()
    assert b"line-1000-" in out and len(out) < 8192
    with pytest.raises(docker.errors.APIError) as err:
        sdk.containers.create(busybox_image, "true", log_config=docker.types.LogConfig(type="syslog"))
    assert err.value.status_code == 400 and err.value.response.json()["field"] == "HostConfig.LogConfig.Type"


def test_files_of_a_created_then_stopped_container_diff_and_export(sdk: docker.DockerClient,
                                                                   busybox_image: str) -> None:
    c = sdk.containers.create(busybox_image, ["sh", "-c", "cp /in.txt /out.txt; rm /bin/ls"])
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("in.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"given\n"))
    assert c.put_archive("/", data.getvalue())  # before the first start
    c.start()
    assert c.wait()["StatusCode"] == 0
    bits, st = c.get_archive("/out.txt")  # from the exited container
    assert st["name"] == "out.txt" and st["size"] == 6
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
        assert tar.extractfile("out.txt").read() == b"given\n"  # type: ignore[union-attr]
    changes = {(d["Path"], d["Kind"]) for d in c.diff()}  # Kind: 0 changed, 1 added, 2 deleted
    assert {("/in.txt", 1), ("/out.txt", 1), ("/bin/ls", 2), ("/bin", 0)} <= changes, changes
    with tarfile.open(fileobj=io.BytesIO(b"".join(c.export()))) as tar:
        names = set(tar.getnames())
    assert {"in.txt", "out.txt", "bin/sh"} <= names and "bin/ls" not in names


def test_tag_import_and_build(sdk: docker.DockerClient, busybox_image: str, tmp_path: Path) -> None:
    img = sdk.images.get(busybox_image)
    assert img.tag("depth/tagged", "1") is True
    assert sdk.images.get("depth/tagged:1").id == img.id
    assert sdk.containers.run("depth/tagged:1", ["echo", "tagged"], remove=True) == b"tagged\n"
    tarball = _rootfs_tar(tmp_path / "rootfs.tgz")
    sdk.api.import_image(src=str(tarball), repository="depth/from-file", tag="1",
                         changes=['CMD ["/bin/busybox", "cat", "/hello"]'])
    assert sdk.containers.run("depth/from-file:1", remove=True) == b"imported\n"
    sdk.api.import_image_from_data(tarball.read_bytes(), repository="depth/from-data", tag="2")
    assert sdk.containers.run("depth/from-data:2", ["/bin/busybox", "cat", "/hello"], remove=True) == b"imported\n"
    kept = sdk.images.prune(filters={"dangling": False, "label": "nothing=here"})
    assert not kept["ImagesDeleted"] and sdk.images.get("depth/from-data:2")
    with pytest.raises(docker.errors.APIError) as err:
        sdk.images.build(fileobj=io.BytesIO(b"FROM scratch\n"), tag="never:1")
    assert err.value.status_code == 501 and "docker load" in str(err.value.explanation)


def test_config_image_and_the_list_show_the_reference_given(sdk: docker.DockerClient, busybox_image: str) -> None:
    given = busybox_image.removesuffix(":latest")
    c = sdk.containers.create(given, "true")
    assert c.attrs["Config"]["Image"] == given
    [listed] = sdk.api.containers(all=True, filters={"id": c.id})
    assert listed["Image"] == given


def test_streams_logs_until_attach_logs_kill_and_exec_codes(sdk: docker.DockerClient, busybox_image: str) -> None:
    c = sdk.containers.run(busybox_image, ["sh", "-c", "echo early; echo err >&2; sleep 1; echo late; sleep 300"],
                           detach=True)
    stamped = wait_for(lambda: (x := c.logs(timestamps=True).splitlines()) and len(x) == 3 and x)
    early = stamped[0].split(b" ", 1)[0].decode()
    between = datetime.fromisoformat(early[:26].rstrip("Z") + "+00:00").timestamp() + 0.5
    assert c.logs(until=between) == b"early\nerr\n"
    assert c.logs(since=between) == b"late\n"
    # again and again: docker-py loses what comes with the 101's headers (a race the server must not start)
    got = [c.attach(stdout=True, stderr=False, stream=False, logs=True) for _ in range(20)]
    assert got == [b"early\nlate\n"] * 20, got
    assert c.exec_run("/etc/passwd").exit_code == 126
    assert c.exec_run("no-such-binary").exit_code == 127
    c.kill()
    c.reload()  # at once: the final state
    assert (c.status, c.attrs["State"]["Running"], c.attrs["State"]["ExitCode"]) == ("exited", False, 137)


def test_health_status_events_and_the_failing_streak(sdk: docker.DockerClient, busybox_image: str) -> None:
    since = time.time() - 1
    c = sdk.containers.run(busybox_image, ["sleep", "60"], detach=True,
                           healthcheck={"test": ["CMD-SHELL", "test -e /tmp/ok || exit 2"], "interval": 200_000_000,
                                        "retries": 2})

    def unhealthy() -> dict[str, Any] | None:
        c.reload()
        health = c.attrs["State"].get("Health") or {}
        return health if health.get("Status") == "unhealthy" else None

    health = wait_for(unhealthy)
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 2
    c.exec_run(["touch", "/tmp/ok"])
    wait_for(lambda: (c.reload(), c.health == "healthy")[1])
    events = sdk.events(since=since, until=time.time() + 1, decode=True,
                        filters={"event": "health_status", "container": c.id})
    assert [e["Action"] for e in events][-2:] == ["health_status: unhealthy", "health_status: healthy"]


def test_volume_filters_and_names(sdk: docker.DockerClient, server: Server, busybox_image: str) -> None:
    red, blue = unique("red"), unique("blue")
    sdk.volumes.create(red, labels={"color": "red"})
    sdk.volumes.create(blue, labels={"color": "blue", "shiny": ""})
    sdk.containers.run(busybox_image, ["sleep", "300"], detach=True, volumes={blue: {"bind": "/d", "mode": "rw"}})

    def names(**filters: object) -> list[str]:
        return sorted(v.name for v in sdk.volumes.list(filters=filters))

    assert names(label="color=red") == [red] and names(label="shiny") == [blue]
    assert names(name="red-") == [red] and names(dangling=True) == [red] and names(dangling=False) == [blue]
    with pytest.raises(docker.errors.APIError) as err:
        sdk.volumes.list(filters={"colour": "red"})
    assert err.value.status_code == 400
    green, plain = sdk.volumes.create(labels={"color": "green"}).name, sdk.volumes.create().name  # anonymous
    assert sdk.volumes.prune(filters={"label": "color=green"})["VolumesDeleted"] == [green]
    assert sdk.volumes.prune(filters={"all": "true", "label": "color=red"})["VolumesDeleted"] == [red]
    assert names() == sorted([blue, plain])
    long = "v" * 255
    assert sdk.volumes.create(long).name == long
    for bad in ("v" * 256, "_under", "a/b", "a b"):  # one character is allowed (docs/api.md)
        with pytest.raises(docker.errors.APIError) as err:
            sdk.volumes.create(bad)
        message = str(err.value.explanation)
        assert err.value.status_code == 400 and "invalid volume name" in message, (bad, message)
        assert str(server.data_dir) not in message and "/var/" not in message, message
    with pytest.raises(docker.errors.NotFound) as err:
        sdk.volumes.get("no-such-volume")
    assert str(server.data_dir) not in str(err.value.explanation)
