"""What a prune reclaims: a tree's bytes counted file by file, and the bound past which the filesystem's used blocks count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seabox.node import disk_usage


def test_files_are_summed_once_each_and_directories_and_links_add_nothing(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "a").write_bytes(b"x" * 1000)
    (tmp_path / "d" / "e" / "b").write_bytes(b"y" * 234)
    os.link(tmp_path / "a", tmp_path / "d" / "hard")  # the same file twice
    (tmp_path / "d" / "soft").symlink_to("a")
    assert disk_usage.tree_bytes(tmp_path) == 1234 + len("a")  # a symlink's size is its target's name
    assert disk_usage.tree_bytes(tmp_path / "missing") == 0


def test_past_the_walk_limit_the_filesystems_used_blocks_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        (tmp_path / str(i)).write_bytes(b"z" * 10)
    assert disk_usage.tree_bytes(tmp_path, limit=4) is None
    assert disk_usage.tree_bytes(tmp_path, limit=5) == 50
    monkeypatch.setattr(disk_usage, "WALK_LIMIT", 4)
    st = os.statvfs(tmp_path)
    used = disk_usage.measured(tmp_path, tmp_path)
    assert used > 0 and abs(used - (st.f_blocks - st.f_bfree) * st.f_frsize) < 64 << 20  # the whole filesystem's
    monkeypatch.setattr(disk_usage, "WALK_LIMIT", 5)
    assert disk_usage.measured(tmp_path, tmp_path) == 50
