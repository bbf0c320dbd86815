"""The escape suite: a hostile tenant's attempts from inside its container, in every runtime class, must fail.

docs/security.md lists each check with its expected result per class and the threat model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.server import Server
from tests.isolation.conftest import Probed

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: containers, user namespaces, seccomp"),
]

# How a call stopped by seccomp, a missing capability, a read-only mount or gVisor's Sentry ends.
BLOCKED = {"EPERM", "EACCES", "EROFS", "ENOSYS", "ENOENT", "EINVAL", "ENODEV", "ENXIO", "ENOTSUP", "EOPNOTSUPP"}
DOCKER_DEFAULT_CAPS = 0xA80425FB  # Docker's 14 default capabilities as a CapEff mask
CAP_SYS_ADMIN = 1 << 21
NOBODY = 65534


def host_status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


def test_container_root_is_an_unprivileged_host_uid_of_its_own(probed: Probed, server: Server) -> None:
    victim = host_status(probed.victim_pid)
    if probed.runtime == "gvisor":
        # Debian's runsc with host networking keeps its sandbox in the host user namespace: it is
        # confined by capabilities (no CAP_SYS_ADMIN), seccomp and a chroot instead (docs/security.md)
        assert not int(victim["CapEff"], 16) & CAP_SYS_ADMIN
        sandbox_root = set(os.listdir(f"/proc/{probed.victim_pid}/root"))  # runsc's own tmpfs: proc, etc
        assert sandbox_root <= {"proc", "etc"}, sandbox_root
        assert probed.result["uid_map"] == ["0", "0", "4294967295"]  # the Sentry's own, virtual ids
    else:
        assert victim["Uid"].split()[0] != "0", "the victim's container runs as host root"
        inside, host, count = probed.result["uid_map"]  # type: ignore[misc]
        assert inside == "0" and int(host) >= 65536 and count == "65536"
        victim_map = Path(f"/proc/{probed.victim_pid}/uid_map").read_text().split()
        assert victim_map[1] != host, "two tenants share a host uid range"
        assert victim["Uid"].split()[0] == victim_map[1]


def test_the_process_runs_under_seccomp_with_no_new_privileges(probed: Probed) -> None:
    # gVisor filters the Sentry's own host calls; runc filters the container's.
    assert host_status(probed.victim_pid)["Seccomp"] == "2"
    assert host_status(probed.victim_pid)["NoNewPrivs"] == "1"
    if probed.runtime == "runc":
        assert probed.result["seccomp"] == "2" and probed.result["no_new_privs"] == "1"


@pytest.mark.parametrize("call", ["unshare_user", "unshare_mount", "setns", "mount_tmpfs", "mount_cgroup"])
def test_namespace_and_mount_tricks_fail(probed: Probed, call: str) -> None:
    if probed.runtime == "gvisor" and call.startswith("unshare"):
        # gVisor's Sentry implements namespaces itself: a new one inside the sandbox is no way out of it
        assert probed.result[call] in BLOCKED | {"ok"}
        return
    assert probed.result[call] in BLOCKED


@pytest.mark.parametrize("call", ["keyctl", "add_key", "bpf", "perf_event_open", "userfaultfd"])
def test_kernel_attack_surface_calls_are_refused(probed: Probed, call: str) -> None:
    assert probed.result[call] in BLOCKED


def test_another_tenants_container_cannot_be_traced_or_seen(probed: Probed) -> None:
    assert probed.result["ptrace_other_tenant"] in {"ESRCH", "EPERM"}
    pids = probed.result["proc_pids"]
    assert isinstance(pids, list) and probed.victim_pid not in pids and len(pids) < 10


def test_capabilities_are_dockers_defaults_without_sys_admin(probed: Probed) -> None:
    caps = probed.result["cap_eff"]
    assert isinstance(caps, int) and not caps & CAP_SYS_ADMIN
    assert caps & ~DOCKER_DEFAULT_CAPS == 0


def test_device_nodes_cannot_reach_host_devices(probed: Probed) -> None:
    for made, opened in (("mknod_block", "open_block"), ("mknod_char_mem", "open_char_mem")):
        assert probed.result[made] in BLOCKED or probed.result[opened] in BLOCKED, (made, opened)


@pytest.mark.parametrize("write", ["proc_sys", "core_pattern", "sysrq_trigger", "sys_write", "cgroup_limit", "release_agent"])
def test_kernel_and_cgroup_settings_are_read_only(probed: Probed, write: str) -> None:
    assert probed.result[write] in BLOCKED


def test_host_kernel_logs_are_out_of_reach(probed: Probed) -> None:
    assert probed.result["kmsg"] in BLOCKED
    host_version = Path("/proc/version").read_text().split()[2]
    if probed.runtime == "runc":
        assert probed.result["syslog"] in BLOCKED
    else:  # gVisor answers syslog with its own boot messages
        assert host_version not in str(probed.result["syslog_text"])
        assert host_version not in str(probed.result["proc_version"])


def test_the_host_data_dir_is_not_in_the_container(probed: Probed, server: Server) -> None:
    assert probed.result["host_data_dir"] == "ENOENT"
    mountinfo = str(probed.result["mountinfo"])
    if probed.runtime == "gvisor":  # the Sentry's mount table names no host path at all
        assert str(server.data_dir) not in mountinfo
