"""Admission of function calls on one server: per-tenant and per-function concurrency, a bounded FIFO queue, 429 past it.

A call runs when its tenant has fewer than TENANT_LIMIT calls running and its function fewer than
its own concurrency; otherwise it waits in its tenant's queue, first in first out (a call held back
only by its function's limit lets the tenant's later calls of other functions pass). A tenant whose
queue already holds QUEUE_SIZE calls is refused with a 429.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass, field

from seabox.errors import TooManyRequests


@dataclass(eq=False)
class Ticket:
    """One call's place: admitted at once, or once its turn comes in the queue."""

    tenant: str
    function: str
    limit: int  # the function's concurrency
    turn: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def admitted(self) -> bool:
        return self.turn.done() and not self.turn.cancelled()


class CallSlots:
    """Who runs and who waits, per tenant and function; enter() before a call, leave() after it (always)."""

    def __init__(self, tenant_limit: int, queue_size: int) -> None:
        self.tenant_limit = tenant_limit
        self.queue_size = queue_size
        self._tenant_running: Counter[str] = Counter()
        self._function_running: Counter[str] = Counter()
        self._queues: dict[str, deque[Ticket]] = {}

    def running(self, tenant: str) -> int:
        return self._tenant_running[tenant]

    def queued(self, tenant: str) -> int:
        return len(self._queues.get(tenant, ()))

    def _fits(self, t: Ticket) -> bool:
        return self._tenant_running[t.tenant] < self.tenant_limit and self._function_running[t.function] < t.limit

    def _admit(self, t: Ticket) -> None:
        self._tenant_running[t.tenant] += 1
        self._function_running[t.function] += 1
        t.turn.set_result(None)

    def enter(self, tenant: str, function: str, limit: int) -> Ticket:
        """A ticket for a call of FUNCTION (concurrency LIMIT); a 429 when the tenant's queue is full."""
        t = Ticket(tenant, function, limit)
        queue = self._queues.setdefault(tenant, deque())
        if self._fits(t) and all(w.function != function for w in queue):  # only other functions' calls wait
            self._admit(t)
            return t
        if len(queue) >= self.queue_size:
            if not queue:
                del self._queues[tenant]
            raise TooManyRequests(
                f"too many calls: {self._tenant_running[tenant]} running and {len(queue)} queued for this tenant "
                f"(at most {self.tenant_limit} at once, {self.queue_size} waiting: [functions] tenant_concurrency "
                "and queue_size); call again later", retry_after=1)
        queue.append(t)
        return t

    def leave(self, t: Ticket) -> None:
        """The call ended (or gave up waiting): free its slot, or its place in the queue, and admit who fits next."""
        if t.admitted:
            self._tenant_running[t.tenant] -= 1
            self._function_running[t.function] -= 1
            for counter, key in ((self._tenant_running, t.tenant), (self._function_running, t.function)):
                if counter[key] <= 0:
                    del counter[key]
        else:
            t.turn.cancel()
            queue = self._queues.get(t.tenant)
            if queue is not None and t in queue:
                queue.remove(t)
        self._next(t.tenant)

    def _next(self, tenant: str) -> None:
        queue = self._queues.get(tenant)
        if queue is None:
            return
        blocked: set[str] = set()  # functions whose earlier call still waits: FIFO within a function
        for t in list(queue):
            if self._tenant_running[tenant] >= self.tenant_limit:
                break
            if t.function not in blocked and self._fits(t):
                queue.remove(t)
                self._admit(t)
            else:
                blocked.add(t.function)
        if not queue:
            del self._queues[tenant]
