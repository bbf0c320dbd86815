"""The crons controller: each pass fires every due cron (exactly once across servers) and winds up ended runs.

Passes run on one server at a time (LeasedPass) a few times a second, so that a schedule of one or
two seconds fires on time. Firings are claimed in the store by compare-and-set before any container
is made (store/crons.py); what a pass does with a due cron is decided in cron_plan.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from seabox.controllers.cron_plan import plan
from seabox.errors import NotFound
from seabox.services.crons import CronService
from seabox.store.crons import CronRecord
from seabox.store.leases import Lease, LeaseLost

log = logging.getLogger(__name__)

EVERY = 0.25  # seconds between passes
LEASE_TTL = 3.0  # another server takes over this long after the server running the crons died


class CronController:
    """Fires due crons and moves their open runs on, one pass at a time."""

    def __init__(self, crons: CronService, clock: Callable[[], float] = time.time) -> None:
        self.crons = crons
        self.clock = clock

    async def tick(self, lease: Lease | None) -> None:
        """One pass; its claims are fenced by LEASE."""
        now = self.clock()
        store = self.crons.crons
        due = store.due(now)
        firing = {(c.tenant_id, c.name) for c in due}
        others = [r for r in store.open_runs() if (r.tenant_id, r.run.cron) not in firing]
        results = await asyncio.gather(*(self._fire(c, now, lease) for c in due),
                                       *(self.crons.wind_up(r, now) for r in others), return_exceptions=True)
        for result in results:  # one cron's trouble stops neither the others nor the next pass
            if isinstance(result, LeaseLost):
                raise result
            if isinstance(result, BaseException):
                log.error("cron pass: %s", result, exc_info=result)

    async def _fire(self, cron: CronRecord, now: float, lease: Lease | None) -> None:
        store = self.crons.crons
        for r in store.open_runs(cron.tenant_id, cron.name):  # runs that ended are recorded first: forbid counts the rest
            await self.crons.wind_up(r, now)
        running = store.open_runs(cron.tenant_id, cron.name)
        p = plan(cron.name, cron.spec.parsed, cron.spec.concurrency, cron.last_fired, now, len(running))
        replaced = [r.run.id for r in running] if p.replace_open else []
        ids = store.claim(cron, p.last_fired, p.next_at, p.runs, replaced, lease)
        if ids is None:
            return  # another server recorded these firings
        try:
            tenant = self.crons.store.tenant_by_id(cron.tenant_id)
        except NotFound:
            return
        for r in store.open_runs(cron.tenant_id, cron.name):  # the replaced ones stop before the new one starts
            if r.run.id in replaced:
                await self.crons.wind_up(r, now)
        await asyncio.gather(*(self.crons.launch(tenant, cron.name, cron.spec, ids[i]) for i in p.launch))
