"""Server configuration: data dir, listen address, address ranges, registry settings and API limits (TOML file + flags)."""

from __future__ import annotations

import hashlib
import ipaddress
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from seabox.errors import InvalidArgument

DEFAULT_DATA_DIR = Path("/var/lib/seabox")
DEFAULT_LISTEN = "127.0.0.1:8470"


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


class NetworkConfig(BaseModel):
    """Address ranges. Defaults are chosen not to clash with common host and cloud networks."""

    # Each tenant gets one subnet of this size carved out of the supernet, on every node.
    tenant_supernet: str = "10.208.0.0/12"
    tenant_prefixlen: int = 24
    # Reserved for floating IPs (a later feature): the benchmarking range, never routed on the internet.
    public_range: str = "198.18.0.0/15"
    # The node's nftables table (inet family); one per node, a chain per tenant inside it.
    nft_table: str = "seabox"

    @field_validator("tenant_supernet", "public_range")
    @classmethod
    def _is_network(cls, v: str) -> str:
        try:
            ipaddress.IPv4Network(v)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 network: {v}") from exc
        return v


class TLSConfig(BaseModel):
    """An optional second, TLS-only listener; with client_ca, a client certificate's CN names its tenant."""

    listen: str | None = None  # e.g. "0.0.0.0:2376"; no TLS listener when unset
    cert: Path | None = None  # server certificate chain (PEM)
    key: Path | None = None  # its private key (PEM)
    client_ca: Path | None = None  # CA that signs tenant client certificates (mTLS)


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


class ServerConfig(BaseModel):
    """Everything `seabox server` needs; loaded from DATA_DIR/config.toml and overridden by flags."""

    data_dir: Path = DEFAULT_DATA_DIR
    listen: str = DEFAULT_LISTEN
    database_url: str | None = None
    node_name: str = "local"
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    registries: RegistryConfig = Field(default_factory=RegistryConfig)
    tls: TLSConfig = Field(default_factory=TLSConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)

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
