"""Signalling a child that asyncio waits for, without stealing its exit status.

asyncio's Process.send_signal() and kill() go through subprocess.Popen, which first polls the child
with waitpid(): a child that has just exited is reaped there, asyncio's own waiter then finds no child
and reports exit code 255 instead of the real one. This sends the signal with kill(2) instead; until
asyncio has seen the exit (returncode is None) the pid is still this child's, alive or a zombie.
"""

from __future__ import annotations

import asyncio
import contextlib
import os


def signal_child(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Send sig to proc unless asyncio already saw it exit."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
