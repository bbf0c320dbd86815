"""Exec sessions across servers: the records are in the store; each process is relayed by the server that started it.

Any server creates, inspects and resizes any session. The server that starts one claims it in the
store, holds its process stream, renews its lease while it runs and records its exit. A resize that
reaches another server is stored there and the relaying server is notified; it applies what the
store asks (also on each lease renewal, so a lost notification only delays it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from typing import Any

from seabox.errors import RuntimeFailure
from seabox.model.exec import ExecConfig, ExecSession
from seabox.model.tenant import Tenant
from seabox.protocol.streams import ExecStream
from seabox.services.containers import ContainerService
from seabox.store.exec_sessions import ExecSessions
from seabox.store.notify import Notifier

log = logging.getLogger(__name__)

LEASE_TTL = 10.0  # seconds a running session stays this server's without a renewal
RENEW_EVERY = 3.0
RESIZE_CHANNEL = "seabox_exec_resize"


def failed_start_exit_code(message: str) -> int:
    """The exit code Docker gives an exec the runtime could not start, from the runtime's message:
    126 when the command cannot be invoked, 127 when it is not there, 128 for anything else."""
    text = message.lower()
    if "permission denied" in text or "is a directory" in text:
        return 126
    if any(s in text for s in ("not a directory", "executable file not found", "no such file or directory")):
        return 127
    return 128


class _Relay:
    """A process this server relays, and the terminal size last applied to it."""

    def __init__(self, process: ExecStream) -> None:
        self.process = process
        self.size: tuple[int, int] | None = None

    def apply(self, size: tuple[int, int]) -> None:
        if size != self.size:
            self.process.resize(*size)
            self.size = size


class ExecService:
    """Docker exec sessions of every tenant, on this server (SERVER names it in the store)."""

    def __init__(self, sessions: ExecSessions, containers: ContainerService, notifier: Notifier | None,
                 server: str) -> None:
        self.sessions = sessions
        self.containers = containers
        self.notifier = notifier
        self.server = server
        self._relays: dict[str, _Relay] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # detached and abandoned processes

    def create(self, tenant: Tenant, ref: str, config: ExecConfig) -> ExecSession:
        c = self.containers.get_running(tenant, ref)
        return self.sessions.create(tenant.id, c.id, config)

    def get(self, tenant: Tenant, sid: str) -> ExecSession:
        return self.sessions.get(tenant.id, sid)

    async def start(self, tenant: Tenant, sid: str, *, tty: bool, stdin: bool,
                    size: tuple[int, int] | None) -> tuple[ExecSession, ExecStream]:
        """Claim the session (Conflict if it was started, on any server) and start its process here."""
        session = self.sessions.claim(tenant.id, sid, self.server, LEASE_TTL, size)
        cfg = session.config
        try:
            proc = await self.containers.exec(tenant, session.container_id, cfg.cmd, cfg.env, cfg.workdir, cfg.user,
                                              tty=tty, stdin=stdin)
        except BaseException:
            self.sessions.unclaim(sid, self.server)
            raise
        relay = self._relays[sid] = _Relay(proc)
        if tty and session.size is not None:
            relay.apply(session.size)
        return session, proc

    async def finish(self, sid: str, proc: ExecStream) -> int:
        """Wait for the process's exit code and record it. If the runtime could not start the process,
        Docker's code for that is recorded and RuntimeFailure raised with the runtime's message."""
        failure: RuntimeFailure | None = None
        try:
            code = await proc.wait()
        except RuntimeFailure as exc:
            failure, code = exc, failed_start_exit_code(exc.message)
        finally:
            self._relays.pop(sid, None)
        if not self.sessions.finish(sid, self.server, code):
            log.warning("exec %s ended with %d after it was taken for lost (this server stalled past its lease)",
                        sid[:12], code)
        if failure is not None:
            raise failure
        return code

    def detach(self, sid: str, proc: ExecStream) -> None:
        """Let the process run without a client: its output is dropped, its exit code recorded."""
        self._background(self._drain(sid, proc))

    def abandon(self, sid: str, proc: ExecStream) -> None:
        """The client left before the end: stop the process and record how it ended."""
        self._background(self._stop(sid, proc))

    async def _drain(self, sid: str, proc: ExecStream) -> None:
        async for _ in proc:
            pass
        with contextlib.suppress(RuntimeFailure):  # no one to tell: its exit code is recorded
            await self.finish(sid, proc)

    async def _stop(self, sid: str, proc: ExecStream) -> None:
        proc.close()
        await proc.kill()
        with contextlib.suppress(RuntimeFailure):
            await self.finish(sid, proc)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resize(self, tenant: Tenant, sid: str, height: int, width: int) -> None:
        """Resize the session's terminal, whichever server relays it (at its start if it has not started)."""
        session = self.sessions.resize(tenant.id, sid, height, width)
        relay = self._relays.get(sid)
        if relay is not None:
            relay.apply((height, width))
        elif session.state == "running" and self.notifier is not None:
            await asyncio.to_thread(functools.partial(self.notifier.notify, RESIZE_CHANNEL, others_only=True))

    async def run(self) -> None:
        """Until cancelled: renew this server's leases on its sessions and apply resizes asked elsewhere."""
        renew_at = time.monotonic() + RENEW_EVERY
        try:
            while True:
                wait = max(0.0, renew_at - time.monotonic())
                if self.notifier is not None:
                    await self.notifier.wait(RESIZE_CHANNEL, wait)
                else:
                    await asyncio.sleep(wait)
                try:
                    if time.monotonic() >= renew_at:
                        renew_at = time.monotonic() + RENEW_EVERY
                        self._renew()
                    self._apply_sizes()
                except Exception:
                    log.exception("exec sessions: renewing leases or applying resizes failed")
        finally:
            with contextlib.suppress(Exception):  # stopping: otherwise they end as lost once their leases lapse
                self.sessions.end_server(self.server)

    def _renew(self) -> None:
        held = self.sessions.renew(self.server, list(self._relays), LEASE_TTL)
        for sid in set(self._relays) - held:
            log.warning("exec %s was taken for lost while this server still relays it", sid[:12])

    def _apply_sizes(self) -> None:
        if not self._relays:
            return
        for sid, size in self.sessions.sizes(self.server).items():
            relay = self._relays.get(sid)
            if relay is not None and relay.process.tty:
                relay.apply(size)
