"""The types of the Docker request bodies Seabox reads, so a wrong type is a 400 naming the field, never a 500."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from seabox.api.body import json_body

MAX_BYTES = 1 << 62
M = TypeVar("M", bound="DockerBody")


def _one_or_many(value: object) -> object:
    """Docker takes "sh" for ["sh"] in Cmd and Entrypoint; "" means none."""
    if isinstance(value, str):
        return [value] if value else []
    return value


Strings = Annotated[list[str], BeforeValidator(_one_or_many)]


class DockerBody(BaseModel):
    """A Docker JSON body: only the fields Seabox reads are typed; the others pass through untouched."""

    model_config = ConfigDict(extra="allow")


class RestartPolicyBody(DockerBody):
    Name: str | None = None
    MaximumRetryCount: int | None = Field(None, ge=0, le=1 << 31)


class MountBody(DockerBody):
    Type: str | None = None
    Source: str | None = None
    Target: str | None = None
    ReadOnly: bool | None = None


class PortBindingBody(DockerBody):
    HostIp: str | None = None
    HostPort: str | None = None


class HostConfigBody(DockerBody):
    Binds: list[str] | None = None
    Mounts: list[MountBody] | None = None
    PortBindings: dict[str, list[PortBindingBody] | None] | None = None
    PublishAllPorts: bool | None = None
    Privileged: bool | None = None
    NetworkMode: str | None = None
    PidMode: str | None = None
    IpcMode: str | None = None
    UTSMode: str | None = None
    UsernsMode: str | None = None
    CapAdd: list[str] | None = None
    CapDrop: list[str] | None = None
    Devices: list[dict[str, Any]] | None = None
    VolumesFrom: list[str] | None = None
    SecurityOpt: list[str] | None = None
    ReadonlyRootfs: bool | None = None
    Ulimits: list[dict[str, Any]] | None = None
    PidsLimit: int | None = Field(None, le=MAX_BYTES)
    Runtime: str | None = None
    Memory: int | None = Field(None, ge=0, le=MAX_BYTES)
    NanoCpus: int | None = Field(None, ge=0, le=MAX_BYTES)
    RestartPolicy: RestartPolicyBody | None = None
    AutoRemove: bool | None = None


class ContainerCreateBody(DockerBody):
    """POST /containers/create."""

    Image: str | None = None
    Cmd: Strings | None = None
    Entrypoint: Strings | None = None
    Env: list[str] | None = None
    Labels: dict[str, str] | None = None
    WorkingDir: str | None = None
    User: str | None = None
    Hostname: str | None = None
    Tty: bool | None = None
    OpenStdin: bool | None = None
    StopSignal: str | None = None
    StopTimeout: int | None = Field(None, ge=-1, le=1 << 31)
    ExposedPorts: dict[str, Any] | None = None
    HostConfig: HostConfigBody | None = None


class ExecCreateBody(DockerBody):
    """POST /containers/{id}/exec."""

    Cmd: Strings | None = None
    Env: list[str] | None = None
    WorkingDir: str | None = None
    User: str | None = None
    Tty: bool | None = None
    Privileged: bool | None = None
    AttachStdin: bool | None = None
    AttachStdout: bool | None = None
    AttachStderr: bool | None = None
    # Docker reads JSON keys without regard to case; docker-py sends this one as detachKeys
    DetachKeys: str | None = Field(None, validation_alias=AliasChoices("DetachKeys", "detachKeys"))


class ExecStartBody(DockerBody):
    """POST /exec/{id}/start."""

    Detach: bool | None = None
    Tty: bool | None = None
    ConsoleSize: list[Annotated[int, Field(ge=0, le=65535)]] | None = None


class VolumeCreateBody(DockerBody):
    """POST /volumes/create."""

    Name: str | None = None
    Driver: str | None = None
    DriverOpts: dict[str, str] | None = None
    Labels: dict[str, str] | None = None


async def docker_body(request: web.Request, model: type[M]) -> dict[str, Any]:
    """The request's JSON body checked against MODEL, as a dict of only the fields the client sent."""
    return model.model_validate(await json_body(request)).model_dump(exclude_unset=True)
