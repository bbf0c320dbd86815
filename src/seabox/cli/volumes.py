"""Volume commands, the `seabox volume` group: create, ls, inspect, rm."""

from __future__ import annotations

from seabox.cli.client import (
    ago,
    connect,
    each,
    human_bytes,
    inspect_all,
    pairs,
    print_table,
    quoted,
)
from seabox.cli.command import Group, argument, flag, option

volume_app = Group("volume", "Manage volumes: named storage that outlives the containers mounting it.", panel="Volumes")
NAMES = argument("NAME", "Volume names.", many=True)


def volume_path(name: str) -> str:
    return f"/v1/volumes/{quoted(name)}"


@volume_app.command("create")
def create(
    name: str = argument("NAME", "Volume name: letters, digits, '_', '.', '-'."),
    size: str | None = option("--size", help="Capacity, e.g. 512MiB or 1GiB (default 10GiB)."),
    label: list[str] | None = option("-l", "--label", many=True, help="Label KEY=VALUE; repeatable."),
) -> None:
    """Create a volume; prints its name."""
    body = {"name": name, "labels": pairs(label or [], "labels", "-l"), **({"size": size} if size else {})}
    print(connect().post("/v1/volumes", body)["name"])


@volume_app.command("ls")
def ls(quiet: bool = flag("-q", "--quiet", help="Only print volume names.")) -> None:
    """List your volumes."""
    volumes = sorted(connect().get("/v1/volumes"), key=lambda v: v["name"])
    if quiet:
        for v in volumes:
            print(v["name"])
        return
    rows = [
        [v["name"], human_bytes(v["size"], binary=True), ago(v["created_at"]), ", ".join(v.get("in_use_by") or [])]
        for v in volumes
    ]
    print_table(["VOLUME NAME", "SIZE", "CREATED", "IN USE BY"], rows)


@volume_app.command("inspect")
def inspect(names: list[str] = NAMES) -> None:
    """Show volumes' details as a JSON array."""
    api = connect()
    inspect_all(names, lambda n: api.get(volume_path(n)))


@volume_app.command("rm")
def rm(names: list[str] = NAMES) -> None:
    """Remove volumes and their data (a volume a container mounts stays)."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(volume_path(name))
        return name

    each(names, remove)


def register(root: Group) -> None:
    root.add(volume_app)
