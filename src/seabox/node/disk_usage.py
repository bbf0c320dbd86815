"""How many bytes a tree of files holds: its files' sizes summed (Docker's way), within a bound on the walk."""

from __future__ import annotations

import os
from pathlib import Path

# entries (files and directories) walked before a measurement falls back to its filesystem's used blocks
WALK_LIMIT = 100_000


def tree_bytes(path: Path, limit: int | None = None) -> int | None:
    """Bytes of the files under PATH, hard-linked ones counted once (0 if PATH does not exist); None once
    the walk passes LIMIT entries."""
    total, entries = 0, 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        entries += len(dirnames) + len(filenames)
        if limit is not None and entries > limit:
            return None
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:  # removed meanwhile
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def measured(path: Path, mount: Path) -> int:
    """The bytes under PATH, which lies on its own filesystem mounted at MOUNT (a rootfs disk or a volume):
    counted file by file up to WALK_LIMIT entries, past that the filesystem's used blocks (statvfs)."""
    counted = tree_bytes(path, WALK_LIMIT)
    if counted is not None:
        return counted
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize
