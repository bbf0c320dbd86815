"""Translation between Docker's container JSON and Seabox's models, with clear refusals for what Seabox cannot honour."""

from __future__ import annotations

from datetime import datetime
from ipaddress import IPv4Address
from typing import Any

from pydantic import ValidationError

from seabox.config import NetworkConfig
from seabox.errors import InvalidArgument
from seabox.model.container import (
    Container,
    ContainerCreate,
    RestartPolicy,
    VolumeMount,
)
from seabox.model.healthcheck import Health, Healthcheck
from seabox.model.humanize import status_words
from seabox.model.options import LogLimits, parse_bytes
from seabox.model.security import normalize_capability
from seabox.model.ports import PortMapping, parse_ports
from seabox.model.sizes import DEFAULT_SIZE, SIZES, get_size, smallest_fitting
from seabox.model.tenant import Tenant
from seabox.model import ipam

SIZE_LABEL = "sh_hyper_instancetype"  # the label Hyper.sh used for sizes; also accepted on create
SG_LABEL = "sh_hyper_sg_"  # sh_hyper_sg_NAME=yes: the container is in security group NAME (as on Hyper.sh)
ZERO_TIME = "0001-01-01T00:00:00Z"
PORTS_FIELD = "HostConfig.PortBindings"
ANY_HOST = ("", "0.0.0.0", "::")  # a HostIp that names no host address: the container's floating IP


def rfc3339(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ZERO_TIME


def _refuse(option: str, instead: str, field: str) -> InvalidArgument:
    return InvalidArgument(f"{option} is not supported by Seabox: {instead}", field=field)


# HostConfig options Seabox refuses when set to anything but their zero value: field -> (option, what to use instead)
REFUSED_HOST: dict[str, tuple[str, str]] = {
    "Privileged": ("--privileged", "containers run with the default capability set: add back one with --cap-add"),
    "Devices": ("--device", "host devices are not exposed to tenants"),
    "DeviceCgroupRules": ("--device-cgroup-rule", "host devices are not exposed to tenants"),
    "DeviceRequests": ("--gpus", "nodes offer no GPUs"),
    "VolumesFrom": ("--volumes-from", "mount the same named volume with -v NAME:/path"),
    "VolumeDriver": ("--volume-driver", "volumes are the node's local filesystems"),
    "CgroupParent": ("--cgroup-parent", "each container's cgroup is placed by its node"),
    "Cgroup": ("--cgroup", "containers get their own cgroup"),
    "BlkioWeight": ("--blkio-weight", "disk throughput is not divided per container"),
    "BlkioWeightDevice": ("--blkio-weight-device", "disk throughput is not divided per container"),
    "BlkioDeviceReadBps": ("--device-read-bps", "disk throughput is not divided per container"),
    "BlkioDeviceWriteBps": ("--device-write-bps", "disk throughput is not divided per container"),
    "BlkioDeviceReadIOps": ("--device-read-iops", "disk throughput is not divided per container"),
    "BlkioDeviceWriteIOps": ("--device-write-iops", "disk throughput is not divided per container"),
    "CpuPeriod": ("--cpu-period", "choose a size (--cpus or the sh_hyper_instancetype label)"),
    "CpuQuota": ("--cpu-quota", "choose a size (--cpus or the sh_hyper_instancetype label)"),
    "CpuRealtimePeriod": ("--cpu-rt-period", "no realtime scheduling for tenants"),
    "CpuRealtimeRuntime": ("--cpu-rt-runtime", "no realtime scheduling for tenants"),
    "CpusetMems": ("--cpuset-mems", "memory nodes are the node's to place"),
    "CpuCount": ("--cpu-count", "a Windows option: choose a size"),
    "CpuPercent": ("--cpu-percent", "a Windows option: choose a size"),
    "IOMaximumIOps": ("--io-maxiops", "a Windows option"),
    "IOMaximumBandwidth": ("--io-maxbandwidth", "a Windows option"),
    "KernelMemoryTCP": ("--kernel-memory-tcp", "the size's memory limit covers it"),
    "MemoryReservation": ("--memory-reservation", "a size reserves its whole memory: choose a smaller size"),
    "OomKillDisable": ("--oom-kill-disable", "a container past its size's memory is killed"),
    "OomScoreAdj": ("--oom-score-adj", "every container has the same OOM score"),
    "ShmSize": ("--shm-size", "/dev/shm is 64 MiB: mount a larger one with --tmpfs /dev/shm:size=..."),
    "Sysctls": ("--sysctl", "kernel settings are the node's"),
    "StorageOpt": ("--storage-opt", "the rootfs size comes with the container's size"),
    "Dns": ("--dns", "containers resolve through the tenant's DNS server (names of its containers and services)"),
    "DnsOptions": ("--dns-option", "containers resolve through the tenant's DNS server"),
    "DnsSearch": ("--dns-search", "containers resolve through the tenant's DNS server"),
    "ExtraHosts": ("--add-host", "name containers and reach them by name on the tenant network"),
    "Links": ("--link", "containers reach each other by name on the tenant network"),
    "Annotations": ("--annotation", "use labels"),
    "MaskedPaths": ("MaskedPaths", "every container has Docker's masked paths"),
    "ReadonlyPaths": ("ReadonlyPaths", "every container has Docker's read-only paths"),
}
# Config options refused the same way
REFUSED_CONFIG: dict[str, tuple[str, str]] = {
    "Domainname": ("--domainname", "set --hostname"),
    "MacAddress": ("--mac-address", "each address's MAC is derived from it"),
    "NetworkDisabled": ("NetworkDisabled", "use --network none"),
    "OnBuild": ("OnBuild", "docker build is not offered: build elsewhere and docker load or push"),
    "Shell": ("Shell", "a build option: docker build is not offered"),
}
LOG_DRIVERS = ("", "json-file", "k8s-file", "local")  # each is the node's k8s-file log, read by docker logs
SWAP_FIELD = "HostConfig.MemorySwappiness"


def _set(value: Any) -> bool:
    return value not in (None, 0, "", [], {}, False)


def _check_host_config(body: dict[str, Any], hc: dict[str, Any]) -> None:
    """Refuse every option that would reach the host or that Seabox cannot honour."""
    for table, where, fields in ((REFUSED_HOST, "HostConfig.", hc), (REFUSED_CONFIG, "", body)):
        for key, (option, instead) in table.items():
            if _set(fields.get(key)):
                raise _refuse(option, instead, where + key)
    mode = hc.get("NetworkMode") or "default"
    if mode not in ("default", "bridge", "none"):
        raise _refuse(f"--network={mode}", "every container is on its tenant's private network (or none)",
                      "HostConfig.NetworkMode")
    for key, flag in (("PidMode", "--pid"), ("IpcMode", "--ipc"), ("UTSMode", "--uts"), ("UsernsMode", "--userns"),
                      ("CgroupnsMode", "--cgroupns")):
        value = hc.get(key) or ""
        if value and value not in ("private", "shareable", ""):
            raise _refuse(f"{flag}={value}", "containers get their own namespaces", f"HostConfig.{key}")
    if (hc.get("Isolation") or "default") != "default":
        raise _refuse(f"--isolation={hc['Isolation']}", "use --runtime runc or gvisor", "HostConfig.Isolation")
    for endpoint in ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).values():
        ipam_config = (endpoint or {}).get("IPAMConfig") or {}
        if _set(ipam_config.get("IPv4Address")) or _set(ipam_config.get("IPv6Address")):
            raise _refuse("--ip", "the tenant network gives each container its address", "NetworkingConfig")


def _cap_add(hc: dict[str, Any]) -> list[str]:
    names = hc.get("CapAdd") or []
    for name in names:
        try:
            normalize_capability(str(name))
        except ValueError as exc:
            raise _refuse(f"--cap-add {str(name).upper().removeprefix('CAP_')}",
                          f"only Docker's default set can be added back: {exc}",
                          "HostConfig.CapAdd") from None
        if str(name).upper() == "ALL":
            raise _refuse("--cap-add ALL", "name the default capabilities to add back", "HostConfig.CapAdd")
    return [str(n) for n in names]


# Docker's names for Seabox's runtime classes (`docker run --runtime runsc` is gVisor's usual name).
RUNTIME_ALIASES = {"runc": "runc", "gvisor": "gvisor", "runsc": "gvisor"}
NO_NEW_PRIVILEGES = "no-new-privileges"


def _runtime(hc: dict[str, Any]) -> str | None:
    name = hc.get("Runtime")
    if not name:
        return None
    if not isinstance(name, str) or name not in RUNTIME_ALIASES:
        raise InvalidArgument(
            f"unknown runtime {name!r}: use runc or gvisor (runsc)", field="HostConfig.Runtime"
        )
    return RUNTIME_ALIASES[name]


def _security_opts(hc: dict[str, Any]) -> str | None:
    """The seccomp profile given (None: the default); no-new-privileges is always on; 400 for what would weaken it."""
    profile = None
    for opt in hc.get("SecurityOpt") or []:
        text = str(opt)
        key, sep, value = text.partition("=")
        if not sep:  # Docker's older KEY:VALUE spelling
            key, sep, value = text.partition(":")
        if key == NO_NEW_PRIVILEGES and (not sep or value == "true"):
            continue
        if key == NO_NEW_PRIVILEGES:
            raise _refuse(f"--security-opt {opt}", "no-new-privileges is always on", "HostConfig.SecurityOpt")
        if key == "seccomp" and value in ("builtin", "default"):
            continue
        if key == "seccomp" and value != "unconfined":
            profile = value
            continue
        raise _refuse(
            f"--security-opt {text[:40]}",
            "every container runs with Seabox's seccomp profile (or a narrower one: --security-opt seccomp=FILE) "
            "and user namespace; use --runtime gvisor for a stronger sandbox",
            "HostConfig.SecurityOpt",
        )
    return profile


def _ulimits(hc: dict[str, Any]) -> list[dict[str, Any]]:
    limits = hc.get("Ulimits") or []
    if not isinstance(limits, list) or not all(isinstance(u, dict) for u in limits):
        raise InvalidArgument("Ulimits must be a list of {Name, Soft, Hard}", field="HostConfig.Ulimits")
    return [{"name": u.get("Name"), "soft": u.get("Soft"), "hard": u.get("Hard")} for u in limits]


def _tmpfs(hc: dict[str, Any]) -> list[dict[str, str]]:
    given = hc.get("Tmpfs") or {}
    if not isinstance(given, dict):
        raise InvalidArgument("Tmpfs must be an object of path to options", field="HostConfig.Tmpfs")
    return [{"path": path, "options": str(options or "")} for path, options in given.items()]


def _log(hc: dict[str, Any]) -> dict[str, Any]:
    config = hc.get("LogConfig") or {}
    driver = config.get("Type") or ""
    if driver not in LOG_DRIVERS:
        raise _refuse(f"--log-driver {driver}", "logs are kept by the node (docker logs reads them): "
                      "use json-file with --log-opt max-size", "HostConfig.LogConfig.Type")
    options = config.get("Config") or {}
    for key in options:
        if key not in ("max-size", "max-file"):
            raise _refuse(f"--log-opt {key}", "only max-size and max-file are honoured", "HostConfig.LogConfig.Config")
    limits: dict[str, Any] = {"options": dict(options)}
    try:
        if "max-size" in options:
            limits["max_size"] = parse_bytes(str(options["max-size"]), "max-size")
        if "max-file" in options:
            if not str(options["max-file"]).isdecimal():
                raise ValueError(f"max-file must be a whole number of files, got {options['max-file']!r}")
            limits["max_file"] = int(options["max-file"])
        return LogLimits.model_validate(limits).model_dump()
    except ValidationError as exc:
        message = "; ".join(" ".join([*(str(part).replace("_", "-") for part in e["loc"]),
                                      str(e["msg"]).removeprefix("Value error, ")]) for e in exc.errors())
        raise InvalidArgument(f"--log-opt: {message}", field="HostConfig.LogConfig.Config") from None
    except ValueError as exc:
        raise InvalidArgument(f"--log-opt: {exc}", field="HostConfig.LogConfig.Config") from None


def _swappiness(hc: dict[str, Any]) -> int | None:
    value = hc.get("MemorySwappiness")
    if value is None or value == -1:
        return None
    if value != 0:
        raise _refuse(f"--memory-swappiness={value}", "containers have no swap (MemorySwap equals Memory): "
                      "only 0 holds", SWAP_FIELD)
    return 0


def _pids_limit(hc: dict[str, Any]) -> int | None:
    value = hc.get("PidsLimit")
    if value is None or value in (0, -1):  # Docker's "unlimited": the size's own cap applies
        return None
    return value  # type: ignore[no-any-return]


def _volumes(hc: dict[str, Any]) -> list[VolumeMount]:
    mounts: list[VolumeMount] = []
    for bind in hc.get("Binds") or []:
        source = bind.split(":", 1)[0]
        if source.startswith("/") or source.startswith("."):
            raise _refuse(f"host bind mounts ({bind})", "create a volume (docker volume create NAME) and use -v NAME:/path",
                          "HostConfig.Binds")
        try:
            mounts.append(VolumeMount.parse(bind))
        except ValueError as exc:
            raise InvalidArgument(str(exc), field="HostConfig.Binds") from None
    for m in hc.get("Mounts") or []:
        if m.get("Type", "volume") != "volume":
            raise _refuse(f"--mount type={m.get('Type')}", "only named volumes can be mounted", "HostConfig.Mounts")
        if not m.get("Source"):
            raise InvalidArgument("anonymous volumes are not supported: name the volume", field="HostConfig.Mounts")
        mounts.append(VolumeMount(volume=m["Source"], path=m.get("Target", ""), readonly=bool(m.get("ReadOnly"))))
    return mounts


def _check_anonymous(body: dict[str, Any], mounts: list[VolumeMount]) -> None:
    """Refuse Config.Volumes paths no named volume is mounted at (docker-py lists the named ones there too)."""
    named = {m.path for m in mounts}
    for path in body.get("Volumes") or {}:
        if path not in named:
            raise _refuse(f"an anonymous volume at {path}", "name the volume: -v NAME:/path", "Volumes")


def _port_key(key: str, field: str) -> PortMapping:
    """Docker's "80/tcp" (or "80") as a mapping of that port to itself (400 naming FIELD if it is not one)."""
    try:
        mappings = parse_ports(key) if ":" not in key else []
    except ValueError as exc:
        raise InvalidArgument(f"{field} {key!r}: {exc}", field=field) from None
    if len(mappings) != 1:
        raise InvalidArgument(f"{field} {key!r}: name one container port, as 80/tcp", field=field)
    return mappings[0]


def _ports(body: dict[str, Any], hc: dict[str, Any]) -> tuple[list[PortMapping], bool]:
    """-p (PortBindings: HostPort is the floating IP port, empty for the same) and -P (every exposed port)."""
    mappings: list[PortMapping] = []
    for key, bindings in (hc.get("PortBindings") or {}).items():
        port = _port_key(key, PORTS_FIELD)
        for binding in bindings or []:
            host_ip = binding.get("HostIp") or ""
            if host_ip not in ANY_HOST:
                raise _refuse(f"publishing on a host address ({host_ip})",
                              "ports are published on the container's floating IP: use -p FIP_PORT:CONTAINER_PORT",
                              PORTS_FIELD)
            host_port = binding.get("HostPort") or str(port.container_port)
            if not host_port.isdigit() or not 1 <= int(host_port) <= 65535:
                raise InvalidArgument(f"HostPort must be one floating IP port from 1 to 65535, got {host_port!r}",
                                      field=PORTS_FIELD)
            mappings.append(port.model_copy(update={"fip_port": int(host_port)}))
    publish_all = bool(hc.get("PublishAllPorts"))
    if publish_all:
        published = {(m.container_port, m.protocol) for m in mappings}
        for key in body.get("ExposedPorts") or {}:
            port = _port_key(key, "ExposedPorts")
            if (port.container_port, port.protocol) not in published:
                published.add((port.container_port, port.protocol))
                mappings.append(port)
    return mappings, publish_all


def _size(body: dict[str, Any], hc: dict[str, Any]) -> str:
    labels = body.get("Labels") or {}
    if labels.get(SIZE_LABEL):
        return get_size(labels[SIZE_LABEL]).name
    memory = int(hc.get("Memory") or 0)
    cpus = int(hc.get("NanoCpus") or 0) / 1e9
    if memory or cpus:
        return smallest_fitting(memory, cpus).name
    return DEFAULT_SIZE


def _security_groups(labels: dict[str, Any]) -> list[str]:
    """The groups that sh_hyper_sg_NAME=yes labels put the container in."""
    groups = []
    for key, value in labels.items():
        if key.startswith(SG_LABEL):
            if value != "yes":
                raise InvalidArgument(f"label {key}={value}: a security group label takes the value yes "
                                      f"({key}=yes puts the container in group {key.removeprefix(SG_LABEL)})",
                                      field="Labels")
            groups.append(key.removeprefix(SG_LABEL))
    return groups


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def create_request(body: dict[str, Any], name: str | None) -> ContainerCreate:
    """A Docker POST /containers/create body as a Seabox create request (400 for what cannot be honoured)."""
    if not isinstance(body, dict) or not body.get("Image"):
        raise InvalidArgument("Image is required", field="Image")
    hc = body.get("HostConfig") or {}
    _check_host_config(body, hc)
    policy = hc.get("RestartPolicy") or {}
    given = body.get("Labels") or {}
    if not isinstance(given, dict):
        raise InvalidArgument("Labels must be an object of strings", field="Labels")
    labels = {k: v for k, v in given.items() if k != SIZE_LABEL and not k.startswith(SG_LABEL)}
    entrypoint = _as_list(body.get("Entrypoint"))
    ports, publish_all = _ports(body, hc)
    volumes = _volumes(hc)
    _check_anonymous(body, volumes)
    return ContainerCreate.model_validate(
        {
            "image": body["Image"],
            "name": name or None,
            "cmd": _as_list(body.get("Cmd")),
            "entrypoint": entrypoint,
            "env": body.get("Env") or [],
            "labels": labels,
            "size": _size(body, hc),
            "volumes": volumes,
            "workdir": body.get("WorkingDir") or None,
            "user": body.get("User") or None,
            "hostname": body.get("Hostname") or None,
            "restart": RestartPolicy(
                name=policy.get("Name") or "no", max_retries=int(policy.get("MaximumRetryCount") or 0)
            ),
            "tty": bool(body.get("Tty")),
            "stdin_open": bool(body.get("OpenStdin")),
            "stop_signal": body.get("StopSignal") or None,
            "stop_timeout": body.get("StopTimeout"),
            "auto_remove": bool(hc.get("AutoRemove")),
            "runtime_class": _runtime(hc),
            "cap_drop": hc.get("CapDrop") or [],
            "read_only": bool(hc.get("ReadonlyRootfs")),
            "ulimits": _ulimits(hc),
            "pids_limit": _pids_limit(hc),
            "cap_add": _cap_add(hc),
            "seccomp_profile": _security_opts(hc),
            "tmpfs": _tmpfs(hc),
            "init": bool(hc.get("Init")),
            "group_add": [str(g) for g in hc.get("GroupAdd") or []],
            "cpuset_cpus": hc.get("CpusetCpus") or None,
            "memory_swappiness": _swappiness(hc),
            "log": _log(hc),
            "network": "none" if hc.get("NetworkMode") == "none" else "default",
            "healthcheck": Healthcheck.from_docker(body.get("Healthcheck"), "Healthcheck"),
            "ports": ports,
            "publish_all": publish_all,
            "security_groups": _security_groups(given),
        }
    )


def _network(c: Container, net: NetworkConfig, tenant: Tenant) -> dict[str, Any]:
    if not c.status.ip:
        return {}
    subnet = ipam.tenant_subnet(net, tenant.index)
    return {
        "NetworkID": f"seabox-{tenant.id}",
        "EndpointID": c.id,
        "Gateway": str(ipam.gateway(subnet)),
        "IPAddress": c.status.ip,
        "IPPrefixLen": subnet.prefixlen,
        "MacAddress": ipam.mac_address(IPv4Address(c.status.ip)),
        "Aliases": [c.name, c.id[:12]],
    }


def _mounts(c: Container) -> list[dict[str, Any]]:
    return [
        {"Type": "volume", "Name": v.volume, "Source": "", "Destination": v.path, "Driver": "local",
         "Mode": "ro" if v.readonly else "", "RW": not v.readonly, "Propagation": ""}
        for v in c.spec.volumes
    ]


def labels_of(c: Container) -> dict[str, str]:
    """The labels docker clients see: the tenant's, the size label and one sh_hyper_sg_NAME=yes per security group."""
    return {**c.spec.labels, SIZE_LABEL: c.spec.size, **{SG_LABEL + g: "yes" for g in c.spec.security_groups}}


def _port_name(p: PortMapping) -> str:
    return f"{p.container_port}/{p.protocol}"


def _bindings(c: Container, host_ip: str | None) -> dict[str, list[dict[str, str]] | None]:
    """Each published container port with its bindings on HOST_IP (None: published nowhere, shown without)."""
    ports: dict[str, list[dict[str, str]] | None] = {}
    for p in c.spec.ports:
        bound = ports.setdefault(_port_name(p), None if host_ip is None else [])
        if bound is not None:
            bound.append({"HostIp": host_ip or "", "HostPort": str(p.fip_port)})
    return ports


def inspect(c: Container, net: NetworkConfig, tenant: Tenant) -> dict[str, Any]:
    """GET /containers/{id}/json."""
    st, spec = c.status, c.spec
    size = SIZES[spec.size]
    network = _network(c, net, tenant)
    return {
        "Id": c.id,
        "Created": rfc3339(c.created_at),
        "Path": spec.args[0],
        "Args": spec.args[1:],
        "State": {
            "Status": "dead" if st.state == "lost" else st.state,  # Docker has no lost
            "Running": st.state in ("running", "paused"),  # as Docker: a paused container runs
            "Paused": st.state == "paused",
            "Restarting": st.state == "restarting",
            "OOMKilled": st.oom_killed,
            "Dead": st.state in ("dead", "lost"),
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": rfc3339(st.started_at),
            "FinishedAt": rfc3339(st.finished_at),
            **({"Health": _health(st.health)} if st.health is not None else {}),
        },
        "Image": spec.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": "/" + c.name,
        "RestartCount": st.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": {
            "Binds": [str(v) for v in spec.volumes],
            "LogConfig": {"Type": "json-file", "Config": spec.log.options},
            "NetworkMode": "none" if spec.network == "none" else "bridge",
            "PortBindings": _bindings(c, ""),
            "RestartPolicy": {"Name": spec.restart.name, "MaximumRetryCount": spec.restart.max_retries},
            "AutoRemove": spec.auto_remove,
            "Privileged": False,
            "PublishAllPorts": False,
            "Memory": size.memory_bytes,
            "MemorySwap": size.memory_bytes,
            "NanoCpus": int(size.cpus * 1e9),
            "CpuShares": size.cpu_shares,
            "Runtime": spec.runtime_class,
            "CapAdd": [cap.removeprefix("CAP_") for cap in spec.cap_add] or None,
            "CapDrop": [cap.removeprefix("CAP_") for cap in spec.cap_drop] or None,
            "ReadonlyRootfs": spec.read_only,
            "SecurityOpt": [NO_NEW_PRIVILEGES, *([f"seccomp={spec.seccomp_profile}"] if spec.seccomp_profile else [])],
            "Tmpfs": {t.path: t.options for t in spec.tmpfs} or None,
            "Init": spec.init or None,
            "GroupAdd": spec.group_add or None,
            "CpusetCpus": spec.cpuset_cpus or "",
            "MemorySwappiness": spec.memory_swappiness,
            "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in spec.ulimits] or None,
            "PidsLimit": spec.pids_limit if spec.pids_limit is not None else SIZES[spec.size].pids,
        },
        "Config": {
            "Hostname": spec.hostname,
            "Domainname": "",
            "User": spec.user,
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "ExposedPorts": {_port_name(p): {} for p in spec.ports} or None,
            "Tty": spec.tty,
            "OpenStdin": spec.stdin_open,
            "StdinOnce": False,
            "Env": spec.env,
            "Cmd": spec.cmd,
            "Image": spec.image_ref or spec.image,
            "Volumes": None,
            "WorkingDir": spec.workdir,
            "Entrypoint": spec.entrypoint,
            "OnBuild": None,
            "Labels": labels_of(c),
            "StopSignal": spec.stop_signal,
            "StopTimeout": spec.stop_timeout,
            **({"Healthcheck": spec.healthcheck.to_docker()} if spec.healthcheck is not None else {}),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": c.id,
            "Ports": _bindings(c, c.fip),
            "SandboxKey": "",
            "IPAddress": network.get("IPAddress", ""),
            "IPPrefixLen": network.get("IPPrefixLen", 0),
            "Gateway": network.get("Gateway", ""),
            "MacAddress": network.get("MacAddress", ""),
            "Networks": {"bridge": network} if network else {},
        },
        "Mounts": _mounts(c),
    }


def _health(h: Health) -> dict[str, Any]:
    """State.Health as Docker shows it."""
    return {"Status": h.status, "FailingStreak": h.failing_streak,
            "Log": [{"Start": rfc3339(p.start), "End": rfc3339(p.end), "ExitCode": p.exit_code, "Output": p.output}
                    for p in h.log]}


def summary(c: Container, net: NetworkConfig, tenant: Tenant) -> dict[str, Any]:
    """One entry of GET /containers/json."""
    network = _network(c, net, tenant)
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.spec.image_ref or c.spec.image,
        "ImageID": c.spec.image_id,
        "Command": " ".join(c.spec.args),
        "Created": int(c.created_at.timestamp()),
        "Ports": _summary_ports(c),
        "Labels": labels_of(c),
        "State": c.status.state,
        "Status": status_words(c.status.state, c.status.exit_code, c.status.started_at, c.status.finished_at,
                               health=c.status.health.status if c.status.health is not None else None),
        "HostConfig": {"NetworkMode": "none" if c.spec.network == "none" else "bridge"},
        "NetworkSettings": {"Networks": {"bridge": network} if network else {}},
        "Mounts": _mounts(c),
    }


def _summary_ports(c: Container) -> list[dict[str, Any]]:
    """`docker ps` PORTS: FIP:FIP_PORT->PORT/PROTO with a floating IP attached, else each port alone (inert)."""
    if c.fip is None:
        seen = {(p.container_port, p.protocol) for p in c.spec.ports}
        return [{"PrivatePort": port, "Type": proto} for port, proto in sorted(seen)]
    return [{"IP": c.fip, "PrivatePort": p.container_port, "PublicPort": p.fip_port, "Type": p.protocol}
            for p in c.spec.ports]
