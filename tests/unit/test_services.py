"""Services without nodes: request validation, virtual IPs (top of the subnet, never a container's), the
controller's plan (replace, roll, drain, status) and what NodeHub gives nodes (backends, FIP holder, health, names)."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network

import pytest
from pydantic import ValidationError

from seabox.config import ServerConfig
from seabox.controllers.service_plan import ReplicaView, plan
from seabox.controllers.services import ServiceController
from seabox.errors import Conflict, validation_error
from seabox.model import ipam
from seabox.model.container import Container, ContainerStatus
from seabox.model.node import NodeCapacity
from seabox.model.service import Service, ServiceCreate, ServiceStatus
from seabox.services.nodes import NodeHub
from seabox.store.db import open_engine
from seabox.store.fips import FipStore
from seabox.store.nodes import NodeStore
from seabox.store.repo import Store
from seabox.store.services import ServiceStore
from tests.unit.test_store import ROOMY, spec

SUBNET = IPv4Network("10.208.1.0/24")
MiB = 1 << 20


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(open_engine(db_url))


# the request -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "field"), [
    ({"replicas": -1}, "replicas"), ({"replicas": 101}, "replicas"), ({"port": 0}, "port"),
    ({"port": 65536}, "port"), ({"container_port": 0}, "container_port"), ({"algorithm": "random"}, "algorithm"),
    ({"protocol": "udp"}, "protocol"), ({"name": "a_b"}, "name"), ({"name": "x" * 57}, "name"),
    ({"health_interval": 0.1}, "health_interval"), ({"health_fall": 0}, "health_fall"),
    ({"health_path": "no-slash"}, "health_path"), ({"health_path": "/hz"}, "health_path"), ({"size": "huge"}, "size"),
    ({"security_groups": ["a", "a"]}, "security_groups"), ({"volumes": ["/host:/data"]}, "volumes.volume"),
    ({"extra": 1}, "extra"),
])
def test_a_bad_request_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ServiceCreate.model_validate({"name": "web", "image": "busybox", "port": 80, **change})
    assert validation_error(exc.value).field == field


def test_the_health_check_follows_the_container_port_and_options() -> None:
    s = ServiceCreate(name="web", image="busybox", port=80, container_port=8080, protocol="http", health_path="/hz",
                      health_interval=1, health_rise=1, health_fall=2, size="S1").spec()
    assert (s.port, s.container_port, s.size, s.generation) == (80, 8080, "s1", 1)
    assert s.health.model_dump() == {"protocol": "http", "port": 8080, "path": "/hz", "interval": 1.0, "rise": 1,
                                     "fall": 2}
    assert ServiceCreate(name="web", image="busybox", port=80).spec().health.port == 80


# virtual IPs -------------------------------------------------------------------------------------
def test_virtual_ips_come_from_the_top_of_the_subnet_and_containers_never_get_one(store: Store) -> None:
    assert ipam.allocate_top(SUBNET, set()) == IPv4Address("10.208.1.254")
    assert ipam.allocate_top(SUBNET, {IPv4Address("10.208.1.254")}) == IPv4Address("10.208.1.253")
    with pytest.raises(Conflict):
        ipam.allocate_top(IPv4Network("10.208.1.0/30"), {IPv4Address("10.208.1.2")})
    tenant, other = store.create_tenant("a"), store.create_tenant("b")
    services = ServiceStore(store.engine)
    store.insert_container(tenant.id, "c" * 64, "c", "n1", "10.208.1.254", spec(),
                           quota=ROOMY["containers"])  # a container took the top one
    web = services.create(tenant.id, "web", SUBNET, ServiceCreate(name="web", image="x", port=80).spec(),
                          ROOMY["services"])
    api = services.create(tenant.id, "api", SUBNET, ServiceCreate(name="api", image="x", port=80).spec(),
                          ROOMY["services"])
    # each takes two: its virtual IP and its SNAT address
    assert [(s.vip, s.snat_ip) for s in (web, api)] == [("10.208.1.253", "10.208.1.252"), ("10.208.1.251", "10.208.1.250")]
    assert services.create(other.id, "web", SUBNET, ServiceCreate(name="web", image="x", port=80).spec(),
                           ROOMY["services"]).vip \
        == "10.208.1.254"  # per tenant
    # what container allocation skips
    assert {"10.208.1.253", "10.208.1.252", "10.208.1.251", "10.208.1.250"} <= store.used_ips(tenant.id)
    with pytest.raises(Conflict) as exc:
        services.create(tenant.id, "web", SUBNET, ServiceCreate(name="web", image="x", port=80).spec(),
                        ROOMY["services"])
    assert exc.value.field == "name"
    with pytest.raises(Conflict):  # the name of a container
        services.create(tenant.id, "c", SUBNET, ServiceCreate(name="c", image="x", port=80).spec(), ROOMY["services"])
    assert store.container_name_taken(tenant.id, "web")  # and a container may not take a service's name


def test_removing_a_service_keeps_its_containers_and_detaches_its_floating_ip(store: Store) -> None:
    tenant = store.create_tenant("a")
    services, fips = ServiceStore(store.engine), FipStore(store.engine)
    svc = services.create(tenant.id, "web", SUBNET, ServiceCreate(name="web", image="x", port=80).spec(),
                          ROOMY["services"])
    store.insert_container(tenant.id, "c" * 64, "web-1", "n1", "10.208.1.2", spec(), quota=ROOMY["containers"])
    services.add_replica(svc.id, "c" * 64, 1)
    [address] = fips.allocate(tenant.id, IPv4Network("198.18.0.0/30"), 1, ROOMY["fips"])
    fips.attach_service(tenant.id, address, svc.id)
    assert fips.list(tenant.id, dangling=True) == []
    assert fips.get(tenant.id, address).service == "web"
    with pytest.raises(Conflict):
        fips.release(tenant.id, address)
    assert [r.name for r in services.get(tenant.id, "web").replicas] == ["web-1"]
    services.delete(svc.id)
    assert store.find_container(tenant.id, "web-1").name == "web-1"
    assert services.links() == []
    assert fips.get(tenant.id, address).service is None


# the plan ------------------------------------------------------------------------------------------
def rv(i: int, generation: int = 1, state: str = "running", healthy: bool | None = True, desired: str = "running",
       pending: bool = False, draining_since: float | None = None, node: str = "n1") -> ReplicaView:
    return ReplicaView(id=f"r{i}", name=f"web-{i}", node=node, generation=generation, state=state, desired=desired,
                       pending=pending, healthy=healthy, draining_since=draining_since, created_at=float(i))


def test_a_new_service_makes_all_its_replicas_at_once() -> None:
    p = plan([], want=3, generation=1, now=100.0, drain_seconds=2)
    assert (p.create, p.drain, p.remove) == (3, [], [])
    assert (p.status.state, p.status.message) == ("down", "no healthy replica")


def test_failed_replicas_are_removed_and_replaced_starting_ones_are_waited_for() -> None:
    replicas = [rv(1), rv(2, state="exited", desired="running"), rv(3, state="lost"),
                rv(4, state="exited", desired="stopped"),  # the tenant killed it
                rv(5, state="created", pending=True, healthy=None),  # its start is on its way
                rv(6, state="removing", desired="removed")]  # on its way out already
    p = plan(replicas, want=4, generation=1, now=100.0, drain_seconds=2)
    assert sorted(p.remove) == ["r2", "r3", "r4"]
    assert p.create == 2 and p.drain == []
    assert (p.status.state, p.status.ready, p.status.message) == ("degraded", 1, "1/4 ready")


def test_scale_down_drains_first_and_removes_after_the_drain_period() -> None:
    p = plan([rv(1), rv(2), rv(3, healthy=False)], want=1, generation=1, now=100.0, drain_seconds=2)
    assert p.drain == ["r3", "r2"] and p.remove == [] and p.create == 0  # the unhealthy one first, then the newest
    draining = [rv(1), rv(2, draining_since=100.0), rv(3, healthy=False, draining_since=100.0)]
    assert plan(draining, 1, 1, now=101.9, drain_seconds=2).remove == []
    p = plan(draining, 1, 1, now=102.0, drain_seconds=2)
    assert sorted(p.remove) == ["r2", "r3"] and p.drain == [] and p.status.message == "1/1 ready"


def test_a_rolling_update_replaces_one_replica_at_a_time_once_the_new_one_is_healthy() -> None:
    old = [rv(1), rv(2), rv(3)]
    p = plan(old, want=3, generation=2, now=0, drain_seconds=2)
    assert (p.create, p.drain, p.status.message) == (1, [], "updating 0/3")
    starting = [*old, rv(4, generation=2, healthy=None)]
    p = plan(starting, 3, 2, 0, 2)
    assert (p.create, p.drain) == (0, [])  # waits for the new one to be healthy
    healthy = [*old, rv(4, generation=2)]
    p = plan(healthy, 3, 2, 0, 2)
    assert (p.create, p.drain, p.status.message) == (1, ["r3"], "updating 1/3")
    last = [rv(1), rv(4, generation=2), rv(5, generation=2), rv(6, generation=2)]
    p = plan(last, 3, 2, 0, 2)
    assert (p.create, p.drain) == (0, ["r1"])
    done = plan([rv(4, generation=2), rv(5, generation=2), rv(6, generation=2)], 3, 2, 0, 2)
    assert (done.create, done.drain, done.status.state, done.status.message) == (0, [], "ready", "3/3 ready")


def test_an_update_of_a_broken_service_still_goes_one_at_a_time() -> None:
    p = plan([rv(1, healthy=False), rv(2, healthy=False)], 2, 2, 0, 2)
    assert (p.create, p.drain) == (1, [])
    p = plan([rv(1, healthy=False), rv(2, healthy=False), rv(3, generation=2)], 2, 2, 0, 2)
    assert (p.create, p.drain) == (1, ["r2"])  # not ready, then the newest, leaves first


def test_zero_replicas_is_stopped() -> None:
    p = plan([rv(1)], 0, 1, 0, 2)
    assert p.drain == ["r1"] and p.status.state == "stopped"


# what nodes get ------------------------------------------------------------------------------------
def test_nodes_get_the_balanced_services_health_checks_and_names(store: Store) -> None:
    tenant = store.create_tenant("acme")
    nodes = NodeStore(store.engine)
    for node in ("n1", "n2"):
        nodes.ensure_local(node, "local", NodeCapacity(node, 1024 * MiB, 2))
    services, fips = ServiceStore(store.engine), FipStore(store.engine)
    spec_ = ServiceCreate(name="web", image="x", port=80, container_port=8080, algorithm="source").spec()
    svc = services.create(tenant.id, "web", SUBNET, spec_, ROOMY["services"])
    placed = {"a": ("n1", True, None), "b": ("n2", True, None), "c": ("n2", False, None), "d": ("n1", True, 5.0)}
    for i, (name, (node, healthy, draining)) in enumerate(placed.items()):
        cid = name * 64
        store.insert_container(tenant.id, cid, f"web-{name}", node, f"10.208.1.{i + 2}", spec(),
                               quota=ROOMY["containers"])
        store.save_status(cid, ContainerStatus(state="running", ip=f"10.208.1.{i + 2}", healthy=healthy))
        services.add_replica(svc.id, cid, 1)
        if draining:
            services.drain(cid, draining)
    [address] = fips.allocate(tenant.id, IPv4Network("198.18.0.0/30"), 1, ROOMY["fips"])
    fips.attach_service(tenant.id, address, svc.id)
    hub = NodeHub(store, nodes, bus=None, containers=None)  # type: ignore[arg-type]
    n1, n2 = hub.batch("n1"), hub.batch("n2")
    [b1], [b2] = n1.services, n2.services
    assert [(b.ip, b.port) for b in b1.backends] == [("10.208.1.2", 8080), ("10.208.1.3", 8080)]
    assert (b1.vip, b1.port, b1.algorithm, b1.tenant_index) == (svc.vip, 80, "source", tenant.index)
    assert (b1.fip, b2.fip) == (address, None)  # the node of the oldest healthy replica holds it
    assert b1.backends == b2.backends
    assert {a.name: a.health.port if a.health else None for a in n1.containers} == {"web-a": 8080, "web-d": 8080}
    assert (svc.vip, ["web", "web.acme.seabox.internal"]) in n1.hosts[tenant.index]
    # the holder's replica fails: the FIP moves to the next healthy one's node
    store.save_status("a" * 64, ContainerStatus(state="running", ip="10.208.1.2", healthy=False))
    assert [s.fip for s in hub.batch("n1").services] == [None]
    assert [s.fip for s in hub.batch("n2").services] == [address]


def test_a_config_drain_period_is_bounded() -> None:
    assert ServerConfig().services.drain_seconds == 2.0
    with pytest.raises(ValidationError):
        ServerConfig.model_validate({"services": {"drain_seconds": -1}})


# the controller carrying a plan out (fake store and containers, a fake clock) ----------------------------
class FakeStore:
    def __init__(self) -> None:
        self.drained: list[tuple[str, float]] = []
        self.statuses: list[ServiceStatus] = []

    def drain(self, cid: str, since: float) -> None:
        self.drained.append((cid, since))

    def set_status(self, _sid: str, status: ServiceStatus) -> None:
        self.statuses.append(status)


class FakeContainers:
    def __init__(self) -> None:
        self.removed: list[str] = []

    async def ask_remove(self, c: Container) -> None:
        self.removed.append(c.id)


class FakeOps:
    def __init__(self, refuse: bool = False) -> None:
        self.services, self.containers = FakeStore(), FakeContainers()
        self.made: list[dict[str, int]] = []
        self.refuse = refuse

    async def add_replica(self, _tenant: object, _svc: object, spread: dict[str, int]) -> Container:
        if self.refuse:
            raise Conflict("no node has 4 GiB free")
        self.made.append(dict(spread))
        node = min(("n1", "n2"), key=lambda n: spread.get(n, 0))
        return Container(id=f"new{len(self.made)}", name="x", tenant="t", created_at=datetime.now(UTC), spec=spec(),
                         status=ContainerStatus(node=node))


class FakeBus:
    async def notify(self) -> None:
        return None


def service(replicas: int, generation: int = 1) -> Service:
    s = ServiceCreate(name="web", image="x", port=80, replicas=replicas).spec()
    s.generation = generation
    return Service(id="s1", name="web", tenant="t", vip="10.208.1.254", created_at=datetime.now(UTC), spec=s,
                   status=ServiceStatus())


def controller(ops: FakeOps, now: list[float]) -> ServiceController:
    return ServiceController(ServerConfig(), ops, FakeBus(), clock=lambda: now[0])  # type: ignore[arg-type]


def records(views: list[ReplicaView]) -> dict[str, Container]:
    return {v.id: Container(id=v.id, name=v.name, tenant="t", created_at=datetime.now(UTC), spec=spec(),
                            status=ContainerStatus(node=v.node)) for v in views}


async def test_the_controller_spreads_new_replicas_drains_and_removes() -> None:
    ops, now = FakeOps(), [100.0]
    ctl = controller(ops, now)
    views = [rv(1, node="n1"), rv(2, node="n1")]
    await ctl.reconcile(None, service(4), views, records(views))  # type: ignore[arg-type]
    assert ops.made == [{"n1": 2}, {"n1": 2, "n2": 1}]  # each new one counted where it went
    assert ops.services.statuses[-1].message == "2/4 ready"
    await ctl.reconcile(None, service(1), views, records(views))  # type: ignore[arg-type]
    assert ops.services.drained == [("r2", 100.0)] and ops.containers.removed == []
    drained = [rv(1), rv(2, draining_since=100.0)]
    now[0] = 102.0
    await ctl.reconcile(None, service(1), drained, records(drained))  # type: ignore[arg-type]
    assert ops.containers.removed == ["r2"]


async def test_replicas_failing_in_a_row_are_replaced_with_a_growing_back_off() -> None:
    ops, now = FakeOps(), [100.0]
    ctl = controller(ops, now)
    failed = [rv(1, state="exited")]
    await ctl.reconcile(None, service(1), failed, records(failed))  # type: ignore[arg-type]
    assert len(ops.made) == 1  # the first failure: replaced at once
    failed = [rv(2, state="exited")]
    await ctl.reconcile(None, service(1), failed, records(failed))  # type: ignore[arg-type]
    now[0] = 100.5
    await ctl.reconcile(None, service(1), [], {})  # type: ignore[arg-type]
    assert len(ops.made) == 1  # the second one in a row: not before 1 s
    now[0] = 101.0
    await ctl.reconcile(None, service(1), [], {})  # type: ignore[arg-type]
    assert len(ops.made) == 2


async def test_a_replica_that_cannot_be_placed_shows_in_the_message() -> None:
    ops = FakeOps(refuse=True)
    await controller(ops, [0.0]).reconcile(None, service(2), [], {})  # type: ignore[arg-type]
    assert ops.services.statuses[-1].message == "no healthy replica; cannot make a replica: no node has 4 GiB free"


def test_placement_puts_a_replica_where_fewest_of_its_service_are_before_the_tenant_spread() -> None:
    from seabox.model.sizes import GiB
    from seabox.scheduler.place import Placement, place
    from seabox.scheduler.snapshot import NodeView, PlacementRequest

    nodes = [NodeView("n1", "ready", 8 * GiB, 4, 0, 1, {"t": 1}),  # one of the tenant's, not of the service
             NodeView("n2", "ready", 8 * GiB, 4, 0, 1, {"t": 1})]  # holds a replica already
    request = PlacementRequest("t", "s4", GiB, 1, spread={"n2": 1})
    assert place(nodes, request) == Placement("n1")
    assert place(nodes, PlacementRequest("t", "s4", GiB, 1, spread={"n1": 2, "n2": 1})) == Placement("n2")
    assert place([nodes[0]], request) == Placement("n1")  # spreading is a preference, never a refusal
