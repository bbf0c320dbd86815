"""The `seabox` entry point builds only the command a call names, and that command behaves as in the whole tree."""

from __future__ import annotations

import pytest
from typer.main import get_command_name
from typer.testing import CliRunner

from seabox.cli.main import app, only

NAMES = sorted({c.name or get_command_name(c.callback.__name__) for c in app.registered_commands if c.callback}
               | {g.name for g in app.registered_groups if g.name})


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
