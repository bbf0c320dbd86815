"""A container's log as numbered files (the one conmon writes and the older ones kept), and their rotation.

conmon 2.1 starts its k8s-file log afresh once a write would take it past --log-size-max: it opens
PATH.tmp with O_TRUNC and renames it over PATH. Each file of the log is `logs/N` in the bundle, and
the node keeps the next one staged: `PATH.tmp` is a hard link to an empty `logs/N+1`, so conmon's
rename only drops PATH's own name and `logs/N` keeps the full file. After each start-afresh the
node stages the next file and deletes the files past the newest `keep`. Were two starts-afresh to
come before the node reacts, conmon makes PATH.tmp itself: that file is adopted as the next
number, and only a third one before the node reacts loses a file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_IN_MOVED_TO = 0x80
_IN_IGNORED = 0x8000
_IN_Q_OVERFLOW = 0x4000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
_KEEP_NAME = "log-keep"


@dataclass(frozen=True)
class LogFiles:
    """The log files of one container: PATH (what conmon writes), its staged next one and logs/N."""

    path: Path  # conmon's --log-path

    @property
    def dir(self) -> Path:
        return self.path.parent / "logs"

    @property
    def staged(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    @property
    def keep_file(self) -> Path:
        return self.path.parent / _KEEP_NAME

    def numbered(self) -> list[tuple[int, Path]]:
        """The log's files, oldest first (the staged, still empty one last)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted((int(name), self.dir / name) for name in names if name.isdecimal())

    def files(self) -> list[Path]:
        """What the log holds, oldest first, up to the file conmon writes now (PATH itself when it
        has no number yet: a conmon of an older node agent, or a start-afresh not yet adopted)."""
        return [path for path, _ in self._written()]

    def after(self, inode: int) -> list[Path]:
        """The files written after the one with INODE, oldest first, to the current one (only the
        current one when INODE is no longer kept)."""
        written = self._written()
        for index, (_, found) in enumerate(written):
            if found == inode:
                return [path for path, _ in written[index + 1:]]
        return [path for path, _ in written[-1:]]

    def _written(self) -> list[tuple[Path, int | None]]:
        """files() with each one's inode (None: deleted meanwhile)."""
        found: list[tuple[Path, int | None]] = []
        try:
            current: int | None = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        for _, path in self.numbered():
            try:
                inode: int | None = os.stat(path).st_ino
            except FileNotFoundError:
                inode = None
            found.append((path, inode))
            if current is not None and inode == current:
                return found
        return found if current is None else [*found, (self.path, current)]

    def keep(self) -> int:
        """How many files the log keeps (the current one included); 1 when never set."""
        try:
            return max(1, int(self.keep_file.read_text()))
        except (FileNotFoundError, ValueError):
            return 1

    def prepare(self, keep: int, size_max: int | None) -> None:
        """Before conmon (re)starts: number the files, begin a new one if the current one holds half
        of SIZE_MAX already (conmon counts from its own start, so the file stays under 1.5 x SIZE_MAX),
        stage the next and keep KEEP. conmon is not running."""
        self.keep_file.write_text(f"{keep}\n")
        self.dir.mkdir(exist_ok=True)
        self.settle()
        if size_max is not None and os.stat(self.path).st_size >= size_max // 2:
            fresh = self.path.with_name(self.path.name + ".new")
            fresh.unlink(missing_ok=True)
            os.link(self.staged, fresh)
            os.rename(fresh, self.path)
            self.settle()

    def settle(self) -> None:
        """Stage the next file, number PATH if it has no number (below the staged file: it was written
        first), delete the files past the newest keep. A number once given names that file until it is
        deleted (readers list, then open), so the staged file takes the top number plus two, leaving
        room below it for a file conmon made itself."""
        self.dir.mkdir(exist_ok=True)
        if not os.path.lexists(self.path):  # nothing written yet: a first, empty file
            first = self.dir / str(max(self._inodes(), default=0) + 1)
            first.touch()
            os.link(first, self.path)
        current = os.stat(self.path).st_ino
        if not os.path.lexists(self.staged):  # first: until it is there, conmon's next start-afresh is unsafe
            staged = self.dir / str(max(self._inodes(), default=0) + 2)
            with open(staged, "xb"):
                pass
            try:
                os.link(staged, self.staged)
            except FileExistsError:  # conmon made its own just now: adopted once it is renamed
                staged.unlink()
        numbers = self._inodes()
        if current not in numbers.values():
            self._adopt(current, numbers)
            numbers = self._inodes()
        written = sorted(n for n, inode in numbers.items() if inode == current)
        older = [n for n in sorted(numbers) if written and n < written[0]]
        for n in older[: max(0, len(older) - self.keep() + 1)]:
            (self.dir / str(n)).unlink(missing_ok=True)

    def _inodes(self) -> dict[int, int]:
        found: dict[int, int] = {}
        for number, path in self.numbered():
            with contextlib.suppress(FileNotFoundError):
                found[number] = os.stat(path).st_ino
        return found

    def _adopt(self, current: int, numbers: dict[int, int]) -> None:
        """Number the file conmon made itself (inode CURRENT) after the last one written, below the staged one."""
        try:
            staged = os.stat(self.staged).st_ino
        except FileNotFoundError:
            staged = None
        number = max((n for n, inode in numbers.items() if inode != staged), default=0) + 1
        pending = self.dir / "adopting"
        pending.unlink(missing_ok=True)
        try:
            os.link(self.path, pending)
        except FileNotFoundError:  # renamed over meanwhile: the next settle adopts what is there
            return
        if os.stat(pending).st_ino == current and number not in numbers:
            os.rename(pending, self.dir / str(number))
        else:  # conmon moved on in between: the next settle numbers what is there
            pending.unlink()


class Rotations:
    """One inotify instance for the node, read by a thread of its own: each running container's bundle is
    watched for conmon's rename, and its log settled at once, whatever the event loop is busy with (a
    chatty container with a small max-size starts a new file every few milliseconds). One instance,
    not one per container: root has 128."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._stop: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._watched: dict[int, LogFiles] = {}  # watch descriptor -> log
        self._by_path: dict[Path, int] = {}
        self._next: dict[int, int] = {}  # watch descriptor -> the number the next staged file takes
        self._libc = ctypes.CDLL(None, use_errno=True)
        # calls that keep the GIL: staging is a few microseconds of system calls, and a thread that gives
        # the GIL up at each call waits up to the switch interval (5 ms) to get it back from a busy loop
        self._quick = ctypes.PyDLL(None, use_errno=True)

    def _open(self) -> int:
        if self._fd is None:
            fd = self._libc.inotify_init1(os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            self._fd, self._stop = fd, os.pipe()
            self._thread = threading.Thread(target=self._run, args=(fd, self._stop[0]), name="log-rotations",
                                            daemon=True)
            self._thread.start()
        return self._fd

    def add(self, files: LogFiles) -> None:
        """Keep FILES' log rotated while its container runs (settled now, for what came before)."""
        with self._lock:
            fd = self._open()
            wd = self._libc.inotify_add_watch(fd, os.fsencode(files.path.parent), _IN_MOVED_TO)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {files.path.parent}")
            self._watched[wd] = files
            self._by_path[files.path] = wd
            self._settle(wd, files)

    def discard(self, files: LogFiles) -> None:
        """Stop watching FILES' log (its container has exited), settled one last time."""
        with self._lock:
            wd = self._by_path.pop(files.path, None)
            if wd is not None and self._watched.pop(wd, None) is not None and self._fd is not None:
                self._libc.inotify_rm_watch(self._fd, wd)
                self._next.pop(wd, None)
            if files.path.parent.is_dir():
                _settle(files)

    def _run(self, fd: int, stop: int) -> None:
        while True:
            ready, _, _ = select.select([fd, stop], [], [])
            if stop in ready:
                return
            data = os.read(fd, 65536)
            with self._lock:
                due = self._due(data)
                for wd, files in due:
                    self._stage(wd, files)
                for wd, files in due:
                    self._settle(wd, files)

    def _stage(self, wd: int, files: LogFiles) -> None:
        """The next file staged at once, if conmon took the last one (see _quick)."""
        number = self._next.get(wd)
        if number is None:
            return
        libc = self._quick
        fd = libc.open(os.fsencode(files.staged), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        if fd >= 0:
            libc.close(fd)
            return
        staged = os.fsencode(files.dir / str(number))
        fd = libc.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        if fd < 0:
            return  # settle sorts it out
        libc.close(fd)
        if libc.link(staged, os.fsencode(files.staged)) != 0:
            libc.unlink(staged)

    def _settle(self, wd: int, files: LogFiles) -> None:
        _settle(files)
        with contextlib.suppress(OSError):
            self._next[wd] = max((n for n, _ in files.numbered()), default=0) + 2

    def _due(self, data: bytes) -> list[tuple[int, LogFiles]]:
        due: dict[int, LogFiles] = {}
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            if mask & _IN_Q_OVERFLOW:
                due.update(self._watched)
            elif mask & _IN_IGNORED:  # the bundle was removed
                gone = self._watched.pop(wd, None)
                self._next.pop(wd, None)
                if gone is not None:
                    self._by_path.pop(gone.path, None)
            elif wd in self._watched:
                due[wd] = self._watched[wd]
        return list(due.items())

    def close(self) -> None:
        if self._fd is None or self._stop is None or self._thread is None:
            return
        os.write(self._stop[1], b"x")
        self._thread.join()
        for fd in (self._fd, *self._stop):
            os.close(fd)
        self._fd = self._stop = self._thread = None
        self._watched.clear()
        self._by_path.clear()
        self._next.clear()


def _settle(files: LogFiles) -> None:
    try:
        files.settle()
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # a bundle removed meanwhile needs nothing
            log.warning("rotating the log %s failed: %s", files.path, exc)
