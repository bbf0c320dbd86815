"""Running skopeo and umoci as child processes and reading what they say when they fail."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from seabox.errors import RuntimeFailure
from seabox.node.child_signal import signal_child

# skopeo (logrus) ends with `time="..." level=fatal msg="reason"`; umoci prints `   ⨯ reason`.
_LOGRUS_MSG_RE = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')
_UMOCI_ERR_RE = re.compile(r"^\s*⨯\s*(.+)$", re.MULTILINE)
# A raw manifest may arrive as one long line; allow far more than asyncio's 64 KiB default.
_LINE_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool run."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def reason(self) -> str:
        """The tool's own one-line explanation of its failure."""
        logged: list[str] = _LOGRUS_MSG_RE.findall(self.stderr)
        if logged:
            return logged[-1].replace('\\"', '"')
        umoci: list[str] = _UMOCI_ERR_RE.findall(self.stderr)
        if umoci:
            return umoci[-1].strip()
        text = self.stderr.strip()
        return text.splitlines()[-1] if text else f"exit status {self.returncode}"


async def run_tool(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> ToolResult:
    """Run argv to completion, feeding each stdout line to on_line; kill it if we are cancelled."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            limit=_LINE_LIMIT,
        )
    except FileNotFoundError as exc:
        raise RuntimeFailure(f"{argv[0]} is not installed on this node") from exc
    assert proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    try:
        lines: list[bytes] = []
        async for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line.decode(errors="replace").rstrip("\n"))
        stderr = await stderr_task
        returncode = await proc.wait()
    finally:
        if proc.returncode is None:
            signal_child(proc, signal.SIGKILL)
            await proc.wait()
        stderr_task.cancel()
    return ToolResult(argv, returncode, b"".join(lines), stderr.decode(errors="replace"))
