"""Disk limits through the real server: volume sizes enforced, nosuid,nodev mounts, re-adoption, cleanup."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e.test_api import logs, pull, run, wait
from tests.fixtures.mounts import loops_under, mounts_under
from tests.fixtures.server import Server

Api = Callable[[str], httpx.Client]


def _options(mount_point: str) -> list[set[str]]:
    """The mount options of each mount at mount_point (more than one means it was mounted twice)."""
    with open("/proc/self/mountinfo") as mountinfo:
        return [set(f[5].split(",")) for f in (line.split(" ") for line in mountinfo) if f[4] == mount_point]


def test_volume_size_is_enforced_and_its_mounts_are_nosuid_nodev(
    server: Server, api: Api, busybox_image: str
) -> None:
    dave = api("dave")
    pull(dave, busybox_image)
    vol = f"small-{uuid.uuid4().hex[:8]}"
    created = dave.post("/v1/volumes", json={"name": vol, "size": "32MiB"})
    assert created.status_code == 201, created.text
    volume_dir = server.data_dir / "volumes" / created.json()["tenant"] / vol
    try:
        fill = "dd if=/dev/zero of=/data/big bs=1M count=64 2>&1; echo rc=$?; rm /data/big; echo ok > /data/f"
        c = run(dave, busybox_image, ["sh", "-c", fill], volumes=[f"{vol}:/data"])
        assert wait(dave, c["id"]) == 0
        out = "".join(e["data"] for e in logs(dave, c["id"]))
        assert "No space left on device" in out and "rc=1" in out, out

        disk = os.path.realpath(server.data_dir / "containers" / c["id"] / "disk")
        rootfs = os.path.realpath(server.data_dir / "containers" / c["id"] / "rootfs")
        volume_fs = os.path.realpath(volume_dir / "fs")
        for point in (disk, rootfs, volume_fs):
            [options] = _options(point)
            assert {"nosuid", "nodev"} <= options, (point, options)

        # kill -9 and restart: everything is re-adopted, nothing is mounted twice
        server.stop(signal.SIGKILL)
        server.start()
        again = run(dave, busybox_image, ["cat", "/data/f"], volumes=[f"{vol}:/data"])
        assert wait(dave, again["id"]) == 0
        assert [e["data"] for e in logs(dave, again["id"])] == ["ok\n"]
        restarted = dave.post(f"/v1/containers/{c['id']}/start")
        assert restarted.status_code in (200, 204), restarted.text
        assert wait(dave, c["id"]) == 0
        assert len(_options(disk)) == len(_options(rootfs)) == len(_options(volume_fs)) == 1

        for cid in (c["id"], again["id"]):
            assert dave.delete(f"/v1/containers/{cid}", params={"force": "true"}).status_code == 204
            bundle = server.data_dir / "containers" / cid
            assert not bundle.exists() and loops_under(bundle) == []
    finally:
        dave.delete(f"/v1/volumes/{vol}")
    assert not volume_dir.exists()
    assert mounts_under(Path(volume_fs).parent) == []
    # the loop device detaches once the kernel has dropped the removed containers' mount namespaces,
    # which it does asynchronously: give a loaded host a moment
    deadline = time.monotonic() + 10
    while loops_under(volume_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert loops_under(volume_dir) == []


def test_volume_sizes_out_of_range_are_refused(api: Api) -> None:
    dave = api("dave")
    for size in ("1KiB", "9TiB"):
        r = dave.post("/v1/volumes", json={"name": "bad", "size": size})
        assert r.status_code == 400 and r.json()["field"] == "size", r.text
