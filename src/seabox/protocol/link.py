"""The two halves of the node protocol, one interface each.

ControlPlane is what a node agent asks of the control plane: its assignments (the desired state it
converges to) and where to report what is true. NodeLink is what the control plane asks of one node
directly: streams, readings, signals, images and volumes. The embedded server implements both in
process (seabox.node.local_link and services.nodes); remote nodes speak the same messages over HTTP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path

from seabox.model.node import NodeCapacity
from seabox.protocol.archive import Change, PathStat, UploadOptions
from seabox.protocol.assignments import AssignmentBatch, ContainerReport
from seabox.protocol.images import HistoryEntry, ImageInfo, NewImage, PullProgress
from seabox.protocol.logs import LogEntry
from seabox.protocol.placement import Placement
from seabox.protocol.runtime import ExitStatus, Stats
from seabox.protocol.streams import AttachStdio, ExecStream, TcpStream

ExitCallback = Callable[[str, ExitStatus], Awaitable[None]]


class ControlPlane(ABC):
    """What a node agent asks of the control plane."""

    @abstractmethod
    async def assignments(self, node: str, etag: str, timeout: float) -> AssignmentBatch:
        """Everything NODE is to hold; if it is still what ETAG names, waits up to TIMEOUT for a change."""

    @abstractmethod
    async def report(self, node: str, reports: list[ContainerReport]) -> None:
        """Record what is true of containers on NODE."""

    @abstractmethod
    async def heartbeat(self, node: str, capacity: NodeCapacity) -> None:
        """NODE is alive and has CAPACITY."""


class NodeLink(ABC):
    """One node as the control plane sees it."""

    name: str

    @abstractmethod
    def capacity(self) -> NodeCapacity:
        """The node's memory and CPUs."""

    @abstractmethod
    async def signal(self, cid: str, signal: str) -> None:
        """Send SIGNAL to the container's main process; Conflict if it is not running."""

    # streams and readings ---------------------------------------------------------------------
    @abstractmethod
    def logs(
        self,
        cid: str,
        *,
        follow: bool,
        tail: int | None,
        since: datetime | None,
        until_stopped: Callable[[], Awaitable[None]],
        until: datetime | None = None,
    ) -> AsyncIterator[LogEntry]:
        """The container's output lines (written up to UNTIL); with follow, new ones until until_stopped()
        returns or UNTIL has passed."""

    @abstractmethod
    async def exec(
        self,
        cid: str,
        args: list[str],
        *,
        env: Sequence[str],
        cwd: str | None,
        user: str,
        tty: bool,
        stdin: bool,
    ) -> ExecStream:
        """Start a process in the running container."""

    @abstractmethod
    async def attach(self, cid: str, running: bool) -> AttachStdio:
        """The container's stdio; if it is not running yet, once its next start has created it."""

    @abstractmethod
    async def dial(self, cid: str, port: int) -> TcpStream:
        """A TCP connection from the node to PORT of the running container (at its tenant address).

        NotFound if the node holds no such container, Conflict if it is not running, UpstreamError if
        nothing accepts on the port."""

    @abstractmethod
    async def resize(self, cid: str, height: int, width: int) -> None:
        """Resize the container's terminal."""

    @abstractmethod
    async def stats(self, cid: str) -> Stats:
        """One reading of the container's resource counters."""

    @abstractmethod
    async def top(self, cid: str) -> list[tuple[int, str]]:
        """The container's processes: (pid, command line)."""

    # files ------------------------------------------------------------------------------------
    @abstractmethod
    async def path_stat(self, p: Placement, path: str) -> PathStat:
        """The stat of PATH in the container's rootfs (NotFound if it has none)."""

    @abstractmethod
    async def read_archive(self, p: Placement, path: str) -> AsyncIterator[bytes]:
        """PATH of the container's rootfs as a tar, running or not (Docker's archive GET)."""

    @abstractmethod
    async def write_archive(self, p: Placement, path: str, data: AsyncIterator[bytes], options: UploadOptions) -> None:
        """Unpack the tar DATA into directory PATH of the container's rootfs, confined to it."""

    @abstractmethod
    async def export(self, p: Placement) -> AsyncIterator[bytes]:
        """The container's whole rootfs as a tar."""

    @abstractmethod
    async def changes(self, p: Placement) -> list[Change]:
        """What the container changed against its image."""

    @abstractmethod
    async def layer_size(self, cid: str) -> int:
        """Bytes of the container's filesystem changes (its writable layer), 0 if it has none on the node."""

    # images and volumes ---------------------------------------------------------------------
    @abstractmethod
    async def pull(self, ref: str, progress: Callable[[PullProgress], None] | None) -> ImageInfo:
        """Pull REF into the node's image store."""

    @abstractmethod
    async def import_archive(self, path: Path) -> list[ImageInfo]:
        """Import the images of an archive (docker save or OCI layout tar) into the node's image store."""

    @abstractmethod
    async def import_rootfs(self, path: Path, spec: NewImage) -> ImageInfo:
        """A new one-layer image from the filesystem tarball at PATH (docker import)."""

    @abstractmethod
    async def commit(self, p: Placement, spec: NewImage) -> ImageInfo:
        """A new image: the container's image with its filesystem changes as the top layer (mounted first if it
        never ran)."""

    @abstractmethod
    async def history(self, image_id: str) -> list[HistoryEntry]:
        """The stored image's history, newest first."""

    @abstractmethod
    async def save(self, images: list[tuple[str, list[str]]], out: Path) -> None:
        """Write a docker-archive of the (image id, names) pairs to the local file OUT."""

    @abstractmethod
    async def image(self, image_id: str) -> ImageInfo:
        """One stored image; NotFound if the node has none by that id."""

    @abstractmethod
    async def remove_image(self, image_id: str) -> None:
        """Delete the image from the node; NotFound if it has none by that id."""

    @abstractmethod
    async def create_volume(self, tenant_id: str, name: str, size: int) -> None:
        """Make the volume's filesystem on the node."""

    @abstractmethod
    async def remove_volume(self, tenant_id: str, name: str) -> int:
        """Delete the volume's data from the node; the bytes its files held."""

    @abstractmethod
    async def volume_size(self, tenant_id: str, name: str) -> int:
        """The bytes the volume's files hold; NotFound if the node has no data for it."""

    async def close(self) -> None:
        """Let go of the node (its containers keep running)."""
