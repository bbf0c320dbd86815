"""The runc-compatible command line (runc, runsc): the subcommands the agent needs, their messages made Seabox errors."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seabox.errors import Conflict, NotFound, RuntimeFailure, SeaboxError
from seabox.node.runtime.spec import ProcessUser, exec_process

_LOGRUS_MSG_RE = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')
_NOT_FOUND = ("does not exist",)
_CONFLICT = (
    "not running",
    "cannot start",
    "already running",
    "already exists",
    "stopped container",
    "is paused",
)


def logrus_message(text: str) -> str | None:
    """The message of the last error line runc (logrus) wrote in text, if any."""
    logged: list[str] = _LOGRUS_MSG_RE.findall(text)
    return logged[-1].replace('\\"', '"') if logged else None


def runc_reason(stderr: str, returncode: int) -> str:
    """runc's own one-line explanation of a failure."""
    logged = logrus_message(stderr)
    if logged:
        return logged
    text = stderr.strip()
    return text.splitlines()[-1] if text else f"runc exited with status {returncode}"


def runc_error(reason: str, cid: str) -> SeaboxError:
    """The Seabox error for a runc failure message about container cid."""
    if any(marker in reason for marker in _NOT_FOUND):
        return NotFound(f"no such container: {cid}")
    if any(marker in reason for marker in _CONFLICT):
        return Conflict(f"container {cid}: {reason}")
    return RuntimeFailure(f"runc: {reason}")


def _nothing(cid: str) -> list[str]:
    return []


class Runc:
    """An OCI runtime CLI with its state under one root directory, apart from anyone else's containers.

    extra_args(cid) go before every subcommand for that container after --root; enter(cid) is an argv
    prefix that runs the command where it must run for it (runsc: inside its network namespace).
    """

    def __init__(
        self,
        binary: str,
        root: Path,
        *,
        extra_args: Callable[[str], list[str]] = _nothing,
        enter: Callable[[str], list[str]] = _nothing,
        terminal_by_process_file: bool = False,
    ) -> None:
        self.binary = binary
        self.root = root
        self.extra_args = extra_args
        self.enter = enter
        # runsc has no `exec --tty`: it gives an exec a terminal (its own stdio, a pty) when the
        # `--process` file says "terminal": true
        self.terminal_by_process_file = terminal_by_process_file

    def global_args(self, cid: str) -> tuple[str, ...]:
        """Flags that go before every subcommand for container cid (also handed to conmon as --runtime-arg)."""
        return ("--root", str(self.root), *self.extra_args(cid))

    async def _run(self, cid: str, *args: str) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.enter(cid),
                self.binary,
                *self.global_args(cid),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise RuntimeFailure(f"{self.binary} is not installed on this node") from exc
        stdout, stderr = await proc.communicate()
        if proc.returncode != 0:
            raise runc_error(runc_reason(stderr.decode(errors="replace"), proc.returncode or 0), cid)
        return stdout.decode(errors="replace")

    async def start(self, cid: str) -> None:
        await self._run(cid, "start", cid)

    async def kill(self, cid: str, signal: int) -> None:
        await self._run(cid, "kill", cid, str(signal))

    async def pause(self, cid: str) -> None:
        await self._run(cid, "pause", cid)

    async def resume(self, cid: str) -> None:
        await self._run(cid, "resume", cid)

    async def update(self, cid: str, resources: Path) -> None:
        """Set the live container's cgroup limits to the linux.resources JSON in the file RESOURCES."""
        await self._run(cid, "update", "--resources", str(resources), cid)

    async def delete(self, cid: str) -> None:
        """Kill the container if needed and remove its state; succeeds for an unknown id."""
        await self._run(cid, "delete", "--force", cid)

    async def state(self, cid: str) -> dict[str, Any] | None:
        """runc's state document for cid, or None if runc does not know it."""
        try:
            state: dict[str, Any] = json.loads(await self._run(cid, "state", cid))
        except NotFound:
            return None
        return state

    async def ps_table(self, cid: str) -> str:
        """`ps` of the container in the runtime's table form."""
        return await self._run(cid, "ps", "--format", "table", cid)

    def exec_argv(
        self,
        cid: str,
        args: Sequence[str],
        *,
        env: Sequence[str],
        cwd: str | None,
        user: ProcessUser | None,
        tty: bool,
        pid_file: Path,
        log_file: Path,
        container: dict[str, Any],
    ) -> list[str]:
        """The command line of a foreground `runc exec` that logs runc's own errors as JSON to log_file.

        env is the process's whole environment. `exec --env` only adds to the container's, so when env
        drops or changes one of its entries, and for a terminal in runsc, this writes the process file
        the runtime reads next to pid_file, made from the container's process (from its config.json).
        """
        argv = [
            *self.enter(cid), self.binary, *self.global_args(cid), "--log", str(log_file), "--log-format", "json",
            "exec", "--pid-file", str(pid_file),
        ]  # fmt: skip
        own = container.get("env", [])
        if (tty and self.terminal_by_process_file) or not set(own) <= set(env):
            process = exec_process(container, list(args), env=list(env), cwd=cwd, user=user, tty=tty)
            process_file = pid_file.parent / "process.json"
            process_file.write_text(json.dumps(process))
            return [*argv, "--process", str(process_file), cid]
        if tty:
            argv.append("--tty")
        if cwd:
            argv += ["--cwd", cwd]
        for entry in env:
            if entry not in own:
                argv += ["--env", entry]
        if user is not None:
            argv += ["--user", f"{user.uid}:{user.gid}"]
            for gid in user.additional_gids:
                argv += ["--additional-gids", str(gid)]
        return [*argv, cid, *args]
