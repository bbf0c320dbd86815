"""Node limits against real skopeo, umoci and the local registry: unpacked-size bounds and registry admission."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seabox.config import RegistryConfig
from seabox.errors import InvalidArgument, UpstreamError
from seabox.node.images.registry_hosts import admit
from seabox.node.images.store import ImageStore
from seabox.node.network.pull_egress import PullEgress
from tests.fixtures import hostile_images

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (image unpacking, mount namespaces)"),
]

BOUND = 64 << 20
CLOSED_PORT = "127.0.0.1:1"  # nothing listens there


@pytest.fixture(scope="module")
def hostile(registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | str]]:
    """Hostile images: pushed to the registry (names) and as oci-archives (paths)."""
    work = tmp_path_factory.mktemp("hostile")
    bomb = hostile_images.gzip_bomb_layout(work / "bomb", 256 << 20)
    many = hostile_images.gzip_bomb_layout(work / "many", 256 << 20, members=64)
    pax = hostile_images.sparse_layout(work / "pax", work, 256 << 20, "pax")
    gnu = hostile_images.sparse_layout(work / "gnu", work, 256 << 20, "gnu")
    zstd = hostile_images.zstd_layout(work / "zstd", work)
    yield {
        "bomb": hostile_images.push(bomb, registry, "hostile/bomb"),
        "many": hostile_images.push(many, registry, "hostile/many"),
        "pax": hostile_images.push(pax, registry, "hostile/pax"),
        "zstd": hostile_images.push(zstd, registry, "hostile/zstd"),
        "gnu_archive": hostile_images.oci_archive(gnu, work / "gnu.tar", "sparse:gnu"),
        "bomb_archive": hostile_images.oci_archive(bomb, work / "bomb.tar", "bomb:1"),
    }


@pytest.fixture
def bounded(tmp_path: Path, registry: str, pull_egress: PullEgress) -> ImageStore:
    config = RegistryConfig(insecure=[registry], allow_internal=[registry])
    return ImageStore(tmp_path / "images", config, egress=pull_egress, max_unpacked=BOUND)


def _left_behind(store: ImageStore) -> list[str]:
    return [p.name for p in (store.root / "unpacked").iterdir()] + [
        p.name for p in (store.root / "oci" / "blobs" / "sha256").iterdir()
    ]


@pytest.mark.parametrize("name", ["bomb", "many", "pax"])
async def test_pulls_that_would_unpack_past_the_bound_are_refused(
    bounded: ImageStore, hostile: dict[str, Path | str], name: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await bounded.pull(str(hostile[name]))
    assert refused.value.status == 400
    assert "image layers unpack to more than 64 MiB" in refused.value.message
    assert "image_max_unpacked" in refused.value.message
    assert bounded.list() == [] and _left_behind(bounded) == []


@pytest.mark.parametrize("name", ["gnu_archive", "bomb_archive"])
async def test_imports_that_would_unpack_past_the_bound_are_refused(
    bounded: ImageStore, hostile: dict[str, Path | str], name: str
) -> None:
    with pytest.raises(InvalidArgument, match="unpack to more than 64 MiB"):
        await bounded.import_archive(Path(hostile[name]))
    assert bounded.list() == [] and _left_behind(bounded) == []


async def test_zstd_layers_are_refused_clearly(bounded: ImageStore, hostile: dict[str, Path | str]) -> None:
    with pytest.raises(InvalidArgument, match="zstd-compressed layers are not supported"):
        await bounded.pull(str(hostile["zstd"]))


async def test_an_image_under_the_bound_unpacks(
    tmp_path: Path, registry: str, busybox_image: str, hostile: dict[str, Path | str], pull_egress: PullEgress
) -> None:
    config = RegistryConfig(insecure=[registry], allow_internal=[registry])
    roomy = ImageStore(tmp_path / "roomy", config, egress=pull_egress, max_unpacked=512 << 20)
    info = await roomy.pull(str(hostile["pax"]))  # 256 MiB of holes, under a 512 MiB bound
    assert info.size == 256 << 20
    bounded = ImageStore(tmp_path / "bounded", config, egress=pull_egress, max_unpacked=BOUND)
    assert bounded.rootfs((await bounded.pull(busybox_image)).id).is_dir()


def _store(tmp_path: Path, name: str, config: RegistryConfig, egress: PullEgress) -> ImageStore:
    return ImageStore(tmp_path / name, config, egress=egress)


async def test_internal_registries_are_refused_unless_allowed(
    tmp_path: Path, registry: str, busybox_image: str, pull_egress: PullEgress
) -> None:
    port = registry.rsplit(":", 1)[1]
    strict = _store(tmp_path, "strict", RegistryConfig(insecure=[registry, CLOSED_PORT, f"localhost:{port}"]), pull_egress)
    messages = []
    for host in (registry, CLOSED_PORT, f"localhost:{port}", "[::1]:5000", "169.254.169.254", "10.1.2.3:5000"):
        with pytest.raises(InvalidArgument) as refused:
            await strict.pull(f"{host}/busybox:latest")
        messages.append(refused.value.message.replace(host, "HOST"))
    assert set(messages) == {
        "registry HOST is not allowed: images are pulled only from public registries "
        "(an operator may allow a host in config.toml, [registries] allow_internal)"
    }

    allowed = RegistryConfig(insecure=[registry, f"localhost:{port}"], allow_internal=[registry, "localhost"])
    opened = _store(tmp_path, "allowed", allowed, pull_egress)
    assert (await opened.pull(busybox_image)).repo_tags == [busybox_image]
    # a name is checked and pinned to what it resolved to: localhost -> 127.0.0.1 through confine
    assert f"localhost:{port}/busybox:latest" in (await opened.pull(f"localhost:{port}/busybox:latest")).repo_tags
    assert [p.name for p in (opened.root / "tmp").iterdir()] == []  # pins are released


async def test_an_allowed_host_that_cannot_be_reached_says_only_that(tmp_path: Path, pull_egress: PullEgress) -> None:
    store = _store(tmp_path, "dead", RegistryConfig(insecure=[CLOSED_PORT], allow_internal=[CLOSED_PORT]), pull_egress)
    with pytest.raises(UpstreamError) as failed:
        await store.pull(f"{CLOSED_PORT}/busybox")
    assert failed.value.message == f"cannot reach registry {CLOSED_PORT}"


async def test_a_pin_fixes_what_a_name_resolves_to(tmp_path: Path, pull_egress: PullEgress) -> None:
    pin = await admit("localhost:5000", {"localhost"}, tmp_path / "hosts")
    (tmp_path / "hosts").write_text("127.0.0.7\tregistry.pinned.test\n")  # what the pinned command sees
    argv = pin.command(["getent", "hosts", "registry.pinned.test"], pull_egress.ensure())
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["127.0.0.7", "registry.pinned.test"]
    assert "registry.pinned.test" not in Path("/etc/hosts").read_text()  # the host's file is untouched
    pin.release()
    assert not (tmp_path / "hosts").exists()
