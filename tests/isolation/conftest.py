"""Fixtures of the escape suite: every check runs once per runtime class, as two hostile tenants."""

from __future__ import annotations

import ast
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from seabox.model.runtime import RUNTIME_CLASSES
from tests.e2e.test_api import logs, pull, run, wait
from tests.fixtures.images import LAYOUT_TAG
from tests.fixtures.server import Server
from tests.isolation.probe import PROBE

ATTACKER = "escape-attacker"
VICTIM = "escape-victim"


@dataclass
class Probed:
    """One runtime class's probe outcome, with what the host sees of the two tenants' containers."""

    runtime: str
    result: dict[str, object]
    attacker_pid: int  # host pid of the attacker's (probe) container while it ran: gone now
    victim_pid: int  # host pid of the other tenant's container, still running
    victim_id: str


@pytest.fixture(scope="session")
def hostile_image(registry: str, busybox_layout: Path) -> Iterator[str]:
    """busybox plus what a hostile image carries: a setuid-root shell and a block device node 254:0."""
    workdir = Path(tempfile.mkdtemp(prefix="seabox-hostile-"))
    try:
        layout = workdir / "layout"
        shutil.copytree(busybox_layout, layout, symlinks=True)
        image = f"{layout}:{LAYOUT_TAG}"
        bundle = workdir / "bundle"
        subprocess.run(["umoci", "unpack", "--image", image, bundle], check=True, capture_output=True)
        rootfs = bundle / "rootfs"
        shutil.copy2(rootfs / "bin" / "busybox", rootfs / "bin" / "suid-sh")
        os.chmod(rootfs / "bin" / "suid-sh", 0o4755 | stat.S_IFREG)
        os.mknod(rootfs / "hostdisk", 0o666 | stat.S_IFBLK, os.makedev(254, 0))
        os.mknod(rootfs / "hostmem", 0o666 | stat.S_IFCHR, os.makedev(1, 1))
        subprocess.run(["umoci", "repack", "--image", image, bundle], check=True, capture_output=True)
        ref = f"{registry}/hostile:latest"
        subprocess.run(
            ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
             f"oci:{image}", f"docker://{ref}"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield ref
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def tenants(server: Server) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """The attacker's and the victim's API clients; their containers are removed afterwards."""
    clients = tuple(
        httpx.Client(base_url=server.url, headers={"X-Api-Key": server.tenant(name)}, timeout=120)
        for name in (ATTACKER, VICTIM)
    )
    yield clients  # type: ignore[misc]
    for client in clients:
        for c in client.get("/v1/containers", params={"all": "true"}).json():
            client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
        client.close()


@pytest.fixture(scope="module", params=RUNTIME_CLASSES)
def probed(
    request: pytest.FixtureRequest, server: Server, tenants: tuple[httpx.Client, httpx.Client], python_image: str
) -> Iterator[Probed]:
    """The probe's report from the attacker's container, next to a running container of the victim."""
    runtime = request.param
    attacker, victim = tenants
    pull(attacker, python_image)
    pull(victim, python_image)
    target = run(victim, python_image, ["sleep", "600"], runtime_class=runtime, size="s1")
    victim_pid = int(victim.get(f"/v1/containers/{target['id']}").json()["status"]["pid"])
    c = run(
        attacker, python_image, ["python3", "-c", PROBE, str(victim_pid), str(server.data_dir)],
        runtime_class=runtime, size="s2",
    )
    attacker_pid = int(attacker.get(f"/v1/containers/{c['id']}").json()["status"]["pid"])
    code = wait(attacker, c["id"])
    out = "".join(e["data"] for e in logs(attacker, c["id"]) if e["stream"] == "stdout")
    err = "".join(e["data"] for e in logs(attacker, c["id"]) if e["stream"] == "stderr")
    assert code == 0, err
    try:
        yield Probed(runtime, ast.literal_eval(out), attacker_pid, victim_pid, target["id"])
    finally:
        attacker.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
        victim.delete(f"/v1/containers/{target['id']}", params={"force": "true"})
