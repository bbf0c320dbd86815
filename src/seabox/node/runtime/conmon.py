"""conmon, the per-container supervisor: its files in the bundle, launching it, its sync pipe, its exit."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seabox.errors import RuntimeFailure
from seabox.node.runtime.runc import logrus_message

SYNC_TIMEOUT = 30.0  # runc create of a sane bundle takes well under a second
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ERROR_TAIL = 2000


@dataclass(frozen=True)
class BundleFiles:
    """Where conmon and runc keep one container's files inside its bundle directory."""

    bundle: Path

    @property
    def config(self) -> Path:
        return self.bundle / "config.json"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def conmon_pid(self) -> Path:
        return self.bundle / "conmon.pid"

    @property
    def container_pid(self) -> Path:
        return self.bundle / "container.pid"

    @property
    def log(self) -> Path:
        """The container's output in k8s-file format."""
        return self.bundle / "container.log"

    @property
    def conmon_log(self) -> Path:
        """conmon's own stderr (its warnings and fatal errors)."""
        return self.bundle / "conmon.log"

    @property
    def status_dir(self) -> Path:
        """conmon's exit dir and persist dir: the exit code file (named by id) and the 'oom' marker."""
        return self.bundle / "status"

    def exit_file(self, cid: str) -> Path:
        return self.status_dir / cid

    @property
    def oom_marker(self) -> Path:
        return self.status_dir / "oom"

    @property
    def ctl(self) -> Path:
        """conmon's control fifo ('1 HEIGHT WIDTH' resizes the terminal)."""
        return self.bundle / "ctl"

    def reset(self) -> None:
        """Forget a previous run's exit record and pid files before a new one starts (the log is kept)."""
        self.status_dir.mkdir(exist_ok=True)
        for stale in (self.conmon_pid, self.container_pid, *self.status_dir.iterdir()):
            stale.unlink(missing_ok=True)


@dataclass(frozen=True)
class ConmonOptions:
    """What one conmon launch supervises and how."""

    cid: str
    name: str
    runtime: str  # path of the OCI runtime binary
    runtime_args: tuple[str, ...]  # global runtime flags, e.g. ("--root", DIR)
    socket_dir: Path  # the attach socket ends up at socket_dir/cid/attach
    tty: bool
    stdin: bool
    prefix: tuple[str, ...] = ()  # argv that conmon runs under (e.g. nsenter into the container's netns)
    log_size_max: int | None = None  # bytes; past it conmon starts the log file afresh


def _argv(conmon: str, files: BundleFiles, options: ConmonOptions) -> list[str]:
    argv = [
        *options.prefix,
        conmon,
        "--cid", options.cid,
        "--cuuid", options.cid,
        "--name", options.name,
        "--runtime", options.runtime,
        "--bundle", str(files.bundle),
        "--log-path", f"k8s-file:{files.log}",
        "--exit-dir", str(files.status_dir),
        "--persist-dir", str(files.status_dir),
        "--container-pidfile", str(files.container_pid),
        "--conmon-pidfile", str(files.conmon_pid),
        "--socket-dir-path", str(options.socket_dir),
    ]  # fmt: skip
    if options.log_size_max is not None:
        argv += ["--log-size-max", str(options.log_size_max)]
    for arg in options.runtime_args:
        argv += ["--runtime-arg", arg]
    if options.tty:
        argv.append("--terminal")
    if options.stdin:
        argv.append("--stdin")
        if options.tty:  # as Docker: a terminal's input outlives every attach (^D ends it, typed in)
            argv.append("--leave-stdin-open")
    return argv


def _reason(text: str) -> str:
    """The runtime's own explanation inside a message conmon relays (a logrus line) or the text itself."""
    return logrus_message(text) or text.strip()


def _conmon_log_tail(files: BundleFiles) -> str:
    try:
        with files.conmon_log.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - _ERROR_TAIL))
            return log.read().decode(errors="replace").strip()
    except FileNotFoundError:
        return ""


async def _read_line(fd: int) -> bytes:
    """Read from a non-blocking fd until a newline or EOF."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    buffer = bytearray()
    try:
        while b"\n" not in buffer:
            await readable.wait()
            readable.clear()
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                break
            buffer += chunk
    finally:
        loop.remove_reader(fd)
    return bytes(buffer)


async def launch(conmon: str, files: BundleFiles, options: ConmonOptions) -> int:
    """Start conmon for the bundle (config.json written); return the container's pid once it is 'created'."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(read_fd, False)
    env = {"_OCI_SYNCPIPE": str(write_fd), "PATH": os.environ.get("PATH", _DEFAULT_PATH)}
    try:
        with files.conmon_log.open("ab") as conmon_log:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *_argv(conmon, files, options),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=conmon_log,
                    stderr=conmon_log,
                    env=env,
                    pass_fds=(write_fd,),
                    cwd=files.status_dir,  # conmon drops its "oom" marker in its working directory as well
                )
            except FileNotFoundError as exc:
                raise RuntimeFailure(f"{conmon} is not installed on this node") from exc
        os.close(write_fd)
        write_fd = -1
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                line, returncode = await asyncio.gather(_read_line(read_fd), proc.wait())
        except TimeoutError as exc:
            raise RuntimeFailure(
                f"conmon did not report container {options.cid} created in {SYNC_TIMEOUT:.0f} s"
            ) from exc
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
    return _parse_sync(line, returncode, files, options.cid)


def _parse_sync(line: bytes, returncode: int, files: BundleFiles, cid: str) -> int:
    try:
        message = json.loads(line)
    except ValueError:
        detail = _conmon_log_tail(files) or f"conmon exited with status {returncode} and reported nothing"
        raise RuntimeFailure(f"cannot create container {cid}: {_reason(detail)}") from None
    pid = message.get("pid", message.get("data", -1)) if isinstance(message, dict) else -1
    if not isinstance(pid, int) or pid <= 0:
        detail = str(message.get("message", "")) if isinstance(message, dict) else ""
        raise RuntimeFailure(_reason(detail) or f"cannot create container {cid}: conmon reported {line!r}")
    return pid


def read_pid(path: Path) -> int | None:
    """The pid written in a pid file, or None if there is none."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdecimal() else None


def is_conmon_of(pid: int, cid: str) -> bool:
    """Whether pid is the conmon supervising container cid (and not a process that got its pid later)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return b"--cid" in argv and cid.encode() in argv


def open_pidfd(pid: int, belongs: Callable[[int], bool]) -> int | None:
    """A pidfd for pid if it is alive and belongs(pid) holds once the pidfd pins it; else None."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if not belongs(pid):
        os.close(pidfd)
        return None
    return pidfd


async def wait_pidfd(pidfd: int) -> None:
    """Return once the process behind pidfd has exited; closes the pidfd."""
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    loop.add_reader(pidfd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
