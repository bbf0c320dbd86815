"""A container's k8s-file log as conmon writes it: records, joined lines, tail, time filters, follow (across its files)."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from seabox.node.runtime.log_files import LogFiles
from seabox.protocol.logs import LogEntry

_TIMESTAMP_RE = re.compile(
    rb"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|([+-])(\d\d):(\d\d))$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BLOCK = 65536
FOLLOW_POLL_INTERVAL = 0.05


class _Source(Protocol):
    """What the readers need of a file: seek and read (a file, or several read as one)."""

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def read(self, size: int = ..., /) -> bytes: ...


class _Chain:
    """The log's files read as one, each at the size it had when opened (the last one may grow on)."""

    def __init__(self, files: list[BinaryIO]) -> None:
        self.files = files
        self.starts: list[int] = []
        self._ends: list[int] = []
        total = 0
        for f in files:
            self.starts.append(total)
            total += os.fstat(f.fileno()).st_size
            self._ends.append(total)
        self._size = total
        self._position = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        self._position = offset if whence == os.SEEK_SET else self._size + offset
        return self._position

    def read(self, size: int = -1, /) -> bytes:
        end = self._size if size < 0 else min(self._size, self._position + size)
        pieces: list[bytes] = []
        for f, start, stop in zip(self.files, self.starts, self._ends, strict=True):
            if self._position >= end:
                break
            if stop <= self._position:
                continue
            f.seek(self._position - start)
            wanted = min(stop, end) - self._position
            piece = f.read(wanted)
            pieces.append(piece)
            self._position += len(piece)
            if len(piece) < wanted:  # shorter than when opened (a log only grows): stop there
                break
        return b"".join(pieces)

    def close(self) -> None:
        for f in self.files:
            f.close()


def _open_all(paths: list[Path]) -> list[BinaryIO]:
    opened: list[BinaryIO] = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: past the files kept
            opened.append(path.open("rb"))
    return opened


@dataclass(frozen=True)
class LogRecord:
    """One line of the file: a whole output line ("F") or a fragment of a longer one ("P")."""

    time_ns: int
    stream: str
    partial: bool
    content: bytes


def parse_timestamp(text: bytes) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp with up to nine fractional digits."""
    match = _TIMESTAMP_RE.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == b"+" else -offset
    fraction = (match.group(7) or b"0").ljust(9, b"0")
    return seconds * 1_000_000_000 + int(fraction)


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of a datetime (a naive one is taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def parse_record(line: bytes) -> LogRecord | None:
    """Parse one line (without its newline); None if it is not a k8s-file record."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
        return None
    try:
        time_ns = parse_timestamp(parts[0])
    except ValueError:
        return None
    tag = parts[2].split(b":")
    return LogRecord(time_ns, parts[1].decode(), b"P" in tag, parts[3] if len(parts) == 4 else b"")


@dataclass
class _Joiner:
    """Joins each stream's fragments into whole lines."""

    pending: dict[str, list[LogRecord]] = field(default_factory=dict)
    last_position: dict[str, int] = field(default_factory=dict)

    def feed(self, record: LogRecord, position: int) -> LogEntry | None:
        if record.partial:
            self.pending.setdefault(record.stream, []).append(record)
            self.last_position[record.stream] = position
            return None
        fragments = self.pending.pop(record.stream, [])
        first = fragments[0] if fragments else record
        data = b"".join(f.content for f in fragments) + record.content + b"\n"
        return LogEntry(first.time_ns, record.stream, data)

    def flush(self) -> list[tuple[int, LogEntry]]:
        """Lines the output stopped in the middle of, each with the file position of its last fragment."""
        entries = [
            (
                self.last_position[stream],
                LogEntry(fragments[0].time_ns, stream, b"".join(f.content for f in fragments)),
            )
            for stream, fragments in self.pending.items()
        ]
        self.pending.clear()
        return sorted(entries, key=lambda item: item[0])


def _records_from(log: _Source, offset: int) -> Iterator[tuple[LogRecord | None, int]]:
    """Each complete line's record (None if it is not one) from offset on, with the offset just past the line.

    An unfinished last line is left for a later read.
    """
    log.seek(offset)
    carry = b""
    position = offset
    while block := log.read(_BLOCK):
        lines = (carry + block).split(b"\n")
        carry = lines.pop()
        for line in lines:
            position += len(line) + 1
            yield parse_record(line), position


def _records_backwards(log: _Source) -> Iterator[tuple[LogRecord, int]]:
    """Complete lines' records from the end of the file back, each with the offset where its line starts."""
    position = log.seek(0, os.SEEK_END)
    carry = b""  # the start of the block before: the end of a line that began further back
    unfinished = True  # still skipping a last line the writer has not ended yet
    while position > 0:
        start = max(0, position - _BLOCK)
        log.seek(start)
        pieces = (log.read(position - start) + carry).split(b"\n")
        position = start
        if unfinished:
            if len(pieces) == 1 and start > 0:
                continue
            pieces.pop()
            unfinished = False
        carry = pieces.pop(0) if start > 0 else b""
        cursor = start + (len(carry) + 1 if start > 0 else 0)
        located: list[tuple[bytes, int]] = []
        for line in pieces:
            located.append((line, cursor))
            cursor += len(line) + 1
        for line, line_start in reversed(located):
            record = parse_record(line)
            if record is not None:
                yield record, line_start


def _tail_offset(log: _Source, count: int) -> int:
    """An offset from which reading yields the last `count` lines whole (fragments included)."""
    if count <= 0:
        return log.seek(0, os.SEEK_END)
    counted = 0
    seen: set[str] = set()
    open_streams: set[str] = set()  # streams whose earliest counted line may have fragments further back
    for record, line_start in _records_backwards(log):
        if counted < count:
            if not record.partial or record.stream not in seen:
                counted += 1  # a whole line, or the fragments the output stopped in
            seen.add(record.stream)
            open_streams.add(record.stream)
        elif not record.partial:
            open_streams.discard(record.stream)
            if not open_streams:
                return line_start
    return 0


@dataclass
class _Filter:
    """Docker's selection: the last `tail` lines of the file, of those the ones in [since, until].

    Bounds are datetimes, so lines compare at their microsecond: a line's own .time selects it.
    """

    since_us: int | None
    until_us: int | None

    def keep(self, entry: LogEntry) -> bool:
        moment = entry.time_ns // 1000
        return (self.since_us is None or moment >= self.since_us) and (
            self.until_us is None or moment <= self.until_us
        )

    def over(self) -> bool:
        """Whether until has passed, so following can stop."""
        return self.until_us is not None and to_ns(datetime.now(UTC)) // 1000 > self.until_us


def _filter(since: datetime | None, until: datetime | None) -> _Filter:
    return _Filter(to_ns(since) // 1000 if since else None, to_ns(until) // 1000 if until else None)


def _read_placed(log: _Source, offset: int, joiner: _Joiner) -> tuple[list[tuple[int, LogEntry]], int]:
    """Whole lines from offset on, each with the position of its end, and the offset to read on from."""
    placed: list[tuple[int, LogEntry]] = []
    end = offset
    for record, end in _records_from(log, offset):
        entry = joiner.feed(record, end) if record is not None else None
        if entry is not None:
            placed.append((end, entry))
    return placed, end


def _last(entries: list[LogEntry], tail: int | None) -> list[LogEntry]:
    if tail is None:
        return entries
    return entries[-tail:] if tail > 0 else []


def read_log(
    path: Path, *, tail: int | None = None, since: datetime | None = None, until: datetime | None = None
) -> list[LogEntry]:
    """The log's lines in the order written (across the files it keeps): the last `tail` (all if
    None), of those the ones in range."""
    selection = _filter(since, until)
    joiner = _Joiner()
    log = _Chain(_open_all(LogFiles(path).files()))
    try:
        placed, _ = _read_placed(log, _tail_offset(log, tail) if tail is not None else 0, joiner)
    finally:
        log.close()
    # A line the output stopped in the middle of sits where its last fragment was written.
    placed += joiner.flush()
    entries = [entry for _, entry in sorted(placed, key=lambda item: item[0])]
    return [entry for entry in _last(entries, tail) if selection.keep(entry)]


def _entries(placed: list[tuple[int, LogEntry]]) -> list[LogEntry]:
    return [entry for _, entry in placed]


async def follow_log(
    path: Path,
    exited: Awaitable[object],
    *,
    tail: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    poll_interval: float = FOLLOW_POLL_INTERVAL,
) -> AsyncIterator[LogEntry]:
    """Like read_log, then each new line as it is written, until `exited` completes or until has passed.

    A line still unfinished then is given as it stands. When conmon starts a new file (past its
    size cap), the rest of the old one is read (conmon ends it before the switch), then each file
    after it, from its start.
    """
    selection = _filter(since, until)
    joiner = _Joiner()
    files = LogFiles(path)
    exit_task = asyncio.ensure_future(exited)
    current: BinaryIO | None = None
    offset = 0
    try:
        while True:
            finished = exit_task.done() or selection.over()
            fresh: list[LogEntry] = []
            if current is None:
                chain = _Chain(_open_all(files.files()))
                if chain.files:
                    placed, end = _read_placed(chain, _tail_offset(chain, tail) if tail is not None else 0, joiner)
                    fresh = _last(_entries(placed), tail)
                    *older, current = chain.files
                    offset = max(0, end - chain.starts[-1])
                    for f in older:
                        f.close()
            else:
                placed, offset = _read_placed(current, offset, joiner)
                fresh = _entries(placed)
                inode = os.fstat(current.fileno()).st_ino
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_ino != inode:  # conmon writes a newer file now
                        placed, _ = _read_placed(current, offset, joiner)
                        fresh += _entries(placed)
                        for newer in _open_all(files.after(inode)):
                            current.close()
                            current = newer
                            placed, offset = _read_placed(current, 0, joiner)
                            fresh += _entries(placed)
            if finished:
                fresh += _entries(joiner.flush())
            for entry in fresh:
                if selection.keep(entry):
                    yield entry
            if finished:
                return
            await asyncio.wait({exit_task}, timeout=poll_interval)
    finally:
        if current is not None:
            current.close()
        if not exit_task.done():
            exit_task.cancel()
