"""The command-line framework of `seabox`: commands and groups declared once over the standard library's argparse
(each parameter the default of its function's argument), their help, usage errors (exit 2) and `error:` lines (exit 1)."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, NoReturn

    from rich.console import Console

# how a command reads the words after its leading arguments (`run IMAGE CMD...`): see Command
VERBATIM = "verbatim"  # our options only before the leading arguments; the rest is the command, `--` and all
MARKED = "marked"  # our options around the leading arguments; a `--` right after them only marks where CMD starts
ANYWHERE = "anywhere"  # our options anywhere (`--` ends them); every other word, dashed or not, is an argument
_REQUIRED = object()


def styled(stream: Any) -> bool:
    """Whether output to STREAM gets colour and bold: a terminal, or FORCE_COLOR (Rich is imported only then)."""
    return bool(os.environ.get("FORCE_COLOR")) or stream.isatty()


_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """The Rich console for our stdout or stderr (progress displays, styled lines)."""
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=True)
    return _consoles[stderr]


class CliError(Exception):
    """A failure shown to the user as one line, `error: MESSAGE`, with exit code 1."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UsageError(Exception):
    """Bad input that only the command can see (a value's form): the usage line and `error: OPTION: MESSAGE`, exit 2,
    before anything is sent."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.option = option


def report(message: str) -> None:
    """Print `error: MESSAGE` on stderr (`error:` in red on a terminal)."""
    if styled(sys.stderr):
        from rich.markup import escape

        console(stderr=True).print(f"[red]error:[/red] {escape(message)}")
    else:
        print(f"error: {message}", file=sys.stderr, flush=True)


# parameters -------------------------------------------------------------------------------------
class Param:
    """One argument, option or flag of a command, declared as the default of the function argument it fills."""

    __slots__ = ("kind", "names", "metavar", "help", "default", "many", "required", "type", "min", "max")

    def __init__(self, kind: str, names: tuple[str, ...], metavar: str | None, help: str | Callable[[], str],
                 default: Any, many: bool,
                 required: bool, type: Callable[[str], Any], min: float | None, max: float | None) -> None:
        self.kind, self.names, self.metavar, self.default = kind, names, metavar, default
        self.help = help  # or a function that words it, called only to show it
        self.many, self.required, self.type, self.min, self.max = many, required, type, min, max

    def convert(self, text: str) -> Any:
        """The value of one word of the command line (argparse reports the complaint, naming the parameter)."""
        try:
            value = self.type(text)
        except ValueError as exc:
            expected = {int: "an integer", float: "a number"}.get(self.type)  # type: ignore[call-overload]
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}" if expected else str(exc)) from None
        if self.min is not None and value < self.min:
            raise argparse.ArgumentTypeError(f"must be at least {self.min:g}, got {text}")
        if self.max is not None and value > self.max:
            raise argparse.ArgumentTypeError(f"must be at most {self.max:g}, got {text}")
        return value


def argument(metavar: str, help: str = "", *, default: Any = _REQUIRED, many: bool = False,
             type: Callable[[str], Any] = str, min: float | None = None, max: float | None = None) -> Any:
    """A positional argument (MANY: one or more words, or any number when it has a DEFAULT)."""
    return Param("argument", (), metavar, help, None if default is _REQUIRED else default, many,
                 default is _REQUIRED, type, min, max)


def tail(metavar: str, help: str, *, required: bool = False) -> Any:
    """The words after a command's leading arguments, as given (`run IMAGE CMD...`; see Command's TAIL); None
    when there are none."""
    return Param("tail", (), metavar, help, None, True, required, str, None, None)


def option(*names: str, help: str, default: Any = None, many: bool = False, required: bool = False,
           type: Callable[[str], Any] = str, metavar: str | None = None, min: float | None = None,
           max: float | None = None) -> Any:
    """An option taking a value (MANY: repeatable, the values as a list; None when not given)."""
    return Param("option", names, metavar, help, default, many, required, type, min, max)


def flag(*names: str, help: str) -> Any:
    """An option without a value: True when given."""
    return Param("flag", names, None, help, False, False, False, str, None, None)


# commands and groups --------------------------------------------------------------------------------
def paragraphs(text: str) -> list[str]:
    """A docstring's paragraphs, each on one line."""
    return [" ".join(p.split()) for p in (text or "").strip().split("\n\n") if p.strip()]


def declared(func: Callable[..., Any]) -> dict[str, Param]:
    """The parameters FUNC declares, by argument name (each argument's default is its Param)."""
    code = func.__code__
    params = dict(zip(code.co_varnames[: code.co_argcount], func.__defaults__ or (), strict=True))
    for name, param in params.items():
        if not isinstance(param, Param):
            raise TypeError(f"{func.__qualname__}: argument {name} is not declared with argument(), option() ...")
    return params


class Command:
    """A function run with its parameters read from the command line; its docstring is its help (the first
    paragraph in its group's list). With a tail parameter, TAIL says how the words after the leading arguments are
    read (VERBATIM, MARKED or ANYWHERE)."""

    def __init__(self, name: str, func: Callable[..., Any], panel: str | None, tail: str,
                 also: Callable[..., Any] | None = None) -> None:
        self.name, self.func, self.panel, self.tail = name, func, panel, tail
        self.params: dict[str, Param] = {**declared(func), **(declared(also) if also else {})}

    @property
    def summary(self) -> str:
        return (paragraphs(self.func.__doc__ or "") or [""])[0]

    def parser(self, prog: str, worded: bool = True) -> argparse.ArgumentParser:
        """The command's argparse parser (WORDED: with the help of each parameter, to show it)."""
        parser = argparse.ArgumentParser(prog=prog, description="\n\n".join(paragraphs(self.func.__doc__ or "")),
                                         formatter_class=HelpFormatter, add_help=False, allow_abbrev=False)
        parser.add_argument("--help", action="help", help="Show this message and exit.")
        for dest, p in self.params.items():
            shown = (p.help() if callable(p.help) else p.help) if worded else ""
            if p.kind == "option" and worded:
                shown += " [required]" if p.required else f" [default: {p.default}]" if p.default is not None else ""
            common: dict[str, Any] = {"dest": dest, "help": shown, "default": argparse.SUPPRESS}
            if p.kind == "flag":
                parser.add_argument(*p.names, action="store_true", **common)
            elif p.kind == "option":
                parser.add_argument(*p.names, type=p.convert, action="append" if p.many else "store",
                                    required=p.required, metavar=p.metavar or dest.strip("_").upper(), **common)
            else:  # an argument left out is None: argparse would convert a default of SUPPRESS for nargs "?"
                del common["dest"]
                common["default"] = None
                # a tail's words never reach argparse (see _split): it only shows them in the usage
                nargs = "*" if p.kind == "tail" else ("+" if p.required else "*") if p.many else None if p.required \
                    else "?"
                parser.add_argument(dest, type=p.convert, nargs=nargs, metavar=p.metavar, **common)
        return parser

    def _split(self, args: list[str]) -> tuple[list[str], list[str] | None]:
        """(the words argparse reads, the tail's words) of ARGS: options, then the leading arguments after `--`."""
        kinds = [p.kind for p in self.params.values()]
        if "tail" not in kinds:
            return args, None
        leading = kinds[: kinds.index("tail")].count("argument")
        names = {n for p in self.params.values() for n in p.names} | {"--help"}
        valued = {n for p in self.params.values() if p.kind == "option" for n in p.names}
        flags = names - valued
        options: list[str] = []
        words: list[str] = []
        i = 0
        while i < len(args) and (self.tail == ANYWHERE or len(words) < leading):
            word = args[i]
            i += 1
            if word == "--":
                words += args[i:]
                i = len(args)
            elif word.startswith("-") and len(word) > 1 and (self.tail != ANYWHERE or word.partition("=")[0] in names):
                options.append(word)
                if _takes_value(word, valued, flags) and i < len(args):
                    options.append(args[i])
                    i += 1
            else:
                words.append(word)
        rest = args[i:]
        if self.tail == MARKED and rest[:1] == ["--"]:
            rest = rest[1:]
        return [*options, "--", *words[:leading]], words[leading:] + rest

    def run(self, prog: str, args: list[str]) -> None:
        head, words = self._split(args)
        parser = self.parser(prog, worded="--help" in head)
        parsed = vars(parser.parse_args(head) if words is not None else parser.parse_intermixed_args(head))
        values = {d: words or None if p.kind == "tail" else parsed.get(d) for d, p in self.params.items()}
        values.update({d: p.default for d, p in self.params.items() if values[d] in (None, [])})
        for p in self.params.values():
            if p.kind == "tail" and p.required and not words:
                parser.error(f"the following arguments are required: {p.metavar}")
        try:
            self.func(**values)
        except UsageError as exc:
            parser.error(f"{exc.option}: {exc.message}" if exc.option else exc.message)


def _takes_value(word: str, valued: set[str], flags: set[str]) -> bool:
    """Whether option WORD takes the next word as its value: `--env X`, `-e X`, or a cluster of short flags whose
    last one takes one (`-de X`; not `-eX` nor `--env=X`)."""
    if word in valued:
        return True
    if word.startswith("--") or len(word) < 3:
        return False
    for i, letter in enumerate(word[1:], 1):
        if f"-{letter}" in valued:
            return i == len(word) - 1
        if f"-{letter}" not in flags:
            return False
    return False


class Group:
    """Commands and groups under one name (`seabox fip ...`), listed by panel in its help."""

    def __init__(self, name: str, help: str, panel: str | None = None) -> None:
        self.name, self.help, self.panel = name, help, panel
        self.children: dict[str, Command | Group] = {}

    @property
    def summary(self) -> str:
        return (paragraphs(self.help) or [""])[0]

    def command(self, name: str, *, panel: str | None = None, tail: str = VERBATIM,
                also: Callable[..., Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare the decorated function as command NAME of this group (with ALSO: the parameters that function
        declares too, passed to the decorated one's **keywords)."""
        def add(func: Callable[..., Any]) -> Callable[..., Any]:
            self.children[name] = Command(name, func, panel, tail, also)
            return func

        return add

    def group(self, name: str, help: str, panel: str | None = None) -> Group:
        """A new group NAME under this one."""
        return self.add(Group(name, help, panel))

    def add(self, group: Group) -> Group:
        """GROUP under this one, by its name."""
        self.children[group.name] = group
        return group

    def usage(self, prog: str) -> str:
        return f"usage: {prog} [--help] COMMAND [ARGS]..."

    def help_text(self, prog: str) -> str:
        width = min(columns(), 100) - 2
        lines = [self.usage(prog), ""]
        lines += [textwrap.fill(p, width) + "\n" for p in paragraphs(self.help)]
        panels: dict[str, list[Command | Group]] = {"Commands": []}  # those of no panel first
        for child in self.children.values():
            panels.setdefault(child.panel or "Commands", []).append(child)
        column = max(len(name) for name in self.children) + 4
        lines += ["options:", "  --help".ljust(column) + "Show this message and exit."]
        for panel, children in panels.items():
            lines += ["", f"{panel}:"] if children else []
            for child in children:
                lines.append(textwrap.fill(child.summary, width, initial_indent=f"  {child.name}".ljust(column),
                                           subsequent_indent=" " * column))
        return "\n".join(lines)

    def run(self, prog: str, args: list[str]) -> None:
        if not args or args[0] == "--help":
            print(self.help_text(prog))
            raise SystemExit(0 if args else 2)
        child = self.children.get(args[0])
        if child is None:
            what = "option" if args[0].startswith("-") else "command"
            usage_error(self.usage(prog), prog, f"no such {what}: {args[0]} (see `{prog} --help`)")
        child.run(f"{prog} {args[0]}", args[1:])


def columns() -> int:
    """The terminal's width ($COLUMNS first, 80 off a terminal), as shutil words it but without its import, which
    argparse would make on every call for a help it does not show."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, each paragraph of a description wrapped on its own."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=columns() - 2)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(textwrap.fill(p, width, initial_indent=indent, subsequent_indent=indent)
                           for p in text.split("\n\n"))


def usage_error(usage: str, prog: str, message: str) -> NoReturn:
    print(f"{usage}\n{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def walk(group: Group, prefix: str = "") -> Iterator[tuple[str, Command | Group]]:
    """Every command and group under GROUP, with its path (`fip ls`), depth first."""
    for name, child in group.children.items():
        yield prefix + name, child
        if isinstance(child, Group):
            yield from walk(child, f"{prefix}{name} ")


def main(root: Group, args: list[str], prog: str = "seabox") -> None:
    """Run what ARGS name under ROOT: a CliError is `error: MESSAGE` and exit 1; Ctrl-C exits 130."""
    try:
        root.run(prog, args)
    except CliError as exc:
        report(exc.message)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:  # the reader left: nothing more to say, and nothing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
