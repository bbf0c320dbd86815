"""Quota models: the keys a tenant's quotas have, what each counts, and a tenant's limit and use of each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from seabox.errors import InvalidArgument

# key -> what it counts, and how a tenant frees one (for the 403 past it)
QUOTA_KEYS: dict[str, tuple[str, str]] = {
    "containers": ("containers that exist, running or not (service replicas and cron runs too)",
                   "remove one (`seabox rm`)"),
    "function_containers": ("containers running function calls or warm function replicas at once",
                            "wait for a call to end"),
    "fips": ("floating IPs allocated, attached or not", "release one (`seabox fip release`)"),
    "services": ("load-balanced services", "remove one (`seabox service rm`)"),
    "volumes": ("volumes", "remove one (`seabox volume rm`)"),
    "security_groups": ("security groups", "remove one (`seabox sg rm`)"),
    "images": ("images (an image counts once, whatever names it has)", "remove one (`seabox rmi`)"),
    "crons": ("scheduled jobs", "remove one (`seabox cron rm`)"),
    "functions": ("functions", "remove one (`seabox func rm`)"),
}
CONTAINER_QUOTAS = ("containers", "function_containers")  # the keys a container record counts against
DEFAULT = "default"  # `admin quota set T KEY=default`: the operator's default again
MAX_LIMIT = (1 << 31) - 1  # the largest limit the store keeps


@dataclass(frozen=True)
class Quota:
    """One quota as a request meets it: its key and the operator's default (a tenant's override wins)."""

    key: str
    default: int


class QuotaUse(BaseModel):
    """One of a tenant's quotas: its limit, how much of it is used, and whether the limit is the operator's default."""

    key: str
    limit: int
    used: int
    default: bool
    counts: str


def parse_quota_values(values: Mapping[str, str]) -> dict[str, int | None]:
    """KEY -> N (or "default": None) as limits to set; a 400 naming the first unknown key or bad number."""
    out: dict[str, int | None] = {}
    for key, text in values.items():
        if key not in QUOTA_KEYS:
            raise InvalidArgument(f"unknown quota {key!r}: one of {', '.join(QUOTA_KEYS)}", field=key)
        if text.strip() == DEFAULT:
            out[key] = None
            continue
        try:
            number = int(text.strip(), 10)
        except ValueError:
            raise InvalidArgument(f"quota {key}: {text!r} is not a whole number (or {DEFAULT!r})", field=key) from None
        if number < 0:
            raise InvalidArgument(f"quota {key}: {number} is negative", field=key)
        if number > MAX_LIMIT:
            raise InvalidArgument(f"quota {key}: {number} is over the largest limit, {MAX_LIMIT}", field=key)
        out[key] = number
    return out
