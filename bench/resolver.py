"""The `dns` figure: query latency through a tenant resolver (a tenant name, and a name it forwards) against
the same query sent straight to the upstream it forwards to, in the same run (root: the resolver's
sockets are bound to a device, here lo)."""

from __future__ import annotations

import asyncio
import os
import time
from ipaddress import IPv4Address, IPv4Network

import dns.asyncquery
import dns.message

from bench.results import report
from seabox.model.dns import container_names
from seabox.node.dns.forward import Forwarder
from seabox.node.dns.server import TenantResolver
from seabox.node.dns.zone import Zone
from tests.fixtures.dns import FakeUpstream
from tests.fixtures.server import free_port

QUERIES = int(os.environ.get("BENCH_DNS_QUERIES", "500"))
HOST = "127.0.0.1"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _latencies(name: str, port: int) -> list[float]:
    """Milliseconds of QUERIES sequential UDP A queries for name to HOST:port (after 20 unmeasured)."""
    times = []
    for i in range(QUERIES + 20):
        query = dns.message.make_query(name, "A")
        t0 = time.perf_counter()
        await dns.asyncquery.udp(query, HOST, timeout=2, port=port)
        if i >= 20:
            times.append((time.perf_counter() - t0) * 1000)
    return times


async def _measure() -> dict[str, list[float]]:
    with FakeUpstream(HOST, {"outside.example": "203.0.113.7"}) as upstream:
        zone = Zone.of([("10.208.1.2", container_names("web", "ab" * 32, "alice"))])
        resolver = TenantResolver("lo", IPv4Address(HOST), IPv4Network("127.0.0.0/8"), zone,
                                  Forwarder([IPv4Address(HOST)], port=upstream.port), port=free_port())
        await resolver.start()
        try:
            return {
                "local": await _latencies("web", resolver.port),
                "forwarded": await _latencies("outside.example", resolver.port),
                "direct": await _latencies("outside.example", upstream.port),
            }
        finally:
            await resolver.close()


def main() -> None:
    got = asyncio.run(_measure())
    direct = pct(got["direct"], 0.5)
    rows = []
    for label, key in (("a tenant name (answered by the resolver)", "local"),
                       ("a forwarded name (resolver + upstream)", "forwarded")):
        for q, tag in ((0.5, "p50"), (0.95, "p95")):
            ours, peer = pct(got[key], q), pct(got["direct"], q)
            rows.append((f"DNS query latency, {label}, {tag} (peer: the same query straight to the upstream)",
                         f"{ours:.3f} ms", f"{peer:.3f} ms", f"{ours / peer:.2f}x"))
    notes = (f"{QUERIES} sequential UDP queries per row from a dnspython client on this host, over loopback; "
             "the upstream is the tests' fake resolver (dnspython in Python threads), so the forwarded row's "
             f"overhead is the tenant resolver's own (parse, question rebuilt, fresh socket and id, relay); "
             f"direct p50 {direct:.3f} ms.")
    report("dns", rows, "Tenant resolver latency (`make bench FIGURES=dns`, root).", notes)
