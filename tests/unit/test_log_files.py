"""Log rotation on files: conmon's start-afresh (open PATH.tmp, rename it over PATH) played by the test."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from seabox.node.runtime.log_files import LogFiles, Rotations
from seabox.node.runtime.logs import follow_log, read_log

STAMP = "2026-11-25T04:09:22.000000000+00:00"


class Conmon:
    """What conmon 2.1.6 does with its k8s-file log: append to PATH; past the cap, reopen PATH.tmp with
    O_TRUNC and rename it over PATH (ctr_logging.c, reopen_k8s_file)."""

    def __init__(self, path: Path, cap: int) -> None:
        self.path, self.cap, self.written = path, cap, 0
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def line(self, text: str) -> None:
        data = f"{STAMP} stdout F {text}\n".encode()
        if self.written + len(data) > self.cap:
            self.written = 0
            os.close(self.fd)
            tmp = self.path.with_name(self.path.name + ".tmp")
            self.fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
            os.rename(tmp, self.path)
        os.write(self.fd, data)
        self.written += len(data)

    def close(self) -> None:
        os.close(self.fd)


def run(files: LogFiles, cap: int, seq: range, *, settle: bool) -> None:
    """One conmon's life writing lines line-N for N in SEQ, the node settling after each when SETTLE."""
    writer = Conmon(files.path, cap)
    for i in seq:
        writer.line(f"line-{i:04d}")
        if settle:
            files.settle()
    writer.close()


def lines(path: Path) -> list[str]:
    return [e.data.decode().rstrip("\n") for e in read_log(path)]


def numbers(path: Path) -> list[int]:
    return [int(line.split("-")[1]) for line in lines(path)]


LINE = len(f"{STAMP} stdout F line-0000\n")  # 46 bytes


def test_settled_after_each_start_keeps_the_newest_files(tmp_path: Path) -> None:
    files = LogFiles(tmp_path / "container.log")
    files.prepare(3, 10 * LINE)
    run(files, 10 * LINE, range(95), settle=True)  # the node reacts before the next start-afresh
    kept = files.files()
    assert len(kept) == 3 and [p.stat().st_size for p in kept] == [10 * LINE, 10 * LINE, 5 * LINE]
    assert numbers(files.path) == list(range(70, 95))  # two full files and the current one
    assert [e.data for e in read_log(files.path, tail=12)] == [f"line-{i:04d}\n".encode() for i in range(83, 95)]
    assert len(files.numbered()) == 4  # and the staged, empty next one


def test_two_starts_before_the_node_reacts_lose_nothing(tmp_path: Path) -> None:
    files = LogFiles(tmp_path / "container.log")
    files.prepare(5, 4 * LINE)
    writer = Conmon(files.path, 4 * LINE)
    for i in range(12):  # three files: the staged one used, then one conmon made itself
        writer.line(f"line-{i:04d}")
    assert numbers(files.path) == list(range(12))  # read before the node reacted, too
    files.settle()
    for i in range(12, 14):
        writer.line(f"line-{i:04d}")
    writer.close()
    assert numbers(files.path) == list(range(14)) and len(files.files()) == 4


def test_a_file_staged_while_conmon_made_its_own_stays_after_it(tmp_path: Path) -> None:
    files = LogFiles(tmp_path / "container.log")
    files.prepare(5, 4 * LINE)
    writer = Conmon(files.path, 4 * LINE)
    for i in range(12):  # the staged file used, then one conmon made itself
        writer.line(f"line-{i:04d}")
    top = files.numbered()[-1][0]
    (files.dir / str(top + 2)).touch()  # the node staged a file after conmon's rename, before it saw that rename
    os.link(files.dir / str(top + 2), files.staged)
    files.settle()
    assert files.files()[-1] == files.dir / str(top + 1) and len(files.files()) == 3
    for i in range(12, 14):
        writer.line(f"line-{i:04d}")  # into the staged file
    writer.close()
    assert numbers(files.path) == list(range(14)) and files.files()[-1] == files.dir / str(top + 2)


def test_a_restart_begins_a_new_file_past_half_the_cap(tmp_path: Path) -> None:
    files = LogFiles(tmp_path / "container.log")
    files.prepare(2, 10 * LINE)
    run(files, 10 * LINE, range(4), settle=False)
    files.prepare(2, 10 * LINE)  # under half: conmon appends to it again
    assert len(files.files()) == 1
    run(files, 10 * LINE, range(4, 5), settle=False)
    files.prepare(2, 10 * LINE)  # half full: a new file, and the old one kept
    assert len(files.files()) == 2 and files.path.stat().st_size == 0
    assert numbers(files.path) == list(range(5))


def test_an_unnumbered_log_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    path.write_text(f"{STAMP} stdout F line-0000\n")  # as an older node agent left it
    files = LogFiles(path)
    assert lines(path) == ["line-0000"]
    files.prepare(2, None)
    assert files.files() == [files.dir / "1"] and lines(path) == ["line-0000"]


def test_keep_one_drops_the_old_file(tmp_path: Path) -> None:
    files = LogFiles(tmp_path / "container.log")
    files.prepare(1, 3 * LINE)
    run(files, 3 * LINE, range(7), settle=True)
    assert numbers(files.path) == [6] and len(files.files()) == 1


async def test_rotations_follow_conmon_and_a_follower_reads_every_line(tmp_path: Path) -> None:
    files = LogFiles(tmp_path / "container.log")
    files.prepare(2, 5 * LINE)
    rotations = Rotations()
    rotations.add(files)
    writer = Conmon(files.path, 5 * LINE)
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[int] = []

    async def follow() -> None:
        async for entry in follow_log(files.path, stop, poll_interval=0.01):
            seen.append(int(entry.data.split(b"-")[1]))

    follower = asyncio.ensure_future(follow())
    try:
        for i in range(60):
            writer.line(f"line-{i:04d}")
            await asyncio.sleep(0.005)  # inotify wakes the node for each rename
        writer.close()
        await asyncio.sleep(0.05)
        stop.set_result(None)
        await asyncio.wait_for(follower, 5)
    finally:
        rotations.close()
    assert seen == list(range(60))
    assert numbers(files.path) == list(range(50, 60)) and len(files.files()) == 2
