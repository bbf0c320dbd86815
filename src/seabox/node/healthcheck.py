"""Docker-style healthchecks of this node's running containers: the check's command run as an exec inside the
container, its outcome folded into the container's health (status, failing streak, the last probes), and a
callback after every probe.

Bounds: one probe in flight per container (each container's probes run one after another in its own task), each
killed at its timeout, its output read no further than its first 4 KiB (the rest is drained and dropped), and no
probe more often than the check's minimum period allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from seabox.errors import SeaboxError
from seabox.model.healthcheck import LOG_MAX, OUTPUT_MAX, Health, Healthcheck, ProbeResult
from seabox.node.runtime.exec import ExecProcess

log = logging.getLogger(__name__)

Probed = Callable[[str], Awaitable[None]]
Exec = Callable[[str, list[str]], Awaitable[ExecProcess]]
Run = Callable[[str, Healthcheck], Awaitable[tuple[int, str]]]


def _now() -> datetime:
    return datetime.now(UTC)


async def run_probe(exec_fn: Exec, cid: str, check: Healthcheck) -> tuple[int, str]:
    """Exec the check in container CID: its exit code and output (-1 and the reason if it could not run in time)."""
    try:
        proc = await exec_fn(cid, check.argv())
    except SeaboxError as exc:
        return -1, exc.message[:OUTPUT_MAX]
    output = bytearray()

    async def read() -> None:
        async for _, chunk in proc:
            output.extend(chunk[: max(0, OUTPUT_MAX - len(output))])

    async def finish() -> int:
        await read()
        return await proc.wait()

    try:
        code = await asyncio.wait_for(finish(), check.within)
    except TimeoutError:
        proc.close()
        await proc.kill()
        with contextlib.suppress(SeaboxError):
            await proc.wait()
        return -1, f"Health check exceeded timeout ({check.within:g}s)"
    except SeaboxError as exc:
        return -1, exc.message[:OUTPUT_MAX]
    return code, bytes(output).decode("utf-8", "replace")[:OUTPUT_MAX]


def folded(health: Health, check: Healthcheck, result: ProbeResult, starting: bool) -> Health:
    """HEALTH after RESULT, as Docker counts: a pass makes it healthy; a failure counts toward RETRIES unless it
    came in the start period (STARTING) before any pass."""
    log_ = [*health.log, result][-LOG_MAX:]
    if result.exit_code == 0:
        return Health(status="healthy", failing_streak=0, log=log_)
    if health.status == "starting" and starting:
        return Health(status="starting", failing_streak=health.failing_streak, log=log_)
    streak = health.failing_streak + 1
    status = "unhealthy" if streak >= check.failures else health.status
    return Health(status=status, failing_streak=streak, log=log_)


@dataclass
class _Checking:
    check: Healthcheck
    task: asyncio.Task[None]
    health: Health


class Checker:
    """One per node agent: probes each watched container, calls on_probed(container id) after every probe."""

    def __init__(self, on_probed: Probed, run: Run) -> None:
        self.on_probed = on_probed
        self._run = run
        self._checking: dict[str, _Checking] = {}

    def health(self, cid: str) -> Health | None:
        c = self._checking.get(cid)
        return None if c is None else c.health

    def watch(self, cid: str, check: Healthcheck) -> None:
        """Probe cid as check says (from its start: status starting); the same check again changes nothing."""
        c = self._checking.get(cid)
        if c is not None and c.check == check:
            return
        self.forget(cid)
        task = asyncio.create_task(self._loop(cid, check), name=f"healthcheck-{cid[:12]}")
        self._checking[cid] = _Checking(check, task, Health())

    def forget(self, cid: str) -> None:
        """Stop probing cid (it stopped, or has no healthcheck any more); its health is forgotten."""
        c = self._checking.pop(cid, None)
        if c is not None:
            c.task.cancel()

    async def close(self) -> None:
        checking, self._checking = self._checking, {}
        for c in checking.values():
            c.task.cancel()
        for c in checking.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await c.task

    async def _loop(self, cid: str, check: Healthcheck) -> None:
        began = time.monotonic()
        while True:
            c = self._checking.get(cid)
            if c is None or c.check != check:
                return
            starting = c.health.status == "starting" and time.monotonic() - began < check.grace
            await asyncio.sleep(check.every_starting if starting else check.every)
            start, probed_at = _now(), time.monotonic()
            try:
                code, output = await self._run(cid, check)
            except Exception:
                log.exception("the healthcheck of %s failed to run", cid[:12])
                code, output = -1, "the healthcheck could not be run"
            result = ProbeResult(start=start, end=_now(), exit_code=code, output=output)
            c = self._checking.get(cid)
            if c is None or c.check != check:
                return
            c.health = folded(c.health, check, result, probed_at - began < check.grace)
            try:
                await self.on_probed(cid)
            except Exception:
                log.exception("reporting the health of %s failed", cid[:12])
