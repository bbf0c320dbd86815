"""The node link's size answers over HTTP (a remote node): a container's writable layer, the bytes a volume removal freed."""

from __future__ import annotations

import pytest
from aiohttp import web

from seabox.errors import NotFound
from seabox.model.node import NodeCapacity
from seabox.node.link_server import create_link_app
from seabox.protocol.http_link import HttpNodeLink

SECRET = "s" * 40
CID = "c" * 64


class FakeLink:
    """The two calls of the node's own link the routes use."""

    async def layer_size(self, cid: str) -> int:
        if cid != CID:
            raise NotFound(f"no such container: {cid}")
        return 5 << 20

    async def remove_volume(self, tenant_id: str, name: str) -> int:
        return 3 << 20 if (tenant_id, name) == ("t1", "data") else 0


async def _serve() -> tuple[web.AppRunner, str]:
    async def never(cid: str) -> None:
        return None

    runner = web.AppRunner(create_link_app(FakeLink(), SECRET, never))  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"127.0.0.1:{port}"


async def test_layer_size_and_volume_removal_answer_their_bytes_over_http() -> None:
    runner, address = await _serve()
    link = HttpNodeLink("n1", address, SECRET, NodeCapacity("n1", 1 << 30, 1))
    try:
        assert await link.layer_size(CID) == 5 << 20
        assert await link.remove_volume("t1", "data") == 3 << 20
        with pytest.raises(NotFound, match="no such container"):
            await link.layer_size("d" * 64)
    finally:
        await link.close()
        await runner.cleanup()
