"""The OCI config builder and user resolution, on a fake rootfs: no runc needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seabox.errors import InvalidArgument
from seabox.node.runtime.base import IdMap, Mount, RunSpec, Ulimit
from seabox.node.runtime.spec import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    MASKED_PATHS,
    READONLY_PATHS,
    ProcessUser,
    build_config,
    exec_env,
    resolve_user,
)

CID = "ab" * 32

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
broken line
nobody:x:65534:65534:nobody:/:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
staff:x:50:app,daemon
app:x:1000:
video:x:44:app
nogroup:x:65534:
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def make_spec(**options: Any) -> RunSpec:
    fields: dict[str, Any] = {"id": CID, "name": "web", "bundle": Path("/b"), "args": ["sh"], "env": []}
    fields.update(options)
    return RunSpec(**fields)


def config(**options: Any) -> dict[str, Any]:
    return build_config(make_spec(**options), ProcessUser())


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", ProcessUser(0, 0, [])),
        ("app", ProcessUser(1000, 1000, [50, 44])),
        ("1000", ProcessUser(1000, 1000, [50, 44])),
        ("app:staff", ProcessUser(1000, 50, [44])),
        ("app:7", ProcessUser(1000, 7, [50, 44])),
        ("daemon:video", ProcessUser(1, 44, [50])),
        ("4242", ProcessUser(4242, 0, [])),
        ("4242:4243", ProcessUser(4242, 4243, [])),
        ("nobody", ProcessUser(65534, 65534, [])),
    ],
)
def test_resolve_user(rootfs: Path, user: str, expected: ProcessUser) -> None:
    assert resolve_user(rootfs, user) == expected


@pytest.mark.parametrize("user", ["ghost", "app:ghosts", ":50", "99999999999"])
def test_unknown_or_bad_users_are_invalid(rootfs: Path, user: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        resolve_user(rootfs, user)
    assert raised.value.field == "user"


def test_user_files_are_read_inside_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    # An absolute symlink must resolve inside the rootfs (where nothing is), not on the host.
    (root / "etc" / "passwd").symlink_to(outside / "etc" / "passwd")
    (root / "etc" / "group").symlink_to("../../../outside/etc/passwd")
    with pytest.raises(InvalidArgument):
        resolve_user(root, "evil")
    assert resolve_user(root, "77") == ProcessUser(77, 0, [])


def test_a_rootfs_without_passwd_takes_numeric_ids(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "5:6") == ProcessUser(5, 6, [])
    with pytest.raises(InvalidArgument):
        resolve_user(tmp_path, "app")


def test_process_and_defaults() -> None:
    built = build_config(
        make_spec(args=["nginx", "-g", "daemon off;"], env=["A=1"], cwd="/srv"), ProcessUser(1000, 50, [44])
    )
    assert built["ociVersion"] == "1.0.2"
    process = built["process"]
    assert process["args"] == ["nginx", "-g", "daemon off;"]
    assert process["env"] == [DEFAULT_PATH, "A=1"]
    assert process["cwd"] == "/srv"
    assert process["user"] == {"uid": 1000, "gid": 50, "additionalGids": [44]}
    assert process["terminal"] is False
    assert process["noNewPrivileges"] is True and process["oomScoreAdj"] == 0
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]
    for kind in ("bounding", "effective", "permitted"):
        assert process["capabilities"][kind] == list(DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES and len(DEFAULT_CAPABILITIES) == 14
    assert built["root"] == {"path": "rootfs", "readonly": False}
    assert built["hostname"] == CID[:12]
    linux = built["linux"]
    assert linux["cgroupsPath"] == f"/seabox/{CID}"
    assert linux["maskedPaths"] == MASKED_PATHS and "/proc/kcore" in MASKED_PATHS
    assert linux["readonlyPaths"] == READONLY_PATHS and "/proc/sys" in READONLY_PATHS


def test_env_keeps_a_given_path_and_tty_adds_term() -> None:
    built = config(env=["PATH=/opt/bin", "X=y"], tty=True)
    assert built["process"]["env"] == ["PATH=/opt/bin", "X=y", "TERM=xterm"]
    assert built["process"]["terminal"] is True
    assert config(env=["TERM=vt100"], tty=True)["process"]["env"] == [DEFAULT_PATH, "TERM=vt100"]


def test_exec_env_replaces_appends_and_a_bare_key_removes() -> None:
    own = [DEFAULT_PATH, "FOO=image", "KEEP=1"]
    assert exec_env(own, ["FOO", "NEW=2", "KEEP=3", "ABSENT"], tty=False) == [DEFAULT_PATH, "KEEP=3", "NEW=2"]
    assert exec_env(own, [], tty=True) == [*own, "TERM=xterm"]
    assert exec_env([*own, "TERM=vt100"], ["PATH"], tty=True) == ["FOO=image", "KEEP=1", "TERM=vt100"]
    assert exec_env(own, ["TERM"], tty=True) == own  # as Docker: even the terminal's TERM goes


def test_nofile_limit_can_be_lowered() -> None:
    built = build_config(make_spec(), ProcessUser(), nofile=20000)
    assert built["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000}]


def test_hostname_and_labels() -> None:
    built = config(hostname="db-1", labels={"com.example.team": "core", "seabox.service": "web"})
    assert built["hostname"] == "db-1"
    assert built["annotations"] == {"com.example.team": "core", "seabox.service": "web"}


def test_resource_limits() -> None:
    resources = config(memory_bytes=64 << 20, cpu_shares=512, cpu_quota=1.5, pids_limit=100)["linux"][
        "resources"
    ]
    assert resources["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert resources["cpu"] == {"shares": 512, "quota": 150_000, "period": 100_000}
    assert resources["pids"] == {"limit": 100}


def test_defaults_leave_cpu_quota_and_pids_unlimited() -> None:
    resources = config()["linux"]["resources"]
    assert resources["memory"] == {"limit": 512 << 20, "swap": 512 << 20}
    assert resources["cpu"] == {"shares": 1024}
    assert "pids" not in resources


def test_devices_deny_all_but_the_standard_set() -> None:
    devices = config()["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    allowed = {(d["type"], d.get("major"), d.get("minor")) for d in devices[1:] if "rw" in d["access"]}
    assert allowed == {
        ("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9),
        ("c", 5, 0), ("c", 5, 1), ("c", 5, 2), ("c", 136, None),
    }  # fmt: skip


def test_mounts_standard_then_binds() -> None:
    mounts = config(
        mounts=[Mount(Path("/vol/data"), "/data"), Mount(Path("/run/x/hosts"), "/etc/hosts", readonly=True)]
    )["mounts"]
    assert [m["destination"] for m in mounts] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
        "/data", "/etc/hosts",
    ]  # fmt: skip
    by_destination = {m["destination"]: m for m in mounts}
    assert by_destination["/dev"]["options"] == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert {"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"} <= set(
        by_destination["/dev/pts"]["options"]
    )
    assert "size=67108864" in by_destination["/dev/shm"]["options"]
    assert by_destination["/dev/mqueue"]["type"] == "mqueue"
    assert "ro" in by_destination["/sys"]["options"] and "ro" in by_destination["/sys/fs/cgroup"]["options"]
    assert by_destination["/data"] == {
        "destination": "/data", "type": "bind", "source": "/vol/data",
        "options": ["rbind", "rprivate", "nosuid", "nodev", "rw"],
    }  # fmt: skip
    assert by_destination["/etc/hosts"]["options"] == ["rbind", "rprivate", "nosuid", "nodev", "ro"]


def test_network_namespace_new_or_joined() -> None:
    namespaces = config()["linux"]["namespaces"]
    assert [n["type"] for n in namespaces] == ["pid", "ipc", "uts", "mount", "network"]
    assert namespaces[-1] == {"type": "network"}
    joined = config(netns=Path("/run/seabox/netns/c1"))["linux"]["namespaces"]
    assert joined[-1] == {"type": "network", "path": "/run/seabox/netns/c1"}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"id": "ABC"}, "id"),
        ({"id": "g" * 64}, "id"),
        ({"args": []}, "args"),
        ({"cwd": "relative"}, "cwd"),
        ({"memory_bytes": 1 << 20}, "memory_bytes"),
        ({"cpu_shares": 1}, "cpu_shares"),
        ({"cpu_quota": 0.0}, "cpu_quota"),
        ({"pids_limit": 0}, "pids_limit"),
        ({"mounts": [Mount(Path("/x"), "relative")]}, "mounts"),
        ({"mounts": [Mount(Path("/x"), "/a/../etc")]}, "mounts"),
        ({"mounts": [Mount(Path("x"), "/data")]}, "mounts"),
        ({"id_map": IdMap(1 << 24), "netns": Path("/run/n/c1")}, "netns"),
        ({"cap_drop": ["CAP_SYS_ADMIN"]}, "cap_drop"),
        ({"ulimits": [Ulimit("bogus", 1, 1)]}, "ulimits"),
        ({"ulimits": [Ulimit("nofile", 10, 5)]}, "ulimits"),
    ],
)
def test_invalid_specs(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        config(**options)
    assert raised.value.field == field


def test_user_namespace_maps_container_root_to_the_tenant_range() -> None:
    linux = config(id_map=IdMap(16_842_752))["linux"]
    assert {"type": "user"} in linux["namespaces"]
    expected = [{"containerID": 0, "hostID": 16_842_752, "size": 65536}]
    assert linux["uidMappings"] == expected and linux["gidMappings"] == expected
    assert "uidMappings" not in config()["linux"]


def test_seccomp_profile_is_on_by_default_and_can_be_left_to_the_runtime() -> None:
    profile = config()["linux"]["seccomp"]
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert len(profile["architectures"]) <= 1  # the native ABI only: no 32-bit compat calls
    allowed = {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule
               for name in rule["names"]}
    assert {"read", "write", "execve", "socket", "ptrace"} <= allowed
    assert not allowed & {"unshare", "setns", "mount", "keyctl", "bpf", "perf_event_open", "userfaultfd", "clone"}
    clone = next(rule for rule in profile["syscalls"] if rule["names"] == ["clone"])
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert "seccomp" not in config(seccomp=False)["linux"]


def test_allow_list_never_contains_the_escape_calls() -> None:
    from seabox.node.runtime.seccomp import ALLOWED_SYSCALLS, NEVER_ALLOWED

    assert not ALLOWED_SYSCALLS & NEVER_ALLOWED


def test_cap_drop_read_only_and_ulimits() -> None:
    built = config(cap_drop=["CAP_NET_RAW", "CAP_CHOWN"], readonly_rootfs=True,
                   ulimits=[Ulimit("nofile", 1024, 2048), Ulimit("core", 0, 0)])
    caps = built["process"]["capabilities"]["effective"]
    assert "CAP_NET_RAW" not in caps and "CAP_CHOWN" not in caps and "CAP_KILL" in caps
    assert built["root"]["readonly"] is True
    assert built["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
    ]
    assert config(cap_drop=["ALL"])["process"]["capabilities"]["bounding"] == []
