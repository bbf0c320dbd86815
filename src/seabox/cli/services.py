"""Load-balanced service commands, the `seabox service` group: create, ls, inspect, scale, update, floating IPs, rm."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from seabox.cli.client import CliError, CommandAfterImage, connect, each, inspect_all, print_table, quoted
from seabox.cli.containers import Cmd, EnvOpt, Image, SgOpt, SizeOpt, VolumeOpt, env_list
from seabox.cli.images import create_pulling, pull_image

service_app = typer.Typer(
    help="Manage load-balanced services: REPLICAS containers of one image behind a stable virtual IP on your "
    "network, reachable as NAME and NAME.TENANT.seabox.internal. Only replicas that pass their health check get "
    "traffic; exited or lost replicas are replaced, replicas spread over nodes, and `service update` rolls a new "
    "image out one replica at a time without dropping a request. With a floating IP attached (`service attach-fip`) "
    "the service's port is reachable from outside.",
    no_args_is_help=True,
)
Name = Annotated[str, typer.Argument(metavar="NAME", help="Service name.")]


def service_path(name: str, action: str = "") -> str:
    return f"/v1/services/{quoted(name)}" + (f"/{action}" if action else "")


def create(
    name: Name,
    image: Image,
    port: Annotated[int, typer.Option("--port", help="The service's port on its virtual IP (and floating IP).")],
    replicas: Annotated[int, typer.Option("--replicas", help="How many replicas to run (0-100).")] = 1,
    container_port: Annotated[
        int | None, typer.Option("--container-port", help="The port the replicas serve on (default: --port).")
    ] = None,
    protocol: Annotated[
        str, typer.Option("--protocol", help="Health check: tcp (a connection is accepted) or http (GET --health-path "
                          "answers 2xx/3xx).")
    ] = "tcp",
    algorithm: Annotated[
        str, typer.Option("--algorithm", help="How connections are spread: roundrobin, leastconn or source "
                          "(the same client address reaches the same replica).")
    ] = "roundrobin",
    interval: Annotated[
        float, typer.Option("--health-check-interval", help="Seconds between health checks of each replica.")
    ] = 3.0,
    rise: Annotated[int, typer.Option("--health-check-rise", help="Passed checks in a row that make it healthy.")] = 2,
    fall: Annotated[int, typer.Option("--health-check-fall", help="Failed checks in a row that make it unhealthy.")] = 3,
    health_path: Annotated[str, typer.Option("--health-path",
                                             help="The path an http health check GETs (needs --protocol http).")] = "/",
    size: SizeOpt = None,
    sg: SgOpt = None,
    env: EnvOpt = None,
    volume: VolumeOpt = None,
    cmd: Cmd = None,
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


def ls(quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print the names.")] = False) -> None:
    """List your services: virtual IP, floating IP, replicas ready/desired, status."""
    services = connect().get("/v1/services")
    if quiet:
        for s in services:
            print(s["name"])
        return
    rows = [[s["name"], s["vip"], s.get("fip") or "", f"{s['status']['ready']}/{s['spec']['replicas']}",
             s["status"]["state"], s["status"]["message"]] for s in services]
    print_table(["NAME", "IP", "FIP", "REPLICAS", "STATUS", "MESSAGE"], rows)


def inspect(names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Service names.")]) -> None:
    """Show services as JSON: spec, status and replicas."""
    api = connect()
    inspect_all(names, lambda n: api.get(service_path(n)))


def scale(
    assignments: Annotated[list[str], typer.Argument(metavar="NAME=REPLICAS...", help="e.g. web=3.")],
) -> None:
    """Set how many replicas services run; leaving replicas are drained (their connections finish) first."""
    api = connect()
    for item in assignments:
        name, sep, count = item.partition("=")
        if not sep or not name or not count.isdigit():
            raise typer.BadParameter(f"expected NAME=REPLICAS, got {item!r}", param_hint="NAME=REPLICAS")
        api.post(service_path(name, "scale"), {"replicas": int(count)})
        print(name)


def update(
    name: Name,
    image: Annotated[str, typer.Option("--image", help="The image the replicas run from now on.")],
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


def attach_fip(
    fip: Annotated[str, typer.Argument(metavar="FIP", help="Floating IP address or name (not attached to anything).")],
    name: Name,
) -> None:
    """Attach a floating IP to a service: its port is then reachable from outside (subject to its security groups)."""
    print(connect().post(service_path(name, "fip"), {"fip": fip})["fip"])


def detach_fip(name: Name) -> None:
    """Detach the floating IP of a service (you keep it, dangling); prints the service name."""
    connect().delete(service_path(name, "fip"))
    print(name)


def rm(
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Service names.")],
    keep: Annotated[bool, typer.Option("--keep", help="Keep the replicas, as plain containers.")] = False,
) -> None:
    """Remove services and their replicas (with --keep the replicas stay); a floating IP attached stays yours."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(service_path(name), keep=keep)
        return name

    each(names, remove)


def register(app: typer.Typer) -> None:
    service_app.command("create", cls=CommandAfterImage)(create)
    for command, name in (
        (ls, "ls"), (inspect, "inspect"), (scale, "scale"), (update, "update"), (attach_fip, "attach-fip"),
        (detach_fip, "detach-fip"), (rm, "rm"),
    ):
        service_app.command(name)(command)
    app.add_typer(service_app, name="service", rich_help_panel="Services")

