"""A process run in a container by a foreground `<runtime> exec`: output, stdin, terminal, exit code."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import termios
import tty as termios_mode
from collections.abc import AsyncIterator
from pathlib import Path

from seabox.errors import Conflict, InvalidArgument, RuntimeFailure
from seabox.node.child_signal import signal_child

_CHUNK = 65536
_BUFFERED_CHUNKS = 64  # output held for a slow reader before the process is made to wait
_DEFAULT_SIZE = (24, 80)
_DRAIN_TIMEOUT = 5.0
_QUIET = 0.1  # a terminal silent this long after its runtime exited has nothing more from the exec
_PID_FILE_POLL = 0.005
_PID_FILE_TIMEOUT = 5.0
SETSID = "/usr/bin/setsid"  # util-linux's: new session, then stdin made its controlling terminal


def check_window_size(height: int, width: int) -> None:
    """InvalidArgument unless both dimensions fit a terminal's 16-bit fields."""
    if not (0 < height < 65536 and 0 < width < 65536):
        raise InvalidArgument(f"terminal size {height}x{width} is out of range", field="size")


def set_window_size(fd: int, height: int, width: int) -> None:
    """Set a terminal's size (TIOCSWINSZ)."""
    check_window_size(height, width)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _ready(fd: int, *, write: bool) -> None:
    """Return once fd can be read (or written) without blocking."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    if write:
        loop.add_writer(fd, ready.set)
    else:
        loop.add_reader(fd, ready.set)
    try:
        await ready.wait()
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _readable_within(fd: int, timeout: float) -> bool:
    """Whether fd becomes readable within timeout seconds."""
    try:
        await asyncio.wait_for(_ready(fd, write=False), max(timeout, 0.0))
    except TimeoutError:
        return False
    return True


class ExecProcess:
    """A running exec; iterate it for ("stdout" | "stderr", bytes) chunks until the process's output ends.

    Without a terminal stdout and stderr come apart through pipes. With one, the runtime's stdio is
    the slave of a pty owned here: runc copies between it and the container's terminal, runsc gives
    it to the process as its terminal, and everything arrives as "stdout". A reader that falls behind makes the process wait on its writes.
    Always await wait() (it removes the exec's scratch files); call close() if output is no longer wanted.
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        *,
        workdir: Path,
        pid_file: Path,
        log_file: Path,
        master_fd: int | None,
    ) -> None:
        self._proc = proc
        self._workdir = workdir
        self._pid_file = pid_file
        self._log_file = log_file
        self._master = master_fd
        self.tty = master_fd is not None
        self._output: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(_BUFFERED_CHUNKS)
        self._returncode: int | None = None
        self._failure: str | None = None
        self._discarding = False
        self._winch_later: asyncio.Future[None] | None = None
        if master_fd is not None:
            self._pumps = [asyncio.ensure_future(self._pump_master(master_fd))]
        else:
            assert proc.stdout is not None and proc.stderr is not None
            self._pumps = [
                asyncio.ensure_future(self._pump_pipe("stdout", proc.stdout)),
                asyncio.ensure_future(self._pump_pipe("stderr", proc.stderr)),
            ]
        self._ended = asyncio.ensure_future(self._end_output())

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        *,
        tty: bool,
        stdin: bool,
        workdir: Path,
        pid_file: Path,
        log_file: Path,
        relayed: bool = False,
    ) -> ExecProcess:
        """Run argv, a `runtime exec --pid-file pid_file` command line; workdir goes once it has exited.

        relayed: the runtime relays our terminal to one of its own (runc), so ours is raw from the start
        (else output it relays before it made ours raw gets a second \r); runsc's process gets ours as is.
        """
        master_fd: int | None = None
        slave_fd: int | None = None
        try:
            if tty:
                master_fd, slave_fd = pty.openpty()
                set_window_size(master_fd, *_DEFAULT_SIZE)
                if relayed:
                    termios_mode.setraw(slave_fd)
                os.set_blocking(master_fd, False)
                # the runtime leads a session of its own with the pty as its controlling terminal, as a
                # shell would: a resize sends it SIGWINCH, and a ^C typed into a terminal that the
                # container's program left in cooked mode (runsc hands over this very pty) sends it
                # SIGINT; the runtime passes both on to the process
                proc = await asyncio.create_subprocess_exec(
                    SETSID, "--ctty", *argv, stdin=slave_fd, stdout=slave_fd, stderr=slave_fd
                )
            else:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
        except BaseException as exc:
            if master_fd is not None:
                os.close(master_fd)
            shutil.rmtree(workdir, ignore_errors=True)
            if isinstance(exc, FileNotFoundError):
                raise RuntimeFailure(f"{argv[0]} is not installed on this node") from exc
            raise
        finally:
            if slave_fd is not None:
                os.close(slave_fd)
        return cls(proc, workdir=workdir, pid_file=pid_file, log_file=log_file, master_fd=master_fd)

    async def _deliver(self, name: str, chunk: bytes) -> None:
        if not self._discarding:
            await self._output.put((name, chunk))

    async def _pump_pipe(self, name: str, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            await self._deliver(name, chunk)

    async def _pump_master(self, master: int) -> None:
        """Read the pty until no one holds its slave (EIO) or, once the runtime has exited, until it falls
        quiet (for at most _DRAIN_TIMEOUT); then close it. runc's output is all written when it exits,
        but runsc's sandbox holds the slave for as long as any process the exec left behind does."""
        exited = asyncio.ensure_future(self._proc.wait())
        loop = asyncio.get_running_loop()
        deadline: float | None = None  # set when the runtime has exited
        try:
            while True:
                try:
                    chunk = os.read(master, _CHUNK)
                except BlockingIOError:
                    if deadline is None:
                        readable = asyncio.ensure_future(_ready(master, write=False))
                        await asyncio.wait([readable, exited], return_when=asyncio.FIRST_COMPLETED)
                        readable.cancel()
                        if exited.done():
                            deadline = loop.time() + _DRAIN_TIMEOUT
                    elif not await _readable_within(master, min(_QUIET, deadline - loop.time())):
                        return
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                await self._deliver("stdout", chunk)
        finally:
            exited.cancel()
            self._master = None
            os.close(master)

    async def _end_output(self) -> None:
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._output.put(None)

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        if self._ended.done() and self._output.empty():
            return
        while (item := await self._output.get()) is not None:
            yield item

    async def write_stdin(self, data: bytes) -> None:
        """Feed the process's stdin (needs stdin=True, or a terminal)."""
        if self.tty:
            await self._write_master(data)
            return
        if self._proc.stdin is None:
            raise Conflict("this exec was started without stdin")
        try:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Conflict("the exec process no longer reads its stdin") from exc

    async def _write_master(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._master is None:
                raise Conflict("the exec process's terminal is closed")
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                await _ready(self._master, write=True)
            except OSError as exc:
                raise Conflict("the exec process's terminal is closed") from exc

    def close_stdin(self) -> None:
        """End of input: close the pipe, or on a terminal type the EOF character (^D)."""
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")
        elif self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()

    def resize(self, height: int, width: int) -> None:
        """Resize the process's terminal: ours, whose SIGWINCH tells the runtime to pass the size on.

        runsc starts listening for signals only after the process started, just before it writes its
        pid file: until that file is there, the runtime gets another SIGWINCH once it is.
        """
        if self._master is None:
            raise Conflict("this exec has no terminal")
        set_window_size(self._master, height, width)
        if self._winch_later is None and not self._pid_file.exists():
            self._winch_later = asyncio.ensure_future(self._winch_when_started())

    async def _winch_when_started(self) -> None:
        deadline = asyncio.get_running_loop().time() + _PID_FILE_TIMEOUT
        while self._proc.returncode is None and not self._pid_file.exists():
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(_PID_FILE_POLL)
        self._winch_later = None
        signal_child(self._proc, signal.SIGWINCH)

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process itself: the runtime cannot forward SIGKILL, and killing it orphans the process.

        The runtime writes the process's pid just after starting it; until then this waits (a while).
        """
        deadline = asyncio.get_running_loop().time() + _PID_FILE_TIMEOUT
        while self._proc.returncode is None:
            try:
                pid = int(self._pid_file.read_text().strip())
            except (FileNotFoundError, ValueError):
                if asyncio.get_running_loop().time() > deadline:
                    signal_child(self._proc, sig)
                    return
                await asyncio.sleep(_PID_FILE_POLL)
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            return

    def close(self) -> None:
        """The reader went away: from now on output is read and dropped, so neither the process nor the
        runtime (which copies it) is held on a full pipe. The process runs on until it ends."""
        self._discarding = True
        while not self._output.empty():
            self._output.get_nowait()

    async def wait(self) -> int:
        """The process's exit code (128+N if signal N killed it).

        RuntimeFailure with the runtime's message if it could not start the process at all.
        """
        if self._returncode is None:
            self._returncode = await self._proc.wait()
            if self.tty:  # the output ends with the runtime: let a reader have all of it first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._ended), _DRAIN_TIMEOUT)
            self._failure = self._runtime_failure()
            shutil.rmtree(self._workdir, ignore_errors=True)
        if self._failure:
            raise RuntimeFailure(self._failure)
        return self._returncode

    def _runtime_failure(self) -> str | None:
        """The runtime's own error, if it logged one (then the process never ran)."""
        try:
            lines = self._log_file.read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                return str(entry.get("msg", "exec failed"))
        return None
