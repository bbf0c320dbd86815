"""Runs the embedded server: API + controllers + the local node agent in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from seabox.api.app import create_app
from seabox.api.connections import guard_for, listen
from seabox.api.metrics import metrics_token
from seabox.config import ServerConfig
from seabox.node.agent import NodeAgent
from seabox.node.converger import Converger
from seabox.node.local_link import LocalLink
from seabox.services.cloud import Cloud
from seabox.tls import server_context

log = logging.getLogger(__name__)


async def serve(cfg: ServerConfig, ready: asyncio.Event | None = None, *, with_node: bool = True) -> None:
    """Serve until SIGINT/SIGTERM; containers keep running after the server stops.

    WITH_NODE, this host is also a node (the embedded server); without, only remote nodes run containers.
    """
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    metrics_token(cfg.data_dir)  # Prometheus reads it from DATA_DIR/metrics.token
    agent = NodeAgent(cfg) if with_node else None
    cloud = Cloud.open(cfg, LocalLink(agent) if agent else None)
    app = create_app(cloud)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    converger, node_tasks = None, []
    if agent is not None:
        # the local node: watches its assignments in process, as a remote node does over HTTP
        cloud.nodes.ensure_local(agent.name, "local", agent.capacity())
        converger = Converger(agent, cloud.hub)
        adopted = asyncio.Event()
        node_tasks = [
            asyncio.create_task(converger.run(adopted), name="local-node"),
            asyncio.create_task(converger.heartbeats(cfg.nodes.heartbeat_interval), name="local-node-heartbeat"),
        ]
        await adopted.wait()
    guard = guard_for(cfg.api)
    host, port = cfg.host_port
    listeners = [await listen(runner, guard, host, port)]
    if cfg.tls.listen:
        tls_host, _, tls_port = cfg.tls.listen.rpartition(":")
        listeners.append(await listen(runner, guard, tls_host or "0.0.0.0", int(tls_port), server_context(cfg.tls)))
        log.info("TLS listener on %s (client certificates: %s)", cfg.tls.listen, "yes" if cfg.tls.client_ca else "no")
    (cfg.data_dir / "server.url").write_text(f"http://{host}:{port}\n")
    log.info("seabox server listening on http://%s:%d (data dir %s)", host, port, cfg.data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready:
        ready.set()
    try:
        await stop.wait()
    finally:
        for listener in listeners:
            listener.close()
        for task in node_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if converger is not None:
            await converger.close()
        await runner.cleanup()
