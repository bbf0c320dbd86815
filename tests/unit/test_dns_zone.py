"""A tenant resolver's records and answers, as dnspython messages (pure: no sockets)."""

from __future__ import annotations

from ipaddress import IPv4Network

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from seabox.model.dns import container_names
from seabox.node.dns.zone import TTL, Zone, answer, parse_query, relay, to_wire, udp_limit

SUPERNET = IPv4Network("10.208.0.0/12")
WEB_ID = "0123456789abcdef" * 4
ENTRIES = [
    ("10.208.1.2", container_names("web", WEB_ID, "alice")),
    ("10.208.1.3", container_names("db", "fedcba9876543210" * 4, "alice")),
]
ZONE = Zone.of(ENTRIES, SUPERNET)


def ask(name: str, rdtype: str = "A", zone: Zone = ZONE, **kw: object) -> dns.message.Message | None:
    return answer(dns.message.make_query(name, rdtype, **kw), zone)  # type: ignore[arg-type]


def addresses(response: dns.message.Message | None) -> list[str]:
    assert response is not None
    return sorted(r.address for rrset in response.answer for r in rrset if rrset.rdtype == dns.rdatatype.A)


def test_container_names_are_the_name_the_short_id_and_the_fqdn() -> None:
    assert container_names("web", WEB_ID, "alice") == ["web", "0123456789ab", "web.alice.seabox.internal"]


def test_a_container_answers_by_name_short_id_and_fqdn_any_case() -> None:
    for name in ("web", "0123456789ab", "web.alice.seabox.internal", "WEB.Alice.Seabox.Internal."):
        response = ask(name)
        assert response is not None and response.rcode() == dns.rcode.NOERROR, name
        assert addresses(response) == ["10.208.1.2"], name
        assert response.flags & dns.flags.AA and response.flags & dns.flags.QR
        assert response.answer[0].ttl == TTL
    assert addresses(ask("db")) == ["10.208.1.3"]


def test_the_answer_keeps_the_query_id_and_question() -> None:
    query = dns.message.make_query("web", "A")
    response = answer(query, ZONE)
    assert response is not None and response.id == query.id and response.question == query.question


def test_other_types_of_a_known_name_have_no_data_and_are_not_forwarded() -> None:
    response = ask("web", "AAAA")
    assert response is not None and response.rcode() == dns.rcode.NOERROR and response.answer == []
    assert addresses(ask("web", "ANY")) == ["10.208.1.2"]


def test_unknown_internal_and_single_label_names_are_nxdomain_never_forwarded() -> None:
    for name in ("nope", "web.bob.seabox.internal", "nope.alice.seabox.internal", "seabox.internal"):
        response = ask(name)
        assert response is not None and response.rcode() == dns.rcode.NXDOMAIN, name
        assert response.answer == []


def test_another_tenants_zone_knows_none_of_these_names() -> None:
    bob = Zone.of([("10.208.2.2", container_names("api", "ab" * 32, "bob"))], SUPERNET)
    for name in ("web", "0123456789ab", "web.alice.seabox.internal"):
        response = ask(name, zone=bob)
        assert response is not None and response.rcode() == dns.rcode.NXDOMAIN, name
    assert addresses(ask("api.bob.seabox.internal", zone=bob)) == ["10.208.2.2"]


def test_other_names_are_left_to_the_upstreams() -> None:
    assert ask("example.com") is None
    assert ask("web.example.com") is None
    assert ask("8.8.8.8.in-addr.arpa", "PTR") is None


def test_reverse_names_of_tenant_addresses_are_answered_here() -> None:
    response = ask("2.1.208.10.in-addr.arpa", "PTR")
    assert response is not None
    assert [r.target.to_text() for r in response.answer[0]] == ["web.alice.seabox.internal."]
    # another tenant's (or no one's) address in the supernet: NXDOMAIN, never asked upstream
    unknown = ask("9.2.208.10.in-addr.arpa", "PTR")
    assert unknown is not None and unknown.rcode() == dns.rcode.NXDOMAIN


def test_records_come_from_the_entries_so_a_service_name_needs_no_code() -> None:
    zone = Zone.of([*ENTRIES, ("10.208.1.50", ["shop", "shop.alice.seabox.internal"]), ("10.208.1.51", ["shop"])])
    assert addresses(ask("shop", zone=zone)) == ["10.208.1.50", "10.208.1.51"]


def test_an_entry_that_makes_no_record_is_left_out_and_the_rest_served() -> None:
    zone = Zone.of([("not-an-address", ["x"]), ("10.208.1.4", ["a" * 64]), *ENTRIES])
    missing = ask("x", zone=zone)
    assert missing is not None and missing.rcode() == dns.rcode.NXDOMAIN
    assert addresses(ask("web", zone=zone)) == ["10.208.1.2"]


def test_what_it_will_not_answer() -> None:
    refused = ask("web", "AXFR")
    assert refused is not None and refused.rcode() == dns.rcode.REFUSED
    chaos = ask("version.bind", "TXT", rdclass="CH")
    assert chaos is not None and chaos.rcode() == dns.rcode.REFUSED
    notify = dns.message.make_query("web", "A")
    notify.set_opcode(dns.opcode.NOTIFY)
    response = answer(notify, ZONE)
    assert response is not None and response.rcode() == dns.rcode.NOTIMP
    two = dns.message.make_query("web", "A")
    two.question.append(dns.rrset.RRset(dns.name.from_text("db"), dns.rdataclass.IN, dns.rdatatype.A))
    response = answer(two, ZONE)
    assert response is not None and response.rcode() == dns.rcode.FORMERR


def test_responses_and_garbage_are_not_queries() -> None:
    query = dns.message.make_query("web", "A")
    assert parse_query(query.to_wire()) is not None
    assert parse_query(dns.message.make_response(query).to_wire()) is None
    assert parse_query(b"\x00\x01garbage") is None


def test_udp_answers_fit_the_clients_size_and_say_when_truncated() -> None:
    plain = dns.message.make_query("shop", "A")
    assert udp_limit(plain) == 512
    assert udp_limit(dns.message.make_query("shop", "A", use_edns=0, payload=4096)) == 1232
    many = Zone.of([(f"10.208.1.{n}", ["shop"]) for n in range(2, 200)])
    response = answer(plain, many)
    assert response is not None
    wire = to_wire(response, udp_limit(plain))
    assert len(wire) <= 512
    parsed = dns.message.from_wire(wire)
    assert parsed.flags & dns.flags.TC and parsed.id == plain.id


def test_a_relayed_answer_carries_the_upstreams_records_under_the_tenants_id() -> None:
    query = dns.message.make_query("example.com", "A")
    upstream = dns.message.make_response(dns.message.make_query("example.com", "A", use_edns=0))
    upstream.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "A", "203.0.113.7"))
    response = relay(query, upstream)
    assert response.id == query.id and response.edns < 0  # the tenant asked without EDNS
    assert addresses(response) == ["203.0.113.7"] and response.flags & dns.flags.RA
    assert not response.flags & dns.flags.AA
