"""What a service needs next, as a pure function: its replicas as they are -> replicas to make, drain and remove.

Rules: keep `replicas` replicas of the current generation; a replica that failed (exited, lost, stopped
by the tenant, its start refused) is removed at once and replaced. A rolling update adds one new
replica at a time and drains one old replica for each new one that is healthy. A replica leaves by
draining: out of the backends for `drain_seconds` first (its open connections finish), then removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seabox.model.service import ServiceState, ServiceStatus


@dataclass(frozen=True)
class ReplicaView:
    """One replica as the controller sees it."""

    id: str
    name: str
    node: str | None
    generation: int  # the service generation it was made for
    state: str  # its container's state
    desired: str  # what was last asked of its container (running, stopped, removed, ...)
    pending: bool  # its node has not yet acted on what was last asked
    healthy: bool | None
    draining_since: float | None
    error: str = ""
    created_at: float = 0.0

    @property
    def leaving(self) -> bool:
        """Its removal was asked already: it counts for nothing any more."""
        return self.desired == "removed"

    @property
    def failed(self) -> bool:
        """It will not serve again by itself: not running, and no start of it is on its way."""
        return not self.pending and (self.desired != "running" or self.state not in ("running", "restarting"))

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.healthy is True and self.draining_since is None


@dataclass
class Plan:
    """What to do now: CREATE new replicas; DRAIN and REMOVE these replicas (by id); the STATUS to record."""

    create: int = 0
    drain: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    failed: list[ReplicaView] = field(default_factory=list)
    status: ServiceStatus = field(default_factory=ServiceStatus)


def _leaving_order(r: ReplicaView) -> tuple[bool, float]:
    """Which replicas leave first: the ones not ready, then the newest."""
    return (r.ready, -r.created_at)


def plan(replicas: list[ReplicaView], want: int, generation: int, now: float, drain_seconds: float) -> Plan:
    """The next step for a service that wants WANT replicas of GENERATION, given its REPLICAS at time NOW."""
    out = Plan()
    live = [r for r in replicas if not r.leaving]
    out.failed = [r for r in live if r.failed]
    out.remove = [r.id for r in out.failed]
    out.remove += [r.id for r in live if not r.failed and r.draining_since is not None
                   and now - r.draining_since >= drain_seconds]
    active = [r for r in live if not r.failed and r.draining_since is None]
    current = [r for r in active if r.generation == generation]
    old = sorted((r for r in active if r.generation != generation), key=_leaving_order)
    ready_current = [r for r in current if r.ready]
    if old:  # rolling update: one new replica at a time, an old one drained for each new one ready
        excess = max(0, len(ready_current) + len(old) - want)
        out.drain += [r.id for r in old[:excess]]
        if len(current) < want and len(ready_current) == len(current):
            out.create = 1
    elif len(current) < want:
        out.create = want - len(current)
    if len(current) > want:
        out.drain += [r.id for r in sorted(current, key=_leaving_order)[:len(current) - want]]
    out.status = _status(active, old, ready_current, want, out.failed)
    return out


def _status(active: list[ReplicaView], old: list[ReplicaView], ready_current: list[ReplicaView], want: int,
            failed: list[ReplicaView]) -> ServiceStatus:
    ready = sum(1 for r in active if r.ready)
    state: ServiceState
    if old:
        state, message = "updating", f"updating {len(ready_current)}/{want}"
    elif want == 0:
        state, message = "stopped", "0/0 ready"
    elif ready >= want:
        state, message = "ready", f"{ready}/{want} ready"
    elif ready == 0:
        state, message = "down", "no healthy replica"
    else:
        state, message = "degraded", f"{ready}/{want} ready"
    why = next((f"{r.name}: {r.error}" for r in failed if r.error), "")
    if why and state != "ready":
        message += f" (replica {why})"
    return ServiceStatus(state=state, ready=ready, desired=want, message=message)
