"""The desired state a node converges to (its assignments) and what it reports back (container reports)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from seabox.model.container import ContainerSpec
from seabox.model.firewall import Firewall
from seabox.model.health import HealthCheck
from seabox.model.healthcheck import Health
from seabox.protocol.balancing import BalancedService

HostsEntry = tuple[str, list[str]]  # an address and the names that resolve to it
ReportedState = Literal["created", "running", "paused", "restarting", "exited", "removed"]


class Assignment(BaseModel):
    """One container the node is to run, with what its tenant wants of it now (spec.desired, spec.generation)."""

    id: str
    name: str
    tenant_id: str
    tenant_index: int
    ip: str | None
    spec: ContainerSpec
    # the control plane holds it lost (it called this node down): the node says again what it knows of it
    lost: bool = False
    # its floating IP (None: none): DNAT of spec.ports to it, and SNAT of its egress, on this node
    fip: str | None = None
    # None: the container is in no security group (the default policy); else all it may send and receive
    firewall: Firewall | None = None
    # None: not probed; else the node probes it and reports `healthy` in its container reports
    health: HealthCheck | None = None


class AssignmentBatch(BaseModel):
    """Everything a node is to hold, in full (level-triggered): its containers and its tenants' /etc/hosts."""

    etag: str = ""  # names this content; the node passes it back to wait for the next change
    containers: list[Assignment] = Field(default_factory=list)
    # tenant index -> entries: the tenant's /etc/hosts and the records of its resolver on the node
    hosts: dict[int, list[HostsEntry]] = Field(default_factory=dict)
    # this node's underlay address (None: it has none, as the embedded node) and, per tenant index, the
    # underlay addresses of the other nodes that hold containers of that tenant (its VXLAN peers)
    underlay: str | None = None
    peers: dict[int, list[str]] = Field(default_factory=dict)
    # the load-balanced services of the tenants that have containers on this node
    services: list[BalancedService] = Field(default_factory=list)


class ContainerReport(BaseModel):
    """What is true of one container on the node, after acting on the assignment of `generation`."""

    id: str
    generation: int
    state: ReportedState
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    # why a start failed: "command" (the process could not be run: the tenant's mistake) or "runtime"
    failure: Literal["", "command", "runtime"] = ""
    field: str = ""  # the field of the container's spec a "command" failure is about (cmd, group_add, user, ...)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restart_count: int = 0
    # the outcome of its health check (None: it has none, or it is not running or not yet decided)
    healthy: bool | None = None
    # its healthcheck's state (spec.healthcheck; None: it has none, or it is not running)
    health: Health | None = None
    # the size whose limits it runs with (None: the report does not say); a live container whose spec.size
    # differs could not be changed to it, and `error` says why
    size: str | None = None
