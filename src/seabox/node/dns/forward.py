"""Relays a tenant's question to the node's upstream resolvers: one question, bounded time, SERVFAIL when none answers.

The node sends upstream only a query it builds itself from the tenant's question (name, type,
class and the RD flag), from a fresh socket and id, and only to the upstreams it was given: a
tenant chooses neither where the node sends nor any other byte of what it sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from ipaddress import IPv4Address

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from seabox.node.dns.zone import MAX_UDP_PAYLOAD, error, relay

log = logging.getLogger(__name__)

DNS_PORT = 53
# How long one upstream gets to answer, and a question in all (a stub resolver retries after ~5 s).
UPSTREAM_TIMEOUT = 1.5
TOTAL_TIMEOUT = 3.0
# An upstream answering these is asked no more than the others: the next one is tried.
_TRY_NEXT = {dns.rcode.SERVFAIL, dns.rcode.REFUSED}


class Forwarder:
    """The node's upstream resolvers, asked in order."""

    def __init__(
        self,
        upstreams: Sequence[IPv4Address],
        *,
        port: int = DNS_PORT,
        timeout: float = UPSTREAM_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
    ) -> None:
        self.upstreams = tuple(upstreams)
        self.port = port
        self.timeout = timeout
        self.total_timeout = total_timeout

    async def resolve(self, query: dns.message.Message) -> dns.message.Message:
        """The answer to query's (single) question from the first upstream that gives one, else SERVFAIL."""
        question = query.question[0]
        outgoing = dns.message.make_query(
            question.name, question.rdtype, question.rdclass, use_edns=0, payload=MAX_UDP_PAYLOAD,
            flags=query.flags & dns.flags.RD,
        )
        deadline = time.monotonic() + self.total_timeout
        fallback: dns.message.Message | None = None
        for upstream in self.upstreams:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                reply, _ = await asyncio.wait_for(
                    dns.asyncquery.udp_with_fallback(
                        outgoing, str(upstream), timeout=min(self.timeout, remaining), port=self.port,
                        ignore_unexpected=True,  # a stray or spoofed datagram does not end the wait
                    ),
                    timeout=remaining,
                )
            except (TimeoutError, dns.exception.DNSException, OSError, ValueError) as exc:
                log.info("upstream resolver %s did not answer %s: %s", upstream, question.name, exc or type(exc).__name__)
                continue
            if reply.rcode() not in _TRY_NEXT:
                return relay(query, reply)
            fallback = fallback or reply
        if fallback is not None:
            return relay(query, fallback)
        return error(query, dns.rcode.SERVFAIL)
