"""Volume commands, the `seabox volume` group: create, ls, inspect, rm."""

from __future__ import annotations

from typing import Annotated

import typer

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

volume_app = typer.Typer(
    help="Manage volumes: named storage that outlives the containers mounting it.", no_args_is_help=True
)
Names = Annotated[list[str], typer.Argument(metavar="NAME", help="Volume names.")]


def volume_path(name: str) -> str:
    return f"/v1/volumes/{quoted(name)}"


@volume_app.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Volume name: letters, digits, '_', '.', '-'.")],
    size: Annotated[str | None, typer.Option("--size", help="Capacity, e.g. 512MiB or 1GiB (default 10GiB).")] = None,
    label: Annotated[list[str] | None, typer.Option("-l", "--label", help="Label KEY=VALUE; repeatable.")] = None,
) -> None:
    """Create a volume; prints its name."""
    body = {"name": name, "labels": pairs(label or [], "labels"), **({"size": size} if size else {})}
    print(connect().post("/v1/volumes", body)["name"])


@volume_app.command("ls")
def ls(quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print volume names.")] = False) -> None:
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
def inspect(names: Names) -> None:
    """Show volumes' details as a JSON array."""
    api = connect()
    inspect_all(names, lambda n: api.get(volume_path(n)))


@volume_app.command("rm")
def rm(names: Names) -> None:
    """Remove volumes and their data (a volume a container mounts stays)."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(volume_path(name))
        return name

    each(names, remove)


def register(app: typer.Typer) -> None:
    app.add_typer(volume_app, name="volume", rich_help_panel="Volumes")
