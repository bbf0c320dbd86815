"""Container security options shared by the API and nodes: capabilities, ulimits, security options."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Docker's default capability set (moby oci/caps/defaults.go); Seabox grants no others.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Resource limits a tenant may set with --ulimit (RLIMIT_ suffixes, lower case).
ULIMIT_NAMES = frozenset(
    {"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
     "rss", "rtprio", "rttime", "sigpending", "stack"}
)  # fmt: skip
# RLIM_INFINITY as Docker and the OCI spec write it (-1 in Docker's JSON is the same).
UNLIMITED = (1 << 64) - 1


def normalize_capability(name: str) -> str:
    """'net_raw', 'NET_RAW' or 'CAP_NET_RAW' as CAP_NET_RAW; 'all' as ALL; ValueError for others."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in DEFAULT_CAPABILITIES:
        raise ValueError(
            f"{name!r} is not one of the capabilities containers have ({', '.join(c[4:] for c in DEFAULT_CAPABILITIES)})"
        )
    return full


class UlimitSpec(BaseModel):
    """One resource limit, as Docker's --ulimit NAME=SOFT[:HARD]."""

    model_config = ConfigDict(extra="forbid")

    name: str
    soft: int = Field(ge=-1, le=UNLIMITED)
    hard: int = Field(ge=-1, le=UNLIMITED)

    @model_validator(mode="after")
    def _check(self) -> UlimitSpec:
        if self.name not in ULIMIT_NAMES:
            raise ValueError(f"unknown ulimit {self.name!r}: use one of {', '.join(sorted(ULIMIT_NAMES))}")
        self.soft = UNLIMITED if self.soft == -1 else self.soft
        self.hard = UNLIMITED if self.hard == -1 else self.hard
        if self.soft > self.hard:
            raise ValueError(f"ulimit {self.name}: soft limit {self.soft} is above hard limit {self.hard}")
        return self

    @staticmethod
    def parse(text: str) -> dict[str, object]:
        """NAME=SOFT or NAME=SOFT:HARD as the fields of an UlimitSpec."""
        name, sep, values = text.partition("=")
        soft, _, hard = values.partition(":")
        if not sep or not _is_int(soft) or (hard and not _is_int(hard)):
            raise ValueError(f"ulimit must be NAME=SOFT[:HARD] with whole numbers, got {text!r}")
        return {"name": name, "soft": int(soft), "hard": int(hard or soft)}


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdecimal() and len(text) <= 20
