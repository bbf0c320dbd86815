"""Load-balanced service commands, the `seabox service` group: create, ls, inspect, scale, update, floating IPs, rm."""

from __future__ import annotations

from typing import Any

from seabox.cli.client import CliError, connect, each, inspect_all, print_table, quoted
from seabox.cli.command import MARKED, Group, UsageError, argument, flag, option
from seabox.cli.containers import CMD, ENV, IMAGE, SG, SIZE, VOLUME, env_list
from seabox.cli.images import create_pulling, pull_image

service_app = Group(
    "service",
    "Manage load-balanced services: REPLICAS containers of one image behind a stable virtual IP on your "
    "network, reachable as NAME and NAME.TENANT.seabox.internal. Only replicas that pass their health check get "
    "traffic; exited or lost replicas are replaced, replicas spread over nodes, and `service update` rolls a new "
    "image out one replica at a time without dropping a request. With a floating IP attached (`service attach-fip`) "
    "the service's port is reachable from outside.",
    panel="Services",
)
NAME = argument("NAME", "Service name.")
NAMES = argument("NAME...", "Service names.", many=True)


def service_path(name: str, action: str = "") -> str:
    return f"/v1/services/{quoted(name)}" + (f"/{action}" if action else "")


@service_app.command("create", tail=MARKED)
def create(
    name: str = NAME,
    image: str = IMAGE,
    port: int = option("--port", type=int, required=True, help="The service's port on its virtual IP (and floating IP)."),
    replicas: int = option("--replicas", default=1, type=int, help="How many replicas to run (0-100)."),
    container_port: int | None = option("--container-port", type=int,
                                        help="The port the replicas serve on (default: --port)."),
    protocol: str = option("--protocol", default="tcp", help="Health check: tcp (a connection is accepted) or http "
                           "(GET --health-path answers 2xx/3xx)."),
    algorithm: str = option("--algorithm", default="roundrobin", help="How connections are spread: roundrobin, "
                            "leastconn or source (the same client address reaches the same replica)."),
    interval: float = option("--health-check-interval", default=3.0, type=float,
                             help="Seconds between health checks of each replica."),
    rise: int = option("--health-check-rise", default=2, type=int, help="Passed checks in a row that make it healthy."),
    fall: int = option("--health-check-fall", default=3, type=int,
                       help="Failed checks in a row that make it unhealthy."),
    health_path: str = option("--health-path", default="/",
                              help="The path an http health check GETs (needs --protocol http)."),
    size: str | None = SIZE,
    sg: list[str] | None = SG,
    env: list[str] | None = ENV,
    volume: list[str] | None = VOLUME,
    cmd: list[str] | None = CMD,
) -> None:
    """Create a service of REPLICAS containers of IMAGE behind a virtual IP on --port; prints its virtual IP.

    The replicas start in the background: `seabox service ls` shows how many are ready. They are
    named NAME-xxxxxx and show in `seabox ps`.
    """
    body: dict[str, Any] = {
        "name": name, "image": image, "cmd": list(cmd) if cmd else None, "replicas": replicas, "port": port,
        "container_port": container_port, "protocol": protocol, "algorithm": algorithm,
        "health_interval": interval, "health_rise": rise, "health_fall": fall, "health_path": health_path,
        "size": size, "security_groups": list(sg or []), "env": env_list(env), "volumes": list(volume or []),
    }
    print(create_pulling(connect(), "/v1/services", {k: v for k, v in body.items() if v is not None})["vip"])


@service_app.command("ls")
def ls(quiet: bool = flag("-q", "--quiet", help="Only print the names.")) -> None:
    """List your services: virtual IP, floating IP, replicas ready/desired, status."""
    services = connect().get("/v1/services")
    if quiet:
        for s in services:
            print(s["name"])
        return
    rows = [[s["name"], s["vip"], s.get("fip") or "", f"{s['status']['ready']}/{s['spec']['replicas']}",
             s["status"]["state"], s["status"]["message"]] for s in services]
    print_table(["NAME", "IP", "FIP", "REPLICAS", "STATUS", "MESSAGE"], rows)


@service_app.command("inspect")
def inspect(names: list[str] = NAMES) -> None:
    """Show services as JSON: spec, status and replicas."""
    api = connect()
    inspect_all(names, lambda n: api.get(service_path(n)))


@service_app.command("scale")
def scale(assignments: list[str] = argument("NAME=REPLICAS...", "e.g. web=3.", many=True)) -> None:
    """Set how many replicas services run; leaving replicas are drained (their connections finish) first."""
    api = connect()
    for item in assignments:
        name, sep, count = item.partition("=")
        if not sep or not name or not count.isdigit():
            raise UsageError(f"expected NAME=REPLICAS, got {item!r}", "NAME=REPLICAS")
        api.post(service_path(name, "scale"), {"replicas": int(count)})
        print(name)


@service_app.command("update")
def update(
    name: str = NAME,
    image: str = option("--image", required=True, help="The image the replicas run from now on."),
) -> None:
    """Roll out another image: one new replica at a time, each old one drained once a new one is healthy."""
    api = connect()
    try:
        api.post(service_path(name, "update"), {"image": image})
    except CliError as exc:
        if exc.status != 404 or not exc.message.startswith("no such image"):
            raise
        pull_image(api, image)
        api.post(service_path(name, "update"), {"image": image})
    print(name)


@service_app.command("attach-fip")
def attach_fip(
    fip: str = argument("FIP", "Floating IP address or name (not attached to anything)."),
    name: str = NAME,
) -> None:
    """Attach a floating IP to a service: its port is then reachable from outside (subject to its security groups)."""
    print(connect().post(service_path(name, "fip"), {"fip": fip})["fip"])


@service_app.command("detach-fip")
def detach_fip(name: str = NAME) -> None:
    """Detach the floating IP of a service (you keep it, dangling); prints the service name."""
    connect().delete(service_path(name, "fip"))
    print(name)


@service_app.command("rm")
def rm(
    names: list[str] = NAMES,
    keep: bool = flag("--keep", help="Keep the replicas, as plain containers."),
) -> None:
    """Remove services and their replicas (with --keep the replicas stay); a floating IP attached stays yours."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(service_path(name), keep=keep)
        return name

    each(names, remove)


def register(root: Group) -> None:
    root.add(service_app)

