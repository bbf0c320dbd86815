"""OCI runtime classes under conmon supervision, and the default one: runc."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import resource
import shutil
import signal as signals
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from seabox.errors import Conflict, InvalidArgument, NotFound
from seabox.node.runtime import cgroups, conmon, inroot
from seabox.node.runtime.base import Limits, RunSpec, Ulimit
from seabox.protocol.runtime import ExitStatus, Stats
from seabox.node.runtime.conmon import BundleFiles, ConmonOptions
from seabox.node.runtime.exec import ExecProcess, check_window_size
from seabox.node.runtime.log_files import LogFiles
from seabox.node.runtime.runc import Runc
from seabox.node.runtime.spec import (
    NOFILE_LIMIT, build_config, exec_env, limit_resources, resolve_groups, resolve_user, with_groups,
)

RUNC = "/usr/sbin/runc"
CONMON = "/usr/bin/conmon"
UNKNOWN_EXIT_CODE = 255  # what we report when the supervisor died without recording the exit
_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
_ATTACH_NAME = "attach"
_CONMON_EXIT_TIMEOUT = 10.0


def nofile_limit() -> int:
    """The open-files limit containers get: Docker's 1048576 if this process may raise its own hard limit
    that far (a runtime in a user namespace cannot exceed what it inherits), else our hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NOFILE_LIMIT:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, NOFILE_LIMIT))
        except (ValueError, OSError):
            return hard
    return NOFILE_LIMIT


def check_ulimits(ulimits: Sequence[Ulimit]) -> None:
    """InvalidArgument for a limit above what the node itself may grant (its own hard limit)."""
    for ulimit in ulimits:
        own = resource.getrlimit(getattr(resource, f"RLIMIT_{ulimit.name.upper()}"))[1]
        if own != resource.RLIM_INFINITY and ulimit.hard > own:
            raise InvalidArgument(f"ulimit {ulimit.name}: at most {own} on this node", field="ulimits")


def parse_signal(value: int | str) -> int:
    """A signal number from 9, "9", "KILL" or "SIGKILL"; InvalidArgument otherwise."""
    if isinstance(value, int) or value.isdecimal():
        number = int(value)
        if number in {s.value for s in signals.Signals}:
            return number
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name in signals.Signals.__members__:
            return int(signals.Signals[name])
    raise InvalidArgument(f"invalid signal: {value}", field="signal")


class OciRuntime:
    """A runtime class: a runc-compatible CLI whose containers each have a conmon; state_dir (under /run)
    holds the runtime's state and the attach socket links; log_size_max caps each container's log file
    (conmon starts a new one when a write would pass it; see log_files for which are kept)."""

    name = "oci"

    def __init__(
        self,
        state_dir: Path,
        runtime: Runc,
        *,
        conmon: str = CONMON,
        log_size_max: int | None = None,
    ) -> None:
        self.state_dir = state_dir
        self._runc = runtime
        self._log_size_max = log_size_max
        self._conmon = conmon
        self._sockets = state_dir / "sockets"
        self._nofile = nofile_limit()
        longest = self.attach_path("0" * 64)
        if len(str(longest)) > _SOCKET_PATH_MAX:
            raise InvalidArgument(
                f"state dir {state_dir} is too long for attach socket paths", field="state_dir"
            )

    async def create(self, spec: RunSpec) -> int:
        files = BundleFiles(spec.bundle)
        user = with_groups(resolve_user(files.rootfs, spec.user), resolve_groups(files.rootfs, spec.group_add))
        check_ulimits(spec.ulimits)
        config = self.adjust_config(build_config(spec, user, nofile=self._nofile))
        if spec.cwd != "/":
            try:
                owner = spec.id_map.host_base if spec.id_map else 0
                inroot.make_dirs(files.rootfs, spec.cwd, owner=owner)
            except OSError as exc:
                raise InvalidArgument(
                    f"cannot create working directory {spec.cwd}: {exc.strerror}", field="cwd"
                ) from exc
        fd = os.open(files.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # it holds the tenant's environment: root only
        with os.fdopen(fd, "w") as out:
            json.dump(config, out)
        files.reset()
        size_max = min((m for m in (self._log_size_max, spec.log_size_max) if m is not None), default=None)
        LogFiles(files.log).prepare(spec.log_files, size_max)
        link = self._sockets / spec.id  # conmon makes it: the way from an id to its bundle
        self._sockets.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        options = ConmonOptions(
            cid=spec.id,
            name=spec.name,
            runtime=self._runc.binary,
            runtime_args=self._runc.global_args(spec.id),
            socket_dir=self._sockets,
            tty=spec.tty,
            stdin=spec.open_stdin,
            prefix=tuple(self._runc.enter(spec.id)),
            log_size_max=size_max,
        )
        try:
            return await conmon.launch(self._conmon, files, options)
        except BaseException:
            link.unlink(missing_ok=True)
            raise

    def adjust_config(self, config: dict[str, object]) -> dict[str, object]:
        """The runtime class's changes to the OCI config (none by default)."""
        return config

    async def start(self, cid: str) -> None:
        await self._runc.start(cid)

    async def kill(self, cid: str, signal: int | str) -> None:
        await self._runc.kill(cid, parse_signal(signal))

    async def pause(self, cid: str) -> None:
        await self._runc.pause(cid)

    async def resume(self, cid: str) -> None:
        await self._runc.resume(cid)

    async def update(self, cid: str, limits: Limits) -> None:
        """Set the running (or paused) container's memory, CPU and process caps to LIMITS, live."""
        state = await self._runc.state(cid)
        if state is None:
            raise NotFound(f"no such container: {cid}")
        resources = limit_resources(limits.memory_bytes, limits.cpu_shares, limits.cpus, limits.pids)
        path = Path(state["bundle"]) / "resources.json"
        path.write_text(json.dumps(resources))
        try:
            await self._runc.update(cid, path)
        finally:
            path.unlink(missing_ok=True)

    async def delete(self, cid: str) -> None:
        """runc delete --force, then wait for the container's conmon to record the exit and leave."""
        link = self._sockets / cid
        bundle = Path(os.readlink(link)) if link.is_symlink() else None
        if self.known(cid):
            await self._runc.delete(cid)
        if bundle is not None:
            pid = conmon.read_pid(BundleFiles(bundle).conmon_pid)
            pidfd = conmon.open_pidfd(pid, lambda p: conmon.is_conmon_of(p, cid)) if pid else None
            if pidfd is not None:
                try:
                    await asyncio.wait_for(conmon.wait_pidfd(pidfd), _CONMON_EXIT_TIMEOUT)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid or 0, signals.SIGKILL)
        link.unlink(missing_ok=True)

    def known(self, cid: str) -> bool:
        return (self._runc.root / cid).exists()

    async def state(self, cid: str) -> str | None:
        if not self.known(cid):
            return None
        state = await self._runc.state(cid)
        return str(state["status"]) if state else None

    async def pid(self, cid: str) -> int:
        if not self.known(cid):
            return 0
        state = await self._runc.state(cid)
        return int(state.get("pid") or 0) if state and state.get("status") in ("running", "paused") else 0

    def exit_status(self, bundle: Path, cid: str) -> ExitStatus | None:
        files = BundleFiles(bundle)
        exit_file = files.exit_file(cid)
        try:
            text = exit_file.read_text().strip()
            finished = datetime.fromtimestamp(exit_file.stat().st_mtime, UTC)
        except FileNotFoundError:
            return None
        if not text.lstrip("-").isdecimal():
            return None  # conmon is still writing it
        return ExitStatus(int(text), finished, self._oom_killed(files, cid))

    @staticmethod
    def _oom_killed(files: BundleFiles, cid: str) -> bool:
        return files.oom_marker.exists() or cgroups.oom_kills(cid) > 0

    async def wait_exit(self, bundle: Path, cid: str) -> ExitStatus:
        status = self.exit_status(bundle, cid)
        if status is not None:
            return status
        files = BundleFiles(bundle)
        conmon_pid = conmon.read_pid(files.conmon_pid)
        if conmon_pid is None:
            raise NotFound(f"container {cid} was never created in {bundle}")
        pidfd = conmon.open_pidfd(conmon_pid, lambda p: conmon.is_conmon_of(p, cid))
        if pidfd is not None:
            await conmon.wait_pidfd(pidfd)
        # Also when conmon was no longer recognisable (an exiting process shows no command line).
        status = self.exit_status(bundle, cid)
        if status is not None:
            return status
        # conmon died without recording the exit (killed, say): the container may outlive it
        init_pid = conmon.read_pid(files.container_pid)
        pidfd = conmon.open_pidfd(init_pid, lambda p: cgroups.in_container(p, cid)) if init_pid else None
        if pidfd is not None:
            await conmon.wait_pidfd(pidfd)
        return ExitStatus(UNKNOWN_EXIT_CODE, datetime.now(UTC), self._oom_killed(files, cid))

    def log_path(self, bundle: Path) -> Path:
        return BundleFiles(bundle).log

    def attach_path(self, cid: str) -> Path:
        return self._sockets / cid / _ATTACH_NAME

    def resize(self, bundle: Path, height: int, width: int) -> None:
        """Tell conmon the terminal's new size through its control fifo."""
        check_window_size(height, width)
        try:
            fd = os.open(BundleFiles(bundle).ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise NotFound(f"no container in {bundle}") from exc
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nobody reads the fifo: conmon has exited
                raise Conflict("the container is not running") from exc
            raise
        try:
            os.write(fd, f"1 {height} {width}\n".encode())
        finally:
            os.close(fd)

    async def exec(
        self,
        cid: str,
        args: list[str],
        *,
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: str = "",
        tty: bool = False,
        stdin: bool = False,
    ) -> ExecProcess:
        if not args:
            raise InvalidArgument("no command to run", field="args")
        state = await self._runc.state(cid)
        if state is None:
            raise NotFound(f"no such container: {cid}")
        if state["status"] != "running":
            raise Conflict(f"container {cid} is not running")
        files = BundleFiles(Path(state["bundle"]))  # runsc's state names no rootfs
        process_user = resolve_user(files.rootfs, user) if user else None
        container = json.loads(files.config.read_text())["process"]
        workdir = self.state_dir / "exec" / uuid.uuid4().hex
        pid_file, log_file = workdir / "pid", workdir / "runc.log"
        workdir.mkdir(parents=True)
        try:
            argv = self._runc.exec_argv(
                cid, args, env=exec_env(container.get("env", []), env, tty), cwd=cwd, user=process_user, tty=tty,
                pid_file=pid_file, log_file=log_file, container=container,
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return await ExecProcess.spawn(
            argv, tty=tty, stdin=stdin, workdir=workdir, pid_file=pid_file, log_file=log_file,
            relayed=not self._runc.terminal_by_process_file,
        )  # fmt: skip

    def stats(self, cid: str) -> Stats:
        return cgroups.read_stats(cid)

    async def top(self, cid: str) -> list[tuple[int, str]]:
        """The host pids and command lines of the processes in the container's cgroup."""
        return cgroups.top(cid)


class RuncRuntime(OciRuntime):
    """The default runtime class: runc, hardened by the spec (user namespace, seccomp, no-new-privileges)."""

    name = "runc"

    def __init__(
        self, state_dir: Path, *, runc: str = RUNC, conmon: str = CONMON, log_size_max: int | None = None
    ) -> None:
        super().__init__(state_dir, Runc(runc, state_dir / "runc"), conmon=conmon, log_size_max=log_size_max)
