"""The `seabox` entry point builds only the command a call names, and that command behaves as in the whole tree."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.main import get_command_name
from typer.testing import CliRunner

from seabox import __version__
from seabox.cli.main import MODULES, OWNER, root, only

app = root(list(MODULES))
NAMES = sorted({c.name or get_command_name(c.callback.__name__) for c in app.registered_commands if c.callback}
               | {g.name for g in app.registered_groups if g.name})


def test_the_table_of_owners_names_every_command_once() -> None:
    assert sorted(OWNER) == NAMES and len(OWNER) == sum(len(names) for names in MODULES.values())
    for module, names in MODULES.items():
        alone = root([module])
        assert {c.name for c in alone.registered_commands} | {g.name for g in alone.registered_groups} == set(names)


def test_version_prints_the_client_version_without_loading_the_commands() -> None:
    code = ("import sys; from seabox.cli.main import main; sys.argv = ['seabox', '--version']; main(); "
            "print(sorted(m for m in sys.modules if m.startswith(('typer', 'seabox.cli.', 'httpx', 'pydantic'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == f"seabox version {__version__}\n['seabox.cli.main']\n"


@pytest.mark.parametrize("args", [["ps"], ["run", "--rm", "busybox", "true"], ["volume", "ls"]])
def test_a_tenant_command_loads_neither_httpx_nor_pydantic_nor_rich(args: list[str]) -> None:
    code = ("import sys; from seabox.cli.main import main; sys.argv = ['seabox', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'pydantic', 'rich', 'sqlalchemy'}))")
    env = {**os.environ, "SEABOX_URL": "http://127.0.0.1:1", "SEABOX_API_KEY": "k"}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert "is not reachable" in result.stderr  # it parsed its arguments and tried the server
    assert result.stdout == "[]\n"


@pytest.mark.parametrize("name", NAMES)
def test_a_command_alone_answers_as_in_the_whole_tree(name: str) -> None:
    alone = only(name)
    assert alone is not None
    runner = CliRunner()
    for args in ([name, "--help"], [name, "--no-such-option"]):
        whole, narrowed = runner.invoke(app, args, prog_name="seabox"), runner.invoke(alone, args, prog_name="seabox")
        assert (narrowed.exit_code, narrowed.output) == (whole.exit_code, whole.output), args


def test_an_unknown_command_gets_the_whole_tree_and_its_error() -> None:
    assert only("no-such-command") is None
    r = CliRunner().invoke(app, ["no-such-command"], prog_name="seabox")
    assert r.exit_code == 2 and "No such command" in r.output
