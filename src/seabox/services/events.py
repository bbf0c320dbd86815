"""The event bus: records lifecycle events in the store and wakes whoever waits for a change."""

from __future__ import annotations

import asyncio
import contextlib

from seabox.model.event import Event
from seabox.store.repo import Store


class EventBus:
    """One per server process; state changes and new events both bump it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._changed = asyncio.Condition()

    async def emit(
        self,
        tenant_id: str,
        type_: str,
        action: str,
        resource_id: str,
        resource_name: str = "",
        attributes: dict[str, str] | None = None,
        at: float | None = None,
    ) -> Event:
        event = self.store.add_event(tenant_id, type_, action, resource_id, resource_name, attributes, at)
        await self.notify()
        return event

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, timeout: float = 1.0) -> None:
        """Return after the next change, or after TIMEOUT seconds (callers re-check their condition)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
