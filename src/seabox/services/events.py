"""The event bus: records lifecycle events in the store and wakes whoever waits for a change, on every server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from seabox.errors import SeaboxError
from seabox.model.event import Event
from seabox.store.notify import Notifier
from seabox.store.repo import Store

log = logging.getLogger(__name__)

CHANNEL = "seabox_changes"  # one channel for every change: waiters re-read what they wait for
RECEIVE_TIMEOUT = 30.0  # seconds between listening checks when nothing changes
RETRY_DELAY = 1.0


class EventBus:
    """One per server process; state changes and new events both bump it.

    With a NOTIFIER, a change here also wakes the waiters of every other server on the database
    (relay() carries them both ways), so a change made through one server reaches long-polls held
    by another at once; waiters still look again on their own timeout.
    """

    def __init__(self, store: Store, notifier: Notifier | None = None) -> None:
        self.store = store
        self.notifier = notifier
        self._changed = asyncio.Condition()
        self._outgoing = asyncio.Event()  # a change to tell the other servers of

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
        """Wake this server's waiters now, and the other servers' ones through relay()."""
        self._outgoing.set()
        await self._wake()

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, timeout: float = 1.0) -> None:
        """Return after the next change, or after TIMEOUT seconds (callers re-check their condition)."""
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that arrives as
        # the wait ends, and a cancelled long-poll loop (a converger at shutdown) would then never stop
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()

    async def relay(self) -> None:
        """Until cancelled: send this server's changes to the other servers, and wake waiters here on theirs."""
        if self.notifier is None:
            return
        await asyncio.gather(self._send(self.notifier), self._receive(self.notifier))

    async def _send(self, notifier: Notifier) -> None:
        # changes made while one notification is on its way go out together in the next one
        while True:
            await self._outgoing.wait()
            self._outgoing.clear()
            try:
                await asyncio.to_thread(functools.partial(notifier.notify, CHANNEL, others_only=True))
            except SeaboxError as exc:  # the database is away: the others see the change on their timeout
                log.warning("could not tell the other servers of a change: %s", exc.message)
                await asyncio.sleep(RETRY_DELAY)
            except Exception:
                log.exception("could not tell the other servers of a change")
                await asyncio.sleep(RETRY_DELAY)

    async def _receive(self, notifier: Notifier) -> None:
        while True:
            try:
                woken = await notifier.wait(CHANNEL, RECEIVE_TIMEOUT)
            except Exception:
                log.exception("not listening to the other servers' changes; again in %.0f s", RETRY_DELAY)
                await asyncio.sleep(RETRY_DELAY)
                continue
            if woken:
                await self._wake()
