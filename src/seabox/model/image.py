"""Image models as the API returns them (a tenant's view of images on the cloud)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Image(BaseModel):
    """An image as one tenant sees it: only the names it pulled, imported or tagged itself."""

    id: str
    repo_tags: list[str]
    repo_digests: list[str] = Field(default_factory=list)
    size: int
    created: datetime | None
    architecture: str = ""
    os: str = ""
    env: list[str] = Field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    exposed_ports: list[str] = Field(default_factory=list)
    volumes: list[str] = Field(default_factory=list)
    stop_signal: str = ""
    healthcheck: dict[str, Any] | None = None  # the image's HEALTHCHECK, in Docker's form (Test, Interval in ns, ...)
    layers: list[str] = Field(default_factory=list)  # the config's rootfs.diff_ids: each layer's uncompressed digest


class PullRequest(BaseModel):
    """The request to pull an image."""

    image: str


class TagRequest(BaseModel):
    """The request to give one of the tenant's images another name."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1)
