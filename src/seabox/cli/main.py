"""The `seabox` command: wires the command groups together (one module per resource group), importing only the one a call names."""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seabox.cli.command import Group

HELP = ("Seabox: a container-native cloud. Tenants: run containers; operators: `seabox server`, `seabox admin`. "
        "`seabox --version` prints the client's version.")
# which module registers each top-level command or group (a unit test checks this against what they register):
# a call imports only its own module, so `seabox ps` loads neither the operator commands nor the server's code
MODULES = {
    "containers": ("run", "create", "ps", "inspect", "logs", "exec", "start", "stop", "restart", "kill", "rm", "wait",
                   "rename", "top", "stats"),
    "images": ("pull", "images", "rmi", "tag", "image"),
    "volumes": ("volume",),
    "fips": ("fip",),
    "security_groups": ("sg", "update"),
    "services": ("service",),
    "crons": ("cron",),
    "functions": ("func",),
    "billing": ("usage", "invoice", "prices"),
    "system": ("login", "info", "quota", "version", "sizes", "events", "docker-env"),
    "server": ("server",),
    "node": ("node",),
    "admin": ("admin",),
}
OWNER = {name: module for module, names in MODULES.items() for name in names}


def root(modules: list[str] | tuple[str, ...] = tuple(MODULES)) -> Group:
    """The `seabox` group with the commands of MODULES (each module's register() adds its own)."""
    from seabox.cli.command import Group

    group = Group("seabox", HELP)
    for name in modules:
        import_module(f"seabox.cli.{name}").register(group)
    return group


def main() -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        from seabox import __version__

        print(f"seabox version {__version__}")
        return
    from seabox.cli.command import main as run

    owner = OWNER.get(args[0]) if args else None
    # a named command loads only its module; help for the whole tree loads them all; anything else is an error
    run(root([owner] if owner else list(MODULES) if args[:1] in ([], ["--help"]) else []), args)


if __name__ == "__main__":
    main()
