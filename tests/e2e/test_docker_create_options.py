"""Security and resource options of docker create/run, observed from inside the container and through inspect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.docker_fixtures import DockerCli, cleaned, docker_config, pull, sdk_client
from tests.fixtures.server import Server, class_tenant, param_of

NET_BIND_SERVICE_BIT = 1 << 10
DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.fixture
def dcli(request: pytest.FixtureRequest, server: Server, tmp_path: Path, busybox_image: str) -> Iterator[DockerCli]:
    """The docker CLI as tenant createopts (in a runtime class when parametrized), busybox pulled."""
    tenant = class_tenant(server, "createopts", param_of(request))
    with cleaned(server, tenant):
        pull(server, tenant, busybox_image)
        yield DockerCli(server, tenant, docker_config(server, tenant, tmp_path))


def status_field(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def test_security_options_hold_inside_the_container(dcli: DockerCli, busybox_image: str) -> None:
    out = dcli.ok("run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--read-only",
                  "--security-opt", "no-new-privileges", busybox_image,
                  "sh", "-c", "cat /proc/self/status; touch /written 2>/dev/null; echo touch=$?")
    assert int(status_field(out, "CapEff"), 16) == NET_BIND_SERVICE_BIT
    assert status_field(out, "NoNewPrivs") == "1" and status_field(out, "Seccomp") == "2"
    assert "touch=1" in out


def test_a_seccomp_profile_narrows_the_default(dcli: DockerCli, busybox_image: str, tmp_path: Path) -> None:
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(json.dumps(DENY_MKDIR))
    out = dcli.ok("run", "--rm", "--security-opt", f"seccomp={profile}", busybox_image,
                  "sh", "-c", "mkdir /tmp/d 2>&1; echo mkdir=$?; touch /tmp/f; echo touch=$?")
    assert "mkdir=1" in out and "touch=0" in out
    r = dcli("run", "--rm", "--security-opt", "seccomp=unconfined", busybox_image, "true")
    assert r.returncode != 0 and "seccomp=unconfined is not supported" in r.stderr


def test_tmpfs_ulimit_init_group_add_and_cpuset(dcli: DockerCli, busybox_image: str) -> None:
    out = dcli.ok("run", "--rm", "--init", "--tmpfs", "/scratch:size=8m,mode=1777", "--ulimit", "nofile=512:1024",
                  "--group-add", "1234", "--cpuset-cpus", "0", busybox_image, "sh", "-c",
                  "df -k /scratch | tail -1; echo nofile=$(ulimit -n); echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline);"
                  " echo groups=$(id -G); grep Cpus_allowed_list /proc/self/status; stat -c %a /scratch")
    assert out.splitlines()[0].split()[1] == str(8 * 1024)  # 1K-blocks
    assert "nofile=512" in out and "pid1=/sbin/docker-init -- sh -c" in out
    assert "1234" in out.rsplit("groups=", 1)[1].splitlines()[0].split()
    assert "Cpus_allowed_list:\t0\n" in out and out.rstrip().endswith("1777")


def test_inspect_shows_the_options_as_docker_does(dcli: DockerCli, busybox_image: str) -> None:
    cid = dcli.ok("create", "--cap-drop", "ALL", "--cap-add", "chown", "--read-only", "--init",
                  "--tmpfs", "/run:size=1m", "--ulimit", "nproc=64:128", "--group-add", "audio",
                  "--cpuset-cpus", "0", "--memory-swappiness", "0", "--log-opt", "max-size=1m",
                  "--log-opt", "max-file=1", "--stop-signal", "SIGUSR1", busybox_image, "sleep", "5").strip()
    hc = dcli.inspect("--format", "{{json .HostConfig}}", cid)
    assert hc["CapDrop"] == ["ALL"] and hc["CapAdd"] == ["CHOWN"] and hc["ReadonlyRootfs"] is True
    assert hc["Init"] is True and hc["Tmpfs"] == {"/run": "size=1m"} and hc["GroupAdd"] == ["audio"]
    assert hc["Ulimits"] == [{"Name": "nproc", "Soft": 64, "Hard": 128}] and hc["CpusetCpus"] == "0"
    assert hc["MemorySwappiness"] == 0 and hc["LogConfig"]["Config"] == {"max-size": "1m", "max-file": "1"}
    assert dcli.inspect("--format", "{{json .Config.StopSignal}}", cid) == "SIGUSR1"


def test_network_none_has_only_loopback(dcli: DockerCli, busybox_image: str) -> None:
    cid = dcli.ok("create", "--network", "none", busybox_image, "sh", "-c", "ls /sys/class/net").strip()
    assert dcli.inspect("--format", "{{json .HostConfig.NetworkMode}}", cid) == "none"
    assert dcli.inspect("--format", "{{json .NetworkSettings.IPAddress}}", cid) == ""
    dcli.ok("start", cid)
    assert dcli.ok("wait", cid).strip() == "0"
    assert dcli.ok("logs", cid).split() == ["lo"]


def test_log_max_size_bounds_the_log(dcli: DockerCli, busybox_image: str) -> None:
    cid = dcli.ok("run", "-d", "--log-opt", "max-size=8k", busybox_image,
                  "sh", "-c", "for i in $(seq 1000); do echo line-$i-padding-padding; done").strip()
    assert dcli.ok("wait", cid).strip() == "0"
    out = dcli.ok("logs", cid)
    assert "line-1000-" in out and len(out) < 8192 < 1000 * len("line-1000-padding-padding\n")


def test_log_max_file_keeps_the_newest_files(dcli: DockerCli, busybox_image: str) -> None:
    # about 71 bytes a record: some 230 lines a file, 13 files written (pausing, so the node keeps up)
    script = "for i in $(seq 3000); do echo line-$i-padding-padding; [ $((i % 200)) = 0 ] && sleep 0.05; done; echo done"
    cid = dcli.ok("run", "-d", "--log-opt", "max-size=16k", "--log-opt", "max-file=3", busybox_image,
                  "sh", "-c", script).strip()
    followed = dcli("logs", "-f", cid, timeout=60)  # from the start, across each new file, to the exit
    assert dcli.ok("wait", cid).strip() == "0"
    assert dcli.inspect("--format", "{{json .HostConfig.LogConfig}}", cid) == {
        "Type": "json-file", "Config": {"max-size": "16k", "max-file": "3"}}
    logs = dcli.ok("logs", cid).splitlines()
    numbers = [int(line.split("-")[1]) for line in logs[:-1]]
    assert logs[-1] == "done" and numbers == list(range(numbers[0], 3001)), logs[:3]
    assert 2 * 200 < len(numbers) < 3 * 16384 // 60  # two full files and the current one, no more
    kept = [p for p in (dcli.server.data_dir / "containers" / cid / "logs").iterdir() if p.stat().st_size]
    assert len(kept) == 3 and all(p.stat().st_size <= 16384 for p in kept)
    assert dcli.ok("logs", "--tail", "3", cid).splitlines() == [f"line-{n}-padding-padding" for n in (2999, 3000)] + ["done"]
    seen = [int(line.split("-")[1]) for line in followed.stdout.splitlines()[:-1]]
    assert followed.stdout.splitlines()[-1] == "done" and seen == sorted(set(seen)) and seen[-1] == 3000
    dcli.ok("rm", cid)
    assert not (dcli.server.data_dir / "containers" / cid).exists()


@pytest.mark.parametrize("args, words", [
    (("--cap-add", "SYS_ADMIN"), "--cap-add SYS_ADMIN is not supported"),
    (("--log-driver", "syslog"), "--log-driver syslog is not supported"),
    (("--log-opt", "max-file=3"), "max-file above 1 needs max-size"),
    (("--log-opt", "max-file=3", "--log-opt", "max-size=512m"), "past the 1073741824 bytes"),
    (("--memory-swappiness", "60"), "containers have no swap"),
    (("--cpuset-cpus", "1000"), "the node has cpus 0-"),
    (("--dns", "10.0.0.1"), "--dns is not supported"),
    (("--shm-size", "128m"), "--tmpfs /dev/shm"),
    (("--tmpfs", "/big:size=100g"), "choose a larger size"),
])
def test_refused_options_say_what_to_use(dcli: DockerCli, busybox_image: str, args: tuple[str, ...], words: str) -> None:
    r = dcli("create", *args, busybox_image, "true")
    assert r.returncode != 0 and words in r.stderr, r.stderr
    assert dcli.ok("ps", "-aq") == ""


def test_the_sdk_gets_a_400_naming_the_field(dcli: DockerCli, busybox_image: str, tmp_path: Path) -> None:
    client = sdk_client(dcli.server, dcli.tenant, tmp_path)
    with pytest.raises(docker.errors.APIError) as err:
        client.containers.create(busybox_image, "true", cap_add=["SYS_ADMIN"])
    assert err.value.response.status_code == 400 and err.value.response.json()["field"] == "HostConfig.CapAdd"
    c = client.containers.run(busybox_image, ["sh", "-c", "ulimit -n"], detach=True, read_only=True, init=True,
                              tmpfs={"/t": "size=2m"}, ulimits=[docker.types.Ulimit(name="nofile", soft=300, hard=300)])
    assert c.wait()["StatusCode"] == 0 and c.logs().strip() == b"300"
    c.reload()
    assert c.attrs["HostConfig"]["Tmpfs"] == {"/t": "size=2m"} and c.attrs["HostConfig"]["ReadonlyRootfs"] is True


@pytest.mark.parametrize("dcli", ["gvisor"], indirect=True)
def test_gvisor_honours_or_refuses(dcli: DockerCli, busybox_image: str, tmp_path: Path) -> None:
    out = dcli.ok("run", "--rm", "--read-only", "--cap-drop", "ALL", "--tmpfs", "/scratch:size=4m", busybox_image,
                  "sh", "-c", "touch /x 2>/dev/null; echo touch=$?; touch /scratch/y; echo tmp=$?; grep CapEff /proc/self/status")
    assert "touch=1" in out and "tmp=0" in out and int(status_field(out, "CapEff"), 16) == 0
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps(DENY_MKDIR))
    r = dcli("create", "--security-opt", f"seccomp={profile}", busybox_image, "true")
    assert r.returncode != 0 and "gVisor filters system calls" in r.stderr


@pytest.mark.parametrize("dcli", ["gvisor"], indirect=True)
def test_gvisor_network_none_has_only_loopback(dcli: DockerCli, busybox_image: str) -> None:
    out = dcli.ok("run", "--rm", "--network", "none", busybox_image, "sh", "-c",
                  "cat /proc/version; echo @dev; cat /proc/net/dev; echo @route; ip route; echo @nc;"
                  " nc -w 1 198.51.100.7 80 </dev/null 2>&1; echo nc=$?")
    version, devices, routes, nc = out.split("@")
    assert "Linux version 4.4.0" in version  # gVisor's kernel
    assert [line.split(":")[0].strip() for line in devices.splitlines()[3:]] == ["lo"], out
    assert all(" dev lo" in line for line in routes.splitlines()[1:]) and "default" not in routes, out
    assert "nc=0" not in nc, out
