"""Security groups: the YAML form and its validation, the store (membership, refusals), and the firewalls
each node's batch carries (remote groups resolved, unions, membership changes changing the etag)."""

from __future__ import annotations

import asyncio
import time
from ipaddress import IPv4Network
from typing import Any

import pytest

from seabox.config import QuotasConfig
from seabox.errors import Conflict, InvalidArgument, NotFound, PayloadTooLarge, SeaboxError
from seabox.model.node import NodeCapacity
from seabox.model.security_group import MAX_DOCUMENT_BYTES, MAX_RULES, parse_yaml, validate_group
from seabox.services.events import EventBus
from seabox.services.nodes import NodeHub
from seabox.services.security_groups import SecurityGroupService
from seabox.store.db import open_engine
from seabox.store.nodes import NodeStore
from seabox.store.repo import Store
from seabox.store.security_groups import SecurityGroupStore
from tests.unit.test_cross_server import buses  # noqa: F401 - the two-server fixture
from tests.unit.test_store import ROOMY, spec

MiB = 1 << 20
WEB = """\
name: web
description: "web servers"
rules:
  - direction: ingress
    protocol: tcp
    port_range_min: 80
    port_range_max: 81
    remote_ip_prefix: 203.0.113.0/24
  - direction: ingress
    protocol: tcp
    port_range_min: 5432
    remote_group_name: web
  - direction: egress
    protocol: any
"""


def group(text: str) -> Any:
    return validate_group(parse_yaml(text))


def rule(**fields: Any) -> str:
    body = {"direction": "ingress", "protocol": "tcp", **fields}
    return "name: g\nrules:\n  - {" + ", ".join(f"{k}: {v}" for k, v in body.items()) + "}\n"


def refused(text: str | bytes) -> SeaboxError:
    with pytest.raises(SeaboxError) as info:
        validate_group(parse_yaml(text))
    return info.value


# the YAML form --------------------------------------------------------------------------------
def test_a_hyper_style_file_parses_with_defaults_made_explicit() -> None:
    g = group(WEB)
    assert (g.name, g.description) == ("web", "web servers")
    assert [r.dump() for r in g.rules] == [
        {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 81,
         "remote_ip_prefix": "203.0.113.0/24"},
        {"direction": "ingress", "protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432,
         "remote_group_name": "web"},
        {"direction": "egress", "protocol": "any", "remote_ip_prefix": "0.0.0.0/0"},  # no remote: every address
    ]
    assert group("name: empty\n").rules == []  # a group that allows nothing
    assert group(rule(remote_ip_prefix="198.51.100.7")).rules[0].remote_ip_prefix == "198.51.100.7/32"


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"remote_ip_prefix": "10.0.0.1/8"}, "rules[0].remote_ip_prefix", "use 10.0.0.0/8"),
    ({"remote_ip_prefix": "10.0.0.0/33"}, "rules[0].remote_ip_prefix", "not an IPv4 CIDR"),
    ({"remote_ip_prefix": "nope"}, "rules[0].remote_ip_prefix", "not an IPv4 CIDR"),
    ({"remote_ip_prefix": '"2001:db8::/32"'}, "rules[0].remote_ip_prefix", "IPv6"),
    ({"port_range_min": 90, "port_range_max": 80}, "rules[0].port_range_max", "below port_range_min"),
    ({"port_range_min": 0}, "rules[0].port_range_min", "greater than or equal to 1"),
    ({"port_range_min": 65536}, "rules[0].port_range_min", "less than or equal to 65535"),
    ({"port_range_min": 1, "port_range_max": 70000}, "rules[0].port_range_max", "less than or equal to 65535"),
    ({"port_range_max": 80}, "rules[0].port_range_max", "needs port_range_min"),
    ({"port_range_min": '"80"'}, "rules[0].port_range_min", "valid integer"),
    ({"protocol": "icmp", "port_range_min": 8}, "rules[0].port_range_min", "tcp and udp only"),
    ({"protocol": "any", "port_range_min": 1, "port_range_max": 2}, "rules[0].port_range_min", "tcp and udp only"),
    ({"protocol": "sctp"}, "rules[0].protocol", "'tcp', 'udp', 'icmp' or 'any'"),
    ({"direction": "inbound"}, "rules[0].direction", "'ingress' or 'egress'"),
    ({"port": 80}, "rules[0].port", "unknown field"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_name": "g"}, "rules[0].remote_group_name", "not both"),
    ({"remote_group_name": '"bad name"'}, "rules[0].remote_group_name", "invalid security group name"),
])
def test_a_bad_rule_is_a_400_naming_its_field(fields: dict[str, Any], field: str, words: str) -> None:
    exc = refused(rule(**fields))
    assert isinstance(exc, InvalidArgument) and exc.field == field and words in exc.message, exc.message
    assert exc.message.startswith(field + ": ")


def test_the_field_names_the_rule_by_its_index() -> None:
    text = WEB + "  - {direction: ingress, protocol: udp, port_range_min: 9, port_range_max: 3}\n"
    assert refused(text).field == "rules[3].port_range_max"


@pytest.mark.parametrize(("text", "field", "words"), [
    ("rules: []\n", "name", "field required"),
    ("name: 'a b'\n", "name", "invalid security group name"),
    ("name: g\nlabels: {}\n", "labels", "unknown field"),
    ("name: g\ndescription: " + "x" * 1025 + "\n", "description", "at most 1024"),
    ("name: g\nrules: {direction: ingress}\n", "rules", "valid list"),
    ("name: g\nrules: [{protocol: tcp}]\n", "rules[0].direction", "field required"),
    ("- name: g\n", "body", "must be a mapping"),
    ("", "body", "empty"),
    ("name: g\nrules: [\n", "body", "malformed YAML"),
    ("name: g\nname: h\n", "body", "given twice"),
    ("base: &b {direction: ingress, protocol: tcp}\nname: g\nrules: [*b]\n", "body", "aliases"),
    ("name: g\n<<: {description: x}\n", "body", "merge keys"),
    ("name: !!python/object:os.system x\n", "body", "malformed YAML"),
    ("name: g\n---\nname: h\n", "body", "malformed YAML"),
    ("name: g\nrules: " + "[" * 20 + "]" * 20 + "\n", "body", "nested more than"),
    ("name: g\nx: " + "9" * 5000 + "\n", "body", "malformed YAML"),
])
def test_a_bad_document_is_a_400_naming_its_field(text: str, field: str, words: str) -> None:
    exc = refused(text)
    assert isinstance(exc, InvalidArgument) and exc.field == field and words in exc.message, exc.message


def test_too_many_rules_and_too_large_a_document_are_refused() -> None:
    many = "name: g\nrules:\n" + "  - {direction: egress, protocol: any}\n" * (MAX_RULES + 1)
    exc = refused(many)
    assert exc.field == "rules" and f"at most {MAX_RULES}" in exc.message
    assert len(group("name: g\nrules:\n" + "  - {direction: egress, protocol: any}\n" * MAX_RULES).rules) == MAX_RULES
    assert isinstance(refused(b"name: g\n" + b"#" * MAX_DOCUMENT_BYTES), PayloadTooLarge)
    assert refused(b"name: \xff\n").field == "body"


def test_a_billion_laughs_document_is_refused_before_it_expands() -> None:
    laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    started = time.monotonic()
    assert "aliases" in refused(laughs).message
    assert time.monotonic() - started < 1


# the store ----------------------------------------------------------------------------------------
@pytest.fixture
def stores(db_url: str) -> tuple[Store, SecurityGroupStore]:
    store = Store(open_engine(db_url))
    return store, SecurityGroupStore(store.engine)


def member_spec(*groups: str) -> Any:
    return spec().model_copy(update={"security_groups": list(groups)})


def test_groups_are_per_tenant_and_names_unique(stores: tuple[Store, SecurityGroupStore]) -> None:
    store, groups = stores
    a, b = store.create_tenant("a"), store.create_tenant("b")
    created = groups.create(a.id, group(WEB), ROOMY["security_groups"])
    assert (created.name, created.generation, len(created.rules), created.in_use_by) == ("web", 1, 3, [])
    with pytest.raises(Conflict):
        groups.create(a.id, group(WEB), ROOMY["security_groups"])
    groups.create(b.id, group(WEB), ROOMY["security_groups"])  # the same name in another tenant is another group
    with pytest.raises(NotFound):
        groups.get(b.id, "db")
    assert [g.name for g in groups.list(a.id)] == ["web"]


def test_a_remote_group_must_be_the_tenants_own(stores: tuple[Store, SecurityGroupStore]) -> None:
    store, groups = stores
    a, b = store.create_tenant("a"), store.create_tenant("b")
    groups.create(b.id, group("name: db\n"), ROOMY["security_groups"])
    text = "name: app\nrules:\n  - {direction: ingress, protocol: tcp, port_range_min: 1, remote_group_name: db}\n"
    with pytest.raises(NotFound) as info:
        groups.create(a.id, group(text), ROOMY["security_groups"])  # b's db is unknown to a
    assert info.value.field == "rules[0].remote_group_name"
    assert groups.list(a.id) == []
    groups.create(a.id, group("name: db\n"), ROOMY["security_groups"])
    assert groups.create(a.id, group(text), ROOMY["security_groups"]).rules[0].remote_group_name == "db"


def test_an_update_replaces_every_rule_at_once(stores: tuple[Store, SecurityGroupStore]) -> None:
    store, groups = stores
    a = store.create_tenant("a")
    groups.create(a.id, group(WEB), ROOMY["security_groups"])
    updated = groups.replace(a.id, group("name: web\ndescription: new\nrules: [{direction: egress, protocol: udp}]\n"))
    assert (updated.generation, updated.description, [r.protocol for r in updated.rules]) == (2, "new", ["udp"])
    bad = "name: web\nrules: [{direction: ingress, protocol: tcp, port_range_min: 1, remote_group_name: nope}]\n"
    with pytest.raises(NotFound):
        groups.replace(a.id, group(bad))
    assert groups.get(a.id, "web") == updated  # a refused update changed nothing
    with pytest.raises(NotFound):
        groups.replace(a.id, group("name: other\n"))


def test_membership_is_refused_for_unknown_groups_and_blocks_removal(stores: tuple[Store, SecurityGroupStore]) -> None:
    store, groups = stores
    a, b = store.create_tenant("a"), store.create_tenant("b")
    groups.create(a.id, group(WEB), ROOMY["security_groups"])
    groups.create(b.id, group("name: db\n"), ROOMY["security_groups"])
    with pytest.raises(NotFound):
        store.insert_container(a.id, "d" * 64, "x", "local", "10.208.1.9", member_spec("db"),
                               quota=ROOMY["containers"])  # b's
    assert store.list_containers(a.id) == []
    c = store.insert_container(a.id, "c" * 64, "app", "local", "10.208.1.2", member_spec("web"),
                               quota=ROOMY["containers"])
    assert groups.get(a.id, "web").in_use_by == ["app"]
    with pytest.raises(Conflict) as info:
        groups.delete(a.id, "web")
    assert "app" in info.value.message
    assert groups.set_container_groups(a.id, c.id, [], ["web"]) == []
    assert store.get_container(c.id).spec.security_groups == []
    groups.delete(a.id, "web")
    with pytest.raises(NotFound):
        groups.delete(a.id, "web")


def test_a_group_named_by_another_groups_rules_stays(stores: tuple[Store, SecurityGroupStore]) -> None:
    store, groups = stores
    a = store.create_tenant("a")
    groups.create(a.id, group("name: db\n"), ROOMY["security_groups"])
    groups.create(a.id, group("name: app\nrules: [{direction: egress, protocol: tcp, remote_group_name: db}]\n"),
                  ROOMY["security_groups"])
    with pytest.raises(Conflict) as info:
        groups.delete(a.id, "db")
    assert "app" in info.value.message
    groups.delete(a.id, "app")
    groups.delete(a.id, "db")


def test_a_containers_groups_change_all_at_once_or_not_at_all(stores: tuple[Store, SecurityGroupStore]) -> None:
    store, groups = stores
    a = store.create_tenant("a")
    for name in ("g1", "g2", "g3"):
        groups.create(a.id, group(f"name: {name}\n"), ROOMY["security_groups"])
    c = store.insert_container(a.id, "c" * 64, "app", "local", "10.208.1.2", member_spec("g1"),
                               quota=ROOMY["containers"])
    assert groups.set_container_groups(a.id, c.id, ["g2", "g3"], ["g1"]) == ["g2", "g3"]
    for add, remove, kind in ((["g2"], [], Conflict), ([], ["g1"], Conflict), (["g1", "nope"], [], NotFound)):
        with pytest.raises(kind):
            groups.set_container_groups(a.id, c.id, add, remove)
    assert store.get_container(c.id).spec.security_groups == ["g2", "g3"]
    assert [g.in_use_by for g in groups.list(a.id)] == [[], ["app"], ["app"]]
    store.delete_container(c.id)
    assert [g.in_use_by for g in groups.list(a.id)] == [[], [], []]  # membership goes with the container
    groups.delete(a.id, "g2")


# firewalls in the node batch ---------------------------------------------------------------------
@pytest.fixture
def hub(stores: tuple[Store, SecurityGroupStore]) -> NodeHub:
    store, _ = stores
    nodes = NodeStore(store.engine)
    for name in ("n1", "n2"):
        nodes.ensure_local(name, "local", NodeCapacity(name, 1024 * MiB, 2))
    return NodeHub(store, nodes, bus=None, containers=None)  # type: ignore[arg-type]


def firewall_of(hub: NodeHub, node: str, name: str) -> Any:
    [a] = [a for a in hub.batch(node).containers if a.name == name]
    return a.firewall


def test_the_batch_resolves_remote_groups_to_members_on_every_node(
    stores: tuple[Store, SecurityGroupStore], hub: NodeHub,
) -> None:
    store, groups = stores
    a, b = store.create_tenant("a"), store.create_tenant("b")
    groups.create(a.id, group(WEB), ROOMY["security_groups"])
    groups.create(b.id, group(WEB), ROOMY["security_groups"])
    store.insert_container(a.id, "1" * 64, "w1", "n1", "10.208.1.12", member_spec("web"), quota=ROOMY["containers"])
    store.insert_container(a.id, "2" * 64, "w2", "n2", "10.208.1.3", member_spec("web"), quota=ROOMY["containers"])
    store.insert_container(a.id, "3" * 64, "plain", "n1", "10.208.1.4", spec(), quota=ROOMY["containers"])
    store.insert_container(b.id, "4" * 64, "bw", "n1", "10.208.2.5", member_spec("web"), quota=ROOMY["containers"])
    fw = firewall_of(hub, "n1", "w1")
    assert [r.model_dump() for r in fw.rules] == [
        {"direction": "ingress", "protocol": "tcp", "port_min": 80, "port_max": 81, "remotes": ["203.0.113.0/24"]},
        # both of a's members, wherever they run, sorted by address; never b's
        {"direction": "ingress", "protocol": "tcp", "port_min": 5432, "port_max": 5432,
         "remotes": ["10.208.1.3/32", "10.208.1.12/32"]},
        {"direction": "egress", "protocol": "any", "port_min": 0, "port_max": 0, "remotes": ["0.0.0.0/0"]},
    ]
    assert firewall_of(hub, "n2", "w2") == fw
    assert firewall_of(hub, "n1", "plain") is None  # no group: the default policy
    assert firewall_of(hub, "n1", "bw").rules[1].remotes == ["10.208.2.5/32"]


def test_a_container_in_several_groups_gets_the_union_of_their_rules(
    stores: tuple[Store, SecurityGroupStore], hub: NodeHub,
) -> None:
    store, groups = stores
    a = store.create_tenant("a")
    ssh = "  - {direction: ingress, protocol: tcp, port_range_min: 22}\n"
    groups.create(a.id, group("name: g1\nrules:\n" + ssh), ROOMY["security_groups"])
    groups.create(a.id, group("name: g2\nrules:\n" + ssh + "  - {direction: ingress, protocol: icmp}\n"),
                  ROOMY["security_groups"])
    groups.create(a.id, group("name: none\n"), ROOMY["security_groups"])
    store.insert_container(a.id, "1" * 64, "both", "n1", "10.208.1.2", member_spec("g1", "g2"),
                           quota=ROOMY["containers"])
    store.insert_container(a.id, "2" * 64, "shut", "n1", "10.208.1.3", member_spec("none"), quota=ROOMY["containers"])
    rules = firewall_of(hub, "n1", "both").rules
    assert [(r.protocol, r.port_min) for r in rules] == [("tcp", 22), ("icmp", 0)]  # the shared rule once
    assert firewall_of(hub, "n1", "shut").rules == []  # in a group without rules: nothing passes


def test_membership_and_rule_changes_change_the_batch_of_every_affected_node(
    stores: tuple[Store, SecurityGroupStore], hub: NodeHub,
) -> None:
    store, groups = stores
    a = store.create_tenant("a")
    groups.create(a.id, group("name: db\nrules: [{direction: ingress, protocol: tcp, port_range_min: 5432}]\n"),
                  ROOMY["security_groups"])
    groups.create(a.id, group("name: app\n"), ROOMY["security_groups"])
    groups.create(a.id, group("name: dbc\nrules: [{direction: ingress, protocol: tcp, remote_group_name: app}]\n"),
                  ROOMY["security_groups"])
    store.insert_container(a.id, "1" * 64, "db", "n1", "10.208.1.2", member_spec("dbc"), quota=ROOMY["containers"])
    etags = {n: hub.batch(n).etag for n in ("n1", "n2")}
    assert firewall_of(hub, "n1", "db").rules[0].remotes == []  # no member yet: matches nothing
    app = store.insert_container(a.id, "2" * 64, "app", "n2", "10.208.1.7", spec(), quota=ROOMY["containers"])
    assert hub.batch("n1").etag != etags["n1"]  # (a new container of the tenant changes its hosts anyway)
    assert firewall_of(hub, "n1", "db").rules[0].remotes == []
    before = hub.batch("n1").etag
    groups.set_container_groups(a.id, app.id, ["app"], [])  # joins on another node: db's rule follows
    assert firewall_of(hub, "n1", "db").rules[0].remotes == ["10.208.1.7/32"]
    assert hub.batch("n1").etag != before
    before = {n: hub.batch(n).etag for n in ("n1", "n2")}
    groups.replace(a.id, group("name: app\nrules: [{direction: egress, protocol: tcp, port_range_min: 5432}]\n"))
    after = {n: hub.batch(n).etag for n in ("n1", "n2")}
    assert after["n2"] != before["n2"] and after["n1"] == before["n1"]  # only app's node holds an app member
    store.delete_container(app.id)
    assert firewall_of(hub, "n1", "db").rules[0].remotes == []


def test_a_batch_with_a_thousand_rules_and_fifty_members_is_built_quickly(
    stores: tuple[Store, SecurityGroupStore], hub: NodeHub,
) -> None:
    store, groups = stores
    a = store.create_tenant("a")
    rules = "".join(f"  - {{direction: ingress, protocol: tcp, port_range_min: {1 + i}, remote_group_name: big}}\n"
                    for i in range(MAX_RULES))
    groups.create(a.id, group("name: big\nrules:\n" + rules), ROOMY["security_groups"])
    for i in range(50):
        store.insert_container(a.id, f"{i:064x}", f"m{i}", "n1" if i % 2 else "n2", f"10.208.1.{10 + i}",
                               member_spec("big"), quota=ROOMY["containers"])
    started = time.monotonic()
    batch = hub.batch("n1")
    took = time.monotonic() - started
    assert len(batch.containers) == 25 and all(len(c.firewall.rules) == MAX_RULES for c in batch.containers)  # type: ignore[union-attr]
    remotes = batch.containers[0].firewall.rules[0].remotes  # type: ignore[union-attr]
    covered = {str(ip) for net in remotes for ip in IPv4Network(net)}
    assert covered == {f"10.208.1.{10 + i}" for i in range(50)}  # every member, wherever it runs, and no other
    assert len(remotes) < 10  # adjacent members collapse into a few CIDRs
    assert took < 2.0, took


async def test_a_rule_change_through_one_server_wakes_a_nodes_long_poll_on_the_other(
    buses: tuple[EventBus, EventBus],
) -> None:
    a, b = buses
    tenant = a.store.create_tenant("t")
    NodeStore(a.store.engine).ensure_local("n1", "local", NodeCapacity("n1", 1024 * MiB, 2))
    service = SecurityGroupService(a.store, SecurityGroupStore(a.store.engine), a, QuotasConfig())
    await service.create(tenant, parse_yaml("name: web\nrules: [{direction: ingress, protocol: tcp, port_range_min: 80}]"))
    c = a.store.insert_container(tenant.id, "c" * 64, "web", "n1", "10.208.1.2", member_spec("web"),
                                 quota=ROOMY["containers"])
    hub = NodeHub(b.store, NodeStore(b.store.engine), b, containers=None)  # type: ignore[arg-type]
    for change in (
        service.update(tenant, "web", parse_yaml("rules: [{direction: ingress, protocol: tcp, port_range_min: 81}]")),
        service.update_container(tenant, c.id, [], ["web"]),
    ):
        etag = hub.batch("n1").etag
        polling = asyncio.create_task(hub.assignments("n1", etag, 20.0))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await change
        batch = await asyncio.wait_for(polling, 5)
        assert time.monotonic() - started < 0.5  # woken, not the 1 s poll
        assert batch.etag != etag
    firewalls = [hub.batch("n1").containers[0].firewall]
    assert firewalls == [None]  # out of every group: the default policy again


def test_a_group_removed_between_the_check_and_the_insert_is_a_404_and_nothing_is_made(
    stores: tuple[Store, SecurityGroupStore], monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, groups = stores
    a = store.create_tenant("a")
    groups.create(a.id, group("name: g\n"), ROOMY["security_groups"])
    c = store.insert_container(a.id, "c" * 64, "app", "local", "10.208.1.2", spec(), quota=ROOMY["containers"])
    # as if another server removed group gone right after this one checked it: the database refuses
    monkeypatch.setattr("seabox.store.repo.check_security_groups", lambda *args, **kw: None)
    monkeypatch.setattr("seabox.store.security_groups.check_security_groups", lambda *args, **kw: None)
    with pytest.raises(NotFound) as info:
        store.insert_container(a.id, "d" * 64, "x", "local", "10.208.1.3", member_spec("g", "gone"),
                               quota=ROOMY["containers"])
    assert info.value.field == "security_groups"
    assert [x.name for x in store.list_containers(a.id)] == ["app"]
    with pytest.raises(NotFound) as info:
        groups.set_container_groups(a.id, c.id, ["gone"], [])
    assert info.value.field == "security_groups_add"
    assert store.get_container(c.id).spec.security_groups == [] and groups.get(a.id, "g").in_use_by == []
