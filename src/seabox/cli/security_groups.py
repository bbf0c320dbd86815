"""Security group commands, the `seabox sg` group (create, update, rm, ls, inspect), and `seabox update`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from seabox.cli.client import CliError, ago, connect, each, print_table, quoted

sg_app = typer.Typer(
    help="Manage security groups: the traffic your containers may send and receive (see docs/security-groups.md).",
    no_args_is_help=True,
)
MAX_FILE_BYTES = 512 << 10  # the server's limit on a group document
YAML = {"Content-Type": "application/yaml"}
FileOpt = Annotated[Path, typer.Option("-f", "--file", help="The group in YAML: name, description, rules.")]


def group_path(name: str) -> str:
    return f"/v1/security-groups/{quoted(name)}"


def read_file(path: Path) -> bytes:
    """The file's bytes, as the server gets them (it parses and checks the YAML)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CliError(f"{path}: a security group file is limited to {MAX_FILE_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


@sg_app.command("create")
def create(
    file: FileOpt,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="The group's name (instead of the file's).")] = None,
) -> None:
    """Create a security group from a YAML file; prints its name."""
    print(connect().call("POST", "/v1/security-groups", params={"name": name}, content=read_file(file),
                         headers=YAML)["name"])


@sg_app.command("update")
def update(
    file: FileOpt,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The group to update.")],
) -> None:
    """Replace a group's description and rules with the file's, on every member at once; prints its name."""
    print(connect().call("PUT", group_path(name), params={"name": name}, content=read_file(file),
                         headers=YAML)["name"])


@sg_app.command("rm")
def rm(names: Annotated[list[str], typer.Argument(metavar="NAME", help="Group names.")]) -> None:
    """Remove security groups (a group that a container is in, or that another group's rules name, stays)."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(group_path(name))
        return name

    each(names, remove)


@sg_app.command("ls")
def ls(quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print group names.")] = False) -> None:
    """List your security groups."""
    groups = connect().get("/v1/security-groups")
    if quiet:
        for g in groups:
            print(g["name"])
        return
    rows = [[g["name"], str(len(g["rules"])), ago(g["created_at"]), ", ".join(g["in_use_by"]), g["description"]]
            for g in groups]
    print_table(["NAME", "RULES", "CREATED", "CONTAINERS", "DESCRIPTION"], rows)


@sg_app.command("inspect")
def inspect(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Group name.")],
    output: Annotated[str, typer.Option("-o", "--output", help="json (the record) or yaml (the file form).")] = "json",
) -> None:
    """Show a security group: its record as JSON, or its file form as YAML (what `sg create -f` reads)."""
    from seabox.model.security_group import SecurityGroup, dump_yaml

    if output not in ("json", "yaml"):
        raise typer.BadParameter(f"must be json or yaml, got {output!r}", param_hint="'-o'")
    group = connect().get(group_path(name))
    if output == "yaml":
        print(dump_yaml(SecurityGroup.model_validate(group).document()), end="")
    else:
        print(json.dumps(group, indent=4))


def update_container(
    container: Annotated[str, typer.Argument(metavar="CONTAINER", help="Container name or unique id prefix.")],
    sg_add: Annotated[list[str] | None, typer.Option("--sg-add", help="Put it in this security group; repeatable.")] = None,
    sg_rm: Annotated[list[str] | None, typer.Option("--sg-rm", help="Take it out of this group; repeatable.")] = None,
) -> None:
    """Change a container's security groups while it runs (all at once, or nothing); prints its name."""
    body = {"security_groups_add": list(sg_add or []), "security_groups_remove": list(sg_rm or [])}
    print(connect().post(f"/v1/containers/{quoted(container)}/update", body)["name"])


def register(app: typer.Typer) -> None:
    app.add_typer(sg_app, name="sg", rich_help_panel="Network")
    app.command("update", rich_help_panel="Containers")(update_container)
