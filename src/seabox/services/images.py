"""A tenant's images: pull, import, list, inspect and remove, over the node's shared image store."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from seabox.errors import Conflict, InvalidArgument, NotFound
from seabox.model.image import Image
from seabox.model.tenant import Tenant
from seabox.node.agent import NodeAgent
from seabox.node.images.reference import parse_reference
from seabox.node.images.store import ImageInfo, PullProgress
from seabox.services.events import EventBus
from seabox.store.repo import Store

_ID_PREFIX_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{4,64})$")


def to_model(info: ImageInfo, tags: list[str]) -> Image:
    cfg = info.config
    return Image(
        id=info.id,
        repo_tags=tags,
        repo_digests=[d for d in info.repo_digests if any(d.split("@")[0] == t.rsplit(":", 1)[0] for t in tags)],
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
    )


class ImageService:
    """Images are stored once per node; each tenant sees only the references it pulled or imported."""

    def __init__(self, store: Store, agent: NodeAgent, bus: EventBus) -> None:
        self.store = store
        self.agent = agent
        self.bus = bus

    def _refs(self, tenant: Tenant) -> dict[str, str]:
        return {ref: image_id for _, ref, image_id in self.store.image_refs(tenant.id)}

    def _match(self, tenant: Tenant, ref: str) -> tuple[str, list[str]]:
        """(image id, the tenant's refs that REF names: one tag, or all of an image's refs for an id)."""
        refs = self._refs(tenant)
        m = _ID_PREFIX_RE.match(ref)
        if m:
            ids = {i for i in refs.values() if i.removeprefix("sha256:").startswith(m.group(1))}
            if len(ids) == 1:
                image_id = ids.pop()
                return image_id, [r for r, i in refs.items() if i == image_id]
            if len(ids) > 1:
                raise InvalidArgument(f"image id prefix {ref!r} is ambiguous: give more characters", field="image")
        name = parse_reference(ref).name
        if name in refs:
            return refs[name], [name]
        raise NotFound(f"no such image: {ref} (pull it first: seabox pull {ref})", field="image")

    def resolve(self, tenant: Tenant, ref: str) -> ImageInfo:
        image_id, _ = self._match(tenant, ref)
        return self.agent.images.get(image_id)

    def list(self, tenant: Tenant) -> list[Image]:
        by_id: dict[str, list[str]] = {}
        for ref, image_id in self._refs(tenant).items():
            by_id.setdefault(image_id, [])
            if ref != image_id:
                by_id[image_id].append(ref)
        out = []
        for image_id, tags in by_id.items():
            try:
                out.append(to_model(self.agent.images.get(image_id), sorted(tags)))
            except NotFound:
                continue
        return out

    def inspect(self, tenant: Tenant, ref: str) -> Image:
        image_id, _ = self._match(tenant, ref)
        tags = [r for r, i in self._refs(tenant).items() if i == image_id and r != image_id]
        return to_model(self.agent.images.get(image_id), sorted(tags))

    async def pull(
        self, tenant: Tenant, ref: str, progress: Callable[[PullProgress], None] | None = None
    ) -> Image:
        name = parse_reference(ref).name
        info = await self.agent.images.pull(ref, progress)
        self.store.add_image_ref(tenant.id, name, info.id)
        await self.bus.emit(tenant.id, "image", "pull", info.id, name)
        return self.inspect(tenant, name)

    async def import_archive(self, tenant: Tenant, path: Path) -> list[Image]:
        infos = await self.agent.images.import_archive(path)
        for info in infos:
            for ref in info.repo_tags or [info.id]:
                self.store.add_image_ref(tenant.id, ref, info.id)
            await self.bus.emit(tenant.id, "image", "import", info.id, ",".join(info.repo_tags))
        return [self.inspect(tenant, info.id) for info in infos]

    async def remove(self, tenant: Tenant, ref: str, force: bool = False) -> list[str]:
        """Untag REF for this tenant; the image itself goes when no tenant and no container uses it."""
        image_id, refs = self._match(tenant, ref)
        remaining = [r for r, i in self._refs(tenant).items() if i == image_id and r not in refs]
        users = [c.name for c in self.store.list_containers(tenant.id) if c.spec.image_id == image_id]
        if users and not remaining and not force:
            raise Conflict(f"image {ref} is used by container(s) {', '.join(users)}: remove them first, or force")
        self.store.remove_image_refs(tenant.id, refs)
        await self.bus.emit(tenant.id, "image", "delete", image_id, ref)
        still_referenced = any(i == image_id for _, _, i in self.store.image_refs())
        in_use = {c.spec.image_id for c in self.store.list_containers()}
        if not still_referenced and image_id not in in_use:
            await self.agent.images.remove(image_id)
        return refs
