"""Docker create options as translate reads them, and as the OCI config carries them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seabox.api.docker.translate import create_request
from seabox.errors import InvalidArgument
from seabox.model.options import TmpfsMount, parse_cpuset
from seabox.node.runtime import seccomp
from seabox.node.runtime.base import RunSpec, Tmpfs
from seabox.node.runtime.spec import INIT_PATH, ProcessUser, build_config, capabilities


def body(**hc: Any) -> dict[str, Any]:
    return {"Image": "busybox", "HostConfig": hc}


def test_options_reach_the_request() -> None:
    profile = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []})
    req = create_request(body(CapDrop=["ALL"], CapAdd=["CAP_CHOWN", "kill"], SecurityOpt=[f"seccomp={profile}"],
                              Tmpfs={"/run": "size=1m"}, Init=True, GroupAdd=["audio", "7"], CpusetCpus="0-1",
                              MemorySwappiness=0, NetworkMode="none",
                              LogConfig={"Type": "json-file", "Config": {"max-size": "1m"}}), None)
    assert req.cap_add == ["CAP_CHOWN", "CAP_KILL"] and req.seccomp_profile == profile
    assert req.tmpfs == [TmpfsMount(path="/run", options="size=1m")] and req.init and req.group_add == ["audio", "7"]
    assert req.cpuset_cpus == "0-1" and req.memory_swappiness == 0 and req.network == "none"
    assert req.log.max_size == 1 << 20 and req.log.options == {"max-size": "1m"}


def test_max_file_with_max_size_is_kept() -> None:
    req = create_request(body(LogConfig={"Type": "local", "Config": {"max-size": "64k", "max-file": "4"}}), None)
    assert (req.log.max_size, req.log.max_file) == (64 << 10, 4)
    assert req.log.options == {"max-size": "64k", "max-file": "4"}


def test_the_clis_defaults_are_accepted() -> None:
    req = create_request(body(MemorySwappiness=-1, Dns=[], ShmSize=0, Isolation="", LogConfig={"Type": "", "Config": {}},
                              SecurityOpt=["no-new-privileges:true", "seccomp=builtin"]), None)
    assert req.seccomp_profile is None and req.cap_add == [] and req.network == "default"


@pytest.mark.parametrize("hc, field", [
    ({"CapAdd": ["SYS_ADMIN"]}, "HostConfig.CapAdd"),
    ({"CapAdd": ["ALL"]}, "HostConfig.CapAdd"),
    ({"SecurityOpt": ["seccomp=unconfined"]}, "HostConfig.SecurityOpt"),
    ({"SecurityOpt": ["apparmor=unconfined"]}, "HostConfig.SecurityOpt"),
    ({"MemorySwappiness": 60}, "HostConfig.MemorySwappiness"),
    ({"LogConfig": {"Type": "syslog"}}, "HostConfig.LogConfig.Type"),
    ({"LogConfig": {"Type": "json-file", "Config": {"max-file": "3"}}}, "HostConfig.LogConfig.Config"),
    ({"LogConfig": {"Type": "json-file", "Config": {"max-file": "3", "max-size": "512m"}}}, "HostConfig.LogConfig.Config"),
    ({"LogConfig": {"Type": "json-file", "Config": {"max-file": "101", "max-size": "1m"}}}, "HostConfig.LogConfig.Config"),
    ({"LogConfig": {"Type": "json-file", "Config": {"max-file": "two", "max-size": "1m"}}}, "HostConfig.LogConfig.Config"),
    ({"LogConfig": {"Type": "json-file", "Config": {"compress": "true"}}}, "HostConfig.LogConfig.Config"),
    ({"ShmSize": 1 << 27}, "HostConfig.ShmSize"),
    ({"Sysctls": {"net.ipv4.ip_forward": "1"}}, "HostConfig.Sysctls"),
    ({"NetworkMode": "host"}, "HostConfig.NetworkMode"),
    ({"Isolation": "hyperv"}, "HostConfig.Isolation"),
])
def test_refusals_name_the_field(hc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        create_request(body(**hc), None)
    assert err.value.field == field


def test_anonymous_volumes_are_refused() -> None:
    with pytest.raises(InvalidArgument) as err:
        create_request({"Image": "busybox", "Volumes": {"/data": {}}}, None)
    assert err.value.field == "Volumes" and "-v NAME:/path" in err.value.message
    named = create_request({"Image": "busybox", "Volumes": {"/data": {}}, "HostConfig": {"Binds": ["v:/data"]}}, None)
    assert [str(v) for v in named.volumes] == ["v:/data"]


def test_capabilities_add_back_after_drop() -> None:
    assert capabilities(["ALL"], ["CAP_KILL"]) == ["CAP_KILL"]
    assert "CAP_CHOWN" not in capabilities(["CAP_CHOWN"]) and "CAP_CHOWN" in capabilities(["CAP_CHOWN"], ["CAP_CHOWN"])


def test_a_tenant_profile_never_widens_the_default() -> None:
    default = seccomp.default_profile("x86_64")
    allow_all = seccomp.narrowed(default, json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}, {"names": ["unshare", "mount"], "action": "SCMP_ACT_ALLOW"}]}))
    allowed = {n for r in allow_all["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert "mkdir" not in allowed and "read" in allowed and not allowed & {"unshare", "mount"}
    only_read = seccomp.narrowed(default, json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "unshare"], "action": "SCMP_ACT_ALLOW"}]}))
    assert {n for r in only_read["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]} == {"read"}


def test_the_oci_config_carries_tmpfs_init_and_cpuset(tmp_path: Path) -> None:
    spec = RunSpec(id="a" * 64, name="c", bundle=tmp_path, args=["sleep", "1"], env=[], init=Path("/usr/bin/tini-static"),
                   tmpfs=[Tmpfs("/run", TmpfsMount(path="/run", options="size=1m,exec").mount_options(1 << 30))],
                   cpuset_cpus="0")
    config = build_config(spec, ProcessUser())
    assert config["process"]["args"] == [INIT_PATH, "--", "sleep", "1"]
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert mounts["/run"]["options"] == ["nosuid", "nodev", "size=1048576"]
    assert mounts[INIT_PATH]["source"] == "/usr/bin/tini-static" and "ro" in mounts[INIT_PATH]["options"]
    assert config["linux"]["resources"]["cpu"]["cpus"] == "0"


def test_cpuset_parsing() -> None:
    assert parse_cpuset("0-2,4") == [0, 1, 2, 4]
    with pytest.raises(ValueError):
        parse_cpuset("2-1")
