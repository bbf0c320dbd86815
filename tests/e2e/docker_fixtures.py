"""Helpers for driving the session's real server with the real docker CLI and docker SDK, one tenant each."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shlex
import struct
import subprocess
import termios
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
import httpx

from tests.fixtures.server import Server

DOCKER = "/usr/local/bin/docker"
TIMEOUT = 30  # every docker command gets one: a hang fails the test instead of the session
TCP_ESTABLISHED, TCP_CLOSE_WAIT = "01", "08"
T = TypeVar("T")
BUDGET = 15.0  # seconds until() waits by default: for containers to be made and started (runc starts take tens of ms)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def docker_config(server: Server, tenant: str, root: Path) -> Path:
    """A DOCKER_CONFIG directory whose config.json sends TENANT's API key as an HTTP header on every request."""
    path = root / f"docker-config-{tenant}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"HttpHeaders": {"X-Api-Key": server.tenant(tenant)}}))
    return path


@dataclass
class DockerCli:
    """The docker CLI pointed at the server (DOCKER_HOST=tcp://...) as one tenant."""

    server: Server
    tenant: str
    config: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=f"tcp://{self.server.host}:{self.server.port}", DOCKER_CONFIG=str(self.config),
                   DOCKER_CLI_HINTS="false", SHELL="/bin/sh")
        return env

    def __call__(self, *args: str, input: str | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """`docker ARGS`, its output captured; stdin is INPUT (or empty)."""
        return subprocess.run([DOCKER, *args], env=self.env, input=input or "", capture_output=True, text=True,
                              timeout=timeout, check=False)

    def ok(self, *args: str, input: str | None = None, timeout: float = TIMEOUT) -> str:
        """`docker ARGS` that must succeed; its stdout."""
        r = self(*args, input=input, timeout=timeout)
        assert r.returncode == 0, f"docker {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def shell(self, command: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """COMMAND run by sh with this tenant's docker environment (for pipes)."""
        return subprocess.run(["sh", "-c", command], env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def pty(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        """`docker ARGS` under `script`, so that its stdin and stdout are a terminal; output as bytes (\r\n kept)."""
        command = shlex.join([DOCKER, *args])
        return subprocess.run(["script", "-qec", command, "/dev/null"], env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, check=False)

    def terminal(self, *args: str, rows: int = 24, cols: int = 80) -> Terminal:
        """`docker ARGS` on a terminal of ROWS x COLS that the test types into and resizes."""
        return Terminal([DOCKER, *args], self.env, rows, cols)

    def inspect(self, *args: str) -> Any:
        return json.loads(self.ok("inspect", *args))

    def lines(self, *args: str) -> list[str]:
        return self.ok(*args).splitlines()


class Terminal:
    """A command whose controlling terminal is a pty held here, as in a user's shell: typing, resizing, reading."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int, cols: int) -> None:
        self._master, slave = pty.openpty()
        self.resize(rows, cols)
        self.output = b""
        try:  # setsid --ctty: the pty becomes the command's controlling terminal (a resize signals it)
            self.proc = subprocess.Popen(["setsid", "--ctty", *argv], env=env, stdin=slave, stdout=slave, stderr=slave)
        finally:
            os.close(slave)

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, data: bytes) -> None:
        os.write(self._master, data)

    def read_until(self, wanted: bytes, timeout: float = TIMEOUT) -> bytes:
        """Everything written so far, once it holds WANTED; AssertionError with the output after TIMEOUT."""
        deadline = time.monotonic() + timeout
        while wanted not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._master], [], [], left)[0]:
                raise AssertionError(f"{wanted!r} not seen within {timeout}s in {self.output!r}")
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the command and every holder of the terminal are gone
                chunk = b""
            if not chunk:
                raise AssertionError(f"{wanted!r} not seen before the end of {self.output!r}")
            self.output += chunk
        return self.output

    def detach(self, keys: bytes, marker: bytes) -> float:
        """At a shell's prompt: run a command and see its output, then type the detach KEYS; the seconds
        until MARKER (what the client writes once detached) appears."""
        self.type(b"echo at-$((6*7))\r")
        self.read_until(b"at-42")
        started = time.monotonic()
        self.type(keys)
        self.read_until(marker, timeout=5)
        return time.monotonic() - started

    def wait(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._master >= 0:
            os.close(self._master)
            self._master = -1


def native(server: Server, tenant: str) -> httpx.Client:
    """A client of the native /v1 API as TENANT: setup and cleanup that do not depend on the Docker layer."""
    return httpx.Client(base_url=server.url, headers={"X-Api-Key": server.tenant(tenant)}, timeout=60)


def pull(server: Server, tenant: str, image: str) -> None:
    with native(server, tenant) as client:
        last = json.loads(client.post("/v1/images/pull", json={"image": image}).text.splitlines()[-1])
    assert "image" in last, last


# what wipe removes of each kind (its /v1 route): the field naming one, the list query, the DELETE query
WIPED: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "services": ("name", {}, {}),
    "crons": ("name", {}, {}),
    "containers": ("id", {"all": "true"}, {"force": "true"}),
    "fips": ("address", {}, {}),
}


def wipe(server: Server, tenant: str, *kinds: str) -> None:
    """Remove every one of TENANT's KINDS (keys of WIPED), kind by kind in the order given."""
    with native(server, tenant) as client:
        for kind in kinds:
            key, listing, removal = WIPED[kind]
            for item in client.get(f"/v1/{kind}", params=listing).json():
                client.delete(f"/v1/{kind}/{item[key]}", params=removal)


@contextmanager
def wiped_tenant(server: Server, prefix: str, *kinds: str) -> Iterator[str]:
    """A new tenant PREFIX-xxxxxx for the block; its KINDS are wiped afterwards, whether the block failed or not."""
    name = unique(prefix)
    server.tenant(name)
    try:
        yield name
    finally:
        wipe(server, name, *kinds)


def ok(r: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a CLI run that must have succeeded."""
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout


def clean(server: Server, tenant: str) -> None:
    """Remove every container, volume and image TENANT has."""
    with native(server, tenant) as client:
        for c in client.get("/v1/containers", params={"all": "true"}).json():
            client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})
        for v in client.get("/v1/volumes").json():
            client.delete(f"/v1/volumes/{v['name']}")
        for i in client.get("/v1/images").json():
            client.delete(f"/v1/images/{i['id']}", params={"force": "true"})


@contextmanager
def cleaned(server: Server, *tenants: str) -> Iterator[None]:
    """Run the block, then remove what TENANTS made, whether the block failed or not."""
    try:
        yield
    finally:
        for tenant in tenants:
            clean(server, tenant)


@contextmanager
def pulled_tenant(server: Server, prefix: str, image: str) -> Iterator[str]:
    """A new tenant PREFIX-xxxxxx that has pulled IMAGE; its containers, volumes and images go afterwards."""
    name = unique(prefix)
    pull(server, name, image)
    with cleaned(server, name):
        yield name


def sdk_client(server: Server, tenant: str, root: Path) -> docker.DockerClient:
    """docker.DockerClient(base_url=tcp://..., version="auto") carrying TENANT's key.

    docker-py reads `HttpHeaders` from $DOCKER_CONFIG/config.json when it is built and adds them in its
    _get/_post/_put/_delete helpers (version="auto" asks GET /version before any header could be set by
    hand); attach_socket posts through the bare requests session, so the key also goes in the session's
    headers."""
    saved = os.environ.get("DOCKER_CONFIG")
    os.environ["DOCKER_CONFIG"] = str(docker_config(server, tenant, root))
    try:
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{server.port}", version="auto", timeout=TIMEOUT)
    finally:
        if saved is None:
            del os.environ["DOCKER_CONFIG"]
        else:
            os.environ["DOCKER_CONFIG"] = saved
    client.api.headers["X-Api-Key"] = server.tenant(tenant)
    return client


def open_connections(port: int) -> set[str]:
    """Peers of the TCP connections the server on PORT still holds open (established, or closed by the peer only)."""
    peers = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, remote, state, *_ = line.split()
        if int(local.rsplit(":", 1)[1], 16) == port and state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            peers.add(remote)
    return peers


def wait_for(predicate: Callable[[], T], timeout: float = 10, interval: float = 0.1) -> T:
    """Poll PREDICATE until it returns something truthy; that value, or an AssertionError after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def until(check: Callable[[], Any], budget: float = BUDGET, what: str = "") -> Any:
    """Poll CHECK every 50 ms until it returns something true; that value, or an AssertionError naming WHAT."""
    deadline = time.monotonic() + budget
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {budget} s: {what}")
        time.sleep(0.05)


def memory_bytes(text: str) -> float:
    """'408KiB' or '1.5MB' as bytes (docker stats' units)."""
    m = re.fullmatch(r"([\d.]+)\s*([KMGT]?i?B)", text.strip())
    assert m, text
    units = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
             "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
    return float(m.group(1)) * units[m.group(2)]
