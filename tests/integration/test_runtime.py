"""The runc runtime class on real runc and conmon: lifecycle, logs, attach, signals, limits, exec, stats."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from seabox.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure
from seabox.node.images.rootfs import mount_overlay, unmount_overlay
from seabox.node.network import netns
from seabox.node.runtime.attach import AttachStream
from seabox.node.runtime.base import Mount, RunSpec
from seabox.node.runtime.cgroups import cgroup_dir
from seabox.node.runtime.exec import ExecProcess
from seabox.node.runtime.log_files import LogFiles, Rotations
from seabox.node.runtime.logs import follow_log, read_log
from seabox.node.runtime.runc_runtime import UNKNOWN_EXIT_CODE, RuncRuntime
from tests.fixtures.images import LAYOUT_TAG
from tests.fixtures.mounts import loops_under, mounts_under

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for runc, conmon and overlay mounts"),
    pytest.mark.skipif(not (shutil.which("runc") and shutil.which("conmon")), reason="needs runc and conmon"),
]

TIMEOUT = 10.0


@pytest.fixture(scope="session")
def busybox_rootfs(busybox_layout: Path) -> Iterator[Path]:
    """The busybox image unpacked once: the read-only lower dir of every container's overlay."""
    workdir = Path(tempfile.mkdtemp(prefix="seabox-rt-image-"))
    try:
        subprocess.run(
            ["umoci", "raw", "unpack", "--image", f"{busybox_layout}:{LAYOUT_TAG}", str(workdir / "rootfs")],
            check=True,
            capture_output=True,
        )
        yield workdir / "rootfs"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _conmons_of(cid: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and cid.encode() in argv:
            found.append(int(entry))
    return found


@dataclass
class Containers:
    """Makes containers on fresh overlays and removes every trace of them afterwards."""

    runtime: RuncRuntime
    lower: Path
    root: Path
    made: list[RunSpec] = field(default_factory=list)

    def spec(self, args: list[str], **options: Any) -> RunSpec:
        cid = secrets.token_hex(32)
        bundle = self.root / cid[:12]
        bundle.mkdir()
        disk = options.pop("disk", 1 << 30)  # the rootfs disk: a sparse image, free until written
        options.setdefault("env", [])
        spec = RunSpec(id=cid, name=f"test-{cid[:8]}", bundle=bundle, args=args, **options)
        self.made.append(spec)
        mount_overlay(self.lower, bundle, disk)
        return spec

    async def run(self, args: list[str], **options: Any) -> RunSpec:
        spec = self.spec(args, **options)
        await self.runtime.create(spec)
        await self.runtime.start(spec.id)
        return spec

    async def exit_of(self, spec: RunSpec) -> int:
        status = await asyncio.wait_for(self.runtime.wait_exit(spec.bundle, spec.id), TIMEOUT)
        return status.code

    async def cleanup(self) -> None:
        leftovers = []
        for spec in self.made:
            try:
                await self.runtime.delete(spec.id)
            finally:
                unmount_overlay(spec.bundle)
            if _conmons_of(spec.id):
                leftovers.append(f"conmon of {spec.id}")
            if cgroup_dir("memory", spec.id).exists():
                leftovers.append(f"cgroup of {spec.id}")
        leftovers += mounts_under(self.root) + loops_under(self.root)
        assert leftovers == []


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Short on purpose: attach socket paths must fit in 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="sbx", dir="/run"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def containers(state_dir: Path, busybox_rootfs: Path, tmp_path: Path) -> AsyncIterator[Containers]:
    made = Containers(RuncRuntime(state_dir), busybox_rootfs, tmp_path)
    try:
        yield made
    finally:
        await made.cleanup()


async def _drain(stream: AsyncIterator[tuple[str, bytes]] | AttachStream | ExecProcess) -> dict[str, bytes]:
    out: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    async def collect() -> None:
        async for name, chunk in stream:
            out[name] += chunk

    await asyncio.wait_for(collect(), TIMEOUT)
    return out


async def test_create_start_and_exit_code(containers: Containers) -> None:
    runtime = containers.runtime
    for _ in range(3):
        spec = containers.spec(["sh", "-c", "exit 7"])
        pid = await runtime.create(spec)
        assert await runtime.state(spec.id) == "created"
        await runtime.start(spec.id)
        assert pid > 1
        status = await asyncio.wait_for(runtime.wait_exit(spec.bundle, spec.id), TIMEOUT)
        assert status.code == 7 and not status.oom_killed
        assert abs(status.finished_at - datetime.now(UTC)) < timedelta(seconds=5)
        assert runtime.exit_status(spec.bundle, spec.id) == status
        assert await runtime.state(spec.id) == "stopped"


async def test_unknown_and_failing_containers(containers: Containers) -> None:
    runtime = containers.runtime
    unknown = secrets.token_hex(32)
    assert await runtime.state(unknown) is None
    await runtime.delete(unknown)
    with pytest.raises(NotFound):
        await runtime.start(unknown)
    spec = containers.spec(["no-such-binary"])
    with pytest.raises(RuntimeFailure, match="executable file not found"):
        await runtime.create(spec)
    assert runtime.exit_status(spec.bundle, spec.id) is None
    with pytest.raises(InvalidArgument) as raised:
        await runtime.create(containers.spec(["id"], user="no-such-user"))
    assert raised.value.field == "user"


async def test_user_cwd_hostname_and_mounts(containers: Containers, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "greeting").write_text("hi from the host\n")
    spec = await containers.run(
        ["sh", "-c", "id; pwd; hostname; cat /data/greeting; touch /data/x || echo read-only"],
        user="nobody",
        cwd="/work/here",
        hostname="box1",
        mounts=[Mount(shared, "/data", readonly=True)],
    )
    assert await containers.exit_of(spec) == 0
    entries = read_log(containers.runtime.log_path(spec.bundle))
    lines = [e.data.decode() for e in entries if e.stream == "stdout"]
    assert lines[0].startswith("uid=65534(nobody) gid=65534(nogroup)")
    assert lines[1:] == ["/work/here\n", "box1\n", "hi from the host\n", "read-only\n"]
    assert [e.data for e in entries if e.stream == "stderr"] == [b"touch: /data/x: Read-only file system\n"]


async def test_logs_streams_partial_tail_and_since(containers: Containers) -> None:
    script = (
        "echo one; sleep 0.05; echo two >&2; sleep 0.05; printf pa; sleep 0.2; printf 'rt\\n'; sleep 0.3; "
        "echo late; sleep 0.05; echo late-err >&2; sleep 0.05; printf no-newline"
    )
    spec = await containers.run(["sh", "-c", script])
    assert await containers.exit_of(spec) == 0
    path = containers.runtime.log_path(spec.bundle)
    raw = path.read_text().splitlines()
    assert any(" stdout P pa" in line for line in raw), raw
    entries = read_log(path)
    assert [(e.stream, e.data) for e in entries] == [
        ("stdout", b"one\n"),
        ("stderr", b"two\n"),
        ("stdout", b"part\n"),
        ("stdout", b"late\n"),
        ("stderr", b"late-err\n"),
        ("stdout", b"no-newline"),
    ]
    assert entries[2].time < entries[3].time - timedelta(milliseconds=250)
    assert [e.data for e in read_log(path, tail=2)] == [b"late-err\n", b"no-newline"]
    assert [e.data for e in read_log(path, since=entries[3].time)] == [
        b"late\n",
        b"late-err\n",
        b"no-newline",
    ]
    assert [e.data for e in read_log(path, until=entries[1].time)] == [b"one\n", b"two\n"]


async def test_follow_stops_when_the_container_exits(containers: Containers) -> None:
    runtime = containers.runtime
    spec = await containers.run(["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done"])
    arrivals: list[tuple[bytes, float]] = []

    async def follow() -> None:
        exited = runtime.wait_exit(spec.bundle, spec.id)
        async for entry in follow_log(runtime.log_path(spec.bundle), exited):
            arrivals.append((entry.data, time.monotonic()))

    await asyncio.wait_for(follow(), TIMEOUT)
    done = time.monotonic()
    assert [data for data, _ in arrivals] == [f"line{i}\n".encode() for i in range(1, 6)]
    assert done - arrivals[0][1] > 0.3  # the first line came while the container still ran


async def test_stdin_through_the_attach_socket(containers: Containers) -> None:
    runtime = containers.runtime
    spec = containers.spec(["sh", "-c", "cat; echo done >&2"], open_stdin=True)
    await runtime.create(spec)
    async with await AttachStream.connect(runtime.attach_path(spec.id)) as attach:
        await runtime.start(spec.id)
        await attach.write(b"hello\n")
        name, chunk = await asyncio.wait_for(anext(aiter(attach)), TIMEOUT)
        assert (name, chunk) == ("stdout", b"hello\n")
        await attach.write(b"x" * 100_000 + b"\n")
        attach.close_stdin()
        rest = await _drain(attach)
    assert rest == {"stdout": b"x" * 100_000 + b"\n", "stderr": b"done\n"}
    assert await containers.exit_of(spec) == 0


async def test_tty_container_and_resize(containers: Containers) -> None:
    runtime = containers.runtime
    spec = containers.spec(["sh"], tty=True, open_stdin=True)
    await runtime.create(spec)
    async with await AttachStream.connect(runtime.attach_path(spec.id)) as attach:
        await runtime.start(spec.id)
        runtime.resize(spec.bundle, 33, 99)
        await attach.write(b"stty size; tty; exit 3\n")
        out = await _drain(attach)
    assert b"33 99" in out["stdout"] and b"/dev/pts/0" in out["stdout"] and out["stderr"] == b""
    assert await containers.exit_of(spec) == 3
    await runtime.delete(spec.id)  # returns once conmon, the reader of the control fifo, has gone
    with pytest.raises(Conflict):
        runtime.resize(spec.bundle, 10, 10)


async def test_kill_with_sigterm_and_sigkill(containers: Containers) -> None:
    runtime = containers.runtime
    trapping = await containers.run(["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done"])
    stubborn = await containers.run(["sleep", "100"])
    await asyncio.sleep(0.1)
    await runtime.kill(trapping.id, "SIGTERM")
    await runtime.kill(stubborn.id, 9)
    assert await containers.exit_of(trapping) == 42
    assert await containers.exit_of(stubborn) == 137
    with pytest.raises(Conflict):
        await runtime.kill(stubborn.id, "TERM")
    with pytest.raises(InvalidArgument):
        await runtime.kill(stubborn.id, "SIGNOPE")


async def test_memory_limit_oom_kills(containers: Containers) -> None:
    spec = await containers.run(["sh", "-c", "head -c 200m /dev/zero | tail"], memory_bytes=64 << 20)
    status = await asyncio.wait_for(containers.runtime.wait_exit(spec.bundle, spec.id), TIMEOUT)
    assert status.code == 137 and status.oom_killed


async def test_limits_reach_the_cgroup(containers: Containers) -> None:
    spec = containers.spec(["true"], memory_bytes=100 << 20, cpu_shares=512, cpu_quota=0.5, pids_limit=50)
    await containers.runtime.create(spec)

    def read(controller: str, name: str) -> str:
        return (cgroup_dir(controller, spec.id) / name).read_text().strip()

    assert read("memory", "memory.limit_in_bytes") == str(100 << 20)
    assert read("memory", "memory.memsw.limit_in_bytes") == str(100 << 20)
    assert read("cpu", "cpu.shares") == "512"
    assert (read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")) == ("50000", "100000")
    assert read("pids", "pids.max") == "50"


async def test_wait_exit_from_a_restarted_agent(containers: Containers, state_dir: Path) -> None:
    spec = await containers.run(["sh", "-c", "sleep 0.5; exit 5"])
    restarted = RuncRuntime(state_dir)
    began = time.monotonic()
    status = await asyncio.wait_for(restarted.wait_exit(spec.bundle, spec.id), TIMEOUT)
    assert status.code == 5 and time.monotonic() - began > 0.2
    began = time.monotonic()
    again = await RuncRuntime(state_dir).wait_exit(spec.bundle, spec.id)
    assert again == status and time.monotonic() - began < 1  # read back, not waited for


async def test_wait_exit_outlives_a_killed_conmon(containers: Containers) -> None:
    spec = await containers.run(["sleep", "0.6"])
    conmon_pid = int((spec.bundle / "conmon.pid").read_text())
    os.kill(conmon_pid, signal.SIGKILL)
    began = time.monotonic()
    status = await asyncio.wait_for(containers.runtime.wait_exit(spec.bundle, spec.id), TIMEOUT)
    assert status.code == UNKNOWN_EXIT_CODE and time.monotonic() - began > 0.3


async def test_joins_a_given_network_namespace(containers: Containers, tmp_path: Path) -> None:
    path = tmp_path / "netns" / "n1"
    netns.create(path)
    try:
        spec = containers.spec(["sleep", "10"], netns=path)
        pid = await containers.runtime.create(spec)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == path.stat().st_ino
        await containers.runtime.delete(spec.id)
    finally:
        netns.remove(path)
        netns.release_dir(path.parent)


async def test_exec_output_exit_code_and_stdin(containers: Containers) -> None:
    runtime = containers.runtime
    spec = await containers.run(["sleep", "30"], env=["GREETING=hello"])
    proc = await runtime.exec(
        spec.id, ["sh", "-c", "echo $GREETING $EXTRA; echo err >&2; exit 3"], env=["EXTRA=x"]
    )
    assert await _drain(proc) == {"stdout": b"hello x\n", "stderr": b"err\n"}
    assert await proc.wait() == 3

    proc = await runtime.exec(spec.id, ["sh", "-c", "id -u; pwd; cat"], stdin=True, user="nobody", cwd="/tmp")
    await proc.write_stdin(b"fed\n")
    proc.close_stdin()
    assert await _drain(proc) == {"stdout": b"65534\n/tmp\nfed\n", "stderr": b""}
    assert await proc.wait() == 0

    proc = await runtime.exec(spec.id, ["sleep", "30"])
    await asyncio.sleep(0.2)
    await proc.kill()
    assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 137

    proc = await runtime.exec(spec.id, ["no-such-binary"])
    await _drain(proc)
    with pytest.raises(RuntimeFailure, match="executable file not found"):
        await proc.wait()
    assert list((containers.runtime.state_dir / "exec").iterdir()) == []


async def test_exec_output_waits_for_a_slow_reader(containers: Containers) -> None:
    runtime = containers.runtime
    spec = await containers.run(["sleep", "30"])
    proc = await runtime.exec(spec.id, ["head", "-c", "20000000", "/dev/zero"])
    waiting = asyncio.ensure_future(proc.wait())
    await asyncio.sleep(0.3)
    assert not waiting.done()  # nobody reads: the process is held on a full pipe
    total = 0
    async for name, chunk in proc:
        assert name == "stdout"
        total += len(chunk)
    assert total == 20_000_000 and await waiting == 0

    proc = await runtime.exec(spec.id, ["yes"])
    _, first = await asyncio.wait_for(anext(aiter(proc)), TIMEOUT)
    assert first.startswith(b"y\n")
    proc.close()  # output is dropped from now on: neither `yes` nor runc, which copies it, blocks
    await asyncio.sleep(0.3)
    await proc.kill()
    assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 137


async def test_exec_with_a_terminal(containers: Containers) -> None:
    runtime = containers.runtime
    spec = await containers.run(["sleep", "30"])
    proc = await runtime.exec(spec.id, ["sh"], tty=True)
    assert proc.tty
    output = b""
    chunks = aiter(proc)
    while b"# " not in output:  # the prompt: the shell is reading
        _, chunk = await asyncio.wait_for(anext(chunks), TIMEOUT)
        output += chunk
    proc.resize(30, 100)
    await proc.write_stdin(b"stty size; tty; echo $TERM; exit 4\n")
    output += b"".join([(await _drain(chunks))["stdout"]])
    assert b"30 100" in output and b"/dev/pts/" in output and b"xterm" in output
    assert await proc.wait() == 4


async def test_exec_needs_a_running_container(containers: Containers) -> None:
    runtime = containers.runtime
    spec = await containers.run(["true"])
    await containers.exit_of(spec)
    with pytest.raises(Conflict):
        await runtime.exec(spec.id, ["true"])
    with pytest.raises(NotFound):
        await runtime.exec(secrets.token_hex(32), ["true"])


async def test_stats_and_top(containers: Containers) -> None:
    runtime = containers.runtime
    spec = await containers.run(["sh", "-c", "while :; do :; done"], memory_bytes=128 << 20, pids_limit=20)
    await asyncio.sleep(0.1)
    first = runtime.stats(spec.id)
    await asyncio.sleep(0.3)
    second = runtime.stats(spec.id)
    assert second.cpu_ns - first.cpu_ns > 100_000_000  # it burned >0.1 s of CPU in 0.3 s
    assert second.system_cpu_ns > first.system_cpu_ns and second.online_cpus >= 1
    assert sum(second.per_cpu_ns) == pytest.approx(second.cpu_ns, rel=0.05)
    assert 0 < second.memory_bytes < 128 << 20 and second.memory_limit == 128 << 20
    assert second.pids == 1 and second.pids_limit == 20
    assert second.read_at > first.read_at and "rss" in second.memory_stat
    processes = await runtime.top(spec.id)
    assert len(processes) == 1 and processes[0][1] == "sh -c while :; do :; done"
    await runtime.kill(spec.id, "KILL")
    await containers.exit_of(spec)
    await runtime.delete(spec.id)
    with pytest.raises(NotFound):
        runtime.stats(spec.id)


async def test_rootfs_writes_past_the_disk_size_get_enospc(containers: Containers) -> None:
    spec = await containers.run(
        ["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=64 2>&1; echo rc=$?; rm /big; echo ok > /after; cat /after"],
        disk=32 << 20,
    )
    assert await containers.exit_of(spec) == 0
    out = b"".join(e.data for e in read_log(containers.runtime.log_path(spec.bundle))).decode()
    assert "No space left on device" in out and "rc=1" in out
    assert out.endswith("ok\n")  # space freed is usable again


LOG_CAP = 256 << 10  # the node's cap (disk.container_log_max); a container's max-size may be lower


@pytest.fixture
async def capped(state_dir: Path, busybox_rootfs: Path, tmp_path: Path) -> AsyncIterator[Containers]:
    root = tmp_path / "capped"
    root.mkdir()
    made = Containers(RuncRuntime(state_dir, log_size_max=LOG_CAP), busybox_rootfs, root)
    try:
        yield made
    finally:
        await made.cleanup()


@pytest.mark.parametrize("keep, cap, pause", [(1, 64 << 10, ""), (3, LOG_CAP, "[ $((i % 500)) = 0 ] && sleep 0.02;")])
async def test_a_chatty_containers_log_stays_under_its_cap(capped: Containers, keep: int, cap: int, pause: str) -> None:
    # with several files kept, the writer pauses now and then: the node must see each new file before
    # conmon starts two more (about 13 ms for these files at full speed here; see log_files)
    script = ('i=0; while [ $i -lt 20000 ]; do echo "line $i of a chatty container"; '
              f'{pause} i=$((i+1)); done; echo last')
    spec = capped.spec(["sh", "-c", script], log_files=keep, log_size_max=cap if cap < LOG_CAP else None)
    await capped.runtime.create(spec)
    log_path = capped.runtime.log_path(spec.bundle)
    files = LogFiles(log_path)
    rotations = Rotations()  # as the node agent runs it while the container lives
    rotations.add(files)
    exited = asyncio.ensure_future(capped.runtime.wait_exit(spec.bundle, spec.id))
    followed: list[bytes] = []
    sizes: list[int] = []

    async def follow() -> None:
        async for entry in follow_log(log_path, exited, poll_interval=0.005):
            followed.append(entry.data)
            sizes.append(log_path.stat().st_size)

    follower = asyncio.ensure_future(follow())
    try:
        await capped.runtime.start(spec.id)
        await asyncio.wait_for(follower, TIMEOUT * 3)
        assert (await exited).code == 0
    finally:
        rotations.discard(files)
        rotations.close()
    # about 2 MB was written; no file ever grew past the cap, and KEEP files are kept
    kept_files = files.files()
    assert max(sizes) <= cap and max(p.stat().st_size for p in kept_files) <= cap
    assert len(kept_files) == keep and all(p.stat().st_size > cap * 0.9 for p in kept_files[:-1])
    # following went on across each new file: lines in order, none twice, up to the last
    assert followed[-1] == b"last\n"
    numbers = [int(line.split()[1]) for line in followed[:-1]]
    assert numbers == sorted(set(numbers)) and len(numbers) > 100
    # `logs` after: a whole, consecutive tail ending in the last line, as much as the files kept hold
    entries = read_log(log_path)
    kept = [int(e.data.split()[1]) for e in entries[:-1]]
    assert entries[-1].data == b"last\n" and kept == list(range(kept[0], 20000))
    assert sum(p.stat().st_size for p in kept_files) > (keep - 1) * cap * 0.9
    assert [e.data for e in read_log(log_path, tail=2)] == [entries[-2].data, b"last\n"]
