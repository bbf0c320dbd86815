"""NodeLink.dial: a node's TCP connection to a port of one of its containers, through the embedded server's
in-process link and over the HTTP link of a remote node, with half-close both ways."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator

import httpx
import pytest

from seabox.config import load_config
from seabox.errors import Conflict, NotFound, UpstreamError
from seabox.model.node import NodeCapacity
from seabox.node.agent import NodeAgent
from seabox.node.local_link import LocalLink
from seabox.protocol.http_link import HttpNodeLink
from seabox.protocol.link import NodeLink
from seabox.protocol.streams import TcpStream
from tests.e2e.test_api import pull
from tests.e2e.test_cluster import _named_on
from tests.fixtures.cluster import NODE_LINK_PORT, Cluster
from tests.fixtures.server import Server

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for runc, netns and nftables"),
]

ECHO = ["nc", "-ll", "-p", "9000", "-e", "cat"]  # each connection: its bytes back, until it half-closes


async def _read_all(conn: TcpStream) -> bytes:
    out = b""
    while data := await asyncio.wait_for(conn.read(), 10):
        out += data
    return out


async def _echo_round(link: NodeLink, cid: str) -> bytes:
    for _ in range(100):  # nc may not listen yet right after the start
        try:
            conn = await link.dial(cid, 9000)
            break
        except UpstreamError:
            await asyncio.sleep(0.05)
    try:
        await conn.write(b"ping " * 30000)  # more than one frame and one read
        await conn.write(b"end")
        conn.close_write()  # cat sees EOF only through the half-close, and only then ends the connection
        return await _read_all(conn)
    finally:
        conn.close()


async def _refusals(link: NodeLink, running_quiet: str, stopped: str) -> list[type[Exception]]:
    raised = []
    for cid, port in ((running_quiet, 9000), (stopped, 9000), ("ab" * 32, 9000)):
        try:
            (await link.dial(cid, port)).close()
        except Exception as exc:
            raised.append(type(exc))
    return raised


def _dial_checks(link_of: Callable[[], NodeLink], echo: str, quiet: str, stopped: str) -> None:
    async def go() -> tuple[bytes, list[type[Exception]]]:
        link = link_of()
        try:
            return await _echo_round(link, echo), await _refusals(link, quiet, stopped)
        finally:
            await link.close()

    echoed, raised = asyncio.run(go())
    assert echoed == b"ping " * 30000 + b"end"
    assert raised == [UpstreamError, Conflict, NotFound]


def _containers(client: httpx.Client, image: str, make: Callable[..., dict]) -> tuple[str, str, str]:
    pull(client, image)
    echo = make(cmd=ECHO)["id"]
    quiet = make(cmd=["sleep", "300"])["id"]
    stopped = make(cmd=["true"])["id"]
    r = client.post(f"/v1/containers/{stopped}/wait")
    assert r.status_code == 200, r.text
    return echo, quiet, stopped


def _tenant(server: Server, name: str) -> Iterator[httpx.Client]:
    """A client of tenant NAME whose containers are removed afterwards."""
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": server.tenant(name)}, timeout=120) as client:
        yield client
        for c in client.get("/v1/containers", params={"all": "true"}).json():
            client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})


@pytest.fixture
def dialler(server: Server) -> Iterator[httpx.Client]:
    yield from _tenant(server, "dialler")


def test_the_embedded_node_dials_a_container_port_in_process(
    server: Server, dialler: httpx.Client, busybox_image: str
) -> None:
    def make(**spec: object) -> dict:
        r = dialler.post("/v1/containers", params={"start": "true"}, json={"image": busybox_image, **spec})
        assert r.status_code == 201, r.text
        return r.json()

    echo, quiet, stopped = _containers(dialler, busybox_image, make)
    # the server's own node agent, as the embedded server links it (it holds no state of its own)
    _dial_checks(lambda: LocalLink(NodeAgent(load_config(server.data_dir))), echo, quiet, stopped)


@pytest.fixture
def alice(cluster: Cluster) -> Iterator[httpx.Client]:
    yield from _tenant(cluster.server, "alice")


def test_a_remote_node_dials_a_container_port_over_its_http_link(
    cluster: Cluster, alice: httpx.Client, busybox_image: str
) -> None:
    node = cluster.nodes[1]
    echo, quiet, stopped = _containers(alice, busybox_image, lambda **spec: _named_on(
        cluster, alice, busybox_image, node.name, **spec))
    secret = json.loads((node.data_dir / "node.json").read_text())["link_secret"]

    def link() -> NodeLink:
        return HttpNodeLink(node.name, f"{node.address}:{NODE_LINK_PORT}", secret, NodeCapacity(node.name, 1 << 30, 1))

    _dial_checks(link, echo, quiet, stopped)
