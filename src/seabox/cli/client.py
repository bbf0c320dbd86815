"""What every tenant command shares: server address and key, HTTP with one-line errors, NDJSON streams, output."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import sys
import time
from datetime import datetime, timezone
from urllib.parse import quote, urlencode, urlsplit
from typing import TYPE_CHECKING

from seabox import __version__
from seabox.cli.command import CliError, UsageError, console, report, styled

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any, NoReturn

ENV_URL = "SEABOX_URL"
ENV_KEY = "SEABOX_API_KEY"
ENV_CONFIG = "SEABOX_CONFIG"
CONNECT_TIMEOUT = 10.0  # seconds to reach the server; an answer may then take as long as it takes (streams, waits)
USER_AGENT = f"seabox-cli/{__version__}"


# configuration ------------------------------------------------------------------------------
def config_path() -> str:
    """Where `seabox login` saves the server URL and key: $SEABOX_CONFIG or ~/.config/seabox/config.json."""
    return os.environ.get(ENV_CONFIG) or os.path.join(os.path.expanduser("~"), ".config", "seabox", "config.json")


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else "http://" + url


def save_credentials(url: str, key: str) -> str:
    """Write URL and KEY to the config file, readable by its owner only (0600); its path."""
    path = config_path()
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
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
    if (not url or not key) and os.path.exists(path):
        try:
            with open(path) as f:
                saved = json.load(f)
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


class Headers(dict[str, str]):
    """An answer's headers by name, whatever the case it is asked in."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


class Response:
    """One whole answer of the server."""

    __slots__ = ("status_code", "reason_phrase", "headers", "content")

    def __init__(self, status_code: int, reason_phrase: str, headers: Headers, content: bytes) -> None:
        self.status_code, self.reason_phrase, self.headers, self.content = status_code, reason_phrase, headers, content

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Answer:
    """The answer to one request as it is read off its connection, parsed by httptools (llhttp): the head first,
    then the body whole, or line by line as the server flushes it (chunked bodies come decoded)."""

    def __init__(self, sock: socket.socket) -> None:
        import httptools

        self.sock = sock
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.reason, self.headers = 0, "", Headers()
        self.body = bytearray()
        self.headed = self.complete = False

    # the parser's callbacks
    def on_status(self, reason: bytes) -> None:
        self.reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        self.headers[key] = (self.headers[key] + ", " if key in self.headers else "") + value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status, self.headed = self.parser.get_status_code(), True

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        self.complete = True

    @property
    def reusable(self) -> bool:
        """Whether the connection may carry the next request (this answer read to its end, kept alive)."""
        return self.complete and self.parser.should_keep_alive()

    def _more(self) -> None:
        """Read what the server has sent next and parse it."""
        import httptools

        data = self.sock.recv(1 << 16)
        if not data:
            framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")
            if not self.headed or framed:
                raise ConnectionError("the server closed the connection before its answer was complete")
            self.complete = True  # an answer that ends where its connection does
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ConnectionError(f"malformed answer: {exc}") from None

    def head(self) -> Answer:
        while not self.headed:
            self._more()
        return self

    def read(self) -> bytes:
        while not self.complete:
            self._more()
        return bytes(self.body)

    def lines(self) -> Iterator[bytes]:
        """The body's lines (each with its newline; the last may have none) as they arrive."""
        while True:
            end = self.body.find(b"\n")
            if end >= 0:
                line = bytes(self.body[: end + 1])
                del self.body[: end + 1]
                yield line
            elif self.complete:
                if self.body:
                    yield bytes(self.body)
                    self.body.clear()
                return
            else:
                self._more()


class Client:
    """The native /v1 API of one server, as one tenant (X-Api-Key on every request), over one kept-alive
    connection: a socket, HTTP/1.1 parsed by httptools, ssl imported only for an https server (a command starts
    without loading an HTTP stack; the standard library's http.client alone costs a start a third of its time)."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"X-Api-Key": key, "User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        self._sock: socket.socket | None = None
        self._answer: Answer | None = None  # the last request's, while it is read

    def _connection(self) -> socket.socket:
        """The open connection, or a new one if there is none, the last answer was not read to its end or may
        not be followed, or the server closed the idle one."""
        if self._sock is not None:
            if (self._answer is None or self._answer.reusable) and not select.select([self._sock], [], [], 0)[0]:
                return self._sock
            self.close()  # readable while idle: the server closed it
        parts = urlsplit(self.url)
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            host = port = None
        if parts.scheme not in ("http", "https") or not host:
            raise CliError(f"invalid server URL {self.url!r}: use http://HOST:PORT or https://HOST")
        sock = socket.create_connection((host.encode() if host.isascii() else host,
                                         port or (443 if parts.scheme == "https" else 80)), CONNECT_TIMEOUT)
        if parts.scheme == "https":
            import ssl

            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(None)
        self._sock, self._answer = sock, None
        return sock

    def _send(self, method: str, url: str, params: dict[str, Any] | None, body: Any, content: Any,
              headers: dict[str, str] | None) -> Answer:
        """Send one request; its answer, to read."""
        query = urlencode(_query(params))
        base, _, target = self.url.split("://", 1)[-1].partition("/")
        path = ("/" + target).rstrip("/") + url + (("&" if "?" in url else "?") + query if query else "")
        sent = {"Host": base.rpartition("@")[2], **self.headers, **(headers or {})}
        if body is not None:
            content = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        chunked = False
        if isinstance(content, bytes | bytearray):
            sent["Content-Length"] = str(len(content))
        elif content is None:
            if method in ("POST", "PUT", "PATCH"):
                sent["Content-Length"] = "0"
        elif "Content-Length" not in sent:
            sent["Transfer-Encoding"] = "chunked"
            chunked = True
        try:
            sock = self._connection()
        except TimeoutError:
            raise CliError(f"the Seabox server at {self.url} did not answer in time") from None
        except OSError as exc:
            raise CliError(f"the Seabox server at {self.url} is not reachable: {_reason(exc)}") from None
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items()) + "\r\n"
        try:
            if isinstance(content, bytes | bytearray):
                sock.sendall(head.encode("latin-1") + content)
            else:
                sock.sendall(head.encode("latin-1"))
                if content is not None:
                    _send_body(sock, content, chunked)
        except OSError as exc:
            self._lost(exc)
        self._answer = Answer(sock)
        return self._answer

    def _head(self, answer: Answer) -> Answer:
        """ANSWER with its head read (its body is left to read)."""
        try:
            return answer.head()
        except OSError as exc:
            self._lost(exc)

    def _open(self, method: str, url: str, params: dict[str, Any] | None, body: Any, content: Any,
              headers: dict[str, str] | None) -> Answer:
        """Send one request and read the answer's head (its body is left to read)."""
        return self._head(self._send(method, url, params, body, content, headers))

    def _lost(self, exc: Exception) -> NoReturn:
        self.close()
        raise CliError(f"lost the connection to the Seabox server at {self.url}: {_reason(exc)}") from None

    def _read(self, answer: Answer) -> Response:
        try:
            content = answer.read()
        except OSError as exc:
            self._lost(exc)
        return Response(answer.status, answer.reason, answer.headers, content)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = self._answer = None

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

    def begin(self, method: str, url: str, **params: Any) -> Callable[[], Any]:
        """Send one request now; a function that reads its decoded answer later (this client waits for it
        meanwhile: give it a connection of its own, see another())."""
        answer = self._send(method, url, params, None, None, None)

        def result() -> Any:
            response = self._read(self._head(answer))
            self._check(response)
            return response.json() if response.content else None

        return result

    def another(self) -> Client:
        """A client of the same server and key, on a connection of its own."""
        return Client(self.url, self.headers["X-Api-Key"])

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
        answer = self._open(method, url, params, body, None, None)
        if answer.status >= 400:
            self._check(self._read(answer))
        try:
            for line in answer.lines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise CliError(f"the server sent a malformed stream line: {line[:200]!r}") from None
                yield item
        except OSError as exc:
            self._lost(exc)


def _send_body(sock: socket.socket, content: Any, chunked: bool) -> None:
    """Send a request body read from a file object or given as an iterable of bytes (CHUNKED: framed as such)."""
    blocks = iter(lambda: content.read(1 << 20), b"") if hasattr(content, "read") else content
    for block in blocks:
        if block:
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


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
        raise SystemExit(1)


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
        raise SystemExit(1)


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
    from seabox.model.humanize import human_duration

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


def parse_duration(text: str) -> float:
    """'30s', '1m30s', '500ms' or '2h' (as docker reads --health-interval) as seconds."""
    text = text.strip()
    if not text or _DURATION_RE.sub("", text):
        raise ValueError(f"expected a duration like 30s, 1m30s or 500ms, got {text!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_RE.findall(text))


def parse_time(text: str) -> float:
    """'10m' or '1h30m' (that long ago), unix seconds, or an ISO time, as unix seconds."""
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a duration like 10m or 1h, unix seconds or an ISO time, got {text!r}") from None
    return value.timestamp()


def pairs(items: Sequence[str], what: str, option: str) -> dict[str, str]:
    """KEY=VALUE items of OPTION as a dict (a bare KEY maps to ''), as docker reads -l."""
    result: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"{what} must be KEY=VALUE, got {item!r}", option)
        result[key] = value
    return result
