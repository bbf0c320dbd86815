"""Volume data on a node: one directory per tenant volume, created and removed here only."""

from __future__ import annotations

import shutil
from pathlib import Path

from seabox.errors import NotFound


class VolumeStore:
    """Volumes live at ROOT/<tenant id>/<name>/data; the data outlives every container that mounts it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, tenant_id: str, name: str) -> Path:
        return self.root / tenant_id / name / "data"

    def create(self, tenant_id: str, name: str) -> Path:
        path = self.path(tenant_id, name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def existing(self, tenant_id: str, name: str) -> Path:
        path = self.path(tenant_id, name)
        if not path.is_dir():
            raise NotFound(f"volume {name!r} has no data on this node")
        return path

    def remove(self, tenant_id: str, name: str) -> None:
        shutil.rmtree(self.root / tenant_id / name, ignore_errors=True)

    def usage(self, tenant_id: str, name: str) -> int:
        """Bytes used by the volume's files."""
        total = 0
        for p in self.path(tenant_id, name).rglob("*"):
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        return total
