"""Runs the embedded server: API + controllers + the local node agent in one process."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from seabox.api.app import create_app
from seabox.config import ServerConfig
from seabox.services.cloud import Cloud
from seabox.tls import server_context

log = logging.getLogger(__name__)


async def serve(cfg: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM; containers keep running after the server stops."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    cloud = Cloud.open(cfg)
    app = create_app(cloud)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    host, port = cfg.host_port
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    if cfg.tls.listen:
        tls_host, _, tls_port = cfg.tls.listen.rpartition(":")
        await web.TCPSite(runner, tls_host or "0.0.0.0", int(tls_port), ssl_context=server_context(cfg.tls),
                          reuse_address=True).start()
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
        await runner.cleanup()
