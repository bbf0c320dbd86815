"""Container commands: run, create, ps, inspect, logs, exec, the lifecycle verbs, rename, top and stats."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from seabox.cli.client import (
    Client,
    CliError,
    ago,
    connect,
    each,
    human_bytes,
    inspect_all,
    pairs,
    parse_datetime,
    parse_duration,
    parse_time,
    print_table,
    quoted,
    report,
    short_id,
    timestamp,
    write_stream,
)
from seabox.cli.command import Group, UsageError, argument, flag, option, tail
from seabox.cli.images import create_pulling, familiar

if TYPE_CHECKING:
    from collections.abc import Callable
    from decimal import Decimal
    from typing import Any

PANEL = "Containers"
STATS_INTERVAL = 0.5
COMMAND_WIDTH = 20

NAMES = argument("NAME", "Container names or unique id prefixes.", many=True)
NAME = argument("NAME", "Container name or unique id prefix.")
IMAGE = argument("IMAGE", "Image reference; pulled first if you do not have it.")
CMD = tail("CMD", "Command and arguments, passed verbatim (default: the image's).")
NAME_OPT = option("--name", help="Container name (default: IMAGE-xxxxxx).")


def size_help() -> str:
    from seabox.model.sizes import DEFAULT_SIZE, SIZES  # (its import costs a start a tenth of its time)

    return f"Size: {', '.join(SIZES)} (default {DEFAULT_SIZE}; see `seabox sizes`)."


SIZE = option("--size", help=size_help)
ENV = option("-e", "--env", many=True,
             help="Environment variable KEY=VALUE (a bare KEY copies it from here); repeatable.")
LABEL = option("-l", "--label", many=True, help="Label KEY=VALUE; repeatable.")
VOLUME = option("-v", "--volume", many=True,
                help="Mount a named volume: VOLUME:/path[:ro] (created if missing); repeatable.")
WORKDIR = option("-w", "--workdir", help="Working directory inside the container.")
ENTRYPOINT = option("--entrypoint", help="Override the image's entrypoint ('' clears it).")
RESTART = option("--restart", help="Restart policy: no, on-failure[:MAX_RETRIES], always or unless-stopped.")
USER = option("-u", "--user", help="User to run as: NAME, UID or UID:GID.")
HOSTNAME = option("--hostname", help="Hostname inside the container.")
TIME = option("-t", "--time", type=float, help="Seconds to wait for a clean stop before killing.")
RUNTIME = option("--runtime", help="Runtime class: runc (hardened: own user namespace, seccomp) or gvisor (gVisor's "
                 "user-space kernel, stronger isolation, slower start). Default: your tenant's.")
CAP_DROP = option("--cap-drop", many=True, help="Drop a capability (e.g. NET_RAW, or ALL); repeatable.")
READ_ONLY = flag("--read-only", help="Mount the root filesystem read-only.")
ULIMIT = option("--ulimit", many=True, help="Resource limit NAME=SOFT[:HARD], e.g. nofile=1024; repeatable.")
PIDS_LIMIT = option("--pids-limit", type=int, min=1, help="At most this many processes (at most the size's own cap).")
PUBLISH = option("-p", "--publish", many=True,
                 help="Publish a port on the container's floating IP: [FIP_PORT:]CONTAINER_PORT[/tcp|udp], ranges as "
                 "8000-8010:8000-8010; up to 32 ports; repeatable. Without a floating IP it is shown but unreachable.")
PUBLISH_ALL = flag("-P", "--publish-all", help="Publish every port the image exposes, on the same port number.")
FIP = option("--fip", help="Attach a floating IP: its address or name, or 'auto' (one of yours that is not attached, "
             "else a newly allocated one).")
SG = option("--sg", many=True, help="Put it in this security group (see `seabox sg`); repeatable.")
CAP_ADD = option("--cap-add", many=True, metavar="CAP",
                 help="Add back a capability of Docker's default set that the runtime drops (e.g. NET_RAW); repeatable.")
TMPFS = option("--tmpfs", many=True, metavar="PATH[:OPTIONS]",
               help="Mount a tmpfs: PATH[:OPTIONS] with size=, mode=, exec, ro, ... (its pages count against the "
               "container's memory); repeatable.")
INIT = flag("--init", help="Run tini as PID 1: it reaps zombies and forwards signals to the command.")
GROUP_ADD = option("--group-add", many=True, metavar="GROUP",
                   help="Another group for the user: a gid or a name in the image's /etc/group; repeatable.")
CPUSET = option("--cpuset-cpus", metavar="CPUS", help="The node's cpus it may run on, e.g. 0-2,4.")
SWAPPINESS = option("--memory-swappiness", type=int, metavar="N",
                    help="Only 0 holds: containers have no swap (-1: unset).")
LOG_OPT = option("--log-opt", many=True, metavar="KEY=VALUE",
                 help="Log option: max-size=SIZE (past it a new file begins; e.g. 10m) or max-file=N "
                      "(the newest N files kept, 1-100); repeatable.")
NETWORK = option("--network", metavar="none|default",
                 help="none: loopback only (no address, no floating IP); default: the tenant network.")
SECURITY_OPT = option("--security-opt", many=True, metavar="OPT",
                      help="seccomp=FILE: a seccomp profile in Docker's JSON format that narrows the default filter "
                      "(runc only); no-new-privileges is always on; repeatable.")
HEALTH_CMD = option("--health-cmd", metavar="CMD", help="Command the health check runs in the container (by /bin/sh -c).")
HEALTH_INTERVAL = option("--health-interval", type=parse_duration, metavar="DURATION",
                         help="Time between checks, e.g. 30s (default 30s).")
HEALTH_TIMEOUT = option("--health-timeout", type=parse_duration, metavar="DURATION",
                        help="Time a check may take (default 30s).")
HEALTH_START = option("--health-start-period", type=parse_duration, metavar="DURATION",
                      help="Time after the start in which failures do not count (default 0s).")
HEALTH_RETRIES = option("--health-retries", type=int, min=1, metavar="N",
                        help="Failures in a row that make it unhealthy (default 3).")
NO_HEALTHCHECK = flag("--no-healthcheck", help="Turn off the image's HEALTHCHECK.")
LOG_KEYS = {"max-size": "max_size", "max-file": "max_file"}


# request bodies ------------------------------------------------------------------------------
def env_list(items: list[str] | None) -> list[str]:
    """-e values as KEY=VALUE entries; a bare KEY takes its value from this environment (dropped if unset)."""
    result = []
    for item in items or []:
        key, sep, _ = item.partition("=")
        if not key:
            raise UsageError(f"environment entries must be KEY=VALUE, got {item!r}", "-e")
        if sep:
            result.append(item)
        elif key in os.environ:
            result.append(f"{key}={os.environ[key]}")
    return result


def _parsed(parse: Callable[[str], Any], text: str, option: str) -> dict[str, Any]:
    """PARSE(TEXT) as a JSON-ready dict; its complaint becomes a usage error naming OPTION."""
    from pydantic import ValidationError

    try:
        value: dict[str, Any] = parse(text).model_dump()
        return value
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    except ValueError as exc:
        message = str(exc)
    raise UsageError(message, option)


def container_body(
    image: str,
    cmd: list[str] | None,
    name: str | None,
    size: str | None,
    env: list[str] | None,
    label: list[str] | None,
    volume: list[str] | None,
    workdir: str | None,
    entrypoint: str | None,
    restart: str | None,
    user: str | None,
    hostname: str | None,
) -> dict[str, Any]:
    """The ContainerCreate body for the run/create options (the models that parse -v and --restart, and pydantic
    with them, are imported only by a call that has them: they cost a start a fifth of a second)."""
    mounts: list[dict[str, Any]] = []
    if volume:
        from seabox.model.container import VolumeMount

        mounts = [_parsed(VolumeMount.parse, v, "-v") for v in volume]
    policy = None
    if restart is not None:
        from seabox.model.container import RestartPolicy

        policy = _parsed(RestartPolicy.parse, restart, "--restart")
    body: dict[str, Any] = {
        "image": image,
        "cmd": list(cmd) if cmd else None,
        "name": name,
        "size": size,
        "env": env_list(env),
        "labels": pairs(label or [], "labels", "-l"),
        "volumes": mounts,
        "workdir": workdir,
        "entrypoint": None if entrypoint is None else [entrypoint] if entrypoint else [],
        "restart": policy,
        "user": user,
        "hostname": hostname,
    }
    return {k: v for k, v in body.items() if v is not None}


def isolation_body(
    runtime: str | None, cap_drop: list[str] | None, read_only: bool, ulimit: list[str] | None, pids_limit: int | None
) -> dict[str, Any]:
    """The runtime class and hardening options of a ContainerCreate body."""
    body: dict[str, Any] = {"runtime_class": runtime, "pids_limit": pids_limit}
    if cap_drop:
        body["cap_drop"] = list(cap_drop)
    if read_only:
        body["read_only"] = True
    if ulimit:
        from seabox.model.security import UlimitSpec

        body["ulimits"] = [_parsed(lambda t: UlimitSpec(**UlimitSpec.parse(t)), u, "--ulimit") for u in ulimit]
    return {k: v for k, v in body.items() if v is not None}


def network_body(fip: str | None, publish: list[str] | None, publish_all: bool) -> dict[str, Any]:
    """The floating IP and published ports of a ContainerCreate body (the server parses the port specs)."""
    body: dict[str, Any] = {}
    if fip is not None:
        body["fip"] = fip
    if publish:
        body["ports"] = list(publish)
    if publish_all:
        body["publish_all"] = True
    return body


def ports_text(container: dict[str, Any]) -> str:
    """The PORTS column: FIP:FIP_PORT->PORT/PROTO with a floating IP attached, else PORT/PROTO (published nowhere yet)."""
    fip = container.get("fip")
    ports = container["spec"].get("ports") or []
    if fip:
        return ", ".join(f"{fip}:{p['fip_port']}->{p['container_port']}/{p['protocol']}" for p in ports)
    return ", ".join(dict.fromkeys(f"{p['container_port']}/{p['protocol']}" for p in ports))


def container_path(name: str, action: str = "") -> str:
    return f"/v1/containers/{quoted(name)}" + (f"/{action}" if action else "")


def write_entry(entry: dict[str, Any], timestamps: bool = False) -> None:
    """One log or exec chunk, raw, to our stdout or stderr as the container wrote it."""
    import base64

    data = base64.b64decode(entry["data"]) if entry.get("b64") else str(entry["data"]).encode()
    if timestamps and entry.get("time"):
        data = f"{timestamp(entry['time'])} ".encode() + data
    write_stream(entry.get("stream", "stdout"), data)


# ps ------------------------------------------------------------------------------------------
def status_text(container: dict[str, Any], now: datetime | None = None) -> str:
    """The STATUS column, worded as docker words it: 'Up 3 seconds', 'Exited (3) 2 minutes ago', 'Created'."""
    from seabox.model.humanize import status_words

    st = container["status"]
    return status_words(
        st["state"],
        st["exit_code"],
        parse_datetime(st["started_at"]) if st.get("started_at") else None,
        parse_datetime(st["finished_at"]) if st.get("finished_at") else None,
        now,
        health=(st.get("health") or {}).get("status"),
    )


def command_text(container: dict[str, Any], full: bool = False) -> str:
    command = " ".join(container["spec"]["args"])
    if not full and len(command) > COMMAND_WIDTH:
        command = command[: COMMAND_WIDTH - 1] + "…"
    return f'"{command}"'


def ps(
    all_: bool = flag("-a", "--all", help="Show all containers (default: running ones)."),
    quiet: bool = flag("-q", "--quiet", help="Only print container ids."),
    no_trunc: bool = flag("--no-trunc", help="Do not shorten ids and commands."),
    cost: bool = flag("--cost", help="Add a COST column: what each container has cost since it was created (its runs "
                      "and its root filesystem), counted to now."),
) -> None:
    """List containers."""
    client = connect()
    containers = sorted(client.get("/v1/containers", all=all_), key=lambda c: c["created_at"], reverse=True)
    ident: Callable[[str], str] = (lambda i: i) if no_trunc else short_id
    if quiet:
        for c in containers:
            print(ident(c["id"]))
        return
    now = datetime.now(timezone.utc)
    rows = [
        [
            ident(c["id"]),
            familiar(c["spec"]["image"]),
            command_text(c, no_trunc),
            ago(c["created_at"], now),
            status_text(c, now),
            c["spec"]["size"],
            c["status"].get("ip") or "",
            ports_text(c),
            c["name"],
        ]
        for c in containers
    ]
    headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "SIZE", "IP", "PORTS", "NAMES"]
    if cost and containers:
        from decimal import Decimal

        costs = costs_since(client, min(parse_datetime(c["created_at"]).timestamp() for c in containers))
        headers.insert(6, "COST")
        for row, c in zip(rows, containers):
            row.insert(6, "$" + str(costs.get(c["id"], Decimal(0))))
    print_table(headers, rows)


def costs_since(client: Client, since: float) -> dict[str, Decimal]:
    """Each resource's cost since SINCE, by its id (a container's runs and root filesystem together)."""
    from decimal import Decimal

    costs: dict[str, Decimal] = {}
    for line in client.get("/v1/usage", by="container", since=since)["lines"]:
        costs[line["resource_id"]] = costs.get(line["resource_id"], Decimal(0)) + Decimal(line["cost"])
    return costs


# create / run --------------------------------------------------------------------------------
def create_body(
    image: str = IMAGE,
    cmd: list[str] | None = CMD,
    name: str | None = NAME_OPT,
    size: str | None = SIZE,
    env: list[str] | None = ENV,
    label: list[str] | None = LABEL,
    volume: list[str] | None = VOLUME,
    workdir: str | None = WORKDIR,
    entrypoint: str | None = ENTRYPOINT,
    restart: str | None = RESTART,
    user: str | None = USER,
    hostname: str | None = HOSTNAME,
    runtime: str | None = RUNTIME,
    cap_drop: list[str] | None = CAP_DROP,
    read_only: bool = READ_ONLY,
    ulimit: list[str] | None = ULIMIT,
    pids_limit: int | None = PIDS_LIMIT,
    publish: list[str] | None = PUBLISH,
    publish_all: bool = PUBLISH_ALL,
    fip: str | None = FIP,
    sg: list[str] | None = SG,
    cap_add: list[str] | None = CAP_ADD,
    tmpfs: list[str] | None = TMPFS,
    init: bool = INIT,
    group_add: list[str] | None = GROUP_ADD,
    cpuset_cpus: str | None = CPUSET,
    memory_swappiness: int | None = SWAPPINESS,
    log_opt: list[str] | None = LOG_OPT,
    network: str | None = NETWORK,
    security_opt: list[str] | None = SECURITY_OPT,
    health_cmd: str | None = HEALTH_CMD,
    health_interval: float | None = HEALTH_INTERVAL,
    health_timeout: float | None = HEALTH_TIMEOUT,
    health_start_period: float | None = HEALTH_START,
    health_retries: int | None = HEALTH_RETRIES,
    no_healthcheck: bool = NO_HEALTHCHECK,
) -> dict[str, Any]:
    """The ContainerCreate body of the arguments and options that `create` and `run` share (declared here)."""
    body = container_body(image, cmd, name, size, env, label, volume, workdir, entrypoint, restart, user, hostname)
    body.update(isolation_body(runtime, cap_drop, read_only, ulimit, pids_limit))
    body.update(network_body(fip, publish, publish_all))
    if sg:
        body["security_groups"] = list(sg)
    given = {"cap_add": cap_add, "group_add": group_add, "cpuset_cpus": cpuset_cpus}
    body.update({k: list(v) if isinstance(v, list) else v for k, v in given.items() if v})
    if tmpfs:
        body["tmpfs"] = [dict(zip(("path", "options"), t.split(":", 1))) for t in tmpfs]
    if init:
        body["init"] = True
    if memory_swappiness is not None and memory_swappiness != -1:
        body["memory_swappiness"] = memory_swappiness  # the server says why anything but 0 cannot hold
    if log_opt:
        body["log"] = log_body(log_opt)
    if network is not None:
        if network not in ("none", "default"):
            raise UsageError(f"must be none or default (the tenant network), got {network!r}", "--network")
        body["network"] = network
    profile = seccomp_profile(security_opt or [])
    if profile is not None:
        body["seccomp_profile"] = profile
    check = {"test": ["CMD-SHELL", health_cmd] if health_cmd else [], "interval": health_interval,
             "timeout": health_timeout, "start_period": health_start_period, "retries": health_retries}
    if no_healthcheck:
        if any(check.values()):
            raise UsageError("conflicts with the --health-* options", "--no-healthcheck")
        body["healthcheck"] = {"test": ["NONE"]}
    elif any(check.values()):
        body["healthcheck"] = {k: v for k, v in check.items() if v is not None}
    return body


def log_body(options: list[str]) -> dict[str, Any]:
    """The log limits of --log-opt KEY=VALUE items (max-size in bytes; the server checks max-file)."""
    from seabox.model.options import parse_bytes

    given = pairs(options, "log options", "--log-opt")
    unknown = sorted(set(given) - set(LOG_KEYS))
    if unknown:
        raise UsageError(f"{unknown[0]} is not honoured: use max-size or max-file", "--log-opt")
    limits: dict[str, Any] = {"options": given}
    try:
        if "max-size" in given:
            limits["max_size"] = parse_bytes(given["max-size"], "max-size")
        if "max-file" in given:
            limits["max_file"] = int(given["max-file"])
    except ValueError as exc:
        raise UsageError(str(exc), "--log-opt") from None
    return limits


def seccomp_profile(options: list[str]) -> str | None:
    """The seccomp profile that --security-opt items name (seccomp=FILE, read here; None: the default)."""
    profile = None
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:  # Docker's older KEY:VALUE spelling
            key, sep, value = item.partition(":")
        if key == "no-new-privileges" and value in ("", "true"):
            continue  # always on
        if key == "seccomp" and value in ("default", "builtin"):
            continue
        if key == "seccomp" and value and value != "unconfined":
            try:
                with open(value) as f:
                    profile = f.read()
            except OSError as exc:
                raise UsageError(f"cannot read {value}: {exc.strerror}", "--security-opt") from None
            continue
        raise UsageError(f"{item} cannot be honoured: every container runs with no-new-privileges and Seabox's seccomp "
                         "filter (seccomp=FILE narrows it); use --runtime gvisor for a stronger sandbox",
                         "--security-opt")
    return profile


def create(**options: Any) -> None:
    """Create a container without starting it; prints its id."""
    print(create_pulling(connect(), "/v1/containers", create_body(**options))["id"])


def run(
    detach: bool = flag("-d", "--detach", help="Run in the background and print the id."),
    rm: bool = flag("--rm", help="Remove the container when it exits."),
    **options: Any,
) -> None:
    """Create and start a container; without -d, follow its output and exit with its exit code."""
    body = create_body(**options)
    if rm:
        body["auto_remove"] = True  # the server removes it when it exits: no DELETE round trip after the wait
    api = connect()
    cid = create_pulling(api, "/v1/containers", body)["id"]
    try:
        api.post(container_path(cid, "start"))
        if detach:
            print(cid)
            return
        # asked at once, on a connection of its own: an auto-removed container is gone by the time its output ends
        waited = api.another().begin("POST", container_path(cid, "wait"))
        try:
            for entry in api.stream("GET", container_path(cid, "logs"), params={"follow": True}):
                write_entry(entry)
        except CliError as exc:
            if exc.status != 404:  # a 404: it ended and was removed before its output was asked for
                raise
        result = waited()
    except KeyboardInterrupt:
        if rm:
            remove_quietly(api, cid)
        raise SystemExit(130) from None
    except CliError:
        if rm:
            remove_quietly(api, cid)
        raise
    if result.get("error"):
        report(result["error"])
    raise SystemExit(int(result["exit_code"]))


def remove_quietly(api: Client, cid: str) -> None:
    """Remove container CID if it is still there (run --rm after a failure or Ctrl-C)."""
    try:
        api.delete(container_path(cid), force=True)
    except CliError as exc:
        if exc.status != 404:
            raise


# one container ---------------------------------------------------------------------------------
def inspect(names: list[str] = NAMES) -> None:
    """Show containers' details as a JSON array."""
    api = connect()
    inspect_all(names, lambda n: api.get(container_path(n)))


def logs(
    name: str = NAME,
    follow: bool = flag("-f", "--follow", help="Keep printing new output until it stops."),
    tail: str = option("--tail", default="all", help="Lines from the end to show: a number or 'all'."),
    timestamps: bool = flag("-t", "--timestamps", help="Prefix each line with its time."),
    since: float | None = option("--since", type=parse_time,
                                 help="Only output since a time: 10m, 1h, unix seconds or ISO."),
) -> None:
    """Print a container's output (stdout to stdout, stderr to stderr)."""
    if tail != "all" and not tail.isdigit():
        raise UsageError(f"must be a number or 'all', got {tail!r}", "--tail")
    params = {"follow": follow, "tail": None if tail == "all" else int(tail), "since": since}
    for entry in connect().stream("GET", container_path(name, "logs"), params=params):
        write_entry(entry, timestamps)


def exec_(
    name: str = NAME,
    cmd: list[str] = tail("CMD", "Command and arguments, passed verbatim.", required=True),
    env: list[str] | None = ENV,
    workdir: str | None = WORKDIR,
    user: str | None = USER,
    tty: bool = flag("-t", "--tty", help="Give the command a terminal of your terminal's size (one output stream)."),
) -> None:
    """Run a command in a running container; exits with the command's exit code."""
    body: dict[str, Any] = {"cmd": list(cmd), "env": env_list(env), "workdir": workdir, "user": user or ""}
    if tty:
        import shutil

        size = shutil.get_terminal_size()
        body.update(tty=True, height=size.lines, width=size.columns)
    code: int | None = None
    for item in connect().stream("POST", container_path(name, "exec"), body=body):
        if "exit_code" in item:
            code = int(item["exit_code"])
        elif "error" in item:
            raise CliError(item["error"].get("message", "exec failed"), status=item["error"].get("status"))
        else:
            write_entry(item)
    if code is None:
        raise CliError("the exec stream ended without an exit code")
    raise SystemExit(code)


def _act(action: str, **params: Any) -> Callable[[str], str]:
    """POST ACTION for one container, answering with the name as given (what docker prints)."""
    api = connect()

    def act(name: str) -> str:
        api.post(container_path(name, action), **params)
        return name

    return act


def start(names: list[str] = NAMES) -> None:
    """Start stopped containers."""
    each(names, _act("start"))


def stop(
    names: list[str] = NAMES,
    time_: float | None = TIME,
    signal: str | None = option("-s", "--signal", help="Signal to stop with (default: the image's)."),
) -> None:
    """Stop running containers: the stop signal, then SIGKILL after the timeout."""
    each(names, _act("stop", t=time_, signal=signal))


def restart(names: list[str] = NAMES, time_: float | None = TIME) -> None:
    """Restart containers."""
    each(names, _act("restart", t=time_))


def kill(
    names: list[str] = NAMES,
    signal: str = option("-s", "--signal", default="KILL", help="Signal to send: a name (TERM, SIGHUP) or number."),
) -> None:
    """Send a signal to running containers."""
    each(names, _act("kill", signal=signal))


def rm(
    names: list[str] = NAMES,
    force: bool = flag("-f", "--force", help="Remove running containers too (they are killed)."),
) -> None:
    """Remove containers."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(container_path(name), force=force)
        return name

    each(names, remove)


def wait(names: list[str] = NAMES) -> None:
    """Block until containers stop, then print their exit codes."""
    api = connect()
    each(names, lambda n: str(api.post(container_path(n, "wait"))["exit_code"]))


def rename(
    old: str = argument("OLD", "Current name or id prefix."),
    new: str = argument("NEW", "New name."),
) -> None:
    """Rename a container."""
    connect().post(container_path(old, "rename"), name=new)


def top(name: str = NAME) -> None:
    """Show the processes running in a container."""
    processes = connect().get(container_path(name, "top"))["processes"]
    print_table(["PID", "CMD"], [[str(p["pid"]), p["cmd"]] for p in processes])


def stats(names: list[str] = NAMES) -> None:
    """Show CPU, memory and process counts of running containers (one sample over half a second)."""
    api = connect()
    containers = [api.get(container_path(n)) for n in names]
    first = [api.get(container_path(c["id"], "stats")) for c in containers]
    time.sleep(STATS_INTERVAL)
    rows = []
    for c, before in zip(containers, first, strict=True):
        now = api.get(container_path(c["id"], "stats"))
        wall_ns = (parse_datetime(now["read_at"]) - parse_datetime(before["read_at"])).total_seconds() * 1e9
        cpu = (now["cpu_ns"] - before["cpu_ns"]) / wall_ns * 100 if wall_ns > 0 else 0.0
        limit = now["memory_limit"] or 0
        memory = f"{human_bytes(now['memory_bytes'], binary=True)} / {human_bytes(limit, binary=True)}"
        percent = now["memory_bytes"] / limit * 100 if limit else 0.0
        rows.append([short_id(c["id"]), c["name"], f"{cpu:.2f}%", memory, f"{percent:.2f}%", str(now["pids"])])
    print_table(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"], rows)


def register(root: Group) -> None:
    for func, name in ((run, "run"), (create, "create")):
        root.command(name, panel=PANEL, also=create_body)(func)
    for func, name in (
        (ps, "ps"), (inspect, "inspect"), (logs, "logs"), (exec_, "exec"), (start, "start"), (stop, "stop"),
        (restart, "restart"), (kill, "kill"), (rm, "rm"), (wait, "wait"), (rename, "rename"), (top, "top"),
        (stats, "stats"),
    ):
        root.command(name, panel=PANEL)(func)
