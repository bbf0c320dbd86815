"""The `seabox` CLI end to end, as a tenant types it, against a real server."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.server import SEABOX, Server


@pytest.fixture
def carol(server: Server, busybox_image: str) -> Iterator[Server]:
    """The server, with tenant carol's containers and volumes removed after each test."""
    yield server
    ids = server.cli("ps", "-a", "-q", tenant="carol").stdout.split()
    if ids:
        server.cli("rm", "-f", *ids, tenant="carol")
    vols = server.cli("volume", "ls", "-q", tenant="carol").stdout.split()
    if vols:
        server.cli("volume", "rm", *vols, tenant="carol")


def sb(server: Server, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return server.cli(*args, tenant="carol", **kw)  # type: ignore[arg-type]


def test_run_streams_output_and_exits_with_the_container_code(carol: Server, busybox_image: str) -> None:
    r = sb(carol, "run", "--rm", busybox_image, "sh", "-c", "echo to-out; echo to-err >&2; exit 4")
    assert r.returncode == 4, r.stderr
    assert r.stdout == "to-out\n"
    assert "to-err\n" in r.stderr
    assert sb(carol, "ps", "-a", "-q").stdout.strip() == ""  # --rm removed it


def test_detached_lifecycle_by_name_and_id_prefix(carol: Server, busybox_image: str) -> None:
    name = f"svc-{uuid.uuid4().hex[:6]}"
    r = sb(carol, "run", "-d", "--name", name, "--size", "s2", "-e", "A=1", "-l", "team=x", busybox_image,
           "sh", "-c", "echo started; sleep 300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    ps = sb(carol, "ps").stdout
    assert name in ps and cid[:12] in ps and "Up" in ps and "s2" in ps
    assert sb(carol, "logs", name).stdout == "started\n"
    r = sb(carol, "exec", cid[:8], "sh", "-c", "echo $A; exit 9")
    assert (r.returncode, r.stdout) == (9, "1\n")
    [info] = json.loads(sb(carol, "inspect", name).stdout)
    assert info["spec"]["labels"] == {"team": "x"} and info["spec"]["size"] == "s2"
    assert sb(carol, "stop", "-t", "1", name).returncode == 0
    assert "Exited" in sb(carol, "ps", "-a").stdout
    assert sb(carol, "start", name).returncode == 0
    assert sb(carol, "restart", "-t", "1", name).returncode == 0
    assert sb(carol, "logs", "--tail", "1", name).stdout == "started\n"
    assert sb(carol, "kill", "-s", "KILL", name).returncode == 0
    assert sb(carol, "wait", name).stdout.strip() == "137"
    new = f"{name}-renamed"
    assert sb(carol, "rename", name, new).returncode == 0
    assert sb(carol, "rm", new).returncode == 0
    r = sb(carol, "inspect", new)
    assert r.returncode == 1 and "no such container" in r.stderr


def test_top_and_stats_of_a_running_container(carol: Server, busybox_image: str) -> None:
    cid = sb(carol, "run", "-d", busybox_image, "sleep", "300").stdout.strip()
    assert "sleep 300" in sb(carol, "top", cid).stdout
    stats = sb(carol, "stats", cid)
    assert stats.returncode == 0 and cid[:12] in stats.stdout


def test_bad_input_prints_one_error_line_and_exits_1(carol: Server, busybox_image: str) -> None:
    r = sb(carol, "run", "--size", "xxl", busybox_image, "true")
    assert r.returncode != 0 and "size" in r.stderr and "Traceback" not in r.stderr
    r = sb(carol, "stop", "nope-does-not-exist")
    assert r.returncode == 1 and "no such container" in r.stderr
    r = sb(carol, "pull", "127.0.0.1:1/nothing:here")
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_images_pull_list_inspect_import_and_remove(
    carol: Server, busybox_image: str, busybox_oci_archive: Path, busybox_docker_archive: Path
) -> None:
    r = sb(carol, "pull", busybox_image)
    assert r.returncode == 0, r.stderr
    listing = sb(carol, "images").stdout
    assert busybox_image.rsplit(":", 1)[0] in listing
    [img] = json.loads(sb(carol, "image", "inspect", busybox_image).stdout)
    assert img["cmd"] == ["sh"]
    for archive in (busybox_oci_archive, busybox_docker_archive):
        r = sb(carol, "image", "import", str(archive))
        assert r.returncode == 0, r.stderr
    assert "imported" in sb(carol, "images").stdout
    r = sb(carol, "run", "--rm", "busybox:imported", "echo", "from-import")
    assert (r.returncode, r.stdout) == (0, "from-import\n"), r.stderr
    assert sb(carol, "rmi", "busybox:imported").returncode == 0
    assert "imported" not in sb(carol, "images").stdout


def test_volumes_and_events_and_sizes(carol: Server, busybox_image: str) -> None:
    vol = f"v{uuid.uuid4().hex[:6]}"
    assert sb(carol, "volume", "create", vol, "--size", "1GiB").returncode == 0
    assert vol in sb(carol, "volume", "ls").stdout
    cid = sb(carol, "run", "-d", "-v", f"{vol}:/data", busybox_image, "sh", "-c", "echo kept > /data/x; sleep 300")
    r = sb(carol, "volume", "rm", vol)
    assert r.returncode == 1 and "in use" in r.stderr
    sb(carol, "rm", "-f", cid.stdout.strip())
    r = sb(carol, "run", "--rm", "-v", f"{vol}:/data", busybox_image, "cat", "/data/x")
    assert r.stdout == "kept\n"
    events = sb(carol, "events", "--since", "10m").stdout
    assert "container create" in events and "container destroy" in events and "volume create" in events
    sizes = sb(carol, "sizes").stdout
    assert "s4 (default)" in sizes and "l3" in sizes


def test_login_saves_the_credentials(carol: Server, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SEABOX_CONFIG": str(tmp_path / "cfg.json"), "HOME": str(tmp_path)}
    bad = subprocess.run([*SEABOX, "login", carol.url, "sbx_wrong"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and not (tmp_path / "cfg.json").exists()
    good = subprocess.run([*SEABOX, "login", carol.url, carol.tenant("carol")], env=env, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "cfg.json").stat().st_mode & 0o777 == 0o600
    info = subprocess.run([*SEABOX, "info"], env=env, capture_output=True, text=True)
    assert info.returncode == 0 and "carol" in info.stdout


def test_admin_tenant_commands(carol: Server) -> None:
    carol.tenant("carol")
    r = subprocess.run([*SEABOX, "admin", "tenant", "ls", "--data-dir", str(carol.data_dir)],
                       capture_output=True, text=True)
    assert "carol" in r.stdout
    r = subprocess.run([*SEABOX, "admin", "tenant", "create", "carol", "--data-dir", str(carol.data_dir)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "already exists" in r.stdout + r.stderr
    r = subprocess.run([*SEABOX, "admin", "tenant", "key", "carol", "--data-dir", str(carol.data_dir)],
                       capture_output=True, text=True)
    assert r.stdout.strip().startswith("sbx_")


def test_docker_env_is_the_whole_docker_setup(carol: Server, busybox_image: str, tmp_path: Path) -> None:
    cid = sb(carol, "run", "-d", "--name", "envcheck", busybox_image, "sleep", "300").stdout.strip()
    env = carol.env("carol")
    env["HOME"] = str(tmp_path)
    script = f"eval $({' '.join(SEABOX)} docker-env) && docker ps --format '{{{{.ID}}}} {{{{.Names}}}}'"
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [cid[:12], "envcheck"]
