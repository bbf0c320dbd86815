"""Container models: the create request at the API edge, the stored spec (what was asked) and status (what is true)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from seabox.errors import InvalidArgument
from seabox.model.options import MAX_GROUP_ADD, MAX_TMPFS, LogLimits, TmpfsMount, check_group, check_seccomp_profile, parse_cpuset
from seabox.model.healthcheck import Health, Healthcheck
from seabox.model.ports import PortMapping, check_ports, expand
from seabox.model.runtime import RuntimeName
from seabox.model.security import UlimitSpec, normalize_capability
from seabox.model.sizes import DEFAULT_SIZE, check_size

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
# Docker's rule for volume names, bounded at 255 (a file name's limit): what a new volume may be called
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}$")
VOLUME_NAME_RULE = "2-255 of [a-zA-Z0-9_.-], starting with a letter or digit"
# what a mount may name: one character too, as Seabox allowed before it took Docker's rule, so that the
# volumes made then stay mountable
_MOUNTABLE_VOLUME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$")
ENV_KEY_RE = re.compile(r"^[^=\s]+$")

# lost: its node is down, and nothing can say whether it still runs
State = Literal["created", "running", "paused", "restarting", "exited", "dead", "removing", "lost"]
# the states in which a container holds its size on its node (and `ps` lists it without --all)
ACTIVE: tuple[State, ...] = ("running", "paused", "restarting")


MAX_GROUPS_PER_CONTAINER = 16
# labels the cloud sets on the containers it runs for services, crons and functions (seabox.service, ...)
RESERVED_LABEL_PREFIX = "seabox."


def check_tenant_labels(labels: dict[str, str]) -> None:
    """Refuse labels a tenant may not set itself: those that mark the cloud's own service, cron and function containers."""
    reserved = sorted(k for k in labels if k.lower().startswith(RESERVED_LABEL_PREFIX))
    if reserved:
        raise InvalidArgument(
            f"labels starting with {RESERVED_LABEL_PREFIX!r} are the cloud's own (got {', '.join(reserved)}); "
            "use another prefix",
            field="labels",
        )


def check_env(items: list[str]) -> list[str]:
    """ITEMS if each is an environment entry KEY=VALUE, or a bare KEY (as Docker: KEY is then unset): a key
    without '=' or whitespace, and no NUL anywhere (a process's environment cannot carry one). The one rule
    for containers, services, crons and functions."""
    for item in items:
        key = item.partition("=")[0]
        if not ENV_KEY_RE.match(key) or "\0" in item:
            raise ValueError(f"environment entries must be KEY=VALUE or KEY, got {item[:80]!r}")
    return items


def check_group_name(name: str) -> str:
    """NAME if it is a valid security group name (as container names: 1-63 of [a-zA-Z0-9_.-])."""
    if not NAME_RE.match(name):
        raise ValueError(f"invalid security group name {name!r}: 1-63 of [a-zA-Z0-9_.-], starting with a letter or digit")
    return name


def check_group_names(names: list[str]) -> list[str]:
    """Security group names as a container lists them: valid, each once, at most MAX_GROUPS_PER_CONTAINER."""
    if len(names) > MAX_GROUPS_PER_CONTAINER:
        raise ValueError(f"a container is in at most {MAX_GROUPS_PER_CONTAINER} security groups, got {len(names)}")
    for name in names:
        check_group_name(name)
    if len(set(names)) != len(names):
        raise ValueError("each security group may be given once")
    return names


class RestartPolicy(BaseModel):
    """When the cloud restarts a container that exited: no, on-failure[:max], always, unless-stopped."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["no", "on-failure", "always", "unless-stopped"] = "no"
    max_retries: int = Field(0, ge=0)

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        name, _, count = text.partition(":")
        if count and name != "on-failure":
            raise ValueError("only on-failure takes a retry count (on-failure:N)")
        if count and not count.isdigit():
            raise ValueError(f"retry count must be a whole number, got {count!r}")
        if name not in ("no", "on-failure", "always", "unless-stopped"):
            raise ValueError(f"restart policy must be no, on-failure[:N], always or unless-stopped, got {text!r}")
        return cls(name=name, max_retries=int(count or 0))  # type: ignore[arg-type]

    def __str__(self) -> str:
        if self.name == "on-failure" and self.max_retries:
            return f"on-failure:{self.max_retries}"
        return self.name


class VolumeMount(BaseModel):
    """A named volume mounted at an absolute path inside the container."""

    model_config = ConfigDict(extra="forbid")

    volume: str
    path: str
    readonly: bool = False

    @classmethod
    def parse(cls, text: str) -> VolumeMount:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"volume must be NAME:/path[:ro|rw], got {text!r}")
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise ValueError(f"volume mode must be ro or rw, got {mode!r}")
        return cls(volume=parts[0], path=parts[1], readonly=mode == "ro")

    @field_validator("volume")
    @classmethod
    def _volume_name(cls, v: str) -> str:
        if v.startswith("/") or v.startswith("."):
            raise ValueError(
                f"host paths cannot be mounted ({v!r}): create a volume with `seabox volume create` and mount it by name"
            )
        if not _MOUNTABLE_VOLUME_RE.match(v):
            raise ValueError(f"invalid volume name {v[:80]!r}: {VOLUME_NAME_RULE}")
        return v

    @field_validator("path")
    @classmethod
    def _abs_path(cls, v: str) -> str:
        if not v.startswith("/") or "\0" in v or ".." in v.split("/"):
            raise ValueError(f"mount path must be absolute without '..', got {v!r}")
        return v

    def __str__(self) -> str:
        return f"{self.volume}:{self.path}" + (":ro" if self.readonly else "")


def parse_volumes(v: object) -> object:
    """A request's volumes with each "NAME:/path[:ro]" string parsed to a VolumeMount (the rest left to pydantic)."""
    if isinstance(v, list):
        return [VolumeMount.parse(x) if isinstance(x, str) else x for x in v]
    return v


# request fields the container, service and cron create requests share, each checked as it is parsed
EnvList = Annotated[list[str], AfterValidator(check_env)]
SizeName = Annotated[str, AfterValidator(check_size)]
VolumeList = Annotated[list[VolumeMount], BeforeValidator(parse_volumes)]
GroupNames = Annotated[list[str], AfterValidator(check_group_names)]


class ContainerCreate(BaseModel):
    """What a tenant asks for when creating a container (native API body)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1)
    name: str | None = None
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: EnvList = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    size: SizeName = DEFAULT_SIZE
    volumes: VolumeList = Field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    tty: bool = False
    stdin_open: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = Field(None, ge=0)
    auto_remove: bool = False
    # None: the tenant's default class, else the operator's (see `seabox admin tenant set`)
    runtime_class: RuntimeName | None = None
    cap_drop: list[str] = Field(default_factory=list, max_length=64)
    read_only: bool = False
    ulimits: list[UlimitSpec] = Field(default_factory=list, max_length=32)
    pids_limit: int | None = Field(None, ge=1, le=1 << 22)
    cap_add: list[str] = Field(default_factory=list, max_length=64)  # within Docker's default set
    seccomp_profile: str | None = None  # a profile in Docker's JSON format: narrows Seabox's default filter
    tmpfs: list[TmpfsMount] = Field(default_factory=list, max_length=MAX_TMPFS)
    init: bool = False  # tini as PID 1, reaping zombies and forwarding signals
    group_add: list[str] = Field(default_factory=list, max_length=MAX_GROUP_ADD)  # gids or group names
    cpuset_cpus: str | None = None  # the node's cpus the container may run on, as 0-2,4
    memory_swappiness: int | None = Field(None, ge=0, le=0)  # containers have no swap: only 0 holds
    log: LogLimits = Field(default_factory=LogLimits)
    network: Literal["default", "none"] = "default"  # none: loopback only, no address, no floating IP
    # None: the image's HEALTHCHECK, if any; test ["NONE"] turns it off; unset fields come from the image's
    healthcheck: Healthcheck | None = None
    # published ports: mappings, or "[FIP_PORT:]CONTAINER_PORT[/tcp|udp]" strings (ranges expand)
    ports: list[PortMapping] = Field(default_factory=list)
    # also publish every port the image exposes, on the same port number (Docker's -P)
    publish_all: bool = False
    # a floating IP to attach: its address or name, or "auto" (a dangling one the tenant holds, else a new one)
    fip: str | None = Field(None, min_length=1, max_length=63)

    @field_validator("ports", mode="before")
    @classmethod
    def _port_specs(cls, v: object) -> object:
        return expand(v)

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[PortMapping]) -> list[PortMapping]:
        return check_ports(v)
    # the tenant's security groups the container is in (none: the default policy; see docs/security-groups.md)
    security_groups: GroupNames = Field(default_factory=list)

    @field_validator("cap_drop")
    @classmethod
    def _cap_drop(cls, v: list[str]) -> list[str]:
        return sorted({normalize_capability(name) for name in v})

    @field_validator("cap_add")
    @classmethod
    def _cap_add(cls, v: list[str]) -> list[str]:
        names = sorted({normalize_capability(name) for name in v})
        if "ALL" in names:
            raise ValueError("--cap-add ALL would grant capabilities containers never have: name the ones to add back")
        return names

    @field_validator("seccomp_profile")
    @classmethod
    def _seccomp(cls, v: str | None) -> str | None:
        return None if v is None else check_seccomp_profile(v)

    @field_validator("group_add")
    @classmethod
    def _group_add(cls, v: list[str]) -> list[str]:
        return [check_group(g) for g in v]

    @field_validator("cpuset_cpus")
    @classmethod
    def _cpuset(cls, v: str | None) -> str | None:
        if v:
            parse_cpuset(v)
        return v or None

    @field_validator("tmpfs")
    @classmethod
    def _tmpfs(cls, v: list[TmpfsMount]) -> list[TmpfsMount]:
        if len({t.path for t in v}) != len(v):
            raise ValueError("each tmpfs path may be given once")
        return v

    @field_validator("ulimits", mode="before")
    @classmethod
    def _ulimits(cls, v: object) -> object:
        if isinstance(v, list):
            return [UlimitSpec.parse(x) if isinstance(x, str) else x for x in v]
        return v

    @field_validator("ulimits")
    @classmethod
    def _unique_ulimits(cls, v: list[UlimitSpec]) -> list[UlimitSpec]:
        names = [u.name for u in v]
        if len(names) != len(set(names)):
            raise ValueError("each ulimit may be given once")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.lstrip("/")
        if not NAME_RE.match(v):
            raise ValueError(f"invalid container name {v!r}: 1-63 of [a-zA-Z0-9_.-], starting with a letter or digit")
        return v

    @field_validator("restart", mode="before")
    @classmethod
    def _restart(cls, v: object) -> object:
        return RestartPolicy.parse(v) if isinstance(v, str) else v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"working directory must be absolute, got {v!r}")
        return v


class ContainerSpec(BaseModel):
    """The stored desired state: the request resolved against the image's config."""

    image: str  # canonical reference, e.g. docker.io/library/busybox:latest
    image_ref: str | None = None  # the reference as the tenant gave it (busybox): what inspect and ps show
    image_id: str
    # imported, not pulled: only the node that holds the import can run it (no node can pull it)
    image_imported: bool = False
    # a reference any node can pull the image by (the repo@digest the tenant pulled; None for an import)
    image_pull: str | None = None
    args: list[str]  # entrypoint + cmd, resolved
    cmd: list[str] | None
    entrypoint: list[str] | None
    env: list[str]
    labels: dict[str, str]
    size: str
    volumes: list[VolumeMount]
    workdir: str
    user: str
    hostname: str
    restart: RestartPolicy
    tty: bool
    stdin_open: bool
    stop_signal: str
    stop_timeout: int
    runtime_class: str
    auto_remove: bool = False
    cap_drop: list[str] = Field(default_factory=list)
    read_only: bool = False
    ulimits: list[UlimitSpec] = Field(default_factory=list)
    pids_limit: int | None = None
    cap_add: list[str] = Field(default_factory=list)
    seccomp_profile: str | None = None
    tmpfs: list[TmpfsMount] = Field(default_factory=list)
    init: bool = False
    group_add: list[str] = Field(default_factory=list)
    cpuset_cpus: str | None = None
    memory_swappiness: int | None = None
    log: LogLimits = Field(default_factory=LogLimits)
    network: Literal["default", "none"] = "default"
    healthcheck: Healthcheck | None = None  # merged with the image's; its node probes it while it runs if enabled
    ports: list[PortMapping] = Field(default_factory=list)  # published on the container's floating IP
    security_groups: list[str] = Field(default_factory=list)  # group names, in the order given
    # what the tenant last asked for; its node converges to it and reports back the generation it acted on
    desired: Literal["created", "running", "stopped", "removed"] = "created"
    generation: int = 0  # bumped by every start, stop, kill, pause, unpause, live resize and remove
    paused: bool = False  # its processes are to be frozen while it runs (docker pause); a start clears it
    stop: StopRequest | None = None  # how the last stop or kill is to be done


class StopRequest(BaseModel):
    """How a node stops a container: SIGNAL, then SIGKILL after TIMEOUT seconds (None: the signal only)."""

    signal: str
    timeout: float | None = None


class ContainerStatus(BaseModel):
    """What is true of a container, as last observed by its node."""

    state: State = "created"
    # the node it is placed on: for operators only, never in what tenants get (the store keeps it in its own column)
    node: str | None = Field(None, exclude=True)
    pid: int = 0
    ip: str | None = None
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    error_field: str = ""  # the field of the spec that error is about, when the tenant's input made the start fail
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restart_count: int = 0
    generation: int = 0  # the spec generation the node last acted on
    # the outcome of its health check while it runs (None: it has none, or it is not yet decided)
    healthy: bool | None = None
    # its healthcheck's state while it runs (None: it has no healthcheck, or it is not running)
    health: Health | None = None
    # the size whose limits it ran with when its node last said (None: not yet started, or never said)
    size: str | None = None


class Container(BaseModel):
    """A container record as the API returns it."""

    id: str
    name: str
    tenant: str
    created_at: datetime
    spec: ContainerSpec
    status: ContainerStatus
    fip: str | None = None  # the floating IP attached to it (its published ports are reachable there)

    @property
    def running(self) -> bool:
        return self.status.state in ("running", "restarting")


def movable(spec: ContainerSpec) -> bool:
    """Whether the container may run on another node: its policy restarts it, and nothing pins it."""
    return (
        spec.restart.name in ("always", "unless-stopped", "on-failure")
        and not spec.volumes  # a volume lives on one node
        and not spec.image_imported and spec.image != spec.image_id  # an import is on its node only
    )
