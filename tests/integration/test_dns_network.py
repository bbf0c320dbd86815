"""Tenant resolvers on real tenant bridges (netns, veths, nftables): each tenant's containers reach their
own resolver on their gateway and get their own names and forwarded ones; nothing of another tenant's."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from seabox.config import NetworkConfig
from seabox.model.dns import container_names
from seabox.node.dns.resolvers import GATEWAY_SERVICES, Resolvers
from seabox.node.network import nft
from seabox.node.network.manager import Attachment, NodeNetwork
from seabox.node.network.names import NetNames
from tests.fixtures.dns import FakeUpstream, NetnsClient, upstream_on_host
from tests.integration.test_network import cid, host_ip

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and nftables"),
]

PID = os.getpid()
TABLE = f"seabox_dnstest_{PID}"
NAMES = NetNames.of_node(f"test-dns-{PID}", TABLE)
# Tenant indexes of this run: 1100..1299 of the default supernet, 4 per run (test_network uses 900..1099).
BASE = 1100 + (PID % 50) * 4
TENANT_A, TENANT_B, TENANT_C = BASE, BASE + 1, BASE + 2
UPSTREAM = "203.0.113.53"  # the node's upstream resolver, on a link of the host
UPSTREAM_LINK = f"sbdns{PID % 100000}"


def entries(tenant: str, name: str, index: int) -> list[tuple[str, list[str]]]:
    return [(str(host_ip(index, 2)), container_names(name, "e" * 64, tenant))]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with upstream_on_host(UPSTREAM, UPSTREAM_LINK, {"outside.example": "198.51.100.7"}) as fake:
        yield fake


@pytest.fixture
def net(tmp_path: Path) -> Iterator[NodeNetwork]:
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(f"nameserver 127.0.0.53\nnameserver {UPSTREAM}\n")
    node = NodeNetwork(NetworkConfig(), tmp_path / "run", NAMES, gateway_services=GATEWAY_SERVICES,
                       resolv_conf=resolv_conf)
    try:
        yield node
    finally:
        node.teardown()
        assert not nft.table_exists(TABLE)


@pytest.fixture
async def resolvers(net: NodeNetwork, upstream: FakeUpstream) -> AsyncIterator[Resolvers]:
    r = Resolvers(net, net.resolv_conf)
    yield r
    await r.close()


async def ask(netns_path: Path, server: IPv4Address, name: str, tcp: bool = False) -> dns.message.Message | None:
    """The answer to an A query for name sent from the netns, or None if none came (in a thread: the
    resolvers answer on this event loop)."""

    def blocking() -> dns.message.Message | None:
        with NetnsClient(netns_path, str(server)) as client:
            return client.ask(name, tcp=tcp)

    return await asyncio.to_thread(blocking)


async def attach(net: NodeNetwork, tenant_index: int, n: int) -> Attachment:
    return await asyncio.to_thread(net.attach, cid(), tenant_index, host_ip(tenant_index, n))


def addresses(response: dns.message.Message | None) -> list[str]:
    assert response is not None, "no answer"
    return sorted(r.address for rrset in response.answer for r in rrset)


def rcode(response: dns.message.Message | None) -> dns.rcode.Rcode:
    assert response is not None, "no answer"
    return response.rcode()


async def test_each_tenant_resolves_its_own_names_on_its_gateway_and_nothing_of_the_others(
    net: NodeNetwork, resolvers: Resolvers, upstream: FakeUpstream
) -> None:
    a = await attach(net, TENANT_A, 3)
    b = await attach(net, TENANT_B, 3)
    await resolvers.converge({TENANT_A: entries("alice", "web", TENANT_A), TENANT_B: entries("bob", "api", TENANT_B)})
    for tcp in (False, True):
        assert addresses(await ask(a.netns_path, a.gateway, "web", tcp)) == [str(host_ip(TENANT_A, 2))]
        assert addresses(await ask(a.netns_path, a.gateway, "web.alice.seabox.internal", tcp)) == [str(host_ip(TENANT_A, 2))]
        assert addresses(await ask(b.netns_path, b.gateway, "api", tcp)) == [str(host_ip(TENANT_B, 2))]
    for name in ("api", "api.bob.seabox.internal"):
        assert rcode(await ask(a.netns_path, a.gateway, name)) == dns.rcode.NXDOMAIN
    assert rcode(await ask(b.netns_path, b.gateway, "web")) == dns.rcode.NXDOMAIN
    # another tenant's gateway answers nothing (the table drops it; the socket is bound to A's bridge)
    assert await ask(b.netns_path, a.gateway, "web") is None
    # forwarded to the node's upstream (the loopback stub of resolv.conf is not one)
    assert addresses(await ask(a.netns_path, a.gateway, "outside.example")) == ["198.51.100.7"]
    assert upstream.asked("outside.example") == 1
    assert upstream.asked("api") == 0 and upstream.asked("api.bob.seabox.internal") == 0


async def test_records_follow_each_converge_and_a_tenant_gone_from_the_node_is_no_longer_served(
    net: NodeNetwork, resolvers: Resolvers
) -> None:
    a = await attach(net, TENANT_A, 3)
    await resolvers.converge({TENANT_A: entries("alice", "web", TENANT_A)})
    assert addresses(await ask(a.netns_path, a.gateway, "web")) == [str(host_ip(TENANT_A, 2))]
    await resolvers.converge({TENANT_A: entries("alice", "shop", TENANT_A)})  # renamed
    assert rcode(await ask(a.netns_path, a.gateway, "web")) == dns.rcode.NXDOMAIN
    assert addresses(await ask(a.netns_path, a.gateway, "shop")) == [str(host_ip(TENANT_A, 2))]
    await resolvers.converge({})
    assert await ask(a.netns_path, a.gateway, "shop") is None


async def test_a_resolver_starts_before_the_tenants_first_container_attaches(
    net: NodeNetwork, resolvers: Resolvers
) -> None:
    await resolvers.converge({TENANT_C: entries("carol", "db", TENANT_C)})  # makes the bridge
    c = await attach(net, TENANT_C, 3)
    assert addresses(await ask(c.netns_path, c.gateway, "db")) == [str(host_ip(TENANT_C, 2))]


async def test_a_bridge_made_again_gets_its_resolver_bound_again(net: NodeNetwork, resolvers: Resolvers) -> None:
    a = await attach(net, TENANT_A, 3)
    await resolvers.converge({TENANT_A: entries("alice", "web", TENANT_A)})
    await asyncio.to_thread(net.reconcile, set(), set())  # the node dropped the tenant's bridge (and the container's veth)
    a = await attach(net, TENANT_A, 4)
    assert await ask(a.netns_path, a.gateway, "web") is None  # the old sockets are bound to the bridge that went
    await resolvers.converge({TENANT_A: entries("alice", "web", TENANT_A)})
    assert addresses(await ask(a.netns_path, a.gateway, "web")) == [str(host_ip(TENANT_A, 2))]
