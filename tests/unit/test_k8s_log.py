"""The k8s-file log reader on written files: record parsing, joined fragments, tail, time filters, follow."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seabox.node.runtime.logs import (
    LogEntry,
    follow_log,
    parse_record,
    parse_timestamp,
    read_log,
    to_ns,
)

BASE = datetime(2026, 11, 25, 4, 9, 22, tzinfo=UTC)
BASE_NS = to_ns(BASE)


def stamp(offset_ms: int, nanos: int = 0) -> str:
    moment = BASE + timedelta(milliseconds=offset_ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond * 1000 + nanos:09d}+00:00"


def record(offset_ms: int, stream: str, content: str, partial: bool = False) -> str:
    return f"{stamp(offset_ms)} {stream} {'P' if partial else 'F'} {content}\n"


def write(path: Path, *lines: str) -> None:
    with path.open("a") as log:
        log.write("".join(lines))


def test_parse_timestamp() -> None:
    assert parse_timestamp(b"2026-11-25T04:09:22.467520152+00:00") == BASE_NS + 467_520_152
    assert parse_timestamp(b"2026-11-25T04:09:22Z") == BASE_NS
    assert parse_timestamp(b"2026-11-25T06:09:22.5+02:00") == BASE_NS + 500_000_000
    assert parse_timestamp(b"2026-11-25T01:39:22.000000001-02:30") == BASE_NS + 1
    with pytest.raises(ValueError):
        parse_timestamp(b"yesterday")


def test_parse_record() -> None:
    parsed = parse_record(b"2026-11-25T04:09:22.467520152+00:00 stdout F hello world")
    assert parsed is not None
    assert (parsed.stream, parsed.partial, parsed.content) == ("stdout", False, b"hello world")
    assert parsed.time_ns == BASE_NS + 467_520_152
    empty = parse_record(b"2026-11-25T04:09:22.467520152+00:00 stderr P ")
    assert empty is not None and empty.partial and empty.content == b"" and empty.stream == "stderr"
    assert parse_record(b"2026-11-25T04:09:22+00:00 stdin F x") is None
    assert parse_record(b"garbage stdout F x") is None
    assert parse_record(b"") is None


def test_entry_time_and_timestamp() -> None:
    entry = LogEntry(BASE_NS + 467_520_152, "stdout", b"x\n")
    assert entry.time == BASE + timedelta(microseconds=467_520)
    assert entry.timestamp == "2026-11-25T04:09:22.467520152Z"


def test_fragments_join_per_stream(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(
        log,
        record(0, "stdout", "one"),
        record(1, "stdout", "par", partial=True),
        record(2, "stderr", "err"),
        record(3, "stdout", "ti", partial=True),
        "not a record line\n",
        record(4, "stdout", "al"),
        record(5, "stdout", ""),
        record(6, "stderr", "no-newline", partial=True),
        f"{stamp(7)} stdout F unfinished",  # the writer is still on this line
    )
    entries = read_log(log)
    assert [(e.stream, e.data) for e in entries] == [
        ("stdout", b"one\n"),
        ("stderr", b"err\n"),
        ("stdout", b"partial\n"),
        ("stdout", b"\n"),
        ("stderr", b"no-newline"),
    ]
    assert entries[2].time_ns == BASE_NS + 1_000_000  # a joined line carries its first fragment's time


def test_missing_log_reads_empty(tmp_path: Path) -> None:
    assert read_log(tmp_path / "absent") == []
    assert read_log(tmp_path / "absent", tail=3) == []


def test_tail_and_time_filters(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(log, *(record(i * 100, "stdout" if i % 2 else "stderr", f"line{i}") for i in range(10)))
    assert [e.data for e in read_log(log, tail=3)] == [b"line7\n", b"line8\n", b"line9\n"]
    assert len(read_log(log, tail=50)) == 10
    assert read_log(log, tail=0) == []
    since = BASE + timedelta(milliseconds=700)
    assert [e.data for e in read_log(log, since=since)] == [b"line7\n", b"line8\n", b"line9\n"]
    until = BASE + timedelta(milliseconds=150)
    assert [e.data for e in read_log(log, until=until)] == [b"line0\n", b"line1\n"]
    # Docker's order: the tail is taken first, the time window applies within it
    assert [e.data for e in read_log(log, tail=2, since=BASE + timedelta(milliseconds=300))] == [
        b"line8\n",
        b"line9\n",
    ]
    assert read_log(log, tail=2, until=until) == []


def test_tail_matches_a_full_read_across_blocks(tmp_path: Path) -> None:
    """Long logs with fragments of both streams interleaved: the tail equals the end of a full read."""
    rng = random.Random(7)
    log = tmp_path / "log"
    lines = []
    for i in range(6000):
        stream = rng.choice(["stdout", "stderr"])
        lines.append(record(i, stream, f"{i}-" + "x" * rng.randint(0, 120), partial=rng.random() < 0.3))
    write(log, *lines)
    assert log.stat().st_size > 4 * 65536
    everything = read_log(log)
    for count in (1, 2, 5, 17, 400, 2500, len(everything), len(everything) + 10):
        assert read_log(log, tail=count) == everything[-count:], count


def test_tail_keeps_a_line_whose_fragments_start_far_back(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(
        log,
        record(0, "stdout", "early"),
        record(1, "stdout", "begins-", partial=True),
        *(record(2 + i, "stderr", f"noise{i}") for i in range(2000)),
        record(3000, "stdout", "ends"),
    )
    assert [e.data for e in read_log(log, tail=1)] == [b"begins-ends\n"]
    assert [e.data for e in read_log(log, tail=2)] == [b"noise1999\n", b"begins-ends\n"]


async def test_follow_reads_new_lines_until_exit(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(log, record(0, "stdout", "old1"), record(1, "stdout", "old2"))
    exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[bytes] = []

    async def follow() -> None:
        async for entry in follow_log(log, exited, tail=1, poll_interval=0.01):
            seen.append(entry.data)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    assert seen == [b"old2\n"]
    write(log, record(2, "stdout", "new"), record(3, "stderr", "frag", partial=True))
    write(log, f"{stamp(4)} stderr F ment")  # half a line: not read until it ends
    await asyncio.sleep(0.05)
    assert seen == [b"old2\n", b"new\n"]
    write(log, "\n", record(5, "stdout", "last", partial=True))
    await asyncio.sleep(0.05)
    assert seen == [b"old2\n", b"new\n", b"fragment\n"]
    exited.set_result(None)
    await asyncio.wait_for(task, 1)
    assert seen == [b"old2\n", b"new\n", b"fragment\n", b"last"]


async def test_follow_waits_for_the_file_and_honours_since(tmp_path: Path) -> None:
    log = tmp_path / "log"
    exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    since = BASE + timedelta(milliseconds=10)
    follower = follow_log(log, exited, since=since, poll_interval=0.01)
    first = asyncio.ensure_future(anext(follower))
    await asyncio.sleep(0.03)
    write(log, record(0, "stdout", "too-early"), record(20, "stdout", "in-time"))
    entry = await asyncio.wait_for(first, 1)
    assert entry.data == b"in-time\n"
    exited.set_result(None)
    assert [e async for e in follower] == []


async def test_follow_stops_once_until_has_passed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(log, record(0, "stdout", "only"))
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    until = datetime.now(UTC) + timedelta(milliseconds=50)
    entries = await asyncio.wait_for(_collect(follow_log(log, never, until=until, poll_interval=0.01)), 1)
    assert [e.data for e in entries] == [b"only\n"]
    assert never.cancelled()


async def _collect(follower: AsyncIterator[LogEntry]) -> list[LogEntry]:
    return [entry async for entry in follower]
