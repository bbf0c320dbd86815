"""Event retention: a pass that prunes events past the operator's retention or count bound (one server at a time)."""

from __future__ import annotations

import asyncio
import logging
import time

from seabox.config import EventsConfig
from seabox.store.leases import Lease
from seabox.store.repo import Store

log = logging.getLogger(__name__)


class EventRetention:
    """Level-triggered: each pass deletes whatever is older than the retention or beyond the count."""

    def __init__(self, store: Store, cfg: EventsConfig) -> None:
        self.store = store
        self.cfg = cfg

    def prune_once(self, now: float | None = None) -> int:
        """One pass; returns the number of events deleted."""
        now = time.time() if now is None else now
        return self.store.prune_events(before=now - self.cfg.retention, keep=self.cfg.max_count)

    async def prune(self, _lease: Lease) -> None:
        """One pass off the event loop (run by LeasedPass on the server holding the lease; pruning twice is harmless)."""
        gone = await asyncio.to_thread(self.prune_once)
        if gone:
            log.info("pruned %d events", gone)
