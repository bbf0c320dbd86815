"""A tenant's DNS records and the answers its resolver builds from them (pure: dnspython messages in and out).

The records are data, never code: a zone is built from the tenant's hosts entries of the batch
(address -> names; containers today, and whatever else the control plane puts there, such as
service names, tomorrow).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.reversename

from seabox.model.dns import INTERNAL_DOMAIN
from seabox.protocol.assignments import HostsEntry

log = logging.getLogger(__name__)

INTERNAL = dns.name.from_text(INTERNAL_DOMAIN)
# Records change within a second of a create, rename or remove: caches must not hold them longer.
TTL = 1
# The largest answer a tenant's UDP query gets (the EDNS size that avoids fragmentation).
MAX_UDP_PAYLOAD = 1232
_REFUSED_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR}


@dataclass(frozen=True)
class Zone:
    """What one tenant's resolver knows: names to addresses, addresses (as reverse names) to names."""

    addresses: Mapping[dns.name.Name, tuple[IPv4Address, ...]] = field(default_factory=dict)
    pointers: Mapping[dns.name.Name, tuple[dns.name.Name, ...]] = field(default_factory=dict)
    # Reverse names of addresses in here are answered here (NXDOMAIN when unknown), never forwarded.
    reverse_scope: IPv4Network | None = None

    @classmethod
    def of(cls, entries: Iterable[HostsEntry], reverse_scope: IPv4Network | None = None) -> Zone:
        """The zone of a tenant's hosts entries; an entry that makes no DNS record is logged and left out."""
        addresses: dict[dns.name.Name, list[IPv4Address]] = {}
        pointers: dict[dns.name.Name, list[dns.name.Name]] = {}
        for address, names in entries:
            try:
                ip = IPv4Address(address)
                parsed = [dns.name.from_text(n) for n in names]
            except (ValueError, dns.exception.DNSException) as exc:
                log.warning("no DNS record for %s %s: %s", address, names, exc)
                continue
            for name in parsed:
                found = addresses.setdefault(name, [])
                if ip not in found:
                    found.append(ip)
            if parsed:
                fqdns = [n for n in parsed if n.is_subdomain(INTERNAL)]
                target = (fqdns or parsed)[0]
                reverse = dns.reversename.from_address(str(ip))
                if target not in pointers.setdefault(reverse, []):
                    pointers[reverse].append(target)
        return cls(
            {n: tuple(ips) for n, ips in addresses.items()},
            {n: tuple(targets) for n, targets in pointers.items()},
            reverse_scope,
        )

    def is_local(self, name: dns.name.Name) -> bool:
        """Whether name is this resolver's to answer (and so never forwarded): a single label, a name
        under seabox.internal, or the reverse name of an address in reverse_scope."""
        if len(name.labels) == 2 or name.is_subdomain(INTERNAL):  # one label, then the root's
            return True
        if self.reverse_scope is None or not name.is_subdomain(dns.reversename.ipv4_reverse_domain):
            return False
        try:
            address = IPv4Address(dns.reversename.to_address(name))
        except (ValueError, dns.exception.DNSException):
            return False  # a partial reverse name (a whole /8, /16 ...): not one address
        return address in self.reverse_scope


def parse_query(wire: bytes) -> dns.message.Message | None:
    """The query in wire, or None for what is not one (garbage, or a response: never answered)."""
    try:
        query = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError):
        return None
    return None if query.flags & dns.flags.QR else query


def answer(query: dns.message.Message, zone: Zone) -> dns.message.Message | None:
    """The resolver's own answer to query, or None when it is to be forwarded upstream."""
    if query.opcode() != dns.opcode.QUERY:
        return error(query, dns.rcode.NOTIMP)
    if len(query.question) != 1:
        return error(query, dns.rcode.FORMERR)
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN or question.rdtype in _REFUSED_TYPES:
        return error(query, dns.rcode.REFUSED)
    name, rdtype = question.name, question.rdtype
    any_type = rdtype == dns.rdatatype.ANY
    if name in zone.addresses:
        response = _authoritative(query)
        if rdtype == dns.rdatatype.A or any_type:
            ips = [str(ip) for ip in zone.addresses[name]]
            response.answer.append(dns.rrset.from_text_list(name, TTL, "IN", "A", ips))
        return response  # other types of a name it knows: no data, never forwarded
    if name in zone.pointers:
        response = _authoritative(query)
        if rdtype == dns.rdatatype.PTR or any_type:
            targets = [t.to_text() for t in zone.pointers[name]]
            response.answer.append(dns.rrset.from_text_list(name, TTL, "IN", "PTR", targets))
        return response
    if zone.is_local(name):
        response = _authoritative(query)
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response
    return None


def error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
    """An answer carrying only rcode."""
    response = dns.message.make_response(query, recursion_available=True, our_payload=MAX_UDP_PAYLOAD)
    response.set_rcode(rcode)
    return response


def relay(query: dns.message.Message, upstream: dns.message.Message) -> dns.message.Message:
    """The answer to query made of an upstream's: its rcode and records, under the tenant's id and question."""
    response = dns.message.make_response(query, recursion_available=True, our_payload=MAX_UDP_PAYLOAD)
    response.set_rcode(upstream.rcode())
    response.answer = upstream.answer
    response.authority = upstream.authority
    response.additional = upstream.additional
    return response


def udp_limit(query: dns.message.Message) -> int:
    """The size of the largest UDP answer to query: 512 without EDNS, its payload (at most 1232) with."""
    if query.edns < 0:
        return 512
    return max(512, min(query.payload, MAX_UDP_PAYLOAD))


def to_wire(response: dns.message.Message, max_size: int) -> bytes:
    """response in wire format within max_size, truncated (TC set) when its records do not fit."""
    return response.to_wire(max_size=max_size, prefer_truncation=True)


def _authoritative(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query, recursion_available=True, our_payload=MAX_UDP_PAYLOAD)
    response.flags |= dns.flags.AA
    return response
