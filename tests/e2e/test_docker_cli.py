"""The unchanged docker CLI (28.2) against a real Seabox server, as a tenant would use it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from seabox.model.runtime import RUNTIME_CLASSES
from tests.e2e.docker_fixtures import (
    DockerCli,
    cleaned,
    docker_config,
    memory_bytes,
    open_connections,
    pull,
    unique,
    wait_for,
)
from tests.fixtures.server import Server, class_tenant, param_of

MiB = 1 << 20
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


@pytest.fixture
def dcli(request: pytest.FixtureRequest, server: Server, tmp_path: Path) -> Iterator[DockerCli]:
    """The docker CLI as tenant dockercli (in a runtime class: see each_class); what it made is removed afterwards."""
    tenant = class_tenant(server, "dockercli", param_of(request))
    with cleaned(server, tenant):
        yield DockerCli(server, tenant, docker_config(server, tenant, tmp_path))


# the test runs once per runtime class, as a tenant whose containers run in that class by default
each_class = pytest.mark.parametrize("dcli", RUNTIME_CLASSES, indirect=True)


@pytest.fixture
def other(server: Server, tmp_path: Path) -> Iterator[DockerCli]:
    """The docker CLI as a second tenant, dockercli2."""
    with cleaned(server, "dockercli2"):
        yield DockerCli(server, "dockercli2", docker_config(server, "dockercli2", tmp_path))


@pytest.fixture
def image(dcli: DockerCli, busybox_image: str) -> str:
    """busybox, already pulled by tenant dockercli."""
    pull(dcli.server, dcli.tenant, busybox_image)
    return busybox_image


def ids(cli: DockerCli, *args: str) -> list[str]:
    return cli.lines("ps", "-q", "--no-trunc", *args)


def names(cli: DockerCli, *args: str) -> list[str]:
    return cli.lines("ps", "--format", "{{.Names}}", *args)


def test_version_and_info_describe_seabox(dcli: DockerCli) -> None:
    out = dcli.ok("version")
    assert "Server: Seabox" in out and "API version:      1.50" in out
    version = json.loads(dcli.ok("version", "--format", "{{json .Server}}"))
    assert version["ApiVersion"] == "1.50" and version["Platform"]["Name"] == "Seabox"
    out = dcli.ok("info")
    assert "Operating System: Seabox" in out and "seabox.tenant=dockercli" in out and "ERROR" not in out
    info = json.loads(dcli.ok("info", "--format", "{{json .}}"))
    assert info["OSType"] == "linux" and info["Swarm"]["LocalNodeState"] == "inactive"


def test_without_an_api_key_every_command_gets_a_clear_401(dcli: DockerCli, tmp_path: Path) -> None:
    keyless = DockerCli(dcli.server, dcli.tenant, tmp_path / "empty-docker-config")
    r = keyless("ps")
    assert r.returncode == 1 and "missing API key" in r.stderr


@each_class
def test_run_detached_with_env_label_volume_memory_and_restart_then_ps_and_inspect(
    dcli: DockerCli, image: str
) -> None:
    name, vol = unique("web"), unique("vol")
    cid = dcli.ok("run", "-d", "--name", name, "-e", "A=1", "-l", "team=x", "-v", f"{vol}:/data", "--memory", "100m",
                  "--restart", "on-failure:2", image, "sh", "-c", "echo $A > /data/a; echo started; sleep 300").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
    done = unique("done")
    assert dcli.ok("run", "--name", done, image, "true") == ""

    [info] = dcli.inspect(name)
    assert info["Id"] == cid and info["Name"] == f"/{name}"
    assert info["State"]["Status"] == "running" and info["State"]["Running"] is True and info["State"]["Pid"] > 0
    assert info["Config"]["Tty"] is False and "A=1" in info["Config"]["Env"]
    assert info["Config"]["Labels"] == {"team": "x", "sh_hyper_instancetype": "s2"}  # 100m fits size s2
    assert info["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert info["HostConfig"]["Memory"] == 128 * MiB
    assert info["NetworkSettings"]["Ports"] == {} and info["NetworkSettings"]["IPAddress"]
    assert [(m["Name"], m["Destination"]) for m in info["Mounts"]] == [(vol, "/data")]
    fmt = "{{.Name}} {{.State.Status}} {{.Config.Tty}} {{.HostConfig.LogConfig.Type}} {{.Config.Labels.sh_hyper_instancetype}}"
    assert dcli.ok("inspect", "-f", fmt, cid[:12]).strip() == f"/{name} running false json-file s2"
    assert dcli.ok("exec", name, "cat", "/data/a") == "1\n"
    assert vol in dcli.lines("volume", "ls", "-q")

    table = dcli.ok("ps")
    assert table.startswith("CONTAINER ID") and cid[:12] in table and "Up " in table and name in table
    assert names(dcli) == [name]
    assert sorted(names(dcli, "-a")) == sorted([name, done])
    assert ids(dcli, "--filter", f"name={name}") == [cid]
    assert names(dcli, "--filter", "status=running") == [name]
    assert names(dcli, "-a", "--filter", "status=exited") == [done]
    assert names(dcli, "-a", "--filter", "label=team=x") == [name]
    assert names(dcli, "-a", "--filter", "label=team=y") == []


@each_class
def test_restart_on_failure_retries_as_often_as_asked(dcli: DockerCli, image: str) -> None:
    name = unique("flaky")
    dcli.ok("run", "-d", "--name", name, "--restart", "on-failure:2", image, "sh", "-c", "exit 1")

    def settled() -> list[str]:
        out = dcli.ok("inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}", name).split()
        return out if out[:2] == ["2", "exited"] else []

    assert wait_for(settled) == ["2", "exited", "1"]


@each_class
def test_run_rm_splits_stdout_and_stderr_and_exits_with_the_container_code(dcli: DockerCli, image: str) -> None:
    r = dcli("run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert ids(dcli, "-a") == []  # --rm removed it


def test_run_pulls_an_image_it_does_not_have(dcli: DockerCli, busybox_image: str) -> None:
    r = dcli("run", "--rm", busybox_image, "echo", "pulled")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "pulled\n" and "Unable to find image" in r.stderr
    assert dcli.lines("images", "--format", "{{.Repository}}:{{.Tag}}") == [busybox_image]


@each_class
def test_run_interactive_feeds_piped_stdin(dcli: DockerCli, image: str) -> None:
    r = dcli.shell(f"echo hi | docker run -i --rm {image} cat")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = dcli.shell(f"printf 'a\\nb\\nc\\n' | docker run -i --rm {image} wc -l")
    assert (r.returncode, r.stdout.strip()) == (0, "3"), r.stderr
    assert ids(dcli, "-a") == []


@each_class
def test_run_with_a_terminal(dcli: DockerCli, image: str) -> None:
    r = dcli.pty("run", "-it", "--rm", image, "sh", "-c", "test -t 0 && test -t 1 && echo tty-ok; exit 5")
    assert r.returncode == 5, (r.stdout, r.stderr)
    assert b"tty-ok\r\n" in r.stdout  # \r\n: the container's stdout was a terminal
    assert ids(dcli, "-a") == []


@each_class
def test_logs_tail_timestamps_and_follow_until_the_exit(dcli: DockerCli, image: str) -> None:
    name = unique("talker")
    dcli.ok("run", "-d", "--name", name, image, "sh", "-c", "echo one; echo warn >&2; echo two; sleep 2; echo three")
    t0 = time.monotonic()
    r = dcli("logs", "-f", name, timeout=20)
    assert r.returncode == 0 and time.monotonic() - t0 < 15  # -f returned because the container exited
    assert (r.stdout, r.stderr) == ("one\ntwo\nthree\n", "warn\n")
    assert dcli.ok("inspect", "-f", "{{.State.Status}}", name).strip() == "exited"
    r = dcli("logs", name)
    assert (r.stdout, r.stderr) == ("one\ntwo\nthree\n", "warn\n")
    assert dcli.ok("logs", "--tail", "1", name) == "three\n"
    stamped = dcli.ok("logs", "-t", name).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three"]
    assert all(re.match(TIMESTAMP + " ", line) for line in stamped), stamped


@each_class
def test_exec_exit_code_stdin_and_terminal(dcli: DockerCli, image: str) -> None:
    name = unique("box")
    dcli.ok("run", "-d", "--name", name, image, "sleep", "300")
    r = dcli("exec", name, "sh", "-c", "echo ex; echo ex-err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "ex\n", "ex-err\n")
    assert dcli.ok("exec", "-e", "X=y", "-w", "/tmp", name, "sh", "-c", "echo $X $(pwd)") == "y /tmp\n"
    r = dcli.shell(f"echo piped | docker exec -i {name} cat")
    assert (r.returncode, r.stdout) == (0, "piped\n"), r.stderr
    r = dcli.pty("exec", "-it", name, "sh", "-c", "test -t 1 && echo tty-ex; exit 4")
    assert r.returncode == 4 and b"tty-ex\r\n" in r.stdout, (r.stdout, r.stderr)
    dcli.ok("stop", "-t", "1", name)
    r = dcli("exec", name, "true")
    assert r.returncode != 0 and "not running" in r.stderr


@each_class
def test_start_stop_restart_kill_wait_rename_and_rm(dcli: DockerCli, image: str) -> None:
    name = unique("life")
    dcli.ok("run", "-d", "--name", name, image, "sleep", "300")

    def state() -> str:
        return str(dcli.ok("inspect", "-f", "{{.State.Status}}", name).strip())

    r = dcli("rm", name)
    assert r.returncode == 1 and "running" in r.stderr and "force" in r.stderr
    t0 = time.monotonic()
    assert dcli.ok("stop", "-t", "1", name) == f"{name}\n"
    assert time.monotonic() - t0 < 8 and state() == "exited"
    assert dcli.ok("start", name) == f"{name}\n" and state() == "running"
    started = dcli.ok("inspect", "-f", "{{.State.StartedAt}}", name)
    assert dcli.ok("restart", "-t", "1", name) == f"{name}\n" and state() == "running"
    assert dcli.ok("inspect", "-f", "{{.State.StartedAt}}", name) != started
    assert dcli.ok("kill", name) == f"{name}\n"
    assert dcli.ok("wait", name) == "137\n"
    new = unique("renamed")
    dcli.ok("rename", name, new)
    assert dcli.ok("inspect", "-f", "{{.Name}}", new) == f"/{new}\n"
    assert dcli("inspect", name).returncode == 1
    assert dcli.ok("rm", new) == f"{new}\n"
    assert ids(dcli, "-a") == []
    running = dcli.ok("run", "-d", image, "sleep", "300").strip()
    assert dcli.ok("rm", "-f", running[:12]) == f"{running[:12]}\n"
    assert ids(dcli, "-a") == []


@each_class
def test_top_and_stats_of_a_running_container(dcli: DockerCli, image: str) -> None:
    name = unique("busy")
    dcli.ok("run", "-d", "--name", name, "--memory", "100m", image, "sleep", "300")
    top = dcli.ok("top", name).splitlines()
    # gVisor's Sentry lists the sandbox's processes by name, with its own pids (docs/security.md)
    command = "1 sleep" if dcli.tenant.endswith("gvisor") else "sleep 300"
    assert top[0].split() == ["PID", "CMD"] and any(" ".join(line.split()).endswith(command) for line in top[1:]), top
    stats = json.loads(dcli.ok("stats", "--no-stream", "--format", "{{json .}}", name))
    used, limit = stats["MemUsage"].split(" / ")
    assert stats["Name"] == name and memory_bytes(used) > 0 and memory_bytes(limit) == 128 * MiB, stats
    # the cgroup's count: under gVisor the sandbox's host threads (Sentry, gofer), not the container's one process
    assert stats["PIDs"] == "1" or (dcli.tenant.endswith("gvisor") and int(stats["PIDs"]) > 1), stats


def test_events_show_a_containers_life(dcli: DockerCli, image: str) -> None:
    name = unique("brief")
    dcli.ok("run", "--rm", "--name", name, image, "true")
    t0 = time.monotonic()
    out = dcli.ok("events", "--since", "1m", "--until", str(int(time.time()) + 1), "--format", "{{json .}}")
    assert time.monotonic() - t0 < 10  # --until ends the stream
    mine = [e for e in map(json.loads, out.splitlines()) if e["Actor"]["Attributes"].get("name") == name]
    actions = [e["Action"] for e in mine]
    assert actions[0] == "create" and actions[-1] == "destroy" and {"start", "die"} <= set(actions), actions
    assert all(e["Type"] == "container" for e in mine)
    [die] = [e for e in mine if e["Action"] == "die"]
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
    plain = dcli.ok("events", "--since", "1m", "--until", str(int(time.time())))
    assert f"container create {die['id']}" in plain


def test_pull_images_inspect_and_rmi(dcli: DockerCli, busybox_image: str) -> None:
    assert dcli.lines("images", "-q") == []
    out = dcli.ok("pull", busybox_image).splitlines()
    assert any("Pulling from" in line for line in out), out
    assert any(re.match(r"Digest: sha256:[0-9a-f]{64}$", line) for line in out), out
    assert f"Status: Downloaded newer image for {busybox_image}" in out and out[-1] == busybox_image
    [listed] = dcli.lines("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    ref, short_id = listed.split()
    [info] = json.loads(dcli.ok("image", "inspect", busybox_image))
    assert ref == busybox_image and info["Id"].startswith("sha256:" + short_id)
    assert info["RepoTags"] == [busybox_image] and info["Os"] == "linux" and info["Config"]["Cmd"] == ["sh"]
    out = dcli.ok("rmi", busybox_image).splitlines()
    assert f"Untagged: {busybox_image}" in out
    assert dcli.lines("images", "-q") == []
    r = dcli("rmi", busybox_image)
    assert r.returncode == 1 and "no such image" in r.stderr.lower()
    r = dcli("image", "inspect", busybox_image)
    assert r.returncode == 1 and "no such image" in r.stderr.lower()


def test_load_a_docker_archive(dcli: DockerCli, busybox_docker_archive: Path) -> None:
    assert dcli.ok("load", "-i", str(busybox_docker_archive), timeout=60) == "Loaded image: busybox:imported\n"
    assert "busybox:imported" in dcli.lines("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert dcli.ok("run", "--rm", "busybox:imported", "echo", "loaded") == "loaded\n"
    assert "Untagged: busybox:imported" in dcli.ok("rmi", "busybox:imported")


@each_class
def test_volumes_create_ls_inspect_and_rm_refused_while_in_use(dcli: DockerCli, image: str) -> None:
    vol = unique("data")
    assert dcli.ok("volume", "create", vol) == f"{vol}\n"
    assert dcli.lines("volume", "ls", "-q") == [vol]
    [info] = json.loads(dcli.ok("volume", "inspect", vol))
    assert info["Name"] == vol and info["Driver"] == "local"
    assert dcli.ok("run", "--rm", "-v", f"{vol}:/d", image, "sh", "-c", "echo kept > /d/f") == ""
    user = unique("user")
    dcli.ok("run", "-d", "--name", user, "-v", f"{vol}:/d:ro", image, "sleep", "300")
    assert dcli.ok("exec", user, "cat", "/d/f") == "kept\n"
    r = dcli("volume", "rm", vol)
    assert r.returncode == 1 and "in use" in r.stderr and user in r.stderr
    dcli.ok("rm", "-f", user)
    assert dcli.ok("volume", "rm", vol) == f"{vol}\n"
    assert dcli.lines("volume", "ls", "-q") == []
    r = dcli("volume", "inspect", vol)
    assert r.returncode == 1 and "no such volume" in r.stderr.lower()


def test_network_ls_shows_the_one_tenant_network(dcli: DockerCli) -> None:
    assert dcli.lines("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}") == ["bridge bridge local"]
    [net] = json.loads(dcli.ok("network", "inspect", "bridge"))
    assert net["Name"] == "bridge" and net["IPAM"]["Config"][0]["Subnet"]


def test_tenants_do_not_see_each_others_containers(dcli: DockerCli, other: DockerCli, image: str) -> None:
    name = unique("private")
    cid = dcli.ok("run", "-d", "--name", name, image, "sleep", "300").strip()
    assert other.lines("ps", "-a", "-q") == []
    assert name not in other.ok("ps", "-a")
    for ref in (name, cid):
        r = other("inspect", ref)
        assert r.returncode == 1 and f"No such object: {ref}" in r.stderr, r.stderr
    r = other("container", "inspect", name)
    assert r.returncode == 1 and "no such container" in r.stderr.lower(), r.stderr
    for args in (["rm", name], ["rm", "-f", cid], ["stop", name], ["logs", name], ["exec", name, "true"]):
        r = other(*args)
        assert "no such container" in r.stderr.lower(), (args, r.stderr)
        assert "{" not in r.stderr, (args, r.stderr)  # a message, not a JSON body
    assert dcli.ok("inspect", "-f", "{{.State.Status}}", name) == "running\n"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["-p", "127.0.0.1:8080:80"], "publishing on a host address"),
        (["--privileged"], "--privileged"),
        (["--net=host"], "--network=host"),
        (["--pid=host"], "--pid=host"),
        (["-v", "/etc:/x"], "host bind mounts"),
    ],
)
def test_refused_options_say_why_and_create_nothing(dcli: DockerCli, image: str, options: list[str], says: str) -> None:
    for detach in ([], ["-d"]):
        r = dcli("run", *detach, *options, image, "true")
        assert r.returncode == 125, (options, r.stdout, r.stderr)
        assert says in r.stderr and "not supported by Seabox" in r.stderr, r.stderr
        assert '{"message"' not in r.stderr and r.stdout == ""
    assert ids(dcli, "-a") == []
    assert dcli.lines("volume", "ls", "-q") == []


def test_unsupported_endpoints_answer_501_at_once(dcli: DockerCli) -> None:
    t0 = time.monotonic()
    r = dcli("build", "-t", "never", "-", input="FROM scratch\n", timeout=10)
    assert r.returncode == 1 and "not supported by Seabox" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 10
    headers = {"X-Api-Key": dcli.server.tenant(dcli.tenant)}
    for method, path in (("GET", "/v1.50/swarm"), ("POST", "/v1.50/swarm/init"), ("GET", "/services")):
        resp = httpx.request(method, dcli.server.url + path, headers=headers, timeout=10)
        assert resp.status_code == 501 and resp.headers["Content-Type"] == "application/json", (path, resp.text)
        assert path in resp.json()["message"]


def test_run_detached_leaves_no_request_hanging(dcli: DockerCli, image: str) -> None:
    before = open_connections(dcli.server.port)
    for _ in range(3):
        dcli.ok("run", "-d", image, "sleep", "300")
    # the CLI left; its /wait (and every other) connection is closed on the server's side too
    wait_for(lambda: not open_connections(dcli.server.port) - before, timeout=5)
    t0 = time.monotonic()
    assert len(ids(dcli)) == 3
    assert time.monotonic() - t0 < 5
