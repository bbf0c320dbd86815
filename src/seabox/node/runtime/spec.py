"""The OCI runtime configuration (config.json) of a container, with Docker's defaults, and user resolution."""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seabox.errors import InvalidArgument
from seabox.model.security import DEFAULT_CAPABILITIES, ULIMIT_NAMES
from seabox.node.runtime import inroot, seccomp
from seabox.node.runtime.base import RunSpec, Ulimit

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CFS_PERIOD_US = 100_000
MIN_MEMORY_BYTES = 6 << 20  # Docker's floor; below it the container cannot even start its init
NOFILE_LIMIT = 1_048_576
CGROUP_PARENT = "/seabox"
_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_PASSWD_LIMIT = 4 << 20
TINI = Path("/usr/bin/tini-static")  # Debian's tini: a static init, so it runs in any image
INIT_PATH = "/sbin/docker-init"  # where Docker mounts its init

MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]

READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# (major, minor) of the character devices every container may use; None is any minor.
_ALLOWED_CHAR_DEVICES: list[tuple[int, int | None]] = [
    (1, 3),  # null
    (1, 5),  # zero
    (1, 7),  # full
    (1, 8),  # random
    (1, 9),  # urandom
    (5, 0),  # tty
    (5, 1),  # console
    (5, 2),  # ptmx
    (136, None),  # pts
]


@dataclass(frozen=True)
class ProcessUser:
    """Numeric identity of a container process."""

    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Account:
    name: str
    uid: int
    gid: int


def _parse_passwd(text: str) -> list[_Account]:
    accounts: list[_Account] = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdecimal() and fields[3].isdecimal():
            accounts.append(_Account(fields[0], int(fields[2]), int(fields[3])))
    return accounts


def _parse_group(text: str) -> list[tuple[str, int, list[str]]]:
    groups: list[tuple[str, int, list[str]]] = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdecimal():
            groups.append((fields[0], int(fields[2]), [m for m in fields[3].split(",") if m]))
    return groups


def _read_text(rootfs: Path, path: str) -> str:
    try:
        data = inroot.read_file(rootfs, path, _PASSWD_LIMIT)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path} in the image: {exc.strerror}", field="user") from exc
    return data.decode(errors="replace") if data is not None else ""


def _numeric_id(value: str, what: str) -> int:
    number = int(value)
    if number < 0 or number > 0xFFFFFFFE:
        raise InvalidArgument(f"{what} {value} is out of range", field="user")
    return number


def resolve_user(rootfs: Path, user: str) -> ProcessUser:
    """Turn Docker's user syntax ("", "uid", "uid:gid", "name", "name:group") into ids from the rootfs.

    Names are looked up in the rootfs /etc/passwd and /etc/group; supplementary groups are those
    that list the user as a member, as Docker does.
    """
    if not user:
        return ProcessUser()
    name_part, _, group_part = user.partition(":")
    if not name_part:
        raise InvalidArgument(f"user {user!r} names no user", field="user")
    accounts = _parse_passwd(_read_text(rootfs, "/etc/passwd"))
    if name_part.isdecimal():
        uid = _numeric_id(name_part, "uid")
        account = next((a for a in accounts if a.uid == uid), None)
    else:
        account = next((a for a in accounts if a.name == name_part), None)
        if account is None:
            raise InvalidArgument(
                f"unable to find user {name_part}: no matching entries in passwd file", field="user"
            )
        uid = account.uid
    needs_groups = account is not None or (group_part != "" and not group_part.isdecimal())
    groups = _parse_group(_read_text(rootfs, "/etc/group")) if needs_groups else []
    if not group_part:
        gid = account.gid if account else 0
    elif group_part.isdecimal():
        gid = _numeric_id(group_part, "gid")
    else:
        match = next((g for g in groups if g[0] == group_part), None)
        if match is None:
            raise InvalidArgument(
                f"unable to find group {group_part}: no matching entries in group file", field="user"
            )
        gid = match[1]
    additional: list[int] = []
    if account is not None:
        for _, group_id, members in groups:
            if account.name in members and group_id != gid and group_id not in additional:
                additional.append(group_id)
    return ProcessUser(uid, gid, additional)


def resolve_groups(rootfs: Path, names: list[str]) -> list[int]:
    """The gids of --group-add NAMES: numbers as given, names looked up in the rootfs /etc/group."""
    if not names:
        return []
    known = {name: gid for name, gid, _ in _parse_group(_read_text(rootfs, "/etc/group"))}
    gids: list[int] = []
    for name in names:
        if name.isdecimal():
            gids.append(_numeric_id(name, "gid"))
        elif name in known:
            gids.append(known[name])
        else:
            raise InvalidArgument(f"unable to find group {name}: no matching entries in group file", field="group_add")
    return gids


def with_groups(user: ProcessUser, gids: list[int]) -> ProcessUser:
    """USER with GIDS added to its supplementary groups (each once)."""
    extra = [g for g in dict.fromkeys(gids) if g not in user.additional_gids]
    return ProcessUser(user.uid, user.gid, [*user.additional_gids, *extra]) if extra else user


def init_binary() -> Path:
    """The init a container started with --init runs as PID 1 (Debian's tini-static on the node)."""
    if not TINI.is_file():
        raise InvalidArgument(f"--init needs {TINI} on the node (Debian package tini)", field="init")
    return TINI


def process_env(env: list[str], tty: bool) -> list[str]:
    """The environment as given, plus Docker's default PATH (and TERM for a terminal) when not named; a bare
    KEY (no '=') names KEY without setting it, so it stays unset (as Docker)."""
    names = {entry.partition("=")[0] for entry in env}
    result = [entry for entry in env if "=" in entry]
    if "PATH" not in names:
        result.insert(0, DEFAULT_PATH)
    if tty and "TERM" not in names:
        result.append("TERM=xterm")
    return result


def exec_env(container: Sequence[str], overrides: Sequence[str], tty: bool) -> list[str]:
    """An exec's environment as Docker makes it (ReplaceOrAppendEnvValues): the container's, TERM=xterm
    for a terminal unless it sets TERM, then each KEY=VALUE replacing KEY or appended; a bare KEY removes KEY."""
    merged = {entry.partition("=")[0]: entry for entry in container}
    if tty:
        merged.setdefault("TERM", "TERM=xterm")
    for entry in overrides:
        key, sep, _ = entry.partition("=")
        if sep:
            merged[key] = entry
        else:
            merged.pop(key, None)
    return list(merged.values())


def exec_process(
    container: dict[str, Any], args: list[str], *, env: list[str], cwd: str | None, user: ProcessUser | None,
    tty: bool,
) -> dict[str, Any]:
    """The OCI process of an exec: the container's own (capabilities, limits, identity) with the exec's
    command, its whole environment, terminal, cwd and user."""
    process = {**container, "terminal": tty, "args": list(args), "env": list(env)}
    if cwd:
        process["cwd"] = cwd
    if user is not None:
        process["user"] = {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)}
    return process


def _validate(spec: RunSpec) -> None:
    if not _ID_RE.match(spec.id):
        raise InvalidArgument("container id must be 64 lowercase hex digits", field="id")
    if not spec.args:
        raise InvalidArgument("no command to run", field="args")
    if not spec.cwd.startswith("/"):
        raise InvalidArgument(f"working directory {spec.cwd!r} is not absolute", field="cwd")
    if spec.memory_bytes < MIN_MEMORY_BYTES:
        raise InvalidArgument(f"memory limit must be at least {MIN_MEMORY_BYTES} bytes", field="memory_bytes")
    if not 2 <= spec.cpu_shares <= 262_144:
        raise InvalidArgument("cpu shares must be between 2 and 262144", field="cpu_shares")
    if spec.cpu_quota is not None and not 0.01 <= spec.cpu_quota <= 1024:
        raise InvalidArgument("cpu quota must be between 0.01 and 1024 cores", field="cpu_quota")
    if spec.pids_limit is not None and spec.pids_limit < 1:
        raise InvalidArgument("pids limit must be positive", field="pids_limit")
    if spec.id_map is not None and spec.netns is not None:
        raise InvalidArgument(
            "a container in a user namespace gets a new network namespace from the runtime", field="netns"
        )
    for name in spec.cap_drop:
        if name != "ALL" and name not in DEFAULT_CAPABILITIES:
            raise InvalidArgument(f"cannot drop {name}: not a capability containers have", field="cap_drop")
    for name in spec.cap_add:
        if name not in DEFAULT_CAPABILITIES:
            raise InvalidArgument(f"cannot add {name}: only Docker's default capabilities", field="cap_add")
    for tmpfs in spec.tmpfs:
        if not tmpfs.destination.startswith("/") or ".." in tmpfs.destination.split("/"):
            raise InvalidArgument(f"tmpfs destination {tmpfs.destination!r} must be absolute and plain", field="tmpfs")
    for ulimit in spec.ulimits:
        if ulimit.name not in ULIMIT_NAMES:
            raise InvalidArgument(f"unknown ulimit {ulimit.name!r}", field="ulimits")
        if not 0 <= ulimit.soft <= ulimit.hard:
            raise InvalidArgument(f"ulimit {ulimit.name}: soft must be between 0 and hard", field="ulimits")
    for mount in spec.mounts:
        if not mount.destination.startswith("/") or ".." in mount.destination.split("/"):
            raise InvalidArgument(
                f"mount destination {mount.destination!r} must be absolute and plain", field="mounts"
            )
        if not mount.source.is_absolute():
            raise InvalidArgument(f"mount source {mount.source} is not absolute", field="mounts")


def _mounts(spec: RunSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]
    for mount in spec.mounts:
        mounts.append(
            {
                "destination": mount.destination,
                "type": "bind",
                "source": str(mount.source),
                # nosuid,nodev as the host mounts them: in a user namespace those flags are locked,
                # and the remount that makes a bind read-only must keep them
                "options": ["rbind", "rprivate", "nosuid", "nodev", "ro" if mount.readonly else "rw"],
            }
        )
    for tmpfs in spec.tmpfs:
        mounts.append({"destination": tmpfs.destination, "type": "tmpfs", "source": "tmpfs", "options": tmpfs.options})
    if spec.init is not None:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": str(spec.init),
                       "options": ["rbind", "rprivate", "nosuid", "nodev", "ro"]})
    return mounts


def _resources(spec: RunSpec) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "access": "m"},
        {"allow": True, "type": "b", "access": "m"},
    ]
    for major, minor in _ALLOWED_CHAR_DEVICES:
        rule: dict[str, Any] = {"allow": True, "type": "c", "major": major, "access": "rwm"}
        if minor is not None:
            rule["minor"] = minor
        devices.append(rule)
    resources = {"devices": devices, **limit_resources(spec.memory_bytes, spec.cpu_shares, spec.cpu_quota,
                                                       spec.pids_limit)}
    if spec.cpuset_cpus:
        resources["cpu"]["cpus"] = spec.cpuset_cpus
    return resources


def limit_resources(memory_bytes: int, cpu_shares: int, cpu_quota: float | None, pids_limit: int | None) -> dict[str, Any]:
    """The memory (no swap), CPU and process caps of linux.resources: config.json's, and what `runc update` takes."""
    cpu: dict[str, Any] = {"shares": cpu_shares}
    if cpu_quota is not None:
        cpu["quota"] = round(cpu_quota * CFS_PERIOD_US)
        cpu["period"] = CFS_PERIOD_US
    resources: dict[str, Any] = {"memory": {"limit": memory_bytes, "swap": memory_bytes}, "cpu": cpu}
    if pids_limit is not None:
        resources["pids"] = {"limit": pids_limit}
    return resources


def capabilities(cap_drop: list[str], cap_add: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Docker's default capabilities less those dropped ("ALL" drops every one), with those added back."""
    return [cap for cap in DEFAULT_CAPABILITIES if cap in cap_add or ("ALL" not in cap_drop and cap not in cap_drop)]


def _rlimits(ulimits: list[Ulimit], nofile: int) -> list[dict[str, Any]]:
    limits: dict[str, dict[str, Any]] = {"nofile": {"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}}
    for ulimit in ulimits:
        limits[ulimit.name] = {"type": f"RLIMIT_{ulimit.name.upper()}", "hard": ulimit.hard, "soft": ulimit.soft}
    return list(limits.values())


def build_config(spec: RunSpec, user: ProcessUser, *, nofile: int = NOFILE_LIMIT) -> dict[str, Any]:
    """The OCI config.json for spec, the process running as user (see resolve_user).

    nofile is the default open-files limit; a runtime cannot raise it above the hard limit that
    the node agent itself runs with.
    """
    _validate(spec)
    process_user: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process_user["additionalGids"] = list(user.additional_gids)
    caps = capabilities(spec.cap_drop, spec.cap_add)
    network: dict[str, str] = {"type": "network"}
    if spec.netns is not None:
        network["path"] = str(spec.netns)
    namespaces: list[dict[str, str]] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, network]
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": f"{CGROUP_PARENT}/{spec.id}",
        "resources": _resources(spec),
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if spec.id_map is not None:
        namespaces.append({"type": "user"})
        mapping = [{"containerID": 0, "hostID": spec.id_map.host_base, "size": spec.id_map.size}]
        linux["uidMappings"] = mapping
        linux["gidMappings"] = [dict(m) for m in mapping]
    if spec.seccomp:
        profile = seccomp.default_profile(platform.machine())
        linux["seccomp"] = profile if spec.seccomp_profile is None else seccomp.narrowed(profile, spec.seccomp_profile)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": spec.tty,
            "user": process_user,
            "args": [INIT_PATH, "--", *spec.args] if spec.init is not None else list(spec.args),
            "env": process_env(spec.env, spec.tty),
            "cwd": spec.cwd,
            "capabilities": {
                "bounding": caps,
                "effective": list(caps),
                "permitted": list(caps),
            },
            "rlimits": _rlimits(spec.ulimits, nofile),
            "noNewPrivileges": True,
            "oomScoreAdj": 0,
        },
        "root": {"path": "rootfs", "readonly": spec.readonly_rootfs},
        "hostname": spec.hostname or spec.id[:12],
        "mounts": _mounts(spec),
        "linux": linux,
        "annotations": dict(spec.labels),
    }
