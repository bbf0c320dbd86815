"""Docker exec sessions as the store keeps them: what to run, whether it runs, how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ExecState = Literal["created", "running", "exited"]
LOST_EXIT_CODE = 137  # the exit code of a session whose server went away while it ran


@dataclass(frozen=True)
class ExecConfig:
    """The process an exec session runs, and which of its streams the client attaches to."""

    cmd: list[str]
    env: list[str]
    workdir: str | None
    user: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool
    detach_keys: str = ""  # as the client gave them (Docker's syntax); "" is ctrl-p,ctrl-q


@dataclass(frozen=True)
class ExecSession:
    """One `docker exec`: SERVER relays its process while it runs; SIZE is the terminal size last asked for."""

    id: str
    tenant_id: str
    container_id: str
    config: ExecConfig
    state: ExecState
    exit_code: int | None
    server: str | None
    size: tuple[int, int] | None
