"""What runs one function call, whatever the mode: the call going in, the reply coming out, the executor between."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from seabox.model.function import Function
from seabox.model.tenant import Tenant


@dataclass
class Call:
    """One call of FUNCTION: its body (at most MAX_BODY) and request headers, to answer by DEADLINE (monotonic)."""

    id: str
    tenant: Tenant
    function: Function
    body: bytes
    headers: dict[str, str]
    deadline: float


@dataclass
class Reply:
    """A call's outcome as the caller gets it: an HTTP status, headers and body (at most MAX_BODY)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    container: str = ""  # the container that served it (for func logs --call)


class Executor(Protocol):
    """Runs calls of one mode. Raises seabox.errors on failure: a timeout past the deadline, an oversized reply."""

    async def run(self, call: Call) -> Reply: ...
