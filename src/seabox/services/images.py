"""A tenant's images: pull, import, commit, tag, list, inspect, history, save, prune and remove, over the node's shared image store.

The node stores each image once (layers and unpacked rootfs shared); which names a tenant sees comes
only from that tenant's rows in the store's image table, never from the node's own tag index.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from seabox.config import QuotasConfig
from seabox.errors import Conflict, InvalidArgument, NotFound, QuotaExceeded
from seabox.model.image import Image
from seabox.model.tenant import Tenant
from seabox.model.reference import parse_reference
from seabox.model.container import Container
from seabox.protocol.images import HistoryEntry, ImageConfig, ImageInfo, NewImage, PullProgress
from seabox.protocol.placement import Placement
from seabox.services.links import NodeLinks
from seabox.services.events import EventBus
from seabox.store.quotas import QuotaStore
from seabox.store.repo import Store

_ID_PREFIX_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{4,64})$")


@dataclass
class TenantImage:
    """One image as one tenant names it: its tags, its digest names, or neither (an untagged import)."""

    id: str
    tags: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [*self.tags, *self.digests] or [self.id]


@dataclass(frozen=True)
class ResolvedImage:
    """An image a tenant referred to, with the name to record for it (the tenant's own, or the id)."""

    info: ImageInfo
    name: str
    pull: str | None  # the tenant's repo@digest name for it, which any node can pull; None for an import
    node: str  # a node that holds it


def to_model(info: ImageInfo, img: TenantImage) -> Image:
    cfg = info.config
    return Image(
        id=info.id,
        repo_tags=sorted(img.tags),
        repo_digests=sorted(img.digests),
        size=info.size,
        created=info.created,
        architecture=info.architecture,
        os=info.os,
        env=cfg.env,
        cmd=cfg.cmd,
        entrypoint=cfg.entrypoint,
        working_dir=cfg.working_dir,
        user=cfg.user,
        labels=cfg.labels,
        exposed_ports=cfg.exposed_ports,
        volumes=cfg.volumes,
        stop_signal=cfg.stop_signal,
        healthcheck=cfg.healthcheck,
        layers=info.layers,
    )


def _name_key(ref: str) -> str:
    """The stored form of a name: the canonical tag, or repo@digest for a digest reference."""
    parsed = parse_reference(ref)
    return f"{parsed.repo}@{parsed.digest}" if parsed.digest else parsed.name


class ImageService:
    """Images are stored once per node; each tenant sees only the names it pulled, imported or tagged."""

    def __init__(self, store: Store, links: NodeLinks, bus: EventBus, quotas: QuotaStore, limits: QuotasConfig) -> None:
        self.store = store
        self.quotas = quotas
        self.quota = limits.quota("images")
        self.links = links
        self.bus = bus
        self._bringing = 0  # pulls and imports in flight: they may name an image a release would delete
        self._deferred: set[str] = set()  # releases that wait for the last of them

    # the tenant's names ------------------------------------------------------------------
    def _images(self, tenant: Tenant) -> dict[str, TenantImage]:
        """The tenant's images by id, each with the names the tenant gave it (newest first)."""
        out: dict[str, TenantImage] = {}
        for ref, image_id in self.store.image_refs(tenant.id):
            img = out.setdefault(image_id, TenantImage(image_id))
            if "@" in ref:
                img.digests.append(ref)
            elif ref != image_id:
                img.tags.append(ref)
        return out

    def _match(self, tenant: Tenant, ref: str) -> tuple[TenantImage, str | None]:
        """The tenant's image that REF names, and the name matched (None when REF is an id or id prefix).

        An id the tenant never pulled or imported is a 404, exactly as if no such image existed.
        """
        images = self._images(tenant)
        m = _ID_PREFIX_RE.match(ref)
        if m:
            hits = [img for img in images.values() if img.id.removeprefix("sha256:").startswith(m.group(1))]
            if len(hits) == 1:
                return hits[0], None
            if len(hits) > 1:
                raise InvalidArgument(f"image id prefix {ref!r} is ambiguous: give more characters", field="image")
            if ref.startswith("sha256:") or len(m.group(1)) == 64:
                raise NotFound(f"no such image: {ref}", field="image")
        key = _name_key(ref)
        for img in images.values():
            if key in img.tags or key in img.digests:
                return img, key
        raise NotFound(f"no such image: {ref} (pull it first: seabox pull {ref})", field="image")

    def _add_name(self, tenant: Tenant, name: str, image_id: str) -> str | None:
        """Point the tenant's NAME at IMAGE_ID; returns the image NAME named before, if another one."""
        previous = self.store.image_ref(tenant.id, name)
        self.store.add_image_ref(tenant.id, name, image_id, quota=self.quota)
        if name != image_id:
            self.store.remove_image_refs(tenant.id, [image_id])  # named now: no longer an untagged import
        return previous if previous != image_id else None

    # queries -------------------------------------------------------------------------------
    async def resolve(self, tenant: Tenant, ref: str) -> ResolvedImage:
        img, name = self._match(tenant, ref)
        link, info = await self.links.image(img.id)
        pull = sorted(img.digests)[0] if img.digests else None
        return ResolvedImage(info, name or (sorted(img.tags) or [img.id])[0], pull, link.name)

    async def list(self, tenant: Tenant) -> list[Image]:
        out = []
        for img in self._images(tenant).values():
            try:
                out.append(to_model((await self.links.image(img.id))[1], img))
            except NotFound:
                continue
        return out

    async def inspect(self, tenant: Tenant, ref: str) -> Image:
        img, _ = self._match(tenant, ref)
        return to_model((await self.links.image(img.id))[1], img)

    # changes -------------------------------------------------------------------------------
    async def pull(
        self, tenant: Tenant, ref: str, progress: Callable[[PullProgress], None] | None = None
    ) -> Image:
        name = _name_key(ref)
        async with self._bringing_in():
            info = await self.links.default.pull(ref, progress)
            try:
                replaced = self._add_name(tenant, name, info.id)
            except QuotaExceeded:
                self._deferred.add(info.id)  # no tenant may name it now: it goes unless another one does
                raise
            for digest in info.repo_digests:  # the manifest digest this pull resolved to
                self.store.add_image_ref(tenant.id, digest, info.id, quota=self.quota)
        await self._release(replaced)
        await self.bus.emit(tenant.id, "image", "pull", info.id, name)
        return await self.inspect(tenant, name)

    async def import_archive(self, tenant: Tenant, path: Path) -> list[Image]:
        """Import an archive's images; the tenant gets the names the archive gives them (and only those)."""
        async with self._bringing_in():
            infos = await self.links.default.import_archive(path)
            new = {info.id for info in infos} - set(self._images(tenant))
            try:
                self.quotas.check(tenant.id, self.quota, adding=len(new))  # all of them, or none
            except QuotaExceeded:
                self._deferred.update(new)
                raise
            replaced = []
            for info in infos:
                if info.repo_tags:
                    replaced += [self._add_name(tenant, tag, info.id) for tag in info.repo_tags]
                elif info.id not in self._images(tenant):
                    self.store.add_image_ref(tenant.id, info.id, info.id, quota=self.quota)
        await self._release(*replaced)
        for info in infos:
            await self.bus.emit(tenant.id, "image", "import", info.id, ",".join(info.repo_tags))
        return [await self.inspect(tenant, info.id) for info in infos]

    async def import_rootfs(self, tenant: Tenant, path: Path, spec: NewImage, name: str | None) -> Image:
        """A new image from a filesystem tarball (`docker import`), named NAME for the tenant (or untagged)."""
        key = self._tag_key(name) if name else None
        async with self._bringing_in():
            info = await self.links.default.import_rootfs(path, spec)
            replaced = self._name_new(tenant, info, key)
        await self._release(replaced)
        await self.bus.emit(tenant.id, "image", "import", info.id, key or "")
        return await self.inspect(tenant, info.id)

    async def commit(self, tenant: Tenant, container: Container, spec: NewImage, name: str | None) -> Image:
        """A new image of the container's image with its filesystem changes on top (`docker commit`)."""
        key = self._tag_key(name) if name else None
        async with self._bringing_in():
            placement = Placement(container, tenant.id, tenant.index)
            info = await self.links.get(container.status.node).commit(placement, spec)
            replaced = self._name_new(tenant, info, key)
        await self._release(replaced)
        await self.bus.emit(tenant.id, "image", "commit", info.id, key or "")
        return await self.inspect(tenant, info.id)

    async def base_config(self, tenant: Tenant, container: Container) -> ImageConfig:
        """What `docker commit` starts from: the container's image config with the container's own settings."""
        config = (await self.links.image(container.spec.image_id))[1].config
        spec = container.spec
        config.env, config.cmd, config.entrypoint = list(spec.env), spec.cmd, spec.entrypoint
        config.working_dir, config.user, config.labels = spec.workdir, spec.user, dict(spec.labels)
        config.stop_signal = spec.stop_signal if spec.stop_signal != "SIGTERM" else config.stop_signal
        return config

    def _tag_key(self, name: str) -> str:
        parsed = parse_reference(name)
        if parsed.digest:
            raise InvalidArgument(f"cannot name a new image with a digest reference {name!r}: give a tag", field="repo")
        return parsed.name

    def _name_new(self, tenant: Tenant, info: ImageInfo, key: str | None) -> str | None:
        """Give the tenant the image a node just made, by KEY or untagged; the image goes if the quota refuses."""
        try:
            if key is not None:
                return self._add_name(tenant, key, info.id)
            if info.id not in self._images(tenant):
                self.store.add_image_ref(tenant.id, info.id, info.id, quota=self.quota)
            return None
        except QuotaExceeded:
            self._deferred.add(info.id)
            raise

    async def history(self, tenant: Tenant, ref: str) -> tuple[Image, list[HistoryEntry]]:
        img, _ = self._match(tenant, ref)
        link, info = await self.links.image(img.id)
        return to_model(info, img), await link.history(img.id)

    async def save(self, tenant: Tenant, refs: list[str], out: Path) -> None:
        """Write a docker-archive of the tenant's images REFS to OUT, each carrying the tenant's name given
        (all its tags when named by id), never another tenant's names."""
        chosen: dict[str, list[str]] = {}
        for ref in refs:
            img, name = self._match(tenant, ref)
            names = chosen.setdefault(img.id, [])
            for tag in ([name] if name and "@" not in name else sorted(img.tags)):
                if tag not in names:
                    names.append(tag)
        if not chosen:
            raise InvalidArgument("name at least one image to save", field="names")
        node = {(await self.links.image(i))[0].name for i in chosen}
        if len(node) > 1:
            raise Conflict("the images to save are on different nodes: save them one at a time")
        await self.links.get(node.pop()).save(list(chosen.items()), out)

    async def prune(self, tenant: Tenant, keep: Callable[[Image], bool], dangling_only: bool) -> list[Image]:
        """Remove the tenant's images no container of its uses, that are dangling (no name) if DANGLING_ONLY,
        and that KEEP does not keep; the images removed."""
        used = {c.spec.image_id for c in self.store.list_containers(tenant.id)}
        removed = []
        for image in await self.list(tenant):
            dangling = not image.repo_tags and not image.repo_digests
            if image.id in used or (dangling_only and not dangling) or keep(image):
                continue
            self.store.remove_image_refs(tenant.id, self._images(tenant)[image.id].names)
            await self.bus.emit(tenant.id, "image", "delete", image.id, image.id)
            await self._release(image.id)
            removed.append(image)
        return removed

    async def tag(self, tenant: Tenant, source: str, target: str) -> Image:
        """Give the tenant's image SOURCE the extra name TARGET (a tag, not a digest)."""
        img, _ = self._match(tenant, source)
        parsed = parse_reference(target)
        if parsed.digest:
            raise InvalidArgument(f"cannot tag with a digest reference {target!r}: give a tag", field="target")
        replaced = self._add_name(tenant, parsed.name, img.id)
        await self.bus.emit(tenant.id, "image", "tag", img.id, parsed.name)
        await self._release(replaced)
        return await self.inspect(tenant, parsed.name)

    async def remove(self, tenant: Tenant, ref: str, force: bool = False) -> list[str]:
        """Remove the tenant's name REF (all its names for an id); its last tag takes its digests along.

        Other tenants' names are untouched; the image itself goes from the node only when no tenant
        names it and no container uses it.
        """
        img, name = self._match(tenant, ref)
        other_tags = [t for t in img.tags if t != name]
        names = [name] if name is not None and other_tags else img.names
        if names == img.names:
            users = [c.name for c in self.store.list_containers(tenant.id) if c.spec.image_id == img.id]
            if users and not force:
                raise Conflict(f"image {ref} is used by container(s) {', '.join(users)}: remove them first, or force")
        self.store.remove_image_refs(tenant.id, names)
        await self.bus.emit(tenant.id, "image", "delete", img.id, ref)
        await self._release(img.id)
        return names

    @asynccontextmanager
    async def _bringing_in(self) -> AsyncIterator[None]:
        """Mark a pull or import in flight; releases asked for meanwhile run after the last one ends."""
        self._bringing += 1
        try:
            yield
        finally:
            self._bringing -= 1
            if not self._bringing and self._deferred:
                deferred, self._deferred = self._deferred, set()
                await self._release(*deferred)

    async def _release(self, *image_ids: str | None) -> None:
        """Delete each image from every node that is up if no tenant names it and no container (of anyone)
        uses it (nodes pull the images of the containers they run)."""
        if self._bringing:  # a pull in flight may be about to name it: decide once none is
            self._deferred.update(i for i in image_ids if i is not None)
            return
        for image_id in {i for i in image_ids if i is not None}:
            if self.store.image_needed(image_id):
                continue
            for link in self.links.up():
                try:
                    await link.remove_image(image_id)
                except NotFound:
                    continue

    async def release(self, image_id: str) -> None:
        """Called when a container that used IMAGE_ID is gone: the image goes too if nothing else needs it."""
        await self._release(image_id)
