"""A tenant resolver on loopback sockets (bound to lo as it is to a bridge): its answers over UDP and TCP,
forwarding to a fake upstream, and its limits against a flooding tenant."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address, IPv4Network

import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import dns.rcode
import pytest

from seabox.model.dns import container_names
from seabox.node.dns.forward import Forwarder
from seabox.node.dns.server import TenantResolver
from seabox.node.dns.zone import Zone
from tests.fixtures.dns import FakeUpstream
from tests.fixtures.server import free_port

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="SO_BINDTODEVICE needs CAP_NET_RAW"),
]

HOST = "127.0.0.1"
TENANT = IPv4Network("127.0.0.0/30")  # the resolver answers these sources only
ZONE = Zone.of([("10.208.1.2", container_names("web", "ab" * 32, "alice"))], IPv4Network("10.208.0.0/12"))
OUTSIDE = {"outside.example": "203.0.113.7"}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(HOST, OUTSIDE) as fake:
        yield fake


async def serve(forwarder: Forwarder, **limits: int) -> TenantResolver:
    resolver = TenantResolver("lo", IPv4Address(HOST), TENANT, ZONE, forwarder, port=free_port(), **limits)
    await resolver.start()
    return resolver


@pytest.fixture
async def resolver(upstream: FakeUpstream) -> AsyncIterator[TenantResolver]:
    r = await serve(Forwarder([IPv4Address(HOST)], port=upstream.port))
    yield r
    await r.close()


async def udp(r: TenantResolver, name: str, rdtype: str = "A", timeout: float = 2, **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return await dns.asyncquery.udp(query, HOST, timeout=timeout, port=r.port)


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(r.address for rrset in response.answer for r in rrset)


async def test_answers_its_tenants_names_over_udp_and_tcp(resolver: TenantResolver, upstream: FakeUpstream) -> None:
    assert addresses(await udp(resolver, "web")) == ["10.208.1.2"]
    tcp = await dns.asyncquery.tcp(dns.message.make_query("web.alice.seabox.internal", "A"), HOST, timeout=2,
                                   port=resolver.port)
    assert addresses(tcp) == ["10.208.1.2"]
    assert upstream.questions == []


async def test_forwards_other_names_and_keeps_internal_ones(resolver: TenantResolver, upstream: FakeUpstream) -> None:
    response = await udp(resolver, "outside.example")
    assert addresses(response) == ["203.0.113.7"] and response.rcode() == dns.rcode.NOERROR
    missing = await udp(resolver, "missing.example")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    tcp = await dns.asyncquery.tcp(dns.message.make_query("outside.example", "A"), HOST, timeout=2, port=resolver.port)
    assert addresses(tcp) == ["203.0.113.7"]
    for name in ("web.bob.seabox.internal", "nope"):
        assert (await udp(resolver, name)).rcode() == dns.rcode.NXDOMAIN
    assert upstream.asked("outside.example") == 2 and upstream.asked("missing.example") == 1
    assert upstream.asked("web.bob.seabox.internal") == 0 and upstream.asked("nope") == 0


async def test_servfail_when_no_upstream_answers() -> None:
    with FakeUpstream(HOST, OUTSIDE, answer=False) as silent:
        r = await serve(Forwarder([IPv4Address(HOST)], port=silent.port, timeout=0.3, total_timeout=0.6))
        try:
            started = time.monotonic()
            assert (await udp(r, "outside.example")).rcode() == dns.rcode.SERVFAIL
            assert time.monotonic() - started < 1.5
        finally:
            await r.close()
        assert silent.asked("outside.example") >= 1


async def test_the_next_upstream_answers_when_the_first_is_silent() -> None:
    with FakeUpstream(HOST, OUTSIDE, answer=False) as silent, FakeUpstream("127.0.0.2", OUTSIDE, port=silent.port) as ok:
        r = await serve(Forwarder([IPv4Address(HOST), IPv4Address("127.0.0.2")], port=silent.port, timeout=0.3))
        try:
            assert addresses(await udp(r, "outside.example")) == ["203.0.113.7"]
        finally:
            await r.close()
        assert silent.asked("outside.example") == 1 and ok.asked("outside.example") == 1


async def test_a_flood_gets_servfail_beyond_the_inflight_cap_and_local_names_still_answer() -> None:
    with FakeUpstream(HOST, OUTSIDE, delay=1.0) as slow:
        r = await serve(Forwarder([IPv4Address(HOST)], port=slow.port), max_inflight=2)
        try:
            flood = [asyncio.create_task(udp(r, "outside.example", timeout=3)) for _ in range(6)]
            await asyncio.sleep(0.2)
            started = time.monotonic()
            assert addresses(await udp(r, "web")) == ["10.208.1.2"]
            assert time.monotonic() - started < 0.5  # not queued behind the flood
            codes = sorted(m.rcode() for m in await asyncio.gather(*flood))
            assert codes == [dns.rcode.NOERROR] * 2 + [dns.rcode.SERVFAIL] * 4
        finally:
            await r.close()
        assert slow.asked("outside.example") == 2


async def test_oversized_queries_and_foreign_sources_get_nothing(resolver: TenantResolver) -> None:
    padded = dns.message.make_query("web", "A", use_edns=0, options=[dns.edns.GenericOption(65001, b"x" * 600)])
    with pytest.raises(dns.exception.Timeout):
        await dns.asyncquery.udp(padded, HOST, timeout=0.5, port=resolver.port)
    query = dns.message.make_query("web", "A")
    with pytest.raises(dns.exception.Timeout):  # 127.0.0.9 is not in the tenant's subnet
        await dns.asyncquery.udp(query, HOST, timeout=0.5, port=resolver.port, source="127.0.0.9")
    assert addresses(await udp(resolver, "web")) == ["10.208.1.2"]


async def test_tcp_connections_beyond_the_cap_are_closed_and_idle_ones_counted(upstream: FakeUpstream) -> None:
    r = await serve(Forwarder([IPv4Address(HOST)], port=upstream.port), max_tcp=1)
    try:
        _, idle = await asyncio.open_connection(HOST, r.port)
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection(HOST, r.port)
        writer.write(dns.message.make_query("web", "A").to_wire(prepend_length=True))
        try:
            assert await asyncio.wait_for(reader.read(), 2) == b""  # closed, unanswered
        except ConnectionResetError:  # closed with the query unread
            pass
        writer.close()
        idle.close()
        await asyncio.sleep(0.1)
        tcp = await dns.asyncquery.tcp(dns.message.make_query("web", "A"), HOST, timeout=2, port=r.port)
        assert addresses(tcp) == ["10.208.1.2"]
    finally:
        await r.close()


async def test_update_swaps_the_zone(resolver: TenantResolver) -> None:
    renamed = Zone.of([("10.208.1.2", container_names("shop", "ab" * 32, "alice"))])
    resolver.update(renamed, resolver.forwarder)
    assert (await udp(resolver, "web")).rcode() == dns.rcode.NXDOMAIN
    assert addresses(await udp(resolver, "shop")) == ["10.208.1.2"]
