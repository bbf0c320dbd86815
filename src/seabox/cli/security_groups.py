"""Security group commands, the `seabox sg` group (create, update, rm, ls, inspect), and `seabox update` (groups,
size and restart policy of a container)."""

from __future__ import annotations

import json
from pathlib import Path

from seabox.cli.client import CliError, ago, connect, each, print_table, quoted
from seabox.cli.command import Group, UsageError, argument, flag, option

sg_app = Group(
    "sg", "Manage security groups: the traffic your containers may send and receive (see docs/security-groups.md).",
    panel="Network",
)
MAX_FILE_BYTES = 512 << 10  # the server's limit on a group document
YAML = {"Content-Type": "application/yaml"}
FILE = option("-f", "--file", type=Path, required=True, help="The group in YAML: name, description, rules.")


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
    file: Path = FILE,
    name: str | None = argument("NAME", "The group's name (instead of the file's).", default=None),
) -> None:
    """Create a security group from a YAML file; prints its name."""
    print(connect().call("POST", "/v1/security-groups", params={"name": name}, content=read_file(file),
                         headers=YAML)["name"])


@sg_app.command("update")
def update(
    file: Path = FILE,
    name: str = argument("NAME", "The group to update."),
) -> None:
    """Replace a group's description and rules with the file's, on every member at once; prints its name."""
    print(connect().call("PUT", group_path(name), params={"name": name}, content=read_file(file),
                         headers=YAML)["name"])


@sg_app.command("rm")
def rm(names: list[str] = argument("NAME", "Group names.", many=True)) -> None:
    """Remove security groups (a group that a container is in, or that another group's rules name, stays)."""
    api = connect()

    def remove(name: str) -> str:
        api.delete(group_path(name))
        return name

    each(names, remove)


@sg_app.command("ls")
def ls(quiet: bool = flag("-q", "--quiet", help="Only print group names.")) -> None:
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
    name: str = argument("NAME", "Group name."),
    output: str = option("-o", "--output", default="json", help="json (the record) or yaml (the file form)."),
) -> None:
    """Show a security group: its record as JSON, or its file form as YAML (what `sg create -f` reads)."""
    from seabox.model.security_group import SecurityGroup, dump_yaml

    if output not in ("json", "yaml"):
        raise UsageError(f"must be json or yaml, got {output!r}", "-o")
    group = connect().get(group_path(name))
    if output == "yaml":
        print(dump_yaml(SecurityGroup.model_validate(group).document()), end="")
    else:
        print(json.dumps(group, indent=4))


def update_container(
    container: str = argument("CONTAINER", "Container name or unique id prefix."),
    sg_add: list[str] | None = option("--sg-add", many=True, help="Put it in this security group; repeatable."),
    sg_rm: list[str] | None = option("--sg-rm", many=True, help="Take it out of this group; repeatable."),
    size: str | None = option("--size", help="A new size (see `seabox sizes`): a running runc container gets it at "
                              "once, a stopped one at its next start."),
    restart: str | None = option("--restart", help="A new restart policy: no, on-failure[:MAX_RETRIES], always or "
                                 "unless-stopped."),
) -> None:
    """Change a container while it runs: its security groups, or its size and restart policy (one kind of change
    per call, applied all at once or not at all); prints its name."""
    body: dict[str, object] = {}
    if sg_add or sg_rm:
        if size is not None or restart is not None:
            raise UsageError("change security groups and size or restart policy in separate calls", "--size")
        body = {"security_groups_add": list(sg_add or []), "security_groups_remove": list(sg_rm or [])}
    else:
        body = {k: v for k, v in (("size", size), ("restart", restart)) if v is not None}
    print(connect().post(f"/v1/containers/{quoted(container)}/update", body)["name"])


def register(root: Group) -> None:
    root.add(sg_app)
    root.command("update", panel="Containers")(update_container)
