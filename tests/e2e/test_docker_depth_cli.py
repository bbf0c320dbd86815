"""Issue 17's remaining docker CLI cases: a subset of --cap-drop seen from inside, --stop-signal as what
`docker stop` sends, a hostile tar through `docker cp -`, and volume errors that name no server path."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.docker_fixtures import DOCKER, DockerCli, docker_config, pulled_tenant, unique
from tests.e2e.test_docker_create_options import status_field
from tests.e2e.test_docker_files import _file, _symlink, _tar, outside  # noqa: F401 (outside: a fixture)
from tests.fixtures.server import Server

CAP_CHOWN_BIT, CAP_KILL_BIT, CAP_NET_RAW_BIT = 1 << 0, 1 << 5, 1 << 13


@pytest.fixture(scope="module")
def tenant(server: Server, busybox_image: str) -> Iterator[str]:
    """One tenant for the module, busybox pulled once; everything it made is removed at the end."""
    with pulled_tenant(server, "depthcli", busybox_image) as name:
        yield name


@pytest.fixture
def dcli(server: Server, tenant: str, tmp_path: Path) -> Iterator[DockerCli]:
    cli = DockerCli(server, tenant, docker_config(server, tenant, tmp_path))
    try:
        yield cli
    finally:
        for cid in cli.lines("ps", "-aq"):
            cli("rm", "-f", cid)


def cap_eff(dcli: DockerCli, image: str, *options: str) -> int:
    return int(status_field(dcli.ok("run", "--rm", *options, image, "cat", "/proc/self/status"), "CapEff"), 16)


def test_cap_drop_of_a_subset_removes_just_those(dcli: DockerCli, busybox_image: str) -> None:
    default = cap_eff(dcli, busybox_image)
    dropped = CAP_CHOWN_BIT | CAP_KILL_BIT | CAP_NET_RAW_BIT
    assert default & dropped == dropped
    assert cap_eff(dcli, busybox_image, "--cap-drop", "chown", "--cap-drop", "CAP_KILL", "--cap-drop",
                   "NET_RAW") == default & ~dropped
    # dropped, then one of Docker's default set added back
    assert cap_eff(dcli, busybox_image, "--cap-drop", "ALL", "--cap-add", "KILL") == CAP_KILL_BIT
    r = dcli("run", "--rm", "--cap-drop", "ALL", busybox_image, "chown", "1:1", "/tmp")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r


def test_stop_signal_is_what_docker_stop_sends(dcli: DockerCli, busybox_image: str) -> None:
    trap = "trap 'echo got-usr1; exit 0' USR1; echo ready; while true; do sleep 0.1; done"
    name = unique("usr1")
    dcli.ok("run", "-d", "--name", name, "--stop-signal", "SIGUSR1", busybox_image, "sh", "-c", trap)
    deadline = time.monotonic() + 10
    while dcli.ok("logs", name) != "ready\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    dcli.ok("stop", "-t", "20", name)
    assert time.monotonic() - started < 10  # the trap ended it, not a kill after 20 s
    assert dcli.ok("inspect", "-f", "{{.State.ExitCode}}", name) == "0\n"
    assert dcli.ok("logs", name) == "ready\ngot-usr1\n"
    # `docker kill --signal` sends the one given instead
    other = unique("killsig")
    dcli.ok("run", "-d", "--name", other, busybox_image, "sh", "-c", trap)
    dcli.ok("kill", "--signal", "USR1", other)
    assert dcli.ok("wait", other) == "0\n"


def test_a_group_the_image_lacks_fails_the_start_at_once(dcli: DockerCli, busybox_image: str) -> None:
    started = time.monotonic()
    r = dcli("run", "--group-add", "nosuch", busybox_image, "true")
    assert time.monotonic() - started < 5 and r.returncode == 125, r
    assert "unable to find group nosuch: no matching entries in group file" in r.stderr, r.stderr
    r = dcli("run", "--rm", "--user", "nosuch", busybox_image, "true")  # the image's /etc/passwd, likewise
    assert r.returncode == 125 and "unable to find user nosuch" in r.stderr, r
    out = dcli.ok("run", "--rm", "--group-add", "nogroup", busybox_image, "id", "-G")
    assert "65534" in out.split(), out
    r = dcli("run", "--rm", busybox_image, "no-such-binary")  # the other mistake a start finds: exit 127, as Docker
    assert r.returncode == 127 and "no-such-binary" in r.stderr and "not found" in r.stderr, r


def test_a_hostile_tar_through_docker_cp_stdin_writes_nothing_outside(dcli: DockerCli, busybox_image: str,
                                                                      outside: Path, tmp_path: Path) -> None:  # noqa: F811
    name = unique("cpin")
    dcli.ok("run", "-d", "--name", name, busybox_image, "sh", "-c", f"mkdir -p /dest {outside}; exec sleep 300")
    hostile = tmp_path / "hostile.tar"
    hostile.write_bytes(_tar(_file(str(outside / "abs")), _symlink("esc", str(outside)), _file("esc/via-link"),
                             _symlink("up", "../../../../../../.."), _file("up" + str(outside / "via-up"))))
    with hostile.open("rb") as stdin:
        r = subprocess.run([DOCKER, "cp", "-", f"{name}:/dest"], env=dcli.env, stdin=stdin, capture_output=True,
                           text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    assert list(outside.iterdir()) == []  # on the node's (this host's) filesystem
    assert dcli.ok("exec", name, "cat", f"/dest{outside}/abs", f"{outside}/via-link", f"{outside}/via-up") == "xxx"
    dots = tmp_path / "dots.tar"
    dots.write_bytes(_tar(_file("../../.." + str(outside / "dots"))))
    with dots.open("rb") as stdin:
        r = subprocess.run([DOCKER, "cp", "-", f"{name}:/dest"], env=dcli.env, stdin=stdin, capture_output=True,
                           text=True, timeout=30, check=False)
    assert r.returncode != 0 and "outside the target directory" in r.stderr, r.stderr
    assert list(outside.iterdir()) == []


def test_volume_errors_name_no_server_path(dcli: DockerCli, server: Server, busybox_image: str) -> None:
    used = unique("busy")
    dcli.ok("run", "-d", "-v", f"{used}:/d", busybox_image, "sleep", "300")
    for args in (["volume", "create", "_bad"], ["volume", "create", "a b"], ["volume", "inspect", "nope"],
                 ["volume", "rm", "nope"], ["volume", "rm", used], ["run", "--rm", "-v", "bad*name:/d", busybox_image,
                                                                   "true"]):
        r = dcli(*args)
        assert r.returncode != 0, (args, r.stdout)
        assert str(server.data_dir) not in r.stderr and "/volumes/" not in r.stderr, (args, r.stderr)
