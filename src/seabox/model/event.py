"""Lifecycle event records: what happened to which resource and when (billing reads these)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Event(BaseModel):
    """One lifecycle event, e.g. container create/start/die/destroy, image pull, volume create."""

    id: int
    time: datetime
    tenant: str
    type: str  # container | image | volume
    action: str  # create, start, die, oom, destroy, pull, delete, ...
    resource_id: str
    resource_name: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)


class ContainerEvent(BaseModel):
    """A container lifecycle event to record with the status change that caused it."""

    action: str  # start, die, oom, destroy
    attributes: dict[str, str] = Field(default_factory=dict)
    at: float | None = None  # seconds since the epoch; None: when it is written
