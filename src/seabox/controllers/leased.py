"""Runs a controller's pass on one server at a time: the server holding the pass's lease in the store runs it.

Every server asks for the lease each tick (the holder's ask renews it). A server that newly holds it
runs the pass at once, then every `every` seconds; while a pass runs its lease is renewed. The pass
gets the lease to fence its writes: a holder that stalled past its lease writes nothing (LeaseLost).
A server that stops gives its leases up, so another one takes over at its next tick; one that dies
holds them until they expire (ttl seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from seabox.store.leases import Lease, LeaseLost, Leases

log = logging.getLogger(__name__)

Pass = Callable[[Lease], Awaitable[object]]


class LeasedPass:
    """The pass NAME, run by OWNER every EVERY seconds while it holds the lease (TTL seconds, renewed each tick)."""

    def __init__(self, leases: Leases, name: str, owner: str, every: float, ttl: float) -> None:
        self.leases = leases
        self.name = name
        self.owner = owner
        self.every = every
        self.ttl = ttl
        self.tick = min(every, ttl / 3)

    async def run(self, once: Pass) -> None:
        """Until cancelled; gives the lease up when cancelled."""
        held: int | None = None  # the generation this server holds, if it does
        due = 0.0
        try:
            while True:
                lease = await self._ask()
                if lease is not None:
                    if lease.generation != held:
                        log.info("this server now runs %s (lease generation %d)", self.name, lease.generation)
                        due = 0.0
                    if time.monotonic() >= due:
                        await self._pass(once, lease)
                        due = time.monotonic() + self.every
                held = lease.generation if lease is not None else None
                await asyncio.sleep(max(0.0, min(self.tick, due - time.monotonic())) if held is not None else self.tick)
        finally:
            if held is not None:
                with contextlib.suppress(Exception):  # stopping anyway: the lease then expires by itself
                    self.leases.release(self.name, self.owner)

    async def _ask(self) -> Lease | None:
        try:
            return await asyncio.to_thread(self.leases.acquire, self.name, self.owner, self.ttl)
        except Exception:
            log.exception("could not ask for the lease of %s", self.name)
            return None

    async def _pass(self, once: Pass, lease: Lease) -> None:
        renewer = asyncio.create_task(self._renew())
        try:
            await once(lease)
        except asyncio.CancelledError:
            raise
        except LeaseLost as exc:
            log.info("%s: %s; another server runs it now", self.name, exc.message)
        except Exception:
            log.exception("%s pass failed", self.name)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)  # a cancellation of this pass still propagates

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                await asyncio.to_thread(self.leases.renew, self.name, self.owner, self.ttl)
            except Exception as exc:  # a lease that lapses fences the pass's writes
                log.warning("could not renew the lease of %s: %s", self.name, exc)
