"""A registry the operator allowed cannot send a pull to internal addresses: redirects and token realms meet the pull egress table."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from seabox.config import RegistryConfig
from seabox.errors import UpstreamError
from seabox.node.images.store import ImageStore
from seabox.node.network.nft import apply, delete_batch, table_exists
from seabox.node.network.pull_egress import PullEgress
from tests.fixtures.server import free_port

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (cgroups, nftables, image unpacking)"),
]

_PASSED_HEADERS = ("Content-Type", "Content-Length", "Docker-Content-Digest", "Docker-Distribution-Api-Version")


@dataclass
class Listener:
    """A loopback TCP port that counts the connections made to it (stands for a host-internal service)."""

    address: str
    connections: int = 0


@asynccontextmanager
async def internal_service() -> AsyncIterator[Listener]:
    listener = Listener(f"127.0.0.1:{free_port()}")

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        writer.close()

    host, port = listener.address.split(":")
    server = await asyncio.start_server(accept, host, int(port))
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def front(upstream: str, answer: Callable[[web.Request], web.StreamResponse | None]) -> AsyncIterator[str]:
    """A registry on a free loopback port passing requests on to UPSTREAM unless answer() answers them."""
    session = aiohttp.ClientSession()

    async def handle(request: web.Request) -> web.StreamResponse:
        own = answer(request)
        if own is not None:
            return own
        async with session.request(request.method, f"http://{upstream}{request.rel_url}",
                                   headers={"Accept": request.headers.get("Accept", "*/*")},
                                   allow_redirects=False) as reply:
            body = await reply.read()
            headers = {k: reply.headers[k] for k in _PASSED_HEADERS if k in reply.headers}
            return web.Response(status=reply.status, body=body if request.method != "HEAD" else None, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await session.close()


def _blobs_to(target: str) -> Callable[[web.Request], web.StreamResponse | None]:
    def answer(request: web.Request) -> web.StreamResponse | None:
        if "/blobs/" in request.path:
            return web.Response(status=307, headers={"Location": f"http://{target}{request.path}"})
        return None

    return answer


def _token_realm(target: str) -> Callable[[web.Request], web.StreamResponse | None]:
    def answer(request: web.Request) -> web.StreamResponse | None:
        challenge = f'Bearer realm="http://{target}/token",service="registry"'
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    return answer


def _store(tmp_path: Path, registry: str, host: str, egress: PullEgress) -> ImageStore:
    config = RegistryConfig(insecure=[registry, host], allow_internal=[registry, host])
    return ImageStore(tmp_path / "images", config, egress=egress)


async def _pull_behind(
    tmp_path: Path, registry: str, repository: str, egress: PullEgress,
    answer: Callable[[str], Callable[[web.Request], web.StreamResponse | None]],
) -> None:
    """Pull through a registry whose answers point at an internal service: refused, and the service got nothing."""
    async with internal_service() as secret, front(registry, answer(secret.address)) as evil:
        with pytest.raises(UpstreamError) as failed:
            await _store(tmp_path, registry, evil, egress).pull(f"{evil}/{repository}")
    assert failed.value.message == f"cannot reach registry {evil}"
    assert secret.connections == 0


async def test_a_blob_redirect_to_an_internal_address_is_never_followed(
    tmp_path: Path, registry: str, busybox_image: str, pull_egress: PullEgress
) -> None:
    repository = busybox_image.split("/", 1)[1]
    await _pull_behind(tmp_path, registry, repository, pull_egress, _blobs_to)
    # a closed port behind the redirect gets the same answer: the tenant learns nothing of what listens
    closed = f"127.0.0.1:{free_port()}"
    async with front(registry, _blobs_to(closed)) as evil:
        with pytest.raises(UpstreamError) as again:
            await _store(tmp_path, registry, evil, pull_egress).pull(f"{evil}/{repository}")
    assert again.value.message == f"cannot reach registry {evil}"


async def test_a_redirect_to_an_allowed_registry_is_followed(
    tmp_path: Path, registry: str, busybox_image: str, pull_egress: PullEgress
) -> None:
    repository = busybox_image.split("/", 1)[1]
    async with front(registry, _blobs_to(registry)) as mirror:
        info = await _store(tmp_path, registry, mirror, pull_egress).pull(f"{mirror}/{repository}")
    assert info.repo_tags == [f"{mirror}/{repository}"]


async def test_a_token_realm_on_an_internal_address_gets_no_request(
    tmp_path: Path, registry: str, busybox_image: str, pull_egress: PullEgress
) -> None:
    await _pull_behind(tmp_path, registry, busybox_image.split("/", 1)[1], pull_egress, _token_realm)


def test_the_pull_table_and_cgroup_come_back_when_removed(pull_egress: PullEgress) -> None:
    cgroup = pull_egress.ensure()
    assert table_exists(pull_egress.table)
    apply(delete_batch(pull_egress.table))  # removed behind the node's back: the next pull rebuilds it
    assert pull_egress.ensure() == cgroup and table_exists(pull_egress.table)
    pull_egress.teardown()
    assert not cgroup.exists() and not table_exists(pull_egress.table)
    assert pull_egress.ensure() == cgroup and (cgroup / "cgroup.procs").exists()
