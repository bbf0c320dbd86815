"""The node image store against a real registry, skopeo and umoci, and overlay rootfs mounts."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seabox.config import RegistryConfig
from seabox.errors import Conflict, InvalidArgument, NotFound, UpstreamError
from seabox.node.images.rootfs import mount_overlay, unmount_overlay
from seabox.node.mounts import is_mounted
from seabox.node.images.store import ImageStore
from seabox.node.network.pull_egress import PullEgress
from seabox.protocol.images import PullProgress
from tests.fixtures.mounts import loops_under, mounts_under

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts, image unpacking)"),
]

# Nothing listens on port 1: a registry that refuses connections at once.
DEAD_REGISTRY = "127.0.0.1:1"
DISK = 1 << 30  # each test container's rootfs disk (a sparse image: costs nothing until written)


@pytest.fixture
def store(tmp_path: Path, registry: str, busybox_image: str, pull_egress: PullEgress) -> ImageStore:
    return ImageStore(
        tmp_path / "images",
        RegistryConfig(insecure=[registry, DEAD_REGISTRY], allow_internal=[registry, DEAD_REGISTRY]),
        egress=pull_egress,
    )


@pytest.fixture
def containers(tmp_path: Path) -> Iterator[Path]:
    """A directory for container dirs; every overlay and disk under it is unmounted after the test."""
    root = tmp_path / "containers"
    root.mkdir()
    try:
        yield root
    finally:
        for container_dir in root.iterdir():
            unmount_overlay(container_dir)
        assert mounts_under(tmp_path) == [] and loops_under(tmp_path) == []


async def test_pull_reports_progress_and_unpacks(store: ImageStore, busybox_image: str) -> None:
    events: list[PullProgress] = []
    info = await store.pull(busybox_image, events.append)

    statuses = [e.status for e in events]
    assert statuses[0] == "resolving" and statuses[-1] == "complete"
    assert statuses.index("unpacking") > statuses.index("done") > statuses.index("downloading")
    downloading = [e for e in events if e.status == "downloading"]
    assert len(downloading) == 1
    layer = downloading[0]
    assert layer.layer is not None and layer.layer.startswith("sha256:")
    assert layer.size is not None and layer.size > 500_000
    assert [e.layer for e in events if e.status == "done"] == [layer.layer]
    assert events[-1].detail == info.id

    assert info.id.startswith("sha256:") and len(info.id) == 71
    assert info.repo_tags == [busybox_image]
    registry = busybox_image.split("/")[0]
    assert info.repo_digests == [f"{registry}/busybox@{info.digest}"]
    assert info.config.cmd == ["sh"]
    assert any(e.startswith("PATH=") for e in info.config.env)
    assert info.config.entrypoint is None
    assert info.architecture == "amd64" and info.os == "linux"
    assert info.created is not None
    assert (store.rootfs(info.id) / "bin" / "busybox").stat().st_size == info.size - _small_files(store.rootfs(info.id))
    assert os.readlink(store.rootfs(info.id) / "bin" / "sh") == "busybox"
    assert list((store.root / "tmp").iterdir()) == []


def _small_files(rootfs: Path) -> int:
    """Bytes of everything in rootfs except the busybox binary (symlinks and /etc files)."""
    total = 0
    for dirpath, _dirs, files in os.walk(rootfs):
        for name in files:
            path = Path(dirpath) / name
            if path != rootfs / "bin" / "busybox":
                total += path.lstat().st_size
    return total


async def test_get_by_reference_id_and_prefix(store: ImageStore, busybox_image: str) -> None:
    info = await store.pull(busybox_image)
    hex_id = info.id.removeprefix("sha256:")
    untagged = busybox_image.rsplit(":", 1)[0]  # the default tag is latest
    for key in (busybox_image, untagged, info.id, hex_id, hex_id[:12], info.id[:19]):
        assert store.get(key).id == info.id, key
    assert store.get(info.repo_digests[0]).id == info.id
    with pytest.raises(NotFound, match="no such image"):
        store.get("busybox")
    with pytest.raises(NotFound):
        store.get("sha256:" + "0" * 64)
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        store.get("BusyBox")


async def test_concurrent_pulls_share_one_unpacked_tree(
    store: ImageStore, registry: str, busybox_image: str
) -> None:
    other_name = f"{registry}/library/busybox:latest"
    first, second, third = await asyncio.gather(
        store.pull(busybox_image), store.pull(busybox_image), store.pull(other_name)
    )
    assert first.id == second.id == third.id
    [listed] = store.list()
    assert listed.repo_tags == sorted([busybox_image, other_name])
    assert [p.name for p in (store.root / "unpacked").iterdir()] == [first.id.replace(":", "-")]
    assert list((store.root / "tmp").iterdir()) == []


async def test_pull_by_digest(store: ImageStore, registry: str, busybox_image: str) -> None:
    digest = (await store.pull(busybox_image)).digest
    await store.remove(busybox_image)
    by_digest = f"{registry}/busybox@{digest}"
    info = await store.pull(by_digest)
    assert info.repo_tags == [] and info.repo_digests == [by_digest]
    assert store.get(by_digest).id == info.id


async def test_remove_untags_then_deletes(store: ImageStore, registry: str, busybox_image: str) -> None:
    other_name = f"{registry}/library/busybox:latest"
    info = await store.pull(busybox_image)
    await store.pull(other_name)

    await store.remove(other_name, in_use={info.id})  # only an untag: allowed while in use
    assert store.get(info.id).repo_tags == [busybox_image]
    with pytest.raises(Conflict, match="in use"):
        await store.remove(busybox_image, in_use={info.id})
    assert store.rootfs(info.id).is_dir()

    await store.remove(busybox_image)
    with pytest.raises(NotFound):
        store.get(info.id)
    assert store.list() == []
    assert not store.rootfs(info.id).exists()
    assert list((store.root / "oci" / "blobs" / "sha256").iterdir()) == []
    with pytest.raises(NotFound):
        await store.remove(busybox_image)


async def test_remove_by_id_drops_every_tag(
    store: ImageStore, registry: str, busybox_image: str
) -> None:
    info = await store.pull(busybox_image)
    await store.pull(f"{registry}/library/busybox:latest")
    with pytest.raises(Conflict):
        await store.remove(info.id[:12 + 7], in_use={info.id})
    await store.remove(info.id[:12 + 7])
    assert store.list() == []


async def test_store_survives_restart_and_cleans_crash_leftovers(
    store: ImageStore, busybox_image: str
) -> None:
    info = await store.pull(busybox_image)
    half_unpacked = store.root / "unpacked" / ".tmp-crashed" / "rootfs"
    half_unpacked.mkdir(parents=True)
    (store.root / "tmp" / "copy-crashed").mkdir()

    reopened = ImageStore(store.root, store.registries, egress=store.egress)
    assert [i.id for i in reopened.list()] == [info.id]
    assert reopened.get(busybox_image).repo_tags == [busybox_image]
    assert not half_unpacked.parent.exists()
    assert list((store.root / "tmp").iterdir()) == []


async def test_import_oci_archive(store: ImageStore, busybox_oci_archive: Path) -> None:
    [info] = await store.import_archive(busybox_oci_archive)
    assert info.repo_tags == ["docker.io/library/busybox:oci"]
    assert store.get("busybox:oci").id == info.id
    assert (store.rootfs(info.id) / "bin" / "busybox").is_file()
    assert info.config.cmd == ["sh"]


async def test_import_docker_archive(
    store: ImageStore, busybox_docker_archive: Path, busybox_layout: Path, tmp_path: Path
) -> None:
    [tagged] = await store.import_archive(busybox_docker_archive)
    assert tagged.repo_tags == ["docker.io/library/busybox:imported"]
    assert (store.rootfs(tagged.id) / "bin" / "sh").is_symlink()

    untagged_archive = tmp_path / "untagged.tar"
    subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--quiet",
         f"oci:{busybox_layout}:latest", f"docker-archive:{untagged_archive}"],
        check=True,
    )
    await store.remove("busybox:imported")
    [untagged] = await store.import_archive(untagged_archive)
    assert untagged.repo_tags == [] and untagged.id == tagged.id
    assert store.rootfs(store.get(untagged.id[:19]).id).is_dir()


async def test_import_rejects_non_archives(store: ImageStore, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidArgument, match="cannot read image archive"):
        await store.import_archive(junk)
    with pytest.raises(InvalidArgument, match="no such image archive"):
        await store.import_archive(tmp_path / "missing.tar")


async def test_mirror_serves_docker_hub_names(
    tmp_path: Path, registry: str, busybox_image: str, pull_egress: PullEgress
) -> None:
    config = RegistryConfig(
        mirrors={"docker.io": [DEAD_REGISTRY, registry]}, insecure=[registry, DEAD_REGISTRY]
    )
    store = ImageStore(tmp_path / "mirrored", config, egress=pull_egress)
    events: list[PullProgress] = []
    info = await store.pull("busybox", events.append)
    assert [e.detail for e in events if e.status == "resolving"] == [DEAD_REGISTRY, registry]
    assert info.repo_tags == ["docker.io/library/busybox:latest"]
    assert info.repo_digests == [f"docker.io/library/busybox@{info.digest}"]
    assert store.get("busybox").id == info.id


async def test_missing_images_are_not_found(store: ImageStore, registry: str) -> None:
    with pytest.raises(NotFound, match=f"not found in registry {registry}"):
        await store.pull(f"{registry}/nope:latest")
    with pytest.raises(NotFound, match="manifest unknown"):
        await store.pull(f"{registry}/busybox:no-such-tag")
    assert store.list() == []


async def test_registry_errors(store: ImageStore, tmp_path: Path, registry: str) -> None:
    # An allowed host that refuses: the tenant hears only that it cannot be reached.
    with pytest.raises(UpstreamError) as refused:
        await store.pull(f"{DEAD_REGISTRY}/busybox")
    assert refused.value.message == f"cannot reach registry {DEAD_REGISTRY}"
    with pytest.raises(InvalidArgument, match="invalid reference format 'BusyBox'"):
        await store.pull("BusyBox")
    strict = ImageStore(tmp_path / "strict", RegistryConfig(allow_internal=[registry]), egress=store.egress)
    with pytest.raises(UpstreamError, match="HTTP response to HTTPS client"):
        await strict.pull(f"{registry}/busybox")


async def test_overlay_keeps_lower_layer_untouched(
    store: ImageStore, busybox_image: str, containers: Path
) -> None:
    info = await store.pull(busybox_image)
    container_dir = containers / "c1"
    merged = mount_overlay(store.rootfs(info.id), container_dir, DISK)
    assert merged == container_dir / "rootfs"
    assert is_mounted(merged)
    assert mount_overlay(store.rootfs(info.id), container_dir, DISK) == merged  # idempotent

    (merged / "hello.txt").write_text("hi")
    (merged / "bin" / "cat").unlink()
    assert not (store.rootfs(info.id) / "hello.txt").exists()
    assert (store.rootfs(info.id) / "bin" / "cat").is_symlink()
    assert (container_dir / "disk" / "upper" / "hello.txt").read_text() == "hi"
    assert (merged / "bin" / "busybox").is_file()

    unmount_overlay(container_dir)
    assert not is_mounted(merged)
    assert mounts_under(containers) == [] and loops_under(containers) == []
    unmount_overlay(container_dir)  # idempotent

    mount_overlay(store.rootfs(info.id), container_dir, DISK)
    assert (merged / "hello.txt").read_text() == "hi"  # the upper layer outlives a remount
    assert not (merged / "bin" / "cat").exists()


def _mount_options(path: Path) -> set[str]:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        [line] = [line for line in mountinfo if line.split(" ")[4] == target]
    return set(line.split(" ")[5].split(","))


async def test_rootfs_writes_stop_at_the_disk_size(
    store: ImageStore, busybox_image: str, containers: Path
) -> None:
    info = await store.pull(busybox_image)
    container_dir = containers / "small"
    merged = mount_overlay(store.rootfs(info.id), container_dir, 32 << 20)
    assert {"nosuid", "nodev"} <= _mount_options(merged)
    assert {"nosuid", "nodev"} <= _mount_options(container_dir / "disk")
    assert (container_dir / "disk.img").stat().st_blocks * 512 < 8 << 20  # sparse until written
    with pytest.raises(OSError) as full, open(merged / "fill", "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
    assert full.value.errno == errno.ENOSPC
    (merged / "fill").unlink()
    (merged / "after").write_text("room again")
    unmount_overlay(container_dir)
    assert mounts_under(container_dir) == [] and loops_under(container_dir) == []
