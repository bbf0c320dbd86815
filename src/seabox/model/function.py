"""Function models: the create request at the API edge and the stored function (its spec, call secret and status)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from seabox.model.container import NAME_RE, EnvList
from seabox.model.sizes import DEFAULT_SIZE

FunctionMode = Literal["stdio", "http"]
MAX_BODY = 1 << 20  # bytes of a call's request, and of its response


class FunctionSpec(BaseModel):
    """What a function runs and how: one container per call (stdio) or warm replicas serving HTTP on $PORT (http)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_RE.pattern)
    image: str = Field(min_length=1, max_length=512)
    cmd: list[str] | None = Field(None, max_length=256)
    env: EnvList = Field(default_factory=list, max_length=256)
    size: str = DEFAULT_SIZE
    mode: FunctionMode = "stdio"
    timeout: int = Field(300, ge=1, le=3600)  # seconds a call may run (504 beyond)
    concurrency: int = Field(10, ge=1, le=1000)  # calls of this function at once; more wait in its queue
    min_warm: int = Field(0, ge=0, le=100)  # http mode: replicas kept up while idle (0: scales to zero)
    port: int = Field(8080, ge=1, le=65535)  # http mode: the port the container serves ($PORT)


class Function(BaseModel):
    """A tenant's function: its spec, the secret of its public call URL, and when it was made."""

    id: str
    tenant: str
    spec: FunctionSpec
    secret: str
    generation: int = 1  # bumped by each update; warm replicas of an older generation are replaced
    created_at: float


class FunctionUpdate(BaseModel):
    """A change to a function: the fields given replace the spec's; REFRESH gives it a new call secret."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(None, min_length=1, max_length=512)
    cmd: list[str] | None = Field(None, max_length=256)
    env: EnvList | None = Field(None, max_length=256)
    size: str | None = None
    timeout: int | None = Field(None, ge=1, le=3600)
    concurrency: int | None = Field(None, ge=1, le=1000)
    min_warm: int | None = Field(None, ge=0, le=100)
    port: int | None = Field(None, ge=1, le=65535)
    refresh: bool = False


class FunctionStatus(BaseModel):
    """What a function is doing now: its calls queued and running (on every server), its warm replicas."""

    name: str
    mode: FunctionMode
    generation: int
    queued: int
    running: int
    warm_replicas: int
