"""A node agent on its own host: join the cloud (or reuse the credential from an earlier join), serve
the link listener, watch assignments and heartbeat until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import web

from seabox.config import ServerConfig, ipv4_endpoint
from seabox.errors import InvalidArgument
from seabox.node.agent import NodeAgent
from seabox.node.converger import Converger
from seabox.node.link_server import create_link_app
from seabox.node.local_link import LocalLink
from seabox.node.plane_client import HttpControlPlane, register
from seabox.protocol.wire import RegisterRequest

log = logging.getLogger(__name__)
IDENTITY = "node.json"  # DATA_DIR file: the node's name, control plane, credential and link secret


@dataclass(frozen=True)
class Identity:
    name: str
    url: str
    credential: str
    link_secret: str
    heartbeat_interval: float


def _load(path: Path) -> Identity | None:
    try:
        return Identity(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def _save(path: Path, identity: Identity) -> None:
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(identity), f)
    path.with_suffix(".tmp").replace(path)


async def join(cfg: ServerConfig, url: str, token: str | None, advertise: str) -> Identity:
    """This node's identity: the saved one if it joined URL before, else a fresh join with TOKEN."""
    path = cfg.data_dir / IDENTITY
    saved = _load(path)
    if saved is not None and saved.url == url.rstrip("/"):
        if saved.name != cfg.node_name:
            raise InvalidArgument(f"this data dir joined as node {saved.name}, not {cfg.node_name}: drop --name "
                                  f"or use another --data-dir", field="name")
        return saved
    if not token:
        raise InvalidArgument("a first join needs --token (make one with `seabox admin node token`)", field="token")
    capacity = NodeAgent.measure(cfg)
    link_secret = secrets.token_urlsafe(32)
    answer = await register(url, RegisterRequest(
        token=token, name=cfg.node_name, address=advertise, memory_bytes=capacity.memory_bytes, cpus=capacity.cpus,
        link_secret=link_secret,
    ))
    identity = Identity(answer.name, url.rstrip("/"), answer.credential, link_secret, answer.heartbeat_interval)
    _save(path, identity)
    return identity


async def run_node(cfg: ServerConfig, url: str, token: str | None, advertise: str) -> None:
    """Join (if needed) and run this node until SIGINT/SIGTERM; its containers keep running after."""
    host, port = ipv4_endpoint(advertise)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    identity = await join(cfg, url, token, advertise)
    agent = NodeAgent(cfg)
    plane = HttpControlPlane(identity.url, identity.credential)
    converger = Converger(agent, plane, fence_after=cfg.nodes.fence_after)
    runner = web.AppRunner(create_link_app(LocalLink(agent), identity.link_secret, converger.stopped),
                           handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, str(host), port)
    await site.start()
    log.info("node %s: link listener on %s, control plane %s", identity.name, advertise, identity.url)
    tasks = [
        asyncio.create_task(converger.run(), name="assignments"),
        asyncio.create_task(converger.heartbeats(identity.heartbeat_interval), name="heartbeats"),
        asyncio.create_task(converger.fence(), name="fence"),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await converger.close()
        await plane.close()
        await runner.cleanup()
