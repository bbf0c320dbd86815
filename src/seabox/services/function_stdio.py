"""The stdio executor (Hyper.sh's functions): one container per call, the body on its stdin, its stdout the reply.

Each call creates a container of the function's image with stdin open, attaches before it starts
(as `docker run -i` does), writes the body and closes stdin, and reads stdout to its end (over 1 MiB:
509, and the container is killed). The request comes in as environment variables, as OpenFaaS's
classic watchdog passes it: `Http_Method`, `Http_Path` (always `/`: call URLs have no sub-paths),
`Http_Query` and one `Http_<Header>` per forwarded header (`X-Foo` -> `Http_X_Foo`). Exit code 0
answers 200; any other exit is the function's own error and answers 500 with stdout as the body.
Every reply carries `X-Seabox-Exit-Code`. The container is removed once the call has its answer;
the tail of its output (stdout and stderr) stays with the call record for `func logs --call`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable

from seabox.errors import ReplyTooLarge, SeaboxError
from seabox.model.container import ContainerCreate
from seabox.model.function import MAX_BODY
from seabox.services.containers import ContainerService
from seabox.services.function_exec import Call, Reply
from seabox.protocol.streams import AttachStdio

log = logging.getLogger(__name__)

CALL_LABEL = "seabox.call"  # on each call's container: the call it serves
LOG_TAIL = 64 << 10  # bytes of a call's output kept for `func logs --call`
EXIT_HEADER = "X-Seabox-Exit-Code"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,128}$")


def header_env(call: Call) -> list[str]:
    """The call's request as environment variables, OpenFaaS classic watchdog style."""
    env = [f"Http_Method={call.method}", "Http_Path=/", f"Http_Query={call.query}"]
    for name, value in call.headers.items():
        if _HEADER_NAME.match(name):
            env.append("Http_" + "_".join(part.capitalize() for part in name.split("-")) + "=" + value)
    return env


class _Output:
    """A call's stdout (bounded: past MAX_BODY the call fails with a 509) and the tail of all its output."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.tail = bytearray()

    def add(self, stream: str, data: bytes) -> None:
        self.tail += data
        if len(self.tail) > 2 * LOG_TAIL:
            del self.tail[:-LOG_TAIL]
        if stream == "stdout":
            self.stdout += data
            if len(self.stdout) > MAX_BODY:
                raise ReplyTooLarge(f"the function wrote more than {MAX_BODY} bytes (1 MiB) to stdout")

    def log_tail(self) -> str:
        return bytes(self.tail[-LOG_TAIL:]).decode("utf-8", "replace")


class StdioExecutor:
    """Runs each call in a container of its own, through the tenant's ordinary container operations."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._removals: set[asyncio.Task[None]] = set()

    async def run(self, call: Call) -> Reply:
        spec, tenant = call.function.spec, call.tenant
        req = ContainerCreate(
            image=spec.image, name=f"{spec.name[:40]}-{call.id[:12]}", cmd=spec.cmd or None,
            env=[*spec.env, *header_env(call)], size=spec.size, stdin_open=True,
            labels={"seabox.function": spec.name, CALL_LABEL: call.id},
        )
        c = await self.containers.create(tenant, req, quota="function_containers")
        attaching = self.containers.attach(tenant, c.id)
        starting = asyncio.ensure_future(self.containers.start(tenant, c.id))
        conn: AttachStdio | None = None
        try:
            await asyncio.wait({attaching, starting}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done() and starting.exception() is not None and not attaching.done():
                starting.result()  # the start failed: nothing will attach
            conn = await attaching
            out = _Output()
            await self._exchange(conn, call.body, out)
            await starting
            ended = await self.containers.wait(tenant, c.id)
            code = ended.status.exit_code
            return Reply(200 if code == 0 else 500, bytes(out.stdout), {EXIT_HEADER: str(code)},
                         container=c.id, log_tail=out.log_tail())
        finally:
            if conn is not None:
                conn.close()
            attaching.cancel()
            starting.cancel()
            self._remove_later(call, c.id)

    @staticmethod
    async def _exchange(conn: AttachStdio, body: bytes, out: _Output) -> None:
        """Write BODY to stdin and close it, while reading the output to its end."""
        async def feed() -> None:
            with contextlib.suppress(OSError):
                if body:
                    await conn.write(body)
            conn.close_stdin()

        feeder = asyncio.ensure_future(feed())
        try:
            async for stream, data in conn:
                out.add(stream, data)
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await feeder

    async def sweep(self, active: Callable[[list[str]], set[str]]) -> None:
        """Remove call containers whose call is no longer queued or running (ACTIVE(ids) -> those that are):
        what a server that stopped mid-call left behind."""
        labelled = [c for c in self.containers.store.list_containers() if CALL_LABEL in c.spec.labels]
        live = active([c.spec.labels[CALL_LABEL] for c in labelled]) if labelled else set()
        for c in labelled:
            if c.spec.labels[CALL_LABEL] in live or c.status.state == "removing":
                continue
            log.info("removing container %s of call %s, which is over", c.name, c.spec.labels[CALL_LABEL])
            with contextlib.suppress(SeaboxError):
                await self.containers.remove(self.containers.store.tenant_by_id(c.tenant), c.id, force=True)

    def _remove_later(self, call: Call, cid: str) -> None:
        """Remove the call's container off the answer's path (killing it if it still runs)."""
        async def remove() -> None:
            try:
                await self.containers.remove(call.tenant, cid, force=True)
            except SeaboxError as exc:
                log.warning("could not remove container %s of call %s: %s", cid[:12], call.id, exc.message)

        task = asyncio.get_running_loop().create_task(remove(), name=f"remove-{cid[:12]}")
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)
