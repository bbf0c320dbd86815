"""Floating IP models: a public address a tenant holds, may name, and attaches to one container at a time."""

from __future__ import annotations

from datetime import datetime
from ipaddress import IPv4Address, IPv4Network

from pydantic import BaseModel, ConfigDict, Field, field_validator

from seabox.errors import Conflict
from seabox.model.container import NAME_RE

AUTO = "auto"  # `run --fip auto`: a dangling floating IP the tenant holds, else a new one
MAX_ALLOCATE = 256  # floating IPs one request may allocate (the quota usually stops it well before)


def is_address(ref: str) -> bool:
    """Whether REF is a dotted IPv4 address (else it is a floating IP's name)."""
    try:
        IPv4Address(ref)
    except ValueError:
        return False
    return True


def check_name(name: str) -> str:
    """NAME if it may name a floating IP: a container-style name that is neither an address nor "auto"."""
    if not NAME_RE.match(name):
        raise ValueError(f"invalid floating IP name {name!r}: 1-63 of [a-zA-Z0-9_.-], starting with a letter or digit")
    if is_address(name) or name == AUTO:
        raise ValueError(f"{name!r} cannot name a floating IP: it would read as an address or as {AUTO!r}")
    return name


def free_addresses(network: IPv4Network, used: set[str], count: int) -> list[str]:
    """The COUNT lowest addresses of NETWORK not in USED, its network and broadcast addresses excepted (/31, /32: all)."""
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.prefixlen < 31:
        first, last = first + 1, last - 1
    found: list[str] = []
    value = first
    while len(found) < count and value <= last:
        address = str(IPv4Address(value))
        if address not in used:
            found.append(address)
        value += 1
    if len(found) < count:
        raise Conflict(f"the floating IP range {network} has no free address left: ask the operator for a larger "
                       "fip_range", field="count")
    return found


class Fip(BaseModel):
    """A floating IP as the API returns it."""

    address: str
    tenant: str
    name: str | None = None
    container: str | None = None  # the id of the container it is attached to (None: dangling)
    container_name: str | None = None
    service: str | None = None  # the name of the service it is attached to (instead of a container)
    created_at: datetime


class FipAllocate(BaseModel):
    """POST /v1/fips: allocate COUNT floating IPs; with PICK, dangling ones the tenant holds are returned first."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(1, ge=1, le=MAX_ALLOCATE)
    pick: bool = False


class FipAttach(BaseModel):
    """POST /v1/fips/{ref}/attach: attach to CONTAINER; FORCE takes it from the container holding it."""

    model_config = ConfigDict(extra="forbid")

    container: str = Field(min_length=1)
    force: bool = False


class FipDetach(BaseModel):
    """POST /v1/fips/detach: detach the floating IP of CONTAINER."""

    model_config = ConfigDict(extra="forbid")

    container: str = Field(min_length=1)


class FipName(BaseModel):
    """POST /v1/fips/{ref}/name: give the floating IP a name (unique among the tenant's)."""

    model_config = ConfigDict(extra="forbid")

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)
