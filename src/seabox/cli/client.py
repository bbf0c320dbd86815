"""What every tenant command shares: server address and key, HTTP with one-line errors, NDJSON streams, output."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO
from urllib.parse import quote, urlencode, urlsplit

import typer
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer.core import TyperCommand, TyperGroup, TyperOption, _TyperParameter

from seabox import __version__
from seabox.model.humanize import human_duration

if TYPE_CHECKING:
    from rich.console import Console

ENV_URL = "SEABOX_URL"
ENV_KEY = "SEABOX_API_KEY"
ENV_CONFIG = "SEABOX_CONFIG"
CONNECT_TIMEOUT = 10.0  # seconds to reach the server; an answer may then take as long as it takes (streams, waits)
USER_AGENT = f"seabox-cli/{__version__}"


def styled(stream: TextIO) -> bool:
    """Whether output to STREAM gets colour and bold: a terminal, or FORCE_COLOR (Rich is imported only then)."""
    return bool(os.environ.get("FORCE_COLOR")) or stream.isatty()


@cache
def console(stderr: bool = False) -> Console:
    """The Rich console for our stdout or stderr (progress displays, styled lines)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class CliError(Exception):
    """A failure shown to the user as one line, `error: MESSAGE`, with exit code 1."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def report(message: str) -> None:
    """Print `error: MESSAGE` on stderr (`error:` in red on a terminal)."""
    if styled(sys.stderr):
        from rich.markup import escape

        console(stderr=True).print(f"[red]error:[/red] {escape(message)}")
    else:
        print(f"error: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    report(message)
    raise typer.Exit(1)


@dataclass(frozen=True)
class DeferredCoercion(RuntimeParam):
    """Typer's check of one parameter's value, built only for a value that needs it: Typer builds a pydantic
    TypeAdapter per parameter, given or not, and that costs a call a fifth of a second or more. An unset value
    and text (what every str and list[str] parameter gets from the command line) need none."""

    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.parameter_info.parser is None and self.descriptor.file_annotation is None:
            if self.annotation is str and isinstance(value, str):
                return value
            if self.annotation == list[str] and isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
                return list(value)
        return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)


def defer_coercion(command: Any) -> None:
    """Give every parameter of COMMAND and of the commands under it (--help too) a DeferredCoercion."""
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            descriptor = param.type_descriptor
            param._runtime_param = DeferredCoercion(
                annotation=descriptor.annotation, parameter_info=descriptor.parameter_info, descriptor=descriptor
            )
    for sub in getattr(command, "commands", {}).values():
        defer_coercion(sub)


class SeaboxGroup(TyperGroup):
    """The root command group: its parameters' checks are deferred, and any CliError a command lets escape becomes
    `error: MESSAGE` and exit 1."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        defer_coercion(self)
        return super().main(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            fail(exc.message)


# configuration ------------------------------------------------------------------------------
class CommandAfterImage(TyperCommand):
    """A create command NAME [OPTIONS] IMAGE [CMD...]: options may come before and between NAME and IMAGE;
    everything after IMAGE is the command, passed verbatim (its own options included; a `--` right after IMAGE
    only marks where it starts)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        valued = {o for p in self.params if isinstance(p, TyperOption) and not p.is_flag for o in p.opts + p.secondary_opts}
        positional, i = 0, 0
        while i < len(args) and args[i] != "--":
            arg = args[i]
            if arg.startswith("-") and len(arg) > 1:
                i += 2 if arg in valued else 1
                continue
            positional += 1
            i += 1
            if positional == 2:  # IMAGE
                if args[i:i + 1] != ["--"]:
                    args = [*args[:i], "--", *args[i:]]
                break
        return super().parse_args(ctx, args)


def config_path() -> Path:
    """Where `seabox login` saves the server URL and key: $SEABOX_CONFIG or ~/.config/seabox/config.json."""
    explicit = os.environ.get(ENV_CONFIG)
    return Path(explicit) if explicit else Path.home() / ".config" / "seabox" / "config.json"


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else "http://" + url


def save_credentials(url: str, key: str) -> Path:
    """Write URL and KEY to the config file, readable by its owner only (0600)."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "api_key": key}, f, indent=2)
        f.write("\n")
    return path


def load_credentials() -> tuple[str, str]:
    """(URL, key): each from the environment if set there, else from the login file."""
    url, key = os.environ.get(ENV_URL, ""), os.environ.get(ENV_KEY, "")
    path = config_path()
    if (not url or not key) and path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {path}: {exc}") from None
        url, key = url or str(saved.get("url", "")), key or str(saved.get("api_key", ""))
    if not url or not key:
        raise CliError(f"no Seabox server configured: run `seabox login URL KEY` or set {ENV_URL} and {ENV_KEY}")
    return normalise_url(url), key


# HTTP ------------------------------------------------------------------------------------------
def quoted(value: str, safe: str = "") -> str:
    """VALUE percent-encoded for use in an API path (SAFE characters kept, e.g. '/:@' for image refs)."""
    return quote(value, safe=safe)


def _query(params: dict[str, Any] | None) -> dict[str, str]:
    """Query parameters as the API reads them: booleans as true/false, None left out."""
    query: dict[str, str] = {}
    for name, value in (params or {}).items():
        if value is not None:
            query[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return query


@dataclass
class Response:
    """One whole answer of the server."""

    status_code: int
    reason_phrase: str
    headers: http.client.HTTPMessage
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Client:
    """The native /v1 API of one server, as one tenant (X-Api-Key on every request), over one kept-alive
    connection (the standard library's http.client: a command starts without loading an HTTP stack)."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"X-Api-Key": key, "User-Agent": USER_AGENT}
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        """The open connection, or a new one if there is none or the server closed the idle one."""
        if self._conn is not None and self._conn.sock is not None:
            if not select.select([self._conn.sock], [], [], 0)[0]:
                return self._conn
            self._conn.close()  # readable while idle: the server closed it
        parts = urlsplit(self.url)
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            host = port = None
        kinds = {"http": http.client.HTTPConnection, "https": http.client.HTTPSConnection}
        if parts.scheme not in kinds or not host:
            raise CliError(f"invalid server URL {self.url!r}: use http://HOST:PORT or https://HOST")
        conn = kinds[parts.scheme](host, port, timeout=CONNECT_TIMEOUT)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(None)
        self._conn = conn
        return conn

    def _open(self, method: str, url: str, params: dict[str, Any] | None, body: Any, content: Any,
              headers: dict[str, str] | None) -> http.client.HTTPResponse:
        """Send one request and read the answer's head (its body is left to read)."""
        query = urlencode(_query(params))
        target = self.url.split("://", 1)[-1].partition("/")[2]
        path = ("/" + target).rstrip("/") + url + (("&" if "?" in url else "?") + query if query else "")
        sent = {**self.headers, **(headers or {})}
        if body is not None:
            content = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        try:
            conn = self._connection()
        except TimeoutError:
            raise CliError(f"the Seabox server at {self.url} did not answer in time") from None
        except OSError as exc:
            raise CliError(f"the Seabox server at {self.url} is not reachable: {_reason(exc)}") from None
        try:
            conn.request(method, path, body=content, headers=sent)
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise CliError(f"lost the connection to the Seabox server at {self.url}: {_reason(exc)}") from None

    def _read(self, response: http.client.HTTPResponse) -> Response:
        try:
            content = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise CliError(f"lost the connection to the Seabox server at {self.url}: {_reason(exc)}") from None
        return Response(response.status, response.reason, response.headers, content)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request and its whole answer, whatever its status."""
        return self._read(self._open(method, url, params, body, content, headers))

    def _check(self, response: Response) -> None:
        if response.status_code < 400:
            return
        try:
            message = response.json().get("message")
        except (ValueError, AttributeError):
            message = None
        if not message:
            message = f"{response.status_code} {response.reason_phrase}: {response.text.strip()[:200]}".rstrip(": ")
        if response.status_code == 401:
            message += f" (set {ENV_KEY}, or run `seabox login URL KEY`)"
        raise CliError(message, status=response.status_code)

    def call(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer (None when the answer has no body)."""
        response = self.request(method, url, params=params, body=body, content=content, headers=headers)
        self._check(response)
        return response.json() if response.content else None

    def get(self, url: str, **params: Any) -> Any:
        return self.call("GET", url, params=params)

    def post(self, url: str, body: Any = None, **params: Any) -> Any:
        return self.call("POST", url, params=params, body=body)

    def delete(self, url: str, **params: Any) -> Any:
        return self.call("DELETE", url, params=params)

    def stream(
        self, method: str, url: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Iterator[dict[str, Any]]:
        """The objects of an NDJSON answer, one per line, as the server flushes them."""
        response = self._open(method, url, params, body, None, None)
        if response.status >= 400:
            self._check(self._read(response))
        finished = False
        try:
            while line := response.readline():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise CliError(f"the server sent a malformed stream line: {line[:200]!r}") from None
                yield item
            finished = True
        except (OSError, http.client.HTTPException) as exc:
            raise CliError(f"lost the connection to the Seabox server at {self.url}: {_reason(exc)}") from None
        finally:
            if not finished:  # left before its end: the rest of the answer would be read by the next request
                self.close()


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text).lower()


def connect() -> Client:
    """A client for the configured server (environment first, then the login file)."""
    return Client(*load_credentials())


# commands over many names ---------------------------------------------------------------------
def each(items: Sequence[str], action: Callable[[str], str]) -> None:
    """Run ACTION on every item and print the line it returns; failures are reported and make the exit code 1."""
    failed = False
    for item in items:
        try:
            line = action(item)
        except CliError as exc:
            report(exc.message)
            failed = True
        else:
            if line:
                print(line, flush=True)
    if failed:
        raise typer.Exit(1)


def inspect_all(items: Sequence[str], fetch: Callable[[str], Any]) -> None:
    """Print what FETCH returns for every item as one JSON array; missing items are reported (exit 1)."""
    found: list[Any] = []
    failed = False
    for item in items:
        try:
            found.append(fetch(item))
        except CliError as exc:
            report(exc.message)
            failed = True
    print(json.dumps(found, indent=4))
    if failed:
        raise typer.Exit(1)


# output ---------------------------------------------------------------------------------------
def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns aligned with spaces (bold headers only on a colour terminal), docker-style."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "   ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    if styled(sys.stdout):
        from rich.text import Text

        console().print(Text(line(headers), style="bold"))
    else:
        print(line(headers))
    for row in rows:
        print(line(row))
    sys.stdout.flush()


def write_stream(stream: str, data: bytes) -> None:
    """Write DATA as raw bytes to our stdout, or to our stderr when STREAM is 'stderr'."""
    target = sys.stderr if stream == "stderr" else sys.stdout
    target.flush()
    target.buffer.write(data)
    target.buffer.flush()


def parse_datetime(text: str) -> datetime:
    """An ISO time from the API (UTC when it names no zone)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def elapsed(when: str, now: datetime | None = None) -> str:
    """How long ago an ISO time from the API was, in words: '5 seconds'."""
    return human_duration(((now or datetime.now(timezone.utc)) - parse_datetime(when)).total_seconds())


def ago(when: str | None, now: datetime | None = None) -> str:
    """'5 seconds ago' for an ISO time from the API ('' when there is none)."""
    return elapsed(when, now) + " ago" if when else ""


_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float, binary: bool = False) -> str:
    """'4.261MB' (decimal, as docker shows image sizes) or, with BINARY, '512MiB'."""
    base, units = (1024.0, _BINARY_UNITS) if binary else (1000.0, _DECIMAL_UNITS)
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.4g}{units[i]}"


def short_id(ident: str) -> str:
    """The 12 hex characters docker shows for an id (any 'sha256:' dropped)."""
    return ident.removeprefix("sha256:")[:12]


def timestamp(when: str) -> str:
    """An API time as RFC 3339 in UTC with microseconds, e.g. 2024-05-01T10:00:00.123456Z."""
    return parse_datetime(when).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str) -> float:
    """'10m' or '1h30m' (that long ago), unix seconds, or an ISO time, as unix seconds."""
    text = text.strip()
    if text and not _DURATION_RE.sub("", text):
        return time.time() - sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_RE.findall(text))
    try:
        return float(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a duration like 10m or 1h, unix seconds or an ISO time, got {text!r}") from None
    return value.timestamp()


def pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """KEY=VALUE items as a dict (a bare KEY maps to ''), as docker reads -l."""
    result: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise typer.BadParameter(f"{what} must be KEY=VALUE, got {item!r}")
        result[key] = value
    return result
