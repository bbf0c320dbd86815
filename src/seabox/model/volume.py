"""Volume models: a named, tenant-owned directory that outlives the containers mounting it."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from seabox.model.container import VOLUME_NAME_RE, VOLUME_NAME_RULE

DEFAULT_VOLUME_SIZE = 10 << 30
# A volume is an ext4 image of its size: mkfs needs a few hundred KiB, a host ext4 file tops out at 16 TiB.
MIN_VOLUME_SIZE = 1 << 20
MAX_VOLUME_SIZE = 8 << 40
_SIZE_RE = re.compile(r"^(\d+)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """'1GiB', '512M', '1g' or '1048576' as a byte count (binary units)."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"size must look like 512MiB or 10GiB, got {text!r}")
    unit = (m.group(2) or "").upper()[:1]
    return int(m.group(1)) * _UNITS[unit]


class VolumeCreate(BaseModel):
    """The request to create a volume."""

    model_config = ConfigDict(extra="forbid")

    name: str
    size: int = Field(DEFAULT_VOLUME_SIZE, ge=MIN_VOLUME_SIZE, le=MAX_VOLUME_SIZE)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not VOLUME_NAME_RE.match(v):
            raise ValueError(f"invalid volume name {v[:80]!r}: {VOLUME_NAME_RULE}")
        return v

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: object) -> object:
        return parse_bytes(v) if isinstance(v, str) else v


class Volume(BaseModel):
    """A volume as the API returns it."""

    name: str
    tenant: str
    size: int
    labels: dict[str, str]
    created_at: datetime
    node: str = Field(exclude=True)  # the node that holds its data: for operators only, never shown to tenants
    in_use_by: list[str] = Field(default_factory=list)
