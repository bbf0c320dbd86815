"""A signal sent to a child that has just exited leaves its exit status to asyncio."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import warnings
from pathlib import Path

from seabox.node.child_signal import signal_child


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


async def test_signalling_an_exited_child_keeps_its_exit_code() -> None:
    # a watcher that reaps only when the loop runs holds the exited child as a zombie while this
    # test does not yield: the window in which Popen.send_signal() would reap it and lose the code
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.SafeChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        previous = asyncio.get_child_watcher()
        asyncio.set_child_watcher(watcher)
    try:
        # the child exits once its stdin is closed: only after asyncio has looked at it once
        read_end, write_end = os.pipe()
        proc = await asyncio.create_subprocess_exec("sh", "-c", "read _; exit 6", stdin=read_end)
        os.close(read_end)
        os.close(write_end)
        deadline = time.monotonic() + 10
        while not _zombie(proc.pid):
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        signal_child(proc, signal.SIGWINCH)
        assert await proc.wait() == 6
        signal_child(proc, signal.SIGKILL)  # after the exit is seen: nothing to signal, no error
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(previous)
        watcher.close()
