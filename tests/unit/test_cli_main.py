"""The `seabox` entry point builds only the command a call names, that command behaves as in the whole tree, and
every command's help and usage errors read as users rely on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from seabox import __version__
from seabox.cli.command import Command, Group, walk
from seabox.cli.main import MODULES, OWNER, root
from tests.unit.test_cli import Result, cli

TREE = root()
NAMES = sorted(TREE.children)
EVERY = [path for path, _ in walk(TREE)]


def test_the_table_of_owners_names_every_command_once() -> None:
    assert sorted(OWNER) == NAMES and len(OWNER) == sum(len(names) for names in MODULES.values())
    for module, names in MODULES.items():
        assert set(root([module]).children) == set(names)


def test_version_prints_the_client_version_without_loading_the_commands() -> None:
    code = ("import sys; from seabox.cli.main import main; sys.argv = ['seabox', '--version']; main(); "
            "print(sorted(m for m in sys.modules if m.startswith(('argparse', 'seabox.cli.', 'httpx', 'pydantic'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == f"seabox version {__version__}\n['seabox.cli.main']\n"


@pytest.mark.parametrize("args", [["ps"], ["run", "--rm", "busybox", "true"], ["volume", "ls"]])
def test_a_tenant_command_loads_no_http_stack_nor_pydantic_nor_rich(args: list[str]) -> None:
    code = ("import sys; from seabox.cli.main import main; sys.argv = ['seabox', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'h11', 'http', 'email', 'typer', "
            "'pydantic', 'rich', 'sqlalchemy', 'dataclasses', 'ssl'}))")
    env = {**os.environ, "SEABOX_URL": "http://127.0.0.1:1", "SEABOX_API_KEY": "k"}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert "is not reachable" in result.stderr  # it parsed its arguments and tried the server
    assert result.stdout == "[]\n"


def run_in(group: Group, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from seabox.cli.command import main

    try:
        main(group, args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", NAMES)
def test_a_command_alone_answers_as_in_the_whole_tree(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    alone = root([OWNER[name]])
    for args in ([name, "--help"], [name, "--no-such-option"]):
        assert run_in(alone, args, capsys) == run_in(TREE, args, capsys), args


def test_an_unknown_command_or_option_is_a_usage_error() -> None:
    for args, says in ((["no-such-command"], "no such command: no-such-command"),
                       (["fip", "frobnicate"], "no such command: frobnicate"), (["--frob"], "no such option: --frob")):
        result = cli(*args)
        assert result.exit_code == 2 and says in result.stderr and result.stderr.startswith("usage: seabox"), args


def flat(text: str) -> str:
    """TEXT on one line as help shows it, whatever its wrapping (a line may break after a hyphen)."""
    return " ".join(text.split()).replace("- ", "-")


@pytest.mark.parametrize("path", EVERY)
def test_help_at_every_level_has_the_usage_the_description_and_every_option(path: str) -> None:
    node: Command | Group = TREE
    for word in path.split():
        assert isinstance(node, Group)
        node = node.children[word]
    result: Result = cli(*path.split(), "--help")
    text = flat(result.stdout)
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith(f"usage: seabox {path} [--help]")
    if isinstance(node, Group):
        assert flat(node.help) in text
        for name, child in node.children.items():
            assert flat(f" {name} {child.summary}") in text
        return
    assert flat(node.func.__doc__ or "") in text
    for param in node.params.values():
        help_text = param.help() if callable(param.help) else param.help
        assert all(f" {name}" in text for name in param.names or [param.metavar]), param.names
        assert flat(help_text) in text, help_text
        if param.kind == "option" and param.required:
            assert f"{help_text} [required]" in text


def test_a_group_without_a_command_shows_its_help_and_exits_2() -> None:
    for args in ([], ["admin"], ["fip"]):
        result = cli(*args)
        assert result.exit_code == 2 and result.stdout.startswith("usage: seabox"), args


@pytest.mark.parametrize("args, says", [
    (["ps", "--bogus"], "unrecognized arguments: --bogus"),
    (["logs"], "the following arguments are required: NAME"),
    (["exec", "web"], "the following arguments are required: CMD"),
    (["cron", "create", "tick", "busybox"], "the following arguments are required: --schedule"),
    (["cron", "history", "tick", "--tail", "0"], "argument --tail: must be at least 1, got 0"),
    (["cron", "history", "tick", "--tail", "many"], "argument --tail: expected an integer, got 'many'"),
    (["stop", "-t", "soon", "web"], "argument -t/--time: expected a number, got 'soon'"),
    (["logs", "--since", "yesterday", "web"], "argument --since: expected a duration like 10m"),
    (["logs", "--tail", "many", "web"], "--tail: must be a number or 'all', got 'many'"),
    (["run", "--pids-limit", "0", "busybox"], "argument --pids-limit: must be at least 1, got 0"),
    (["sg", "inspect", "-o", "xml", "web"], "-o: must be json or yaml, got 'xml'"),
    (["run", "--fo", "busybox"], "unrecognized arguments: --fo"),  # no abbreviations of --foo options
])
def test_usage_errors_exit_2_naming_the_option_before_anything_is_sent(args: list[str], says: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEABOX_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("SEABOX_API_KEY", "k")
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.stderr.split()) and "usage: seabox" in result.stderr
    assert "not reachable" not in result.stderr


def test_options_may_repeat_and_take_their_value_joined() -> None:
    command = TREE.children["run"]
    assert isinstance(command, Command)
    parsed = command.parser("seabox run").parse_intermixed_args(["-e", "A=1", "--env=B=2", "-eC=3", "-dP", "busybox"])
    assert (parsed.env, parsed.detach, parsed.publish_all, parsed.image) == (["A=1", "B=2", "C=3"], True, True,
                                                                              "busybox")
