"""Tenant models: an account that owns containers, images and volumes, reached with an API key."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from seabox.errors import InvalidArgument
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


class TenantRuntimes(BaseModel):
    """An operator's runtime-class settings for one tenant (None: the operator's own)."""

    model_config = ConfigDict(extra="forbid")

    default_runtime: RuntimeName | None = None
    allowed_runtimes: list[RuntimeName] | None = None

    @model_validator(mode="after")
    def _default_is_allowed(self) -> TenantRuntimes:
        if self.allowed_runtimes is not None:
            self.allowed_runtimes = sorted(set(self.allowed_runtimes))
            if self.default_runtime is not None and self.default_runtime not in self.allowed_runtimes:
                raise ValueError(f"default runtime {self.default_runtime} is not among the allowed ones")
        return self

    def check_against(self, operator_allowed: list[str], operator_default: str) -> None:
        """InvalidArgument unless these settings stay within what the operator allows."""
        for name in self.allowed_runtimes or []:
            if name not in operator_allowed:
                raise InvalidArgument(
                    f"runtime class {name} is not in the operator's allowed_runtimes ({', '.join(operator_allowed)})",
                    field="allowed_runtimes",
                )
        effective = self.default_runtime or operator_default
        if effective not in (self.allowed_runtimes or operator_allowed) or effective not in operator_allowed:
            raise InvalidArgument(
                f"the tenant's default runtime {effective} would not be allowed: set --default-runtime too",
                field="default_runtime",
            )
