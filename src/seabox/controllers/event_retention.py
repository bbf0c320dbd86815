"""The event retention loop: prunes events past the operator's retention or count bound, at start and periodically."""

from __future__ import annotations

import asyncio
import logging
import time

from seabox.config import EventsConfig
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

    async def run(self) -> None:
        """Prune now, then every prune_interval seconds, until cancelled."""
        while True:
            try:
                gone = await asyncio.to_thread(self.prune_once)
                if gone:
                    log.info("pruned %d events", gone)
            except Exception:
                log.exception("event pruning failed; retrying in %gs", self.cfg.prune_interval)
            await asyncio.sleep(self.cfg.prune_interval)
