"""Floating IP commands, the `seabox fip` group: allocate, ls, attach, detach, release, name."""

from __future__ import annotations

from seabox.cli.client import connect, each, print_table, quoted
from seabox.cli.command import Group, UsageError, argument, flag, option

fip_app = Group(
    "fip",
    "Manage floating IPs: public addresses you hold and attach to a container, one per container. "
    "A container's published ports (run -p) are reachable on its floating IP, and its outbound traffic "
    "leaves with that address. A name given with `fip name` works wherever the address does.",
    panel="Network",
)
FIP = argument("FIP", "Floating IP address or name.")
CONTAINER = argument("CONTAINER", "Container name or unique id prefix.")


def fip_path(ref: str, action: str = "") -> str:
    return f"/v1/fips/{quoted(ref)}" + (f"/{action}" if action else "")


@fip_app.command("allocate")
def allocate(
    count: int = argument("COUNT", "How many to allocate (default 1).", default=1, type=int, min=1),
    pick: bool = flag("--pick", help="Return floating IPs you hold that are not attached first; allocate only the rest."),
) -> None:
    """Allocate floating IPs from the cloud's public range; prints their addresses.

    Each tenant may hold a limited number (the operator's fips quota, 2 by default); past it nothing is allocated.
    """
    for fip in connect().post("/v1/fips", {"count": count, "pick": pick}):
        print(fip["address"])


def _dangling(filters: list[str]) -> bool | None:
    dangling: bool | None = None
    for item in filters:
        key, _, value = item.partition("=")
        if key != "dangling" or value.lower() not in ("true", "false"):
            raise UsageError(f"the only filter is dangling=true or dangling=false, got {item!r}", "-f")
        dangling = value.lower() == "true"
    return dangling


@fip_app.command("ls")
def ls(
    filter_: list[str] | None = option("-f", "--filter", many=True,
                                       help="dangling=true: only floating IPs not attached (false: only attached)."),
    quiet: bool = flag("-q", "--quiet", help="Only print the addresses."),
) -> None:
    """List your floating IPs and what they are attached to."""
    dangling = _dangling(filter_ or [])
    fips = connect().get("/v1/fips", **({} if dangling is None else {"dangling": dangling}))
    if quiet:
        for f in fips:
            print(f["address"])
        return
    rows = [[f["address"], f.get("name") or "", f.get("container_name") or "", f.get("service") or ""] for f in fips]
    print_table(["FLOATING IP", "NAME", "CONTAINER", "SERVICE"], rows)


@fip_app.command("attach")
def attach(
    fip: str = FIP,
    container: str = CONTAINER,
    force: bool = flag("-f", "--force", help="Take the floating IP from the container that holds it now."),
) -> None:
    """Attach a floating IP to a container (which must have none yet); it stays through stops and restarts."""
    print(connect().post(fip_path(fip, "attach"), {"container": container, "force": force})["address"])


@fip_app.command("detach")
def detach(container: str = CONTAINER) -> None:
    """Detach the floating IP of a container; you keep it (dangling) until you release it. Prints the address."""
    print(connect().post("/v1/fips/detach", {"container": container})["address"])


@fip_app.command("release")
def release(fips: list[str] = argument("FIP...", "Floating IP addresses or names.", many=True)) -> None:
    """Give floating IPs back to the cloud (refused while one is attached: detach it first)."""
    api = connect()

    def give_back(ref: str) -> str:
        api.delete(fip_path(ref))
        return ref

    each(fips, give_back)


@fip_app.command("name")
def name(
    fip: str = FIP,
    new_name: str = argument("NAME", "Its name: letters, digits, '_', '.', '-'."),
) -> None:
    """Name a floating IP (unique among yours); the name then works wherever the address does."""
    connect().post(fip_path(fip, "name"), {"name": new_name})


def register(root: Group) -> None:
    root.add(fip_app)
