"""The call gateway: admits a function call (limits, queue, 429), runs it on its mode's executor, keeps its outcome.

A sync call answers the function's reply; an async call answers its id at once and its result is
kept until it is read once or expires ([functions] result_ttl). The timeout counts from the call's
arrival, its time in the queue included (504 past it). Admission is the store's, for every server
on the database together (store/functions.py): `[functions] tenant_concurrency` and `queue_size`
bound a tenant's calls on all servers at once, and a tenant's queue is one line across them, first
in first out. A call waits on the server it arrived at, which starts it when its turn comes: at once
when one of its own calls ends, else within POLL seconds of a call ending on another server. Every
call is a record with the name of the server running it and a lease that server renews: a call
queued or running on a server that stopped holds no slot and no place in the line once its lease
ran out, and is marked failed (status 503, "the server running this call stopped") by the next
prune pass, so nothing queued is lost silently; a queued call is never handed to another server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from seabox.config import FunctionsConfig
from seabox.errors import CallTimeout, InvalidArgument, PayloadTooLarge, ReplyTooLarge, SeaboxError, TooManyRequests
from seabox.model.function import MAX_BODY, Function
from seabox.model.tenant import Tenant
from seabox.services.function_exec import Call, Executor, Reply, SweepsCalls
from seabox.store.functions import CallRecord, FunctionStore
from seabox.store.leases import Lease

log = logging.getLogger(__name__)

# never passed on to a function: hop-by-hop headers (RFC 9110 7.6.1) and the caller's credentials for Seabox
DROPPED_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
    "proxy-authorization", "proxy-authenticate", "authorization", "x-api-key", "cookie", "host", "content-length",
})
CALL_ID_HEADER = "X-Seabox-Call-Id"
MAX_HEADERS = 64  # forwarded to a function at most
MAX_HEADER_BYTES = 16 << 10  # names and values of the forwarded headers together
OUTCOMES = {504: "timed-out"}  # the record's status for an error's HTTP status (else failed)
POLL = 0.05  # seconds between looks at the store while calls of this server wait for a slot


def _loop_time(deadline: float) -> float:
    """DEADLINE (time.monotonic) on the event loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


def forwarded(headers: list[tuple[str, str]]) -> dict[str, str]:
    """The request headers a function sees: hop-by-hop and credential headers dropped, repeats joined; 400 past the bounds."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in DROPPED_HEADERS:
            continue
        out[key] = f"{out[key]}, {value}" if key in out else value
    if len(out) > MAX_HEADERS:
        raise InvalidArgument(f"a call may pass at most {MAX_HEADERS} headers to its function, got {len(out)}",
                              field="headers")
    if sum(len(k) + len(v) for k, v in out.items()) > MAX_HEADER_BYTES:
        raise InvalidArgument(f"a call's headers may take at most {MAX_HEADER_BYTES} bytes", field="headers")
    return out


def answer_headers(headers: dict[str, str]) -> dict[str, str]:
    """A function's reply headers as the caller gets them: hop-by-hop ones (and the length, set anew) dropped."""
    return {k: v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS}


class CallGateway:
    """Runs tenants' function calls on this server within their limits, and answers their results."""

    def __init__(self, cfg: FunctionsConfig, store: FunctionStore, executors: dict[str, Executor], server: str) -> None:
        self.cfg = cfg
        self.store = store
        self.executors = executors
        self.server = server
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()  # set (and replaced) whenever a call of this server ends
        self._waiting: dict[str, dict[str, asyncio.Future[None]]] = {}  # tenant -> queued call -> its turn
        self._admitter: asyncio.Task[None] | None = None  # starts waiting calls while there are any

    async def call(self, tenant: Tenant, fn: Function, body: bytes, headers: dict[str, str], *, sync: bool,
                   method: str = "POST", query: str = "") -> Reply | str:
        """Run a call of FN: its reply (SYNC), else its id at once; 413 over 1 MiB, 429 when the queue is full."""
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"a call's body may be at most {MAX_BODY} bytes (1 MiB), got {len(body)}")
        executor = self.executors.get(fn.spec.mode)
        if executor is None:
            raise InvalidArgument(f"mode {fn.spec.mode} is not served by this server", field="mode")
        if not sync and self.store.unread(tenant.id) >= self.cfg.max_results:
            raise TooManyRequests(f"{self.cfg.max_results} async results are kept unread for this tenant "
                                  "([functions] max_results): read them (func get) or let them expire", retry_after=60)
        arrived = time.monotonic()
        call_id, runs = self.store.add_call(fn, sync, len(body), self.server, self.cfg.call_lease,
                                            self.cfg.result_ttl, tenant_limit=self.cfg.tenant_concurrency,
                                            queue_size=self.cfg.queue_size)
        turn = None if runs else self._wait_turn(tenant.id, call_id)
        call = Call(call_id, tenant, fn, body, headers, arrived + fn.spec.timeout, method=method, query=query)
        if sync:
            return await self._run(executor, call, turn, sync=True)
        task = asyncio.create_task(self._quietly(executor, call, turn), name=f"call-{call_id[:12]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call_id

    async def _quietly(self, executor: Executor, call: Call, turn: asyncio.Future[None] | None) -> None:
        with contextlib.suppress(SeaboxError):
            await self._run(executor, call, turn, sync=False)

    async def _run(self, executor: Executor, call: Call, turn: asyncio.Future[None] | None, *, sync: bool) -> Reply:
        """Wait for the call's turn (TURN, if it was queued), run it by its deadline, record how it ended (also
        when it is cancelled)."""
        name = call.function.spec.name
        try:
            try:
                async with asyncio.timeout_at(_loop_time(call.deadline)):
                    if turn is not None:
                        await turn
                    reply = await executor.run(call)
            except TimeoutError:
                raise CallTimeout(f"function {name} did not answer within its timeout of "
                                  f"{call.function.spec.timeout} s (func update --timeout)") from None
            if len(reply.body) > MAX_BODY:
                raise ReplyTooLarge(f"function {name} answered more than {MAX_BODY} bytes (1 MiB)")
        except SeaboxError as exc:
            self._ended(call, OUTCOMES.get(exc.status, "failed"), exc.status, exc.message, None, sync)
            raise
        except asyncio.CancelledError:
            self._ended(call, "failed", 503, "the call was cancelled: the server is stopping", None, sync)
            raise
        except Exception as exc:
            log.exception("call %s of function %s failed", call.id, name)
            self._ended(call, "failed", 500, f"internal error running the call: {type(exc).__name__}", None, sync)
            raise
        finally:
            self._waiting.get(call.tenant.id, {}).pop(call.id, None)  # gave up waiting: its turn is not taken
        self._ended(call, "done", reply.status, None, reply, sync)
        reply.headers = {**reply.headers, CALL_ID_HEADER: call.id}
        return reply

    def _ended(self, call: Call, status: str, result_status: int, error: str | None, reply: Reply | None,
               sync: bool) -> None:
        """Record the outcome (the body only of an async call: a sync caller has it already) and wake the waiters."""
        self.store.call_ended(call.id, status, result_status=result_status,
                              body=reply.body if reply is not None and not sync else None,
                              headers=reply.headers if reply else {}, error=error,
                              container=reply.container if reply else None,
                              log_tail=reply.log_tail if reply else None, read=sync)
        self._changed.set()
        self._changed = asyncio.Event()

    # the line -----------------------------------------------------------------------------------
    def _wait_turn(self, tenant_id: str, call_id: str) -> asyncio.Future[None]:
        """The turn of a queued call of this server: done once the store has started it."""
        turn = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant_id, {})[call_id] = turn
        if self._admitter is None or self._admitter.done():
            self._admitter = asyncio.create_task(self._admit(), name="function-call-admission")
        return turn

    async def _admit(self) -> None:
        """While calls of this server wait: start those whose turn came, then look again once a call of this
        server ended, or after POLL seconds (a call may have ended on another server, or its lease run out)."""
        while self._waiting:
            changed = self._changed
            for tenant_id in list(self._waiting):
                try:
                    started = self.store.start_queued(self.server, tenant_id, self.cfg.tenant_concurrency)
                except SeaboxError as exc:  # the database is away: the calls wait on, within their deadlines
                    log.warning("cannot start queued function calls: %s", exc.message)
                    break
                waiting = self._waiting.get(tenant_id, {})
                for call_id in started:
                    turn = waiting.pop(call_id, None)
                    if turn is not None and not turn.done():
                        turn.set_result(None)
                if not waiting:
                    self._waiting.pop(tenant_id, None)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await changed.wait()

    # results ------------------------------------------------------------------------------------
    async def result(self, tenant: Tenant, call_id: str, wait: float) -> CallRecord:
        """The call's record; an ended one is marked read (answered once). Waits up to WAIT seconds for its end."""
        record = self.store.get_call(tenant.id, call_id)
        deadline = time.monotonic() + wait
        while not record.ended and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(1.0, max(0.0, deadline - time.monotonic()))):  # see EventBus.wait
                    await self._changed.wait()
            record = self.store.get_call(tenant.id, call_id)  # it may run on another server: look again
        if record.ended and not self.store.take_result(tenant.id, call_id):
            self.store.get_call(tenant.id, call_id)  # another reader was first: 404
        return record

    # upkeep -------------------------------------------------------------------------------------
    async def renew(self) -> None:
        """Renew the leases of this server's calls, for as long as it runs."""
        while True:
            self.store.renew(self.server, time.time() + self.cfg.call_lease)
            await asyncio.sleep(self.cfg.call_lease / 3)

    async def prune(self, _lease: Lease) -> None:
        """One pass: fail the calls of servers that stopped, drop expired records, remove what their calls left."""
        failed, dropped = self.store.prune(time.time())
        for executor in self.executors.values():
            if isinstance(executor, SweepsCalls):
                await executor.sweep(self.store.active)
        if failed:
            log.warning("%d function call(s) were queued or running on a server that stopped: marked failed", failed)
        if dropped:
            log.info("dropped %d expired function call record(s)", dropped)

    async def close(self) -> None:
        if self._admitter is not None:
            self._admitter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._admitter
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
