"""The node converger against a fake runtime: starts, exits, restart back-off, stops, removal, adoption."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from seabox.errors import InvalidArgument, RuntimeFailure
from seabox.model.container import ContainerSpec, RestartPolicy, StopRequest
from seabox.model.firewall import Firewall, FirewallRule
from seabox.model.health import HealthCheck
from seabox.model.ports import PortMapping
from seabox.node import converger as converger_module
from seabox.node.converger import Converger, restart_delay
from seabox.node.network.lb_rules import Target
from seabox.node.network.manager import Exposure, Service
from seabox.protocol.assignments import Assignment, AssignmentBatch, ContainerReport
from seabox.protocol.balancing import Backend, BalancedService
from seabox.protocol.placement import Placement
from seabox.protocol.runtime import ExitStatus


class FakeNetwork:
    def __init__(self) -> None:
        self.rebalanced = 0

    def rebalance(self) -> bool:
        self.rebalanced += 1
        return False


class FakeAgent:
    """The agent surface the converger drives, over an in-memory runtime."""

    name = "n1"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.network = FakeNetwork()
        self.on_exit: Any = None
        self.running: dict[str, bool] = {}
        self.exits: dict[str, ExitStatus] = {}
        self.watched: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.hosts: dict[int, list[Any]] = {}
        self.exposed: list[dict[str, Exposure]] = []
        self.balanced: list[tuple[Service, ...]] = []
        self.primed: list[tuple[Service, ...]] = []  # recorded for the first table, before expose applies it
        self.dns: list[dict[int, list[Any]]] = []  # what each batch asked the tenant resolvers to serve
        self.paused: set[str] = set()
        self.sizes: dict[str, str] = {}  # the size whose limits each container has
        self.refused_sizes: set[str] = set()  # sizes a live change to fails (its memory in use is above them)

    def bundle(self, cid: str) -> Path:
        return self.root / cid

    async def state(self, cid: str) -> str | None:
        if cid in self.running:
            return ("paused" if cid in self.paused else "running") if self.running[cid] else "stopped"
        return None

    async def pause(self, cid: str) -> None:
        self.calls.append(("pause", cid))
        self.paused.add(cid)

    async def resume(self, cid: str) -> None:
        self.calls.append(("resume", cid))
        self.paused.discard(cid)

    async def pid(self, cid: str) -> int:
        return 100 if self.running.get(cid) else 0

    def exit_status(self, cid: str) -> ExitStatus | None:
        return self.exits.get(cid)

    async def start(self, p: Placement) -> int:
        cid = p.container.id
        self.calls.append(("start", cid))
        self.bundle(cid).mkdir(exist_ok=True)
        self.running[cid] = True
        self.exits.pop(cid, None)
        self.watched.add(cid)
        self.sizes[cid] = p.container.spec.size
        return 100

    async def apply_size(self, cid: str, s: ContainerSpec) -> tuple[str | None, str]:
        if self.sizes.get(cid) == s.size:
            return s.size, ""
        if s.size in self.refused_sizes:
            return self.sizes.get(cid), "memory in use is above the new limit"
        self.calls.append(("size:" + s.size, cid))
        self.sizes[cid] = s.size
        return s.size, ""

    async def finish(self, cid: str, code: int) -> None:
        """The container's process ends with CODE."""
        self.running[cid] = False
        self.exits[cid] = ExitStatus(code, datetime.now(UTC), False)
        if cid in self.watched:
            self.watched.discard(cid)
            await self.on_exit(cid, self.exits[cid])

    async def stop(self, cid: str, timeout: float, signal: str) -> None:
        self.calls.append(("stop", cid))
        await self.finish(cid, 143)

    async def kill(self, cid: str, signal: str) -> None:
        self.calls.append(("kill:" + signal, cid))

    async def remove(self, cid: str) -> None:
        self.calls.append(("remove", cid))
        self.running.pop(cid, None)
        self.watched.discard(cid)
        if self.bundle(cid).exists():
            for f in self.bundle(cid).iterdir():
                f.unlink()
            self.bundle(cid).rmdir()

    def watch(self, cid: str) -> None:
        self.watched.add(cid)

    def write_hosts(self, index: int, entries: list[Any]) -> None:
        self.hosts[index] = entries

    async def reconcile_network(self, tenants: set[int], containers: set[str]) -> None:
        self.calls.append(("reconcile", ",".join(sorted(containers))))

    async def expose(self, exposures: Mapping[str, Exposure]) -> None:
        self.exposed.append(dict(exposures))

    async def balance(self, services: Sequence[Service], *, apply: bool = True) -> None:
        (self.balanced if apply else self.primed).append(tuple(services))

    async def serve_dns(self, hosts: dict[int, list[Any]]) -> None:
        self.calls.append(("dns", ",".join(str(i) for i in sorted(hosts))))
        self.dns.append(dict(hosts))

    def local_containers(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir())

    async def close(self) -> None:
        pass


class FakePlane:
    def __init__(self) -> None:
        self.reports: list[ContainerReport] = []

    async def assignments(self, node: str, etag: str, timeout: float) -> AssignmentBatch:
        await asyncio.sleep(timeout)
        return AssignmentBatch(etag=etag)

    async def report(self, node: str, reports: list[ContainerReport]) -> None:
        self.reports.extend(reports)


def spec(desired: str = "running", generation: int = 1, restart: str = "no", size: str = "s1", **extra: Any) -> ContainerSpec:
    return ContainerSpec(
        image="docker.io/library/busybox:latest", image_id="sha256:" + "a" * 64, args=["sleep", "9"], cmd=None,
        entrypoint=None, env=[], labels={}, size=size, volumes=[], workdir="/", user="", hostname="h",
        restart=RestartPolicy.parse(restart), tty=False, stdin_open=False, stop_signal="SIGTERM", stop_timeout=1,
        runtime_class="runc", desired=desired, generation=generation, **extra,  # type: ignore[arg-type]
    )


def assign(cid: str, s: ContainerSpec) -> Assignment:
    return Assignment(id=cid, name="c-" + cid, tenant_id="t", tenant_index=1, ip="10.0.0.2", spec=s)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(converger_module, "restart_delay", lambda n: 0.05 * n)


@pytest.fixture
def env(tmp_path: Path) -> tuple[Converger, FakeAgent, FakePlane]:
    agent = FakeAgent(tmp_path)
    plane = FakePlane()
    return Converger(agent, plane), agent, plane  # type: ignore[arg-type]


async def settle(c: Converger) -> None:
    for _ in range(50):
        await asyncio.sleep(0.02)
        if not c._tasks and not c._restarts:
            return


def states(plane: FakePlane) -> list[tuple[str, int, int]]:
    return [(r.state, r.generation, r.restart_count) for r in plane.reports]


async def test_start_then_on_failure_restarts_up_to_the_limit(env: Any) -> None:
    conv, agent, plane = env
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec(restart="on-failure:1"))]))
    await settle(conv)
    assert states(plane) == [("running", 1, 0)]
    await agent.finish("a", 1)
    await settle(conv)
    assert states(plane)[1:] == [("restarting", 1, 1), ("running", 1, 1)]
    await agent.finish("a", 1)
    await settle(conv)
    assert states(plane)[-1] == ("exited", 1, 1) and plane.reports[-1].exit_code == 1
    assert [c for c in agent.calls if c[0] == "start"] == [("start", "a")] * 2
    assert json.loads((agent.bundle("a") / "applied.json").read_text()) == {"generation": 1, "restarts": 1}


async def test_a_stop_during_back_off_cancels_the_restart(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(converger_module, "restart_delay", lambda n: 0.3)
    conv, agent, plane = env
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec(restart="always"))]))
    await settle(conv)
    await agent.finish("a", 0)
    await asyncio.sleep(0.05)
    assert states(plane)[-1] == ("restarting", 1, 1)
    stopped = spec(desired="stopped", generation=2, restart="always", stop=StopRequest(signal="SIGTERM", timeout=1))
    await conv.apply(AssignmentBatch(etag="2", containers=[assign("a", stopped)]))
    await asyncio.sleep(0.5)
    assert states(plane)[-1] == ("exited", 2, 1)
    assert [c for c in agent.calls if c[0] == "start"] == [("start", "a")]


async def test_a_stop_of_a_running_container_reports_the_exit_with_the_stop_generation(env: Any) -> None:
    conv, agent, plane = env
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec(restart="always"))]))
    await settle(conv)
    stopped = spec(desired="stopped", generation=2, restart="always", stop=StopRequest(signal="SIGTERM", timeout=1))
    await conv.apply(AssignmentBatch(etag="2", containers=[assign("a", stopped)]))
    await settle(conv)
    assert states(plane) == [("running", 1, 0), ("exited", 2, 0)] and plane.reports[-1].exit_code == 143
    kill = spec(desired="stopped", generation=3, stop=StopRequest(signal="SIGKILL"))
    await conv.apply(AssignmentBatch(etag="3", containers=[assign("a", kill)]))
    await settle(conv)
    assert states(plane)[-1] == ("exited", 3, 0)


async def test_pause_and_unpause_are_desired_state_kept_across_an_agent_restart(env: Any) -> None:
    conv, agent, plane = env
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec())]))
    await settle(conv)
    await conv.apply(AssignmentBatch(etag="2", containers=[assign("a", spec(generation=2, paused=True))]))
    await settle(conv)
    assert states(plane)[-1] == ("paused", 2, 0) and agent.paused == {"a"}
    again = Converger(agent, plane)  # type: ignore[arg-type]
    await again.apply(AssignmentBatch(etag="2", containers=[assign("a", spec(generation=2, paused=True))]))
    await settle(again)
    assert states(plane)[-1] == ("paused", 2, 0) and [c for c in agent.calls if c[0] == "pause"] == [("pause", "a")]
    await again.apply(AssignmentBatch(etag="3", containers=[assign("a", spec(generation=3))]))
    await settle(again)
    assert states(plane)[-1] == ("running", 3, 0) and agent.paused == set()


async def test_a_new_size_applies_live_and_a_refused_one_is_reported_with_the_size_kept(env: Any) -> None:
    conv, agent, plane = env
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec())]))
    await settle(conv)
    assert plane.reports[-1].size == "s1"
    await conv.apply(AssignmentBatch(etag="2", containers=[assign("a", spec(generation=2, size="m1", paused=True))]))
    await settle(conv)
    last = plane.reports[-1]
    assert (last.state, last.generation, last.size, last.error) == ("paused", 2, "m1", "")
    assert ("size:m1", "a") in agent.calls and [c for c in agent.calls if c[0] == "start"] == [("start", "a")]
    agent.refused_sizes.add("s2")
    await conv.apply(AssignmentBatch(etag="3", containers=[assign("a", spec(generation=3, size="s2"))]))
    await settle(conv)
    last = plane.reports[-1]
    assert (last.state, last.generation, last.size) == ("running", 3, "m1") and "memory" in last.error


async def test_adoption_keeps_running_containers_starts_unfinished_ones_and_removes_orphans(env: Any) -> None:
    conv, agent, plane = env
    for cid, applied in (("run", 1), ("orphan", 1)):
        agent.bundle(cid).mkdir()
        (agent.bundle(cid) / "applied.json").write_text(json.dumps({"generation": applied, "restarts": 0}))
        agent.running[cid] = True
    batch = AssignmentBatch(etag="1", containers=[assign("run", spec()), assign("inflight", spec())])
    await conv.apply(batch)
    await settle(conv)
    by_id = {r.id: r for r in plane.reports}
    assert by_id["run"].state == "running" and ("start", "run") not in agent.calls and "run" in agent.watched
    assert by_id["inflight"].state == "running" and ("start", "inflight") in agent.calls
    assert ("remove", "orphan") in agent.calls and "orphan" not in by_id


async def test_an_exit_nobody_watched_follows_the_restart_policy_on_adoption(env: Any) -> None:
    conv, agent, plane = env
    for cid in ("no", "always"):
        agent.bundle(cid).mkdir()
        (agent.bundle(cid) / "applied.json").write_text(json.dumps({"generation": 1, "restarts": 0}))
        agent.running[cid] = False
        agent.exits[cid] = ExitStatus(3, datetime.now(UTC), False)
    batch = AssignmentBatch(etag="1", containers=[assign("no", spec()), assign("always", spec(restart="always"))])
    await conv.apply(batch)
    await settle(conv)
    by_id: dict[str, list[str]] = {}
    for r in plane.reports:
        by_id.setdefault(r.id, []).append(r.state)
    assert by_id == {"no": ["exited"], "always": ["restarting", "running"]}


@pytest.mark.parametrize(("error", "field", "code"), [
    (InvalidArgument("unable to find group nosuch: no matching entries in group file", field="group_add"),
     "group_add", 128),
    (RuntimeFailure('exec: "nope": executable file not found in $PATH'), "cmd", 127),
    (RuntimeFailure("runc create failed: cgroup busy"), "", 128),
])
async def test_a_failed_start_is_reported_with_the_field_of_the_tenants_mistake(
        env: Any, monkeypatch: pytest.MonkeyPatch, error: Exception, field: str, code: int) -> None:
    conv, agent, plane = env

    async def refuse(p: Placement) -> int:
        raise error

    monkeypatch.setattr(agent, "start", refuse)
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec())]))
    await settle(conv)
    [report] = plane.reports
    assert (report.state, report.field, report.exit_code) == ("created", field, code)
    assert report.failure == ("command" if field else "runtime") and report.error == str(error)


async def test_remove_and_auto_remove(env: Any) -> None:
    conv, agent, plane = env
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec()), assign("rm", spec(auto_remove=True))]))
    await settle(conv)
    await conv.apply(AssignmentBatch(etag="2", containers=[assign("a", spec(desired="removed", generation=2)),
                                                            assign("rm", spec(auto_remove=True))]))
    await settle(conv)
    await agent.finish("rm", 0)
    await settle(conv)
    last = {r.id: r for r in plane.reports}
    assert last["a"].state == "removed" and last["a"].exit_code == 137 and last["a"].generation == 2
    assert last["rm"].state == "removed" and last["rm"].exit_code == 0
    assert not agent.bundle("a").exists() and not agent.bundle("rm").exists()


def test_restart_delay_doubles_up_to_ten_seconds() -> None:
    assert [restart_delay(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert restart_delay(20) == 10.0


async def test_a_stop_that_arrives_with_the_first_batch_after_a_crash_reports_the_exit(env: Any) -> None:
    conv, agent, plane = env
    agent.bundle("a").mkdir()
    (agent.bundle("a") / "applied.json").write_text(json.dumps({"generation": 1, "restarts": 0}))
    agent.running["a"] = True  # still running from before the agent died; nothing watches it yet
    stopped = spec(desired="stopped", generation=2, stop=StopRequest(signal="SIGTERM", timeout=1))
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", stopped)]))
    await settle(conv)
    assert states(plane)[-1] == ("exited", 2, 0) and plane.reports[-1].exit_code == 143


async def test_a_report_the_control_plane_did_not_take_is_sent_again(env: Any) -> None:
    conv, agent, plane = env
    real = plane.report
    calls = {"n": 0}

    async def flaky(node: str, reports: list[ContainerReport]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("control plane away")
        await real(node, reports)

    plane.report = flaky
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec())]))
    await settle(conv)
    assert plane.reports == []
    await conv._resend()  # what the watch loop does once the control plane answers again
    assert states(plane) == [("running", 1, 0)]


class UnreachablePlane(FakePlane):
    """A control plane that answers nothing until reachable is set."""

    def __init__(self) -> None:
        super().__init__()
        self.reachable = False

    async def report(self, node: str, reports: list[ContainerReport]) -> None:
        if not self.reachable:
            raise ConnectionError("partitioned")
        await super().report(node, reports)


async def test_a_node_cut_off_from_the_control_plane_fences_what_would_move_and_resumes_it(tmp_path: Path) -> None:
    agent, plane = FakeAgent(tmp_path), UnreachablePlane()
    conv = Converger(agent, plane, fence_after=0.3)  # type: ignore[arg-type]
    moves, pinned = assign("m", spec(restart="always")), assign("p", spec(restart="no"))
    await conv.apply(AssignmentBatch(etag="1", containers=[moves, pinned]))
    await settle(conv)
    fence = asyncio.create_task(conv.fence())
    try:
        await asyncio.sleep(1.0)
        # "m" would be placed again elsewhere once this node is down: it is stopped, and not restarted
        assert agent.running == {"m": False, "p": True} and ("stop", "m") in agent.calls
        assert [c for c in agent.calls if c[0] == "start"] == [("start", "m"), ("start", "p")]
        plane.reachable = True
        conv._reached()  # the next batch came: "m" is still ours, so it runs again
        await settle(conv)
        assert agent.running == {"m": True, "p": True}
        assert states(plane)[-1] == ("running", 1, 0) and plane.reports[-1].id == "m"
    finally:
        fence.cancel()


async def test_a_fenced_container_that_was_moved_meanwhile_is_removed_not_restarted(tmp_path: Path) -> None:
    agent, plane = FakeAgent(tmp_path), UnreachablePlane()
    conv = Converger(agent, plane, fence_after=0.3)  # type: ignore[arg-type]
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("m", spec(restart="always"))]))
    await settle(conv)
    fence = asyncio.create_task(conv.fence())
    try:
        await asyncio.sleep(1.0)
        assert agent.running == {"m": False}
        plane.reachable = True
        await conv.apply(AssignmentBatch(etag="2"))  # the control plane gave "m" to another node
        conv._reached()
        await settle(conv)
        assert ("remove", "m") in agent.calls and [c for c in agent.calls if c[0] == "start"] == [("start", "m")]
    finally:
        fence.cancel()


async def test_a_container_the_control_plane_calls_lost_is_reported_again(env: Any) -> None:
    conv, agent, plane = env
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec())]))
    await settle(conv)
    assert states(plane) == [("running", 1, 0)]
    lost = assign("a", spec()).model_copy(update={"lost": True})
    await conv.apply(AssignmentBatch(etag="2", containers=[lost]))
    await settle(conv)
    assert states(plane) == [("running", 1, 0), ("running", 1, 0)]  # still running here: it says so again
    assert [c for c in agent.calls if c[0] == "start"] == [("start", "a")]


async def test_fips_ports_and_firewalls_reach_the_network_with_each_change_only(env: Any) -> None:
    conv, agent, plane = env
    ports = [PortMapping(container_port=80, fip_port=8080)]
    wall = Firewall(rules=[FirewallRule(direction="ingress", protocol="tcp", port_min=80, port_max=80,
                                        remotes=["203.0.113.0/24"])])  # fmt: skip
    first = assign("a", spec(ports=ports)).model_copy(update={"fip": "198.18.0.7", "firewall": wall})
    await conv.apply(AssignmentBatch(etag="1", containers=[first, assign("b", spec())]))
    await conv.apply(AssignmentBatch(etag="2", containers=[first, assign("b", spec())]))
    moved = assign("b", spec()).model_copy(update={"fip": "198.18.0.7"})
    await conv.apply(AssignmentBatch(etag="3", containers=[assign("a", spec(desired="removed", generation=2)), moved]))
    await settle(conv)
    ip = IPv4Address("10.0.0.2")
    assert agent.exposed == [
        {"a": Exposure(ip, IPv4Address("198.18.0.7"), tuple(ports), wall), "b": Exposure(ip)},
        {"b": Exposure(ip, IPv4Address("198.18.0.7"))},
    ]


async def test_every_batch_feeds_the_tenant_resolvers_its_hosts_after_the_first_reconcile(env: Any) -> None:
    conv, agent, plane = env
    web = [("10.0.0.2", ["web", "aaaaaaaaaaaa", "web.t.seabox.internal"])]
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec())], hosts={1: web}))
    assert agent.calls[:2] == [("reconcile", "a"), ("dns", "1")]
    renamed = [("10.0.0.2", ["shop", "aaaaaaaaaaaa", "shop.t.seabox.internal"])]
    await conv.apply(AssignmentBatch(etag="2", containers=[assign("a", spec())], hosts={1: renamed}))
    await conv.apply(AssignmentBatch(etag="3"))  # the tenant's last container here is gone
    await settle(conv)
    assert agent.dns == [{1: web}, {1: renamed}, {}]


async def test_services_reach_the_network_with_each_change_only_the_local_backends_marked(env: Any) -> None:
    conv, agent, plane = env
    backends = [Backend(container_id="a", ip="10.0.0.2", port=80), Backend(container_id="far", ip="10.0.0.9", port=80)]
    svc = BalancedService(id="s1", name="web", tenant_id="t", tenant_index=1, vip="10.0.0.200", port=80,
                          backends=backends, fip="198.18.0.9")  # fmt: skip
    await conv.apply(AssignmentBatch(etag="1", containers=[assign("a", spec())], services=[svc]))
    await conv.apply(AssignmentBatch(etag="2", containers=[assign("a", spec())], services=[svc]))
    await conv.apply(AssignmentBatch(etag="3", containers=[assign("a", spec())]))
    await settle(conv)
    a, far = Target(IPv4Address("10.0.0.2"), 80), Target(IPv4Address("10.0.0.9"), 80)
    served = (Service("s1", 1, IPv4Address("10.0.0.200"), 80, "roundrobin", (a, far), IPv4Address("198.18.0.9"), (a,)),)
    assert agent.primed == [served]  # the first batch: before expose re-applies the table
    assert agent.balanced == [served, ()]


async def test_health_changes_are_reported_with_the_same_generation_and_state(env: Any) -> None:
    conv, agent, plane = env
    results = iter([True, True, False, False, True, True] + [True] * 1000)

    async def fake_probe(ip: IPv4Address, check: HealthCheck) -> bool:
        return next(results)

    conv.prober._probe = fake_probe
    check = HealthCheck(port=80, interval=0.2, rise=2, fall=2)
    a = assign("a", spec()).model_copy(update={"health": check})
    await conv.apply(AssignmentBatch(etag="1", containers=[a]))
    await settle(conv)
    await asyncio.sleep(1.3)
    assert [(r.state, r.generation, r.healthy) for r in plane.reports] == [
        ("running", 1, None), ("running", 1, True), ("running", 1, False), ("running", 1, True),
    ]
    await agent.finish("a", 1)
    await settle(conv)
    assert (plane.reports[-1].state, plane.reports[-1].healthy) == ("exited", None)
    assert conv.prober.watched() == set()


async def test_leastconn_services_are_rebalanced_while_there_are_some(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv, agent, plane = env
    monkeypatch.setattr(converger_module, "LEASTCONN_PERIOD", 0.02)
    backends = [Backend(container_id=c, ip=f"10.0.0.{n}", port=80) for c, n in (("a", 2), ("b", 3))]
    svc = BalancedService(id="s1", name="web", tenant_id="t", tenant_index=1, vip="10.0.0.200", port=80,
                          algorithm="leastconn", backends=backends)  # fmt: skip
    await conv.apply(AssignmentBatch(etag="1", services=[svc.model_copy(update={"backends": backends[:1]})]))
    assert conv._rebalancer is None  # one backend: nothing to choose
    await conv.apply(AssignmentBatch(etag="2", services=[svc]))
    await asyncio.sleep(0.2)
    assert agent.network.rebalanced >= 3
    await conv.apply(AssignmentBatch(etag="3"))
    seen = agent.network.rebalanced
    await asyncio.sleep(0.1)
    assert conv._rebalancer is None and agent.network.rebalanced == seen
