"""A replica's health check: how a node probes one of its containers (TCP connect or HTTP GET) and when it counts as up."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class HealthCheck(BaseModel):
    """Probe PORT every INTERVAL seconds; RISE passes in a row make it healthy, FALL failures in a row unhealthy.

    protocol tcp: a TCP connection is accepted. http: GET PATH answers 2xx or 3xx within the interval.
    """

    model_config = ConfigDict(extra="forbid")

    protocol: Literal["tcp", "http"] = "tcp"
    port: int = Field(ge=1, le=65535)
    path: str = Field("/", pattern=r"^/[\x21-\x7e]{0,1023}$")
    interval: float = Field(3.0, ge=0.2, le=300)
    rise: int = Field(2, ge=1, le=100)
    fall: int = Field(3, ge=1, le=100)
