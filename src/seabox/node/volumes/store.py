"""Volume data on a node: one size-limited filesystem per tenant volume, created and removed here only."""

from __future__ import annotations

import shutil
from pathlib import Path

from seabox.errors import NotFound
from seabox.node import disk_usage, loopfs


class VolumeStore:
    """Volume NAME of tenant T is ROOT/T/NAME/disk.img (an ext4 image of the volume's size), mounted
    nosuid,nodev at ROOT/T/NAME/fs; containers see ROOT/T/NAME/fs/data. The data outlives every
    container that mounts it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, tenant_id: str, name: str) -> Path:
        return self.root / tenant_id / name

    def path(self, tenant_id: str, name: str) -> Path:
        return self._dir(tenant_id, name) / "fs" / "data"

    def create(self, tenant_id: str, name: str, size: int) -> Path:
        """Make (or, if it exists, mount) the volume's filesystem of SIZE bytes; return its data dir."""
        base = self._dir(tenant_id, name)
        loopfs.ensure_mounted(base / "disk.img", base / "fs", size)
        return loopfs.tenant_root(self.path(tenant_id, name))

    def existing(self, tenant_id: str, name: str) -> Path:
        """The data dir of a volume made earlier, mounted again if need be (after a host reboot)."""
        base = self._dir(tenant_id, name)
        try:
            loopfs.ensure_mounted(base / "disk.img", base / "fs", None)
        except NotFound:
            raise NotFound(f"volume {name!r} has no data on this node") from None
        path = self.path(tenant_id, name)
        if not path.is_dir():
            raise NotFound(f"volume {name!r} has no data on this node")
        return path

    def remove(self, tenant_id: str, name: str) -> int:
        """Unmount the volume (its loop device detaches) and delete its image; the bytes its files held."""
        base = self._dir(tenant_id, name)
        try:
            freed = self.usage(tenant_id, name)
        except NotFound:  # no data here (never made, or half removed before)
            freed = 0
        loopfs.release(base / "fs")
        shutil.rmtree(base, ignore_errors=True)
        return freed

    def usage(self, tenant_id: str, name: str) -> int:
        """Bytes of the volume's files (see disk_usage.measured), its filesystem mounted first if need be."""
        self.existing(tenant_id, name)
        return disk_usage.measured(self.path(tenant_id, name), self._dir(tenant_id, name) / "fs")
