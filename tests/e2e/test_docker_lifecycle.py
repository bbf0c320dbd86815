"""Container and volume lifecycle through the docker CLI and SDK: pause, update, prunes, system df, volume filters."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from seabox.model.runtime import RUNTIME_CLASSES
from tests.e2e.docker_fixtures import DockerCli, cleaned, docker_config, native, pull, sdk_client, unique, wait_for
from tests.fixtures.server import Server, class_tenant, param_of

GiB = 1 << 30
CPUS = len(os.sched_getaffinity(0))


@pytest.fixture
def dcli(request: pytest.FixtureRequest, server: Server, tmp_path: Path) -> Iterator[DockerCli]:
    """The docker CLI as tenant dockerlife (in a runtime class: see each_class); what it made is removed afterwards."""
    tenant = class_tenant(server, "dockerlife", param_of(request))
    with cleaned(server, tenant):
        yield DockerCli(server, tenant, docker_config(server, tenant, tmp_path))


each_class = pytest.mark.parametrize("dcli", RUNTIME_CLASSES, indirect=True)


@pytest.fixture
def image(dcli: DockerCli, busybox_image: str) -> str:
    pull(dcli.server, dcli.tenant, busybox_image)
    return busybox_image


@pytest.fixture
def sdk(server: Server, tmp_path: Path, busybox_image: str) -> Iterator[docker.DockerClient]:
    with cleaned(server, "dockerlifesdk"):
        pull(server, "dockerlifesdk", busybox_image)
        client = sdk_client(server, "dockerlifesdk", tmp_path)
        try:
            yield client
        finally:
            client.close()


def _count(dcli: DockerCli, name: str) -> int:
    return len(dcli.ok("logs", name).split())


@each_class
def test_pause_freezes_refuses_exec_and_unpause_thaws(dcli: DockerCli, image: str) -> None:
    name = unique("paused")
    since = str(time.time() - 1)
    dcli.ok("run", "-d", "--name", name, image, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done")
    wait_for(lambda: _count(dcli, name) > 2)
    assert dcli.ok("pause", name) == f"{name}\n"
    state = dcli.inspect("-f", "{{json .State}}", name)
    assert state["Status"] == "paused" and state["Paused"] is True and state["Running"] is True
    assert "(Paused)" in dcli.ok("ps", "--format", "{{.Status}}", "--filter", f"name={name}")
    frozen = _count(dcli, name)
    time.sleep(0.4)
    assert _count(dcli, name) == frozen  # nothing ran while frozen
    r = dcli("exec", name, "true")
    assert r.returncode != 0 and "paused" in r.stderr, r.stderr
    r = dcli("pause", name)
    assert r.returncode == 1 and "already paused" in r.stderr, r.stderr
    r = dcli("start", name)
    assert r.returncode == 1 and "unpause" in r.stderr, r.stderr
    assert dcli.ok("unpause", name) == f"{name}\n"
    assert dcli.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name) == "running false\n"
    wait_for(lambda: _count(dcli, name) > frozen)
    assert dcli.ok("exec", name, "echo", "thawed") == "thawed\n"
    r = dcli("unpause", name)
    assert r.returncode == 1 and "not paused" in r.stderr, r.stderr
    events = dcli.lines("events", "--since", since, "--until", str(time.time() + 1), "--filter", f"container={name}",
                        "--format", "{{.Action}}")
    assert [e for e in events if e in ("pause", "unpause")] == ["pause", "unpause"], events
    dcli.ok("pause", name)  # a paused container stops like any other
    t0 = time.monotonic()
    dcli.ok("stop", "-t", "1", name)
    assert time.monotonic() - t0 < 8
    assert dcli.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name) == "exited false\n"


def test_kill_of_a_paused_container_and_inspect_right_after_a_kill(dcli: DockerCli, image: str) -> None:
    name = unique("killed")
    dcli.ok("run", "-d", "--name", name, image, "sleep", "300")
    dcli.ok("kill", name)
    state = dcli.inspect("-f", "{{json .State}}", name)  # at once: no "running" after kill returns
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 137), state
    dcli.ok("start", name)
    dcli.ok("pause", name)
    dcli.ok("kill", name)
    assert dcli.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name) == "exited 137\n"


def test_config_image_and_ps_show_the_reference_the_user_gave(dcli: DockerCli, image: str) -> None:
    given = image.removesuffix(":latest")  # no tag: Docker keeps it so
    name = unique("ref")
    dcli.ok("create", "--name", name, given, "true")
    assert dcli.ok("inspect", "-f", "{{.Config.Image}}", name) == f"{given}\n"
    assert dcli.ok("ps", "-a", "--format", "{{.Image}}", "--filter", f"name={name}") == f"{given}\n"


def test_update_changes_size_and_restart_policy_and_refuses_the_rest(dcli: DockerCli, image: str) -> None:
    name = unique("upd")
    dcli.ok("create", "--name", name, "--memory", "256m", image, "sleep", "300")
    before = dcli.inspect("-f", "{{.HostConfig.Memory}}", name)
    assert dcli.ok("update", "--memory", "1g", "--restart", "on-failure:3", name) == f"{name}\n"
    hc = dcli.inspect("-f", "{{json .HostConfig}}", name)
    assert hc["Memory"] >= GiB > before and hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    dcli.ok("start", name)
    dcli.ok("update", "--restart", "always", name)  # a policy changes while it runs
    assert dcli.ok("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", name) == "always\n"
    for option, field in ((["--cpuset-cpus", "0"], "CpusetCpus"), (["--pids-limit", "50"], "PidsLimit"),
                          (["--blkio-weight", "300"], "BlkioWeight")):
        r = dcli("update", *option, name)
        assert r.returncode == 1 and field in r.stderr, (option, r.stderr)
    r = dcli("update", "--memory", "100000g", name)
    assert r.returncode == 1 and "largest size" in r.stderr, r.stderr


MEMORY_LIMIT = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"  # what a runc container sees inside
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def _limit(dcli: DockerCli, name: str) -> int:
    """The memory limit the node enforces on the container (docker stats' LIMIT, read from its cgroup)."""
    usage = dcli.ok("stats", "--no-stream", "--format", "{{.MemUsage}}", name).strip()
    m = re.fullmatch(r"[0-9.]+\w+ / ([0-9.]+)(\w+)", usage)
    assert m is not None, usage
    return round(float(m.group(1)) * UNITS[m.group(2)])


@each_class
def test_update_of_a_running_container_changes_its_limits_live(dcli: DockerCli, image: str) -> None:
    name = unique("live")
    dcli.ok("run", "-d", "--name", name, "--memory", "256m", "--tmpfs", "/data:size=200m", image, "sleep", "300")
    started = dcli.ok("inspect", "-f", "{{.State.StartedAt}} {{.State.Pid}}", name)
    assert _limit(dcli, name) == 256 << 20
    assert dcli.ok("update", "--memory", "1g", name) == f"{name}\n"
    hc = dcli.inspect("-f", "{{json .HostConfig}}", name)
    assert (hc["Memory"], hc["NanoCpus"]) == (GiB, 10**9), hc  # at once: size m1
    assert _limit(dcli, name) == GiB
    if not dcli.tenant.endswith("-gvisor"):  # the Sentry's own cgroupfs shows what it booted with
        assert dcli.ok("exec", name, "sh", "-c", MEMORY_LIMIT).strip() == str(GiB)
    # it may use more than it started with now: dd's 300 MiB buffer
    r = dcli("exec", name, "dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1")
    assert r.returncode == 0 and "1+0 records out" in r.stderr, r.stderr
    # the same process: not restarted
    assert dcli.ok("inspect", "-f", "{{.State.StartedAt}} {{.State.Pid}}", name) == started
    dcli.ok("pause", name)
    dcli.ok("update", "--memory", "2g", name)  # paused: applied too, and it stays paused
    assert dcli.ok("inspect", "-f", "{{.State.Status}} {{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
                   name) == f"paused {2 * GiB} {2 * 10**9}\n"
    dcli.ok("unpause", name)
    assert _limit(dcli, name) == 2 * GiB
    # memory in use above the new limit (a tmpfs cannot be reclaimed without swap): refused, the size kept
    dcli.ok("exec", name, "dd", "if=/dev/zero", "of=/data/fill", "bs=1M", "count=150")
    r = dcli("update", "--memory", "64m", "--cpus", "1", name)
    assert r.returncode == 1 and "could not change to size s1" in r.stderr, r.stderr
    assert dcli.inspect("-f", "{{.HostConfig.Memory}}", name) == 2 * GiB and _limit(dcli, name) == 2 * GiB
    # a size its node cannot hold (more CPUs than it has): a 409 naming the node, nothing changed
    r = dcli("update", "--cpus", str(CPUS + 1), name)
    assert r.returncode == 1 and "node local has" in r.stderr, r.stderr
    assert dcli.inspect("-f", "{{.HostConfig.Memory}}", name) == 2 * GiB
    events = dcli.lines("events", "--since", "0", "--until", str(time.time() + 1), "--filter", f"container={name}",
                        "--format", "{{.Action}} {{.Actor.Attributes.size}}")
    assert [e for e in events if e.startswith("update")][:2] == ["update m1", "update m2"], events
    assert dcli.ok("inspect", "-f", "{{.State.StartedAt}} {{.State.Pid}}", name) == started


def test_native_update_sets_a_running_containers_size(server: Server, dcli: DockerCli, image: str) -> None:
    name = unique("native")
    dcli.ok("run", "-d", "--name", name, image, "sleep", "300")
    with native(server, dcli.tenant) as client:
        r = client.post(f"/v1/containers/{name}/update", json={"size": "m1", "restart": "always"})
        assert r.status_code == 200 and r.json()["spec"]["size"] == "m1", r.text
        assert r.json()["spec"]["restart"]["name"] == "always" and r.json()["status"]["size"] == "m1"
        # billed at s4 up to the change, at m1 from it: a line per size for this container
        lines = client.get("/v1/usage", params={"container": name}).json()["lines"]
        meters = {x["meter"] for x in lines if x["meter"].startswith("container.")}
        assert meters == {"container.s4", "container.m1"}, lines
        r = client.post(f"/v1/containers/{name}/update", json={"size": "huge"})
        assert r.status_code == 400 and "size" in r.text, r.text
        r = client.post(f"/v1/containers/{name}/update", json={"size": "s1", "security_groups_add": ["web"]})
        assert r.status_code == 400 and r.json()["field"] == "security_groups_add", r.text
    assert _limit(dcli, name) == GiB


def test_container_prune_with_label_and_until_filters(dcli: DockerCli, image: str) -> None:
    keep, plain = unique("keep"), unique("plain")
    dcli.ok("create", "--name", keep, "--label", "keep=yes", image, "true")
    dcli.ok("create", "--name", plain, image, "true")
    running = unique("running")
    dcli.ok("run", "-d", "--name", running, image, "sleep", "300")
    assert dcli.ok("container", "prune", "-f", "--filter", "until=1h").count("\n") <= 1  # all newer: none
    plain_id = dcli.ok("inspect", "-f", "{{.Id}}", plain).strip()
    assert plain_id in dcli.ok("container", "prune", "-f", "--filter", "label!=keep")  # it prints what it removed
    left = set(dcli.lines("ps", "-a", "--format", "{{.Names}}"))
    assert left == {keep, running}, left
    dcli.ok("container", "prune", "-f", "--filter", "label=keep=yes")
    assert set(dcli.lines("ps", "-a", "--format", "{{.Names}}")) == {running}
    r = dcli("container", "prune", "-f", "--filter", "dangling=true")
    assert r.returncode == 1 and "dangling" in r.stderr, r.stderr


MiB = 1 << 20


def test_prunes_report_the_space_they_reclaim(dcli: DockerCli, image: str, sdk: docker.DockerClient,
                                             busybox_image: str) -> None:
    """SpaceReclaimed: the writable layers of the containers removed, the bytes of the volumes removed."""
    wrote = unique("wrote")
    dcli.ok("run", "--name", wrote, image, "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=5")
    dcli.ok("create", image, "true")  # never started: no layer
    out = dcli.ok("container", "prune", "-f")
    reclaimed = re.search(r"Total reclaimed space: ([\d.]+)MB", out)
    assert reclaimed and 5 * MiB <= float(reclaimed[1]) * 1e6 < 6 * MiB, out
    vol = unique("filled")
    dcli.ok("volume", "create", vol)
    dcli.ok("run", "--rm", "-v", f"{vol}:/data", image, "dd", "if=/dev/zero", "of=/data/f", "bs=1M", "count=3")
    out = dcli.ok("volume", "prune", "-af")
    reclaimed = re.search(r"Total reclaimed space: ([\d.]+)MB", out)
    assert reclaimed and 3 * MiB <= float(reclaimed[1]) * 1e6 < 4 * MiB, out
    c = sdk.containers.run(busybox_image, ["sh", "-c", "head -c 100000 /dev/zero > /f"], detach=True)
    c.wait(timeout=30)
    assert sdk.containers.prune()["SpaceReclaimed"] == 100_000
    assert sdk.volumes.prune()["SpaceReclaimed"] == 0


def test_volume_prune_takes_anonymous_volumes_unless_all(dcli: DockerCli, image: str) -> None:
    anonymous = dcli.ok("volume", "create").strip()
    named, used = unique("named"), unique("used")
    dcli.ok("volume", "create", "--label", "team=a", named)
    dcli.ok("run", "-d", "-v", f"{used}:/data", image, "sleep", "300")
    assert dcli.ok("volume", "prune", "-f").split().count(anonymous) == 1
    assert set(dcli.lines("volume", "ls", "-q")) == {named, used}
    dcli.ok("volume", "prune", "-af", "--filter", "label=team=b")
    assert set(dcli.lines("volume", "ls", "-q")) == {named, used}
    dcli.ok("volume", "prune", "-af")
    assert dcli.lines("volume", "ls", "-q") == [used]  # mounted: kept


def test_volume_ls_filters_and_names(dcli: DockerCli, image: str) -> None:
    red, blue = unique("red"), unique("blue")
    dcli.ok("volume", "create", "--label", "color=red", red)
    dcli.ok("volume", "create", "--label", "color=blue", "--label", "shiny", blue)
    dcli.ok("run", "-d", "-v", f"{blue}:/data", image, "sleep", "300")
    assert dcli.lines("volume", "ls", "-q", "--filter", "label=color=red") == [red]
    assert dcli.lines("volume", "ls", "-q", "--filter", "label=shiny") == [blue]
    assert dcli.lines("volume", "ls", "-q", "--filter", "name=red-") == [red]
    assert dcli.lines("volume", "ls", "-q", "--filter", "dangling=true") == [red]
    assert dcli.lines("volume", "ls", "-q", "--filter", "dangling=false") == [blue]
    r = dcli("volume", "ls", "--filter", "colour=red")
    assert r.returncode == 1 and "colour" in r.stderr, r.stderr
    long = "v" * 255
    assert dcli.ok("volume", "create", long) == f"{long}\n"
    assert dcli.ok("volume", "inspect", "-f", "{{.Name}}", long) == f"{long}\n"
    for bad in ("v" * 256, "v", "_under", "a/b"):
        r = dcli("volume", "create", bad)
        assert r.returncode == 1 and "invalid volume name" in r.stderr and "/var" not in r.stderr, (bad, r.stderr)


def test_system_df_shows_images_containers_and_volumes(dcli: DockerCli, image: str) -> None:
    vol, name = unique("dfvol"), unique("df")
    dcli.ok("run", "--name", name, "-v", f"{vol}:/data", image, "sh", "-c",
            "head -c 3000000 /dev/zero > /layer && head -c 2000000 /dev/zero > /data/vol")
    rows = {json.loads(line)["Type"]: json.loads(line) for line in dcli.lines("system", "df", "--format", "{{json .}}")}
    assert set(rows) == {"Images", "Containers", "Local Volumes", "Build Cache"}
    assert rows["Images"]["TotalCount"] == "1" and rows["Images"]["Active"] == "1" and rows["Images"]["Size"] != "0B"
    assert rows["Containers"]["TotalCount"] == "1" and rows["Local Volumes"]["TotalCount"] == "1"
    # the writable layer and the volume's files, measured on the node; the stopped container is reclaimable
    assert rows["Containers"]["Size"] == "3MB" and rows["Containers"]["Reclaimable"].startswith("3MB"), rows
    assert rows["Local Volumes"]["Size"] == "2MB", rows
    assert 3_000_000 <= int(dcli.ok("inspect", "-s", "-f", "{{.SizeRw}}", name)) < 3_100_000
    assert dcli.ok("ps", "-a", "-s", "--filter", f"name={name}", "--format", "{{.Size}}").startswith("3MB (virtual ")
    verbose = dcli.ok("system", "df", "-v")
    assert vol in verbose and "busybox" in verbose


def test_sdk_pause_update_prunes_and_df(sdk: docker.DockerClient, busybox_image: str) -> None:
    c = sdk.containers.run(busybox_image, ["sleep", "300"], detach=True)
    c.pause()
    c.reload()
    assert c.status == "paused" and c.attrs["State"]["Paused"] is True
    with pytest.raises(docker.errors.APIError) as err:
        c.exec_run("true")
    assert err.value.status_code == 409
    c.unpause()
    c.reload()
    assert c.status == "running"
    c.update(restart_policy={"Name": "unless-stopped"}, mem_limit="1g")  # live: it runs
    c.reload()
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped" and c.attrs["HostConfig"]["Memory"] == GiB
    assert c.exec_run(["sh", "-c", MEMORY_LIMIT]).output.strip() == str(GiB).encode()
    with pytest.raises(docker.errors.APIError) as err:
        c.update(cpuset_cpus="0")
    assert err.value.status_code == 400 and "CpusetCpus" in str(err.value)
    stopped = sdk.containers.create(busybox_image, ["true"], labels={"job": "x"})
    stopped.update(mem_limit="1g")
    stopped.reload()
    assert stopped.attrs["HostConfig"]["Memory"] >= GiB
    assert sdk.containers.prune(filters={"label": "job=y"})["ContainersDeleted"] is None
    assert sdk.containers.prune(filters={"label": "job=x"})["ContainersDeleted"] == [stopped.id]
    vol = sdk.volumes.create()
    assert sdk.volumes.list(filters={"dangling": True})[0].name == vol.name
    assert sdk.volumes.prune()["VolumesDeleted"] == [vol.name]
    df = sdk.df()
    assert [x["Id"] for x in df["Containers"]] == [c.id] and df["BuildCache"] == [] and df["LayersSize"] > 0
