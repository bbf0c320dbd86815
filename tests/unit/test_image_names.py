"""ImageService on a real SQLite store with a fake node image store: per-tenant names and when data goes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from seabox.config import QuotasConfig
from seabox.errors import Conflict, NotFound
from seabox.protocol.images import ImageConfig, ImageInfo
from seabox.services.events import EventBus
from seabox.services.images import ImageService
from seabox.services.links import NodeLinks
from seabox.store.nodes import NodeStore
from seabox.store.db import open_engine
from seabox.store.quotas import QuotaStore
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY, spec

X = "sha256:" + "1" * 64
Y = "sha256:" + "2" * 64


def info(image_id: str, tags: list[str], digests: list[str]) -> ImageInfo:
    return ImageInfo(id=image_id, digest="sha256:" + "f" * 64, repo_tags=tags, repo_digests=digests, size=1,
                     created=None, config=ImageConfig(cmd=["sh"]),
                     architecture="amd64", os="linux")


class FakeNodeImages:
    """The image part of the node link that ImageService uses; pulls can be held back with a gate."""

    name = "n1"

    def __init__(self) -> None:
        self.stored: dict[str, ImageInfo] = {}
        self.registry: dict[str, str] = {}  # reference -> image id a pull of it yields
        self.gate: asyncio.Event | None = None

    async def image(self, ref_or_id: str) -> ImageInfo:
        if ref_or_id not in self.stored:
            raise NotFound(f"no such image: {ref_or_id}")
        return self.stored[ref_or_id]

    async def pull(self, ref: str, progress: Any = None) -> ImageInfo:
        image_id = self.registry[ref]
        self.stored[image_id] = info(image_id, [], [])
        if self.gate is not None:
            await self.gate.wait()
        repo = ref.rsplit(":", 1)[0]
        return info(image_id, [ref], [f"{repo}@sha256:{image_id[7:]}"])

    async def import_archive(self, path: Path) -> list[ImageInfo]:
        self.stored[X] = info(X, [], [])
        return [info(X, ["docker.io/library/busybox:oci"], [])]

    async def remove_image(self, image_id: str) -> None:
        del self.stored[image_id]


@pytest.fixture
def env(db_url: str) -> tuple[ImageService, Store, FakeNodeImages]:
    store = Store(open_engine(db_url))
    node = FakeNodeImages()
    node.registry = {"r.example/app:1": X, "r.example/app:2": X, "r.example/new:1": Y}
    links = NodeLinks(NodeStore(store.engine), 30.0, node)  # type: ignore[arg-type]
    return ImageService(store, links, EventBus(store), QuotaStore(store.engine), QuotasConfig()), store, node


async def test_names_are_per_tenant_and_an_unpulled_id_is_404(env: tuple[ImageService, Store, Any]) -> None:
    svc, store, _ = env
    a, b = store.create_tenant("a"), store.create_tenant("b")
    await svc.pull(a, "r.example/app:1")
    await svc.tag(a, "r.example/app:1", "secret/thing:1")
    assert (await svc.inspect(a, X[7:19])).repo_tags == ["docker.io/secret/thing:1", "r.example/app:1"]
    assert await svc.list(b) == []
    for ref in ("secret/thing:1", "r.example/app:1", X, X[7:19], X[7:]):
        with pytest.raises(NotFound):
            await svc.inspect(b, ref)
    [imported] = await svc.import_archive(b, Path("/x.tar"))
    assert imported.repo_tags == ["docker.io/library/busybox:oci"] and imported.repo_digests == []
    assert (await svc.resolve(b, X)).name == "docker.io/library/busybox:oci"
    assert (await svc.resolve(a, "secret/thing:1")).name == "docker.io/secret/thing:1"


async def test_rmi_of_the_last_tag_takes_the_digests_and_data_goes_with_the_last_tenant(
    env: tuple[ImageService, Store, FakeNodeImages],
) -> None:
    svc, store, node = env
    a, b = store.create_tenant("a"), store.create_tenant("b")
    await svc.pull(a, "r.example/app:1")
    await svc.pull(a, "r.example/app:2")
    await svc.pull(b, "r.example/app:1")
    assert await svc.remove(a, "r.example/app:2") == ["r.example/app:2"]
    assert sorted(await svc.remove(a, "r.example/app:1")) == ["r.example/app:1", f"r.example/app@sha256:{X[7:]}"]
    assert await svc.list(a) == [] and X in node.stored
    assert (await svc.inspect(b, "r.example/app:1")).id == X
    await svc.remove(b, X[7:19])
    assert X not in node.stored


async def test_rmi_refuses_while_the_tenants_container_uses_the_image_unless_forced(
    env: tuple[ImageService, Store, FakeNodeImages],
) -> None:
    svc, store, node = env
    a = store.create_tenant("a")
    await svc.pull(a, "r.example/app:1")
    store.insert_container(a.id, "c" * 64, "web", "local", None, spec().model_copy(update={"image_id": X}),
                           quota=ROOMY["containers"])
    with pytest.raises(Conflict, match="web"):
        await svc.remove(a, "r.example/app:1")
    await svc.remove(a, "r.example/app:1", force=True)
    assert X in node.stored  # the container still needs it
    store.delete_container("c" * 64)
    await svc.release(X)
    assert X not in node.stored


async def test_a_release_waits_for_a_pull_in_flight_that_names_the_image(
    env: tuple[ImageService, Store, FakeNodeImages],
) -> None:
    svc, store, node = env
    a, b = store.create_tenant("a"), store.create_tenant("b")
    await svc.pull(a, "r.example/app:1")
    node.gate = asyncio.Event()
    pulling = asyncio.create_task(svc.pull(b, "r.example/app:2"))
    await asyncio.sleep(0)
    await svc.remove(a, "r.example/app:1")  # nobody names X now, but b's pull is about to
    assert X in node.stored
    node.gate.set()
    assert (await pulling).id == X
    assert X in node.stored and (await svc.inspect(b, "r.example/app:2")).id == X


async def test_a_tag_moved_to_a_new_image_frees_the_old_one_when_nothing_else_names_it(
    env: tuple[ImageService, Store, FakeNodeImages],
) -> None:
    svc, store, node = env
    a = store.create_tenant("a")
    await svc.import_archive(a, Path("/x.tar"))
    await svc.pull(a, "r.example/new:1")
    await svc.tag(a, "r.example/new:1", "docker.io/library/busybox:oci")
    assert X not in node.stored and [i.id for i in await svc.list(a)] == [Y]
