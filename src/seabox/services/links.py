"""The links to the nodes this server can reach, by node name: in process, or over HTTP from the node's record."""

from __future__ import annotations

import time
from collections.abc import Iterator

from seabox.errors import Conflict, NotFound
from seabox.model.node import NodeCapacity
from seabox.protocol.images import ImageInfo
from seabox.protocol.http_link import HttpNodeLink
from seabox.protocol.link import NodeLink
from seabox.store.nodes import NodeStore


class NodeLinks:
    """The embedded node's in-process link if there is one, and an HTTP link per remote node, made on first use."""

    def __init__(self, nodes: NodeStore, down_after: float, local: NodeLink | None = None) -> None:
        self.nodes = nodes
        self.down_after = down_after
        self.local = local
        self._links: dict[str, NodeLink] = {local.name: local} if local else {}

    def get(self, node: str | None) -> NodeLink:
        """The link to NODE; a 409 naming the node if this server cannot reach it."""
        link = self._links.get(node or "")
        if link is not None:
            return link
        record = self.nodes.get(node or "")
        secret = self.nodes.link_secret(record.name)
        if secret is None:
            raise Conflict(f"node {record.name} is not reachable from this server (it is another server's own node)")
        link = HttpNodeLink(record.name, record.address, secret, NodeCapacity(record.name, record.memory_bytes, record.cpus))
        self._links[record.name] = link
        return link

    @property
    def default(self) -> NodeLink:
        """The node that pulls and imports images, and holds volumes made before any container names them:
        the local one, else the first node by name that is up (cordoned and draining ones included)."""
        if self.local is not None:
            return self.local
        up = self.up()
        if not up:
            raise Conflict("no node is up: join one with `seabox node --join URL --token TOKEN`")
        return up[0]

    def up(self) -> list[NodeLink]:
        """A link to every node that is not down, by name (the local one first)."""
        now = time.time()
        names = [n.name for n in self.nodes.list() if n.state(now, self.down_after) != "down"]
        local = [self.local] if self.local is not None else []
        return local + [self.get(name) for name in names if self.local is None or name != self.local.name]

    async def image(self, image_id: str) -> tuple[NodeLink, ImageInfo]:
        """A node that is up and holds IMAGE_ID (the default one if it does), and what it says of the image."""
        for link in self.up():
            try:
                return link, await link.image(image_id)
            except NotFound:
                continue
        raise NotFound(f"no such image: {image_id} (no node that is up holds it)", field="image")

    def __iter__(self) -> Iterator[NodeLink]:
        return iter(list(self._links.values()))
