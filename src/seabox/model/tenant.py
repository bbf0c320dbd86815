"""Tenant models: an account that owns containers, images and volumes, reached with an API key."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, field_validator

from seabox.model.runtime import RuntimeName

TENANT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class TenantCreate(BaseModel):
    """The request to create a tenant."""

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not TENANT_NAME_RE.match(v):
            raise ValueError(f"invalid tenant name {v!r}: 1-63 of [a-z0-9_-], starting with a letter or digit")
        return v


class Tenant(BaseModel):
    """A tenant; `index` numbers its private network on every node."""

    id: str
    name: str
    index: int
    created_at: datetime
    default_runtime: RuntimeName | None = None  # None: the operator's default
    allowed_runtimes: list[RuntimeName] | None = None  # None: every class the operator allows
