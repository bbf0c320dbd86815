"""What runs one function call, whatever the mode: the call going in, the reply coming out, the executor between."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from seabox.model.function import Function
from seabox.model.tenant import Tenant


@dataclass
class Call:
    """One call of FUNCTION: its body (at most MAX_BODY) and request headers, to answer by DEADLINE (monotonic)."""

    id: str
    tenant: Tenant
    function: Function
    body: bytes
    headers: dict[str, str]  # already filtered: no hop-by-hop or credential headers (function_calls.forwarded)
    deadline: float
    method: str = "POST"
    query: str = ""  # the request's query string, without Seabox's own parameters (sync)


@dataclass
class Reply:
    """A call's outcome as the caller gets it: an HTTP status, headers and body (at most MAX_BODY)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    container: str = ""  # the container that served it (for func logs --call)
    log_tail: str = ""  # the end of its output, kept with the call record (for func logs --call)


class Executor(Protocol):
    """Runs calls of one mode. Raises seabox.errors on failure: a timeout past the deadline, an oversized reply."""

    async def run(self, call: Call) -> Reply: ...


@runtime_checkable
class KeepsWarm(Protocol):
    """An executor that keeps replicas of functions up between calls (http mode): counted, and let go of."""

    def warm_replicas(self, function: Function) -> int: ...  # replicas of FUNCTION up now

    async def release(self, function: Function) -> None: ...  # FUNCTION was removed or replaced by a new generation


@runtime_checkable
class SweepsCalls(Protocol):
    """An executor that leaves per-call resources (stdio's containers) to remove once their call is over."""

    async def sweep(self, active: Callable[[list[str]], set[str]]) -> None: ...  # ACTIVE(ids): those queued/running
