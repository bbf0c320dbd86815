"""Change notifications between servers: notify(channel) wakes wait(channel) in every server on the database.

PostgreSQL carries them with LISTEN/NOTIFY, so they reach every server on that database; SQLite has
one server, so they stay in the process (asyncio events shared by every Notifier on the same file).
A notification is a hint to look again, never the data: controllers re-read the store when woken
and still look on a timeout. Once a Notifier has waited on a channel it keeps listening to it, and a
notification that arrives while nobody waits makes the next wait return at once; after the link to
PostgreSQL was lost and found again every waiter is woken, as notifications may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
import weakref
from pathlib import Path

from sqlalchemy import Engine, func, select

from seabox.errors import InvalidArgument, Unavailable
from seabox.store.db import CONNECT_TIMEOUT, libpq_url

log = logging.getLogger(__name__)

CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
KEEPALIVE = 15.0  # seconds between checks that the listening connection still works
RECONNECT_DELAY = 1.0  # seconds between attempts to listen again after the database went away
# Notifiers in this process by SQLite file, so that two on one file (two "servers") wake each other.
_LOCAL: dict[str, weakref.WeakSet[Notifier]] = {}


def _check_channel(channel: str) -> None:
    if not CHANNEL_RE.match(channel):
        raise InvalidArgument(
            f"channel {channel!r}: must be 1 to 63 lower-case letters, digits or _, starting with a letter",
            field="channel",
        )


class Notifier:
    """notify() and wait() on named channels, for the servers sharing ENGINE's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._events: dict[str, asyncio.Event] = {}  # channels waited on, set by a notification
        self._listened: set[str] = set()  # PostgreSQL: channels the listening connection LISTENs to
        self._ready = asyncio.Event()  # PostgreSQL: set whenever _listened caught up with _events
        self._control = "seabox_notifier_" + secrets.token_hex(6)  # interrupts our own listener
        self._origin = secrets.token_hex(8)  # the payload of notifications this one does not wake itself with
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        if not self._postgres:
            self._key = str(Path(engine.url.database or "").resolve())
            _LOCAL.setdefault(self._key, weakref.WeakSet()).add(self)

    def notify(self, channel: str, *, others_only: bool = False) -> None:
        """Wake every wait(CHANNEL) of every server on this database (callable from any thread).

        OTHERS_ONLY, this Notifier's own waits are not woken (its server has woken its waiters itself).
        """
        _check_channel(channel)
        if self._postgres:
            with self.engine.begin() as conn:
                conn.execute(select(func.pg_notify(channel, self._origin if others_only else "")))
            return
        for notifier in list(_LOCAL.get(self._key, ())):
            if not (others_only and notifier is self):
                notifier._wake_threadsafe(channel)

    async def wait(self, channel: str, timeout: float) -> bool:
        """Wait up to TIMEOUT seconds for a notification on CHANNEL: True if one came, False on timeout.

        The first wait on a channel (PostgreSQL) returns no earlier than its LISTEN is in effect, which
        may take up to CONNECT_TIMEOUT seconds more when the database is slow to answer.
        """
        _check_channel(channel)
        if not (math.isfinite(timeout) and timeout >= 0):
            raise InvalidArgument("timeout must be a finite number of seconds, 0 or more", field="timeout")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._loop = loop
        event = self._events.setdefault(channel, asyncio.Event())
        if self._postgres and channel not in self._listened:
            # even past TIMEOUT: once a wait returned, what is notified next reaches the next wait
            await self._listen_to(channel, max(deadline, loop.time() + CONNECT_TIMEOUT))
        if not event.is_set():
            try:
                await asyncio.wait_for(event.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return False
        event.clear()
        return True

    async def close(self) -> None:
        """Stop listening (PostgreSQL) and leave the process's notifiers (SQLite)."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self._postgres:
            _LOCAL.get(self._key, weakref.WeakSet()).discard(self)

    def _wake_threadsafe(self, channel: str) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, channel)

    def _wake(self, channel: str) -> None:
        event = self._events.get(channel)
        if event is not None:
            event.set()

    async def _listen_to(self, channel: str, deadline: float) -> None:
        """Have the listening connection LISTEN to CHANNEL before waiting on it (until DEADLINE at most)."""
        self._ready.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="seabox-notify")
        else:  # interrupt the listener's wait so it LISTENs at once
            with contextlib.suppress(Unavailable):  # the listener is reconnecting: it LISTENs to all once back
                await asyncio.to_thread(self.notify, self._control)
        loop = asyncio.get_running_loop()
        while channel not in self._listened and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), deadline - loop.time())
            if channel not in self._listened:
                self._ready.clear()  # the listener caught up with an older list: it goes round again

    async def _listen(self) -> None:
        """The PostgreSQL listener: one connection LISTENing to every channel waited on, kept alive."""
        import psycopg
        from psycopg import sql

        lost = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(self.engine.url), autocommit=True, application_name="seabox-notify",
                    connect_timeout=CONNECT_TIMEOUT,
                ) as conn:
                    self._listened = set()
                    if lost:
                        log.info("change notifications: listening again")
                        for event in self._events.values():
                            event.set()  # what changed meanwhile is unknown: everyone looks again
                    while True:
                        for channel in [self._control, *self._events]:
                            if channel not in self._listened:
                                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                                self._listened.add(channel)
                        self._ready.set()
                        async with contextlib.aclosing(conn.notifies(timeout=KEEPALIVE)) as notifies:
                            async for note in notifies:
                                if note.channel == self._control:
                                    break
                                if note.payload != self._origin:
                                    self._wake(note.channel)
                        await conn.execute("SELECT 1")  # a dead connection raises here, not silently
            except psycopg.Error as exc:
                lost = True
                self._listened = set()
                log.warning("change notifications: lost the database (%s); listening again in %.0f s",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else "closed", RECONNECT_DELAY)
                await asyncio.sleep(RECONNECT_DELAY)
