"""Server configuration: listen address, address ranges, registries, admission, events, disk, API limits, isolation (TOML + flags)."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import tomllib
from pathlib import Path

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from seabox.defaults import DEFAULT_DATA_DIR, DEFAULT_LISTEN
from seabox.errors import InvalidArgument
from seabox.model.quota import MAX_LIMIT, QUOTA_KEYS, Quota
from seabox.model.runtime import ID_RANGE, RUNTIME_CLASSES, RuntimeName
from seabox.model.volume import parse_bytes

# Private and shared (CGNAT) ranges: where a host's internal networks usually are.
DEFAULT_BLOCKED_EGRESS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")


def ipv4_endpoint(value: str) -> tuple[ipaddress.IPv4Address, int]:
    """Parse "A.B.C.D:PORT"; ValueError names what is wrong."""
    host, sep, port = value.rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError as exc:
        raise ValueError(f"not IPV4:PORT with an IPv4 address: {value!r}") from exc
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not IPV4:PORT with a port from 1 to 65535: {value!r}")
    return address, int(port)


def _ipv4_network(v: str) -> str:
    try:
        ipaddress.IPv4Network(v)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 network: {v}") from exc
    return v


class RegistryAuth(BaseModel):
    """Credentials for one registry host."""

    username: str
    password: str


class RegistryConfig(BaseModel):
    """How the node reaches image registries: mirrors, credentials and plain-HTTP hosts."""

    # registry host -> list of mirror hosts tried first, e.g. {"docker.io": ["127.0.0.1:5000"]}
    mirrors: dict[str, list[str]] = Field(default_factory=dict)
    # registry host -> credentials
    auth: dict[str, RegistryAuth] = Field(default_factory=dict)
    # registry hosts spoken to over plain HTTP (no TLS)
    insecure: list[str] = Field(default_factory=list)
    # Registry hosts (HOST or HOST:PORT) a pull may reach although they are loopback, link-local or
    # internal addresses (or names resolving to them); mirrors above are always allowed.
    allow_internal: list[str] = Field(default_factory=list)


class DiskConfig(BaseModel):
    """Caps on what one image or one container's log may take of the node's disk (bytes or "8GiB")."""

    # Refuse a pull or import whose layers would unpack to more than this.
    image_max_unpacked: int = Field(8 << 30, gt=0)
    # conmon truncates a container's log once it would grow past this.
    container_log_max: int = Field(10 << 20, ge=4096)

    @field_validator("image_max_unpacked", "container_log_max", mode="before")
    @classmethod
    def _bytes(cls, v: object) -> object:
        return parse_bytes(v) if isinstance(v, str) else v


class NetworkConfig(BaseModel):
    """Address ranges. Defaults are chosen not to clash with common host and cloud networks."""

    # Each tenant gets one subnet of this size carved out of the supernet, on every node.
    tenant_supernet: str = "10.208.0.0/12"
    tenant_prefixlen: int = 24
    # Floating IPs are allocated from here (its network and broadcast addresses excepted); the default
    # is the benchmarking range, never routed on the internet. `public_range` is its older name.
    fip_range: str = Field("198.18.0.0/15", validation_alias=AliasChoices("fip_range", "public_range"))
    # The node's nftables table (inet family); one per node, a chain per tenant inside it.
    # Unset: derived from the node's id (DATA_DIR/node-id), like its link names.
    nft_table: str | None = None
    # MTU of tenant bridges and container interfaces: VXLAN between nodes costs 50 bytes of the
    # underlay's MTU (1500 - 50; lower it on an underlay with a smaller MTU).
    tenant_mtu: int = Field(1450, ge=576, le=9000)
    # Tenant networks across nodes: tenant N's VXLAN network identifier is vxlan_vni_base + N,
    # carried over UDP to this port on the nodes' advertised addresses.
    vxlan_vni_base: int = Field(1 << 20, ge=1, lt=1 << 24)
    vxlan_port: int = Field(4789, gt=0, lt=65536)
    # Destinations tenant containers may not reach, besides link-local and the node itself (always).
    blocked_egress: list[str] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_EGRESS))
    # "IPV4:PORT" of the Seabox API as tenants are told to reach it; the one listener they may reach.
    tenant_api: str | None = None
    # The host interface this node serves floating IPs on (each as a /32, so it answers ARP for them).
    # Unset: this node serves no floating IPs (its containers' FIPs and published ports stay inert here).
    public_interface: str | None = None
    # The node's resolv.conf: its IPv4 nameservers (not loopback) are the upstreams of the tenant
    # resolvers, and stay reachable from containers on port 53.
    resolv_conf: Path = Path("/etc/resolv.conf")

    @field_validator("tenant_supernet", "fip_range")
    @classmethod
    def _is_network(cls, v: str) -> str:
        return _ipv4_network(v)

    @field_validator("blocked_egress")
    @classmethod
    def _are_networks(cls, v: list[str]) -> list[str]:
        return [_ipv4_network(item) for item in v]

    @field_validator("tenant_api")
    @classmethod
    def _is_reachable_endpoint(cls, v: str | None) -> str | None:
        if v is not None:
            address, _ = ipv4_endpoint(v)
            if address.is_loopback or address.is_unspecified:
                raise ValueError(f"tenant_api must be an address containers can route to, not {address}")
        return v


class TLSConfig(BaseModel):
    """An optional second, TLS-only listener; with client_ca, a client certificate's CN names its tenant."""

    listen: str | None = None  # e.g. "0.0.0.0:2376"; no TLS listener when unset
    cert: Path | None = None  # server certificate chain (PEM)
    key: Path | None = None  # its private key (PEM)
    client_ca: Path | None = None  # CA that signs tenant client certificates (mTLS)


class IsolationConfig(BaseModel):
    """Runtime classes tenants may use, and where their user namespaces sit among the host's uids."""

    # The class a container gets when neither the request nor the tenant's settings name one.
    default_runtime: RuntimeName = "runc"
    # The classes any tenant may use (a tenant's own allowed set can only narrow this).
    allowed_runtimes: list[RuntimeName] = Field(default_factory=lambda: list(RUNTIME_CLASSES))
    # runc containers of tenant N run as host uids/gids uid_base + N*65536 ... + 65535.
    uid_base: int = Field(1 << 24, ge=ID_RANGE, le=(1 << 31) - (1 << 28))

    @model_validator(mode="after")
    def _default_allowed(self) -> IsolationConfig:
        if not self.allowed_runtimes:
            raise ValueError("allowed_runtimes must name at least one runtime class")
        if self.default_runtime not in self.allowed_runtimes:
            raise ValueError(f"default_runtime {self.default_runtime} is not in allowed_runtimes")
        return self

    def host_id_base(self, tenant_index: int) -> int:
        """The host uid (and gid) that is root in tenant tenant_index's containers."""
        return self.uid_base + tenant_index * ID_RANGE


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: object) -> float:
    """A number of seconds, or a string like '90s', '30m', '12h', '7d', '2w', as seconds."""
    if isinstance(value, bool):
        raise ValueError(f"a duration must be seconds or look like 30m, 12h or 7d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"a duration must be seconds or look like 30m, 12h or 7d, got {value!r}")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


class AdmissionConfig(BaseModel):
    """How much of the node containers may claim: a size that does not fit is refused with a 409."""

    # Sum of running containers' memory sizes may reach node memory x this ratio (no overcommit: 1.0).
    memory_overcommit: float = Field(1.0, gt=0, le=100)
    # The node memory admission counts with, e.g. "16GiB"; default: the host's MemTotal.
    node_memory: int | None = Field(None, gt=0)

    @field_validator("node_memory", mode="before")
    @classmethod
    def _bytes(cls, v: object) -> object:
        return parse_bytes(v) if isinstance(v, str) else v


class EventsConfig(BaseModel):
    """How long lifecycle events are kept: older ones, and the oldest beyond the count, are pruned."""

    retention: float = 7 * 86400  # seconds, or "7d", "12h", ...
    max_count: int = Field(1_000_000, gt=0)
    prune_interval: float = 3600  # seconds between prune passes (one also runs at server start)

    @field_validator("retention", "prune_interval", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)


class RateLimit(BaseModel):
    """A token bucket: RATE requests a second on average, bursts of up to BURST; rate 0 turns it off."""

    rate: float = Field(ge=0)
    burst: int = Field(ge=1)


class ApiConfig(BaseModel):
    """Limits that keep one client from taking the API down: body sizes, connection timeouts, rate limits."""

    # ordinary requests (JSON bodies); over it: 413
    max_body_bytes: int = Field(1 << 20, ge=1024)
    # image uploads only (POST /images/load, POST /v1/images/import)
    max_upload_bytes: int = Field(16 << 30, ge=1024)
    # most nesting a JSON body may have (objects and arrays)
    max_json_depth: int = Field(64, ge=2, le=500)
    # seconds a client has to send a whole request head (line and headers) on a connection
    header_timeout: float = Field(10.0, gt=0)
    # seconds an ordinary body may take in all; an upload may stall this long between chunks
    body_timeout: float = Field(60.0, gt=0)
    # seconds an idle keep-alive connection stays open between requests
    idle_timeout: float = Field(75.0, gt=0)
    # open connections at most; past it the oldest one still idle or sending its head is closed
    max_connections: int = Field(10000, ge=16)
    # open connections from one client address at most (raise it behind a proxy or load balancer)
    max_connections_per_address: int = Field(256, ge=4)
    # per tenant credential and per client address
    rate_per_key: RateLimit = Field(default_factory=lambda: RateLimit(rate=200, burst=2000))
    rate_per_address: RateLimit = Field(default_factory=lambda: RateLimit(rate=1000, burst=5000))


class NodesConfig(BaseModel):
    """How the control plane judges its nodes."""

    # a node whose last heartbeat is older than this many seconds is down
    down_after: float = Field(30.0, gt=0)
    # seconds between a node's heartbeats
    heartbeat_interval: float = Field(5.0, gt=0)
    # a node agent (`seabox node`) that has not reached the control plane for this many seconds stops
    # the containers that would be placed again elsewhere (0: never); keep it below down_after
    fence_after: float = Field(0.0, ge=0)

    @field_validator("down_after", "heartbeat_interval", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)

    @field_validator("fence_after", mode="before")
    @classmethod
    def _duration_or_never(cls, v: object) -> float:
        return 0.0 if v in (0, "0") else parse_duration(v)


class QuotasConfig(BaseModel):
    """The operator's default quotas of every tenant (Hyper.sh's); `seabox admin quota set` overrides them per tenant.

    Past one a request is refused with a 403 naming the quota, its limit and the use.
    """

    model_config = ConfigDict(extra="forbid")

    containers: int = Field(10, ge=0, le=MAX_LIMIT)  # containers that exist, running or not
    function_containers: int = Field(10, ge=0, le=MAX_LIMIT)  # containers of function calls and replicas at once
    fips: int = Field(2, ge=0, le=MAX_LIMIT)  # floating IPs allocated (attached or not)
    services: int = Field(5, ge=0, le=MAX_LIMIT)  # load-balanced services
    volumes: int = Field(40, ge=0, le=MAX_LIMIT)  # volumes
    security_groups: int = Field(100, ge=0, le=MAX_LIMIT)  # security groups
    images: int = Field(20, ge=0, le=MAX_LIMIT)  # images (one however many names it has)
    crons: int = Field(20, ge=0, le=MAX_LIMIT)  # scheduled jobs (each may fire once a second at most)
    functions: int = Field(100, ge=0, le=MAX_LIMIT)  # functions

    def quota(self, key: str) -> Quota:
        """The quota KEY with this default."""
        return Quota(key, getattr(self, key))

    def defaults(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in QUOTA_KEYS}


class ServicesConfig(BaseModel):
    """How load-balanced services replace replicas."""

    # seconds a leaving replica (rolling update, scale-down) stays out of the backends, its open
    # connections finishing, before it is stopped; also covers every node applying the new backends
    drain_seconds: float = Field(2.0, ge=0, le=3600)


class FunctionsConfig(BaseModel):
    """Limits of function calls: how many of a tenant's calls run at once, how many wait, how long results stay."""

    # calls of one tenant running at once (each function's own --concurrency applies within it)
    tenant_concurrency: int = Field(10, ge=1, le=10000)
    # calls of one tenant waiting for a slot, first in first out; past it a call is refused with a 429
    queue_size: int = Field(100, ge=0, le=100000)
    # an async call's result is kept this long, or until it is read once
    result_ttl: float = 24 * 3600  # seconds, or "1h", "1d", ...
    # seconds between the passes that drop expired results and fail calls whose server is gone
    prune_interval: float = 10.0
    # a call queued or running on a server that stopped renewing it for this long is marked failed
    call_lease: float = 15.0
    # async results of one tenant kept unread at most; past it an async call is refused with a 429
    max_results: int = Field(1000, ge=1, le=1_000_000)
    # http mode: a warm replica beyond the function's --min-warm is removed after this long without a call
    idle_seconds: float = 300.0
    # http mode: calls one replica serves at once; another replica starts when every one is this busy
    replica_calls: int = Field(4, ge=1, le=1000)
    # http mode: replicas of one function at most (also at most its --concurrency / replica_calls)
    max_replicas: int = Field(10, ge=1, le=100)
    # http mode: seconds between the passes that keep --min-warm replicas up and remove idle ones
    pool_interval: float = 5.0

    @field_validator("result_ttl", "prune_interval", "call_lease", "idle_seconds", "pool_interval", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)


class ServerConfig(BaseModel):
    """Everything `seabox server` needs; loaded from DATA_DIR/config.toml and overridden by flags."""

    data_dir: Path = DEFAULT_DATA_DIR
    listen: str = DEFAULT_LISTEN
    database_url: str | None = None
    node_name: str = "local"
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    registries: RegistryConfig = Field(default_factory=RegistryConfig)
    disk: DiskConfig = Field(default_factory=DiskConfig)
    tls: TLSConfig = Field(default_factory=TLSConfig)
    isolation: IsolationConfig = Field(default_factory=IsolationConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    nodes: NodesConfig = Field(default_factory=NodesConfig)
    quotas: QuotasConfig = Field(default_factory=QuotasConfig)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    functions: FunctionsConfig = Field(default_factory=FunctionsConfig)

    @property
    def run_dir(self) -> Path:
        """Short per-server runtime dir under /run (unix socket paths are limited to 108 bytes)."""
        digest = hashlib.sha1(str(self.data_dir.resolve()).encode()).hexdigest()[:8]
        return Path("/run/seabox") / digest

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'seabox.db'}"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


def load_config(data_dir: Path, **overrides: object) -> ServerConfig:
    """Read DATA_DIR/config.toml if present and apply non-None overrides on top."""
    raw: dict[str, object] = {}
    path = data_dir / "config.toml"
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"{path}: {exc}") from exc
    raw["data_dir"] = data_dir
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return ServerConfig.model_validate(raw)
