"""Container create options past the basics, shared by the API and nodes: tmpfs mounts, cpusets, log limits, seccomp profiles."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seabox.errors import InvalidArgument

if TYPE_CHECKING:
    from seabox.model.container import ContainerCreate

MAX_TMPFS = 8
MAX_GROUP_ADD = 32
MAX_CPU_INDEX = 1023
MAX_SECCOMP_BYTES = 256 << 10
MIN_LOG_SIZE = 4096  # conmon's own floor for --log-size-max
MAX_LOG_FILES = 100
MAX_LOG_TOTAL = 1 << 30  # max_size x max_file: what one container's log may keep on its node
_SIZE_RE = re.compile(r"^(\d+)([kmgKMG]?)[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_GROUP_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,31}$")
TMPFS_OPTIONS = frozenset({"size", "mode", "noexec", "exec", "nosuid", "suid", "nodev", "dev", "ro", "rw"})


def parse_bytes(text: str, what: str) -> int:
    """'64m', '512k', '1g' or a plain number of bytes (Docker's units, powers of 1024)."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"{what} must be a number of bytes with an optional k, m or g, got {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


class TmpfsMount(BaseModel):
    """A tmpfs at an absolute path (Docker's --tmpfs PATH[:OPTIONS]); options as given, shown back by inspect."""

    model_config = ConfigDict(extra="forbid")

    path: str
    options: str = ""

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or v == "/" or "\0" in v or ".." in v.split("/") or ":" in v:
            raise ValueError(f"tmpfs path must be absolute, not /, without '..', got {v!r}")
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v: str) -> str:
        for option in (o for o in v.split(",") if o):
            key, _, value = option.partition("=")
            if key not in TMPFS_OPTIONS:
                raise ValueError(f"tmpfs option {key!r} is not one of {', '.join(sorted(TMPFS_OPTIONS))}")
            if key == "size":
                parse_bytes(value, "tmpfs size")
            if key == "mode" and not re.fullmatch(r"[0-7]{3,4}", value):
                raise ValueError(f"tmpfs mode must be octal, as 1777, got {value!r}")
        return v

    @property
    def size_bytes(self) -> int | None:
        """The size= option in bytes; None when not given."""
        for option in self.options.split(","):
            key, _, value = option.partition("=")
            if key == "size":
                return parse_bytes(value, "tmpfs size")
        return None

    def mount_options(self, default_size: int) -> list[str]:
        """The mount options: nosuid and nodev always, noexec unless exec is asked, the size (DEFAULT_SIZE if none)."""
        given = [o for o in self.options.split(",") if o]
        keys = {o.partition("=")[0] for o in given}
        result = ["nosuid", "nodev"] + ([] if "exec" in keys else ["noexec"])
        result += [o for o in given if o.partition("=")[0] in ("mode", "ro", "rw")]
        size = self.size_bytes
        result.append(f"size={size if size is not None else default_size}")
        return result


def check_group(name: str) -> str:
    """NAME if it is a gid or a group name that /etc/group could hold."""
    if not (name.isdecimal() and int(name) <= 0xFFFFFFFE) and not _GROUP_RE.match(name):
        raise ValueError(f"group must be a gid or a group name, got {name!r}")
    return name


def parse_cpuset(text: str) -> list[int]:
    """Docker's --cpuset-cpus '0-2,4' as the sorted cpu numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        if not first.isdecimal() or (sep and not last.isdecimal()):
            raise ValueError(f"cpuset must be cpu numbers and ranges as 0-2,4, got {text!r}")
        low, high = int(first), int(last) if sep else int(first)
        if low > high or high > MAX_CPU_INDEX:
            raise ValueError(f"cpuset range {part!r} is not a range of cpu numbers up to {MAX_CPU_INDEX}")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def check_seccomp_profile(text: str) -> str:
    """TEXT if it is a seccomp profile in Docker's JSON format (as `--security-opt seccomp=FILE` sends it)."""
    if len(text) > MAX_SECCOMP_BYTES:
        raise ValueError(f"a seccomp profile is at most {MAX_SECCOMP_BYTES} bytes")
    try:
        profile: Any = json.loads(text)
    except ValueError:
        raise ValueError("the seccomp profile is not JSON: give a file in Docker's seccomp profile format") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("defaultAction"), str):
        raise ValueError("the seccomp profile must be an object with a defaultAction")
    if not isinstance(profile.get("syscalls", []), list):
        raise ValueError("the seccomp profile's syscalls must be a list")
    return text


class LogLimits(BaseModel):
    """The k8s-file log's --log-opt max-size (bytes; past it a new file is begun) and max-file (the
    files kept, the current one included; more than one needs max-size, within MAX_LOG_TOTAL)."""

    model_config = ConfigDict(extra="forbid")

    max_size: int | None = Field(None, ge=MIN_LOG_SIZE, le=MAX_LOG_TOTAL)
    max_file: int = Field(1, ge=1, le=MAX_LOG_FILES)
    options: dict[str, str] = Field(default_factory=dict)  # the --log-opt values as given, shown back by inspect

    @model_validator(mode="after")
    def _bounded(self) -> LogLimits:
        if self.max_file > 1 and self.max_size is None:
            raise ValueError("max-file above 1 needs max-size (files are rotated by size): add max-size, as 10m")
        if self.max_size is not None and self.max_size * self.max_file > MAX_LOG_TOTAL:
            raise ValueError(f"max-size x max-file is {self.max_size * self.max_file} bytes, past the "
                             f"{MAX_LOG_TOTAL} bytes a container's log may keep: choose a smaller max-size or max-file")
        return self


def check_options(req: ContainerCreate, runtime_class: str, memory_bytes: int, node_cpus: int) -> None:
    """Refuse (400 naming the field) what REQ asks that its size, its node (NODE_CPUS cpus) or its
    runtime class cannot give: tmpfs beyond the size's memory, cpus the node lacks, runc-only options."""
    total = 0
    for t in req.tmpfs:
        size = t.size_bytes
        if size is not None and not 0 < size <= memory_bytes:
            raise InvalidArgument(f"tmpfs {t.path}: size must be between 1 byte and the container's memory "
                                  f"({memory_bytes} bytes for size {req.size}); choose a larger size", field="tmpfs")
        total += size or 0
    if total > memory_bytes:
        raise InvalidArgument(f"the tmpfs sizes add up to {total} bytes, more than the container's memory "
                              f"({memory_bytes} bytes for size {req.size}): tmpfs pages count against it", field="tmpfs")
    if req.cpuset_cpus and parse_cpuset(req.cpuset_cpus)[-1] >= node_cpus:
        raise InvalidArgument(f"cpuset {req.cpuset_cpus}: the node has cpus 0-{node_cpus - 1} only", field="cpuset_cpus")
    if req.network == "none" and (req.ports or req.fip is not None or req.security_groups):
        raise InvalidArgument("a container with network none has no address: it cannot publish ports, take a "
                              "floating IP or join security groups", field="network")
    if runtime_class == "gvisor":
        if req.seccomp_profile is not None:
            raise InvalidArgument("gVisor filters system calls in its own kernel: a seccomp profile applies to "
                                  "runc containers (--runtime runc)", field="seccomp_profile")
