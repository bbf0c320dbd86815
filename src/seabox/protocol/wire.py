"""The node protocol's HTTP messages besides assignments and reports: joining, heartbeats, errors, paths."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from seabox.model.node import check_node_name
from seabox.protocol import PROTOCOL_VERSION
from seabox.protocol.assignments import ContainerReport

# Control-plane routes (a node calls them with its credential) and node-link routes (a server calls them).
PLANE_PREFIX = f"/node/v{PROTOCOL_VERSION}"
LINK_PREFIX = f"/link/v{PROTOCOL_VERSION}"


class RegisterRequest(BaseModel):
    """A node joining: its join token, name, the address servers reach it at, capacity and link secret."""

    token: str = Field(min_length=1, max_length=200)
    name: str
    address: str = Field(min_length=3, max_length=255)  # HOST:PORT of the node's link listener
    memory_bytes: int = Field(gt=0)
    cpus: int = Field(gt=0)
    link_secret: str = Field(min_length=32, max_length=128)  # servers send it to the node's link listener
    protocol: int = PROTOCOL_VERSION

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_node_name(v)

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, v: int) -> int:
        if v != PROTOCOL_VERSION:
            raise ValueError(f"this server speaks node protocol {PROTOCOL_VERSION}, the node {v}: upgrade one of them")
        return v


class RegisterResponse(BaseModel):
    """The node's own credential (shown once) and how often it is to heartbeat."""

    name: str
    credential: str
    heartbeat_interval: float
    protocol: int = PROTOCOL_VERSION


class Heartbeat(BaseModel):
    """A node is alive; what it has now."""

    memory_bytes: int = Field(gt=0)
    cpus: int = Field(gt=0)


class Reports(BaseModel):
    reports: list[ContainerReport] = Field(max_length=10000)


class WireError(BaseModel):
    """An error on either side: the message, the field it names, and the SeaboxError kind."""

    message: str
    field: str | None = None
    kind: str | None = None  # None: known only by the HTTP status
