"""Host-side checks of the tenant boundary: what tenants' files can do to host users, and exhaustion bounds."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_api import pull, run
from tests.fixtures.server import Server
from tests.isolation.conftest import RUNTIME_CLASSES

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: containers and a host user to drop to"),
]

NOBODY = 65534


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv as the host user nobody; a program it may not even execute ends with 126, as in a shell."""
    try:
        return subprocess.run(list(argv), user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
                              text=True, timeout=30)  # fmt: skip
    except PermissionError as exc:
        return subprocess.CompletedProcess(list(argv), 126, "", str(exc))


def _tenant_files(data_dir: Path) -> list[Path]:
    """Every setuid/setgid file and device node under the data dir, as root sees it."""
    found = []
    for dirpath, _dirs, files in os.walk(data_dir):
        for name in files:
            path = Path(dirpath) / name
            st = os.lstat(path)
            if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode) or (
                stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID)
            ):
                found.append(path)
    return found


@pytest.mark.parametrize("runtime", RUNTIME_CLASSES)
def test_setuid_files_and_device_nodes_of_tenants_are_useless_to_host_users(
    server: Server, api: object, hostile_image: str, runtime: str
) -> None:
    client = api("escape-files")  # type: ignore[operator]
    pull(client, hostile_image)
    c = run(client, hostile_image, ["sh", "-c", "cp /bin/suid-sh /tmp/own-suid && chmod 4755 /tmp/own-suid; sleep 300"],
            runtime_class=runtime)  # fmt: skip
    deadline = time.monotonic() + 10
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = _tenant_files(server.data_dir)
        if runtime != "runc" or any(f.name == "own-suid" for f in files):
            break
        time.sleep(0.2)
    names = {f.name for f in files}
    # gVisor's gofer does not give files the setuid bit a tenant asks for: only runc leaves own-suid
    expected = {"suid-sh", "hostdisk", "hostmem"} | ({"own-suid"} if runtime == "runc" else set())
    assert expected <= names, names
    for path in files:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            ran = _as_nobody(str(path), "id", "-u")
            assert ran.returncode != 0 or ran.stdout.strip() != "0", f"host user nobody got root through {path}"
            assert ran.returncode != 0, f"host user nobody ran tenant file {path}: {ran.stdout}"
        else:
            opened = _as_nobody("/bin/busybox", "dd", f"if={path}", "of=/dev/null", "bs=1", "count=1")
            assert opened.returncode != 0, f"host user nobody opened tenant device {path}"
    client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})


def test_data_dir_and_database_are_for_root_only(server: Server) -> None:
    data = server.data_dir
    assert stat.S_IMODE(data.stat().st_mode) & 0o066 == 0
    for name in ("seabox.db", "seabox.db-wal", "seabox.db-shm"):
        if (data / name).exists():
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((data / "images").stat().st_mode) == 0o700
    listed = _as_nobody("/bin/busybox", "ls", str(data))
    assert listed.returncode != 0, "host user nobody can list the data dir"
    read = _as_nobody("/bin/busybox", "cat", str(data / "seabox.db"))
    assert read.returncode != 0 and not read.stdout


def test_config_json_holding_the_environment_is_root_only(server: Server, api: object, busybox_image: str) -> None:
    client = api("escape-files")  # type: ignore[operator]
    pull(client, busybox_image)
    c = run(client, busybox_image, ["sleep", "300"], env=["SECRET=hunter2"])
    config = server.data_dir / "containers" / c["id"] / "config.json"
    assert "hunter2" in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    read = _as_nobody("/bin/busybox", "cat", str(config))
    assert read.returncode != 0 and "hunter2" not in read.stdout
    client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})


@pytest.mark.parametrize("runtime", RUNTIME_CLASSES)
def test_a_fork_bomb_stops_at_the_sizes_pid_limit(server: Server, api: object, busybox_image: str, runtime: str) -> None:
    """runc: the container holds at most s1's 512 processes. gvisor: its sandbox's host processes stay
    under the class's cap, and a sandbox that hits it ends alone. The API answers at once either way."""
    from seabox.node.limits import gvisor_host_pids

    cap = 512 if runtime == "runc" else gvisor_host_pids(512)
    client: httpx.Client = api("escape-pids")  # type: ignore[operator]
    pull(client, busybox_image)
    c = run(client, busybox_image, ["sleep", "300"], size="s1", runtime_class=runtime)
    bomb = "i=0; while [ $i -lt 3000 ]; do sleep 120 >/dev/null 2>&1 & i=$((i+1)); done"
    r = client.post(f"/v1/containers/{c['id']}/exec", json={"cmd": ["sh", "-c", bomb]}, timeout=120)
    assert r.status_code == 200, r.text
    state = client.get(f"/v1/containers/{c['id']}").json()["status"]["state"]
    stats = client.get(f"/v1/containers/{c['id']}/stats") if state == "running" else None
    if stats is not None and stats.status_code == 409 and runtime == "gvisor":  # the sandbox ended just now
        deadline = time.monotonic() + 10
        while state == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
            state = client.get(f"/v1/containers/{c['id']}").json()["status"]["state"]
        stats = None
    if stats is not None:
        assert stats.status_code == 200, stats.text
        assert 0 < stats.json()["pids"] <= cap, stats.json()
    else:
        assert runtime == "gvisor" and state == "exited", state
    t0 = time.monotonic()
    assert httpx.get(server.url + "/_ping", timeout=5).status_code == 200
    assert time.monotonic() - t0 < 2.0
    client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
