"""The in-process link: the embedded server's node agent, behind the same interface as a remote node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path

from seabox.model.node import NodeCapacity
from seabox.node.agent import NodeAgent
from seabox.node.runtime.attach import AttachStream
from seabox.node.runtime.logs import follow_log, read_log
from seabox.protocol.archive import Change, PathStat, UploadOptions
from seabox.protocol.images import HistoryEntry, ImageInfo, NewImage, PullProgress
from seabox.protocol.link import NodeLink
from seabox.protocol.logs import LogEntry
from seabox.protocol.placement import Placement
from seabox.protocol.runtime import Stats
from seabox.protocol.streams import AttachStdio, ExecStream, TcpStream


class LocalLink(NodeLink):
    """Calls the agent directly; what crosses is exactly what a remote link would carry."""

    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent
        self.name = agent.name

    def capacity(self) -> NodeCapacity:
        return self.agent.capacity()

    async def signal(self, cid: str, signal: str) -> None:
        await self.agent.kill(cid, signal)

    # streams and readings ---------------------------------------------------------------------
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
        path = self.agent.log_path(cid)
        if follow:
            return follow_log(path, until_stopped(), tail=tail, since=since, until=until)
        return _iterate(read_log(path, tail=tail, since=since, until=until))

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
        return await self.agent.exec(cid, args, env=env, cwd=cwd, user=user, tty=tty, stdin=stdin)

    async def attach(self, cid: str, running: bool) -> AttachStdio:
        path = self.agent.attach_path(cid)
        if running:
            return await AttachStream.connect(path)
        created: asyncio.Future[AttachStream] = asyncio.get_running_loop().create_future()

        async def connect() -> None:
            if created.done():  # the client gave up before the start
                return
            try:
                created.set_result(await AttachStream.connect(path))
            except Exception as exc:
                created.set_exception(exc)

        self.agent.before_start(cid, connect)
        return await created

    async def dial(self, cid: str, port: int) -> TcpStream:
        return await self.agent.dial(cid, port)

    async def resize(self, cid: str, height: int, width: int) -> None:
        self.agent.resize(cid, height, width)

    async def stats(self, cid: str) -> Stats:
        return self.agent.stats(cid)

    async def top(self, cid: str) -> list[tuple[int, str]]:
        return await self.agent.top(cid)

    # files ------------------------------------------------------------------------------------
    async def path_stat(self, p: Placement, path: str) -> PathStat:
        return await self.agent.path_stat(p, path)

    async def read_archive(self, p: Placement, path: str) -> AsyncIterator[bytes]:
        return await self.agent.read_archive(p, path)

    async def write_archive(self, p: Placement, path: str, data: AsyncIterator[bytes], options: UploadOptions) -> None:
        await self.agent.write_archive(p, path, data, options)

    async def export(self, p: Placement) -> AsyncIterator[bytes]:
        return await self.agent.export(p)

    async def changes(self, p: Placement) -> list[Change]:
        return await self.agent.changes(p)

    async def layer_size(self, cid: str) -> int:
        return await asyncio.to_thread(self.agent.layer_size, cid)

    # images and volumes ---------------------------------------------------------------------
    async def pull(self, ref: str, progress: Callable[[PullProgress], None] | None) -> ImageInfo:
        return await self.agent.images.pull(ref, progress)

    async def import_archive(self, path: Path) -> list[ImageInfo]:
        return await self.agent.images.import_archive(path)

    async def import_rootfs(self, path: Path, spec: NewImage) -> ImageInfo:
        return await self.agent.images.import_rootfs(path, spec)

    async def commit(self, p: Placement, spec: NewImage) -> ImageInfo:
        return await self.agent.images.commit(p.container.spec.image_id, await self.agent.upper_dir(p), spec)

    async def history(self, image_id: str) -> list[HistoryEntry]:
        return self.agent.images.history(image_id)

    async def save(self, images: list[tuple[str, list[str]]], out: Path) -> None:
        await self.agent.images.save(images, out)

    async def image(self, image_id: str) -> ImageInfo:
        return self.agent.images.get(image_id)

    async def remove_image(self, image_id: str) -> None:
        await self.agent.images.remove(image_id)

    async def create_volume(self, tenant_id: str, name: str, size: int) -> None:
        await asyncio.to_thread(self.agent.volumes.create, tenant_id, name, size)

    async def remove_volume(self, tenant_id: str, name: str) -> int:
        return await asyncio.to_thread(self.agent.volumes.remove, tenant_id, name)

    async def volume_size(self, tenant_id: str, name: str) -> int:
        return await asyncio.to_thread(self.agent.volumes.usage, tenant_id, name)

    async def close(self) -> None:
        """The agent is closed by its converger, which owns it."""


async def _iterate(entries: list[LogEntry]) -> AsyncIterator[LogEntry]:
    for entry in entries:
        yield entry
