"""Server configuration: data dir, listen address, address ranges, registry settings and disk caps (TOML file + flags)."""

from __future__ import annotations

import hashlib
import ipaddress
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from seabox.errors import InvalidArgument
from seabox.model.volume import parse_bytes

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
