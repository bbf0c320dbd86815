"""Load-balanced service models: the create request, the stored spec (what was asked) and status (what is true)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from seabox.model.container import EnvList, GroupNames, SizeName, VolumeList, VolumeMount
from seabox.model.health import HealthCheck
from seabox.model.sizes import DEFAULT_SIZE
from seabox.protocol.balancing import Algorithm

# 1-56 characters, so that a replica's name NAME-xxxxxx fits the 63 of a container name; a DNS label
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,55}$")
MAX_REPLICAS = 100
Protocol = Literal["tcp", "http"]
# ready: every replica is healthy; updating: a rolling update runs; degraded: fewer ready than desired;
# down: replicas are wanted but none is healthy; stopped: zero replicas wanted
ServiceState = Literal["ready", "updating", "degraded", "down", "stopped"]


def check_name(name: str) -> str:
    """NAME if it may name a service (it is also a DNS name on the tenant's network)."""
    if not NAME_RE.match(name):
        raise ValueError(f"invalid service name {name!r}: 1-56 of [a-zA-Z0-9-], starting with a letter or digit")
    return name


class ServiceCreate(BaseModel):
    """POST /v1/services: REPLICAS containers of IMAGE behind a virtual IP on PORT (to CONTAINER_PORT in each)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    image: str = Field(min_length=1)
    cmd: list[str] | None = None
    env: EnvList = Field(default_factory=list)
    volumes: VolumeList = Field(default_factory=list)
    size: SizeName = DEFAULT_SIZE
    security_groups: GroupNames = Field(default_factory=list)
    replicas: int = Field(1, ge=0, le=MAX_REPLICAS)
    port: int = Field(ge=1, le=65535)
    container_port: int | None = Field(None, ge=1, le=65535)  # None: the same as port
    protocol: Protocol = "tcp"  # of the health check: tcp connect, or an HTTP GET of health_path
    algorithm: Algorithm = "roundrobin"
    health_interval: float = Field(3.0, ge=0.2, le=300)
    health_rise: int = Field(2, ge=1, le=100)
    health_fall: int = Field(3, ge=1, le=100)
    health_path: str = Field("/", pattern=r"^/[\x21-\x7e]{0,1023}$")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("health_path")
    @classmethod
    def _path_is_for_http(cls, v: str, info: ValidationInfo) -> str:
        if v != "/" and info.data.get("protocol") == "tcp":
            raise ValueError("a health path is GET by an http health check only: add protocol http (--protocol http)")
        return v

    def spec(self) -> ServiceSpec:
        """The stored spec of a new service (generation 1)."""
        port = self.container_port or self.port
        health = HealthCheck(protocol=self.protocol, port=port, path=self.health_path, interval=self.health_interval,
                             rise=self.health_rise, fall=self.health_fall)
        return ServiceSpec(image=self.image, cmd=self.cmd, env=self.env, volumes=self.volumes,
                           size=self.size,
                           security_groups=self.security_groups, replicas=self.replicas, port=self.port,
                           container_port=port, algorithm=self.algorithm, health=health)


class ServiceSpec(BaseModel):
    """What the tenant asked of the service; GENERATION grows with every change of what a replica runs."""

    image: str
    cmd: list[str] | None
    env: list[str]
    volumes: list[VolumeMount]
    size: str
    security_groups: list[str]
    replicas: int
    port: int
    container_port: int
    algorithm: Algorithm
    health: HealthCheck
    generation: int = 1


class ServiceStatus(BaseModel):
    """What is true of the service, as its controller last saw it."""

    state: ServiceState = "down"
    ready: int = 0
    desired: int = 0
    message: str = ""


class Replica(BaseModel):
    """One container of a service, as inspect shows it."""

    id: str
    name: str
    state: str
    healthy: bool | None
    generation: int  # the service generation it was made for
    draining: bool


class Service(BaseModel):
    """A service as the API returns it."""

    id: str
    name: str
    tenant: str
    vip: str  # its virtual IP on the tenant network
    fip: str | None = None  # the floating IP attached to it
    # the source address its FIP's connections have at replicas on other nodes (None: made before there was one)
    snat_ip: str | None = None
    created_at: datetime
    spec: ServiceSpec
    status: ServiceStatus
    replicas: list[Replica] = Field(default_factory=list)


class ServiceScale(BaseModel):
    """POST /v1/services/{name}/scale."""

    model_config = ConfigDict(extra="forbid")

    replicas: int = Field(ge=0, le=MAX_REPLICAS)


class ServiceUpdate(BaseModel):
    """POST /v1/services/{name}/update: replace the replicas, one at a time, with ones of IMAGE."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1)


class ServiceFip(BaseModel):
    """POST /v1/services/{name}/fip: attach floating IP FIP (its address or name)."""

    model_config = ConfigDict(extra="forbid")

    fip: str = Field(min_length=1, max_length=63)
