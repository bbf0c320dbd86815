"""The `cli` figure: wall time of whole `seabox` commands against the same `docker` commands, one server, one run (root)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.results import p50_row, report
from tests.fixtures.images import built_busybox_layout, push_busybox
from tests.fixtures.registry import running_registry
from tests.fixtures.server import Server, free_port, node_config, teardown_node

RUNS = int(os.environ.get("BENCH_CLI_RUNS", "20"))
SEABOX = [sys.executable, "-m", "seabox.cli.main"]  # as the console script runs it, from this checkout


def _wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - t0


def _pairs(args: list[str], env: dict[str, str]) -> tuple[list[float], list[float]]:
    """(seabox ARGS, docker ARGS) wall times, RUNS each, interleaved so both see the same machine."""
    ours, docker = [], []
    _wall([*SEABOX, *args], env)  # the first call writes the bytecode caches, as an install does
    for _ in range(RUNS):
        ours.append(_wall([*SEABOX, *args], env))
        docker.append(_wall(["docker", *args], env))
    return ours, docker


@contextmanager
def docker_server(name: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A server of its own with busybox pulled for tenant `bench`: (the image, an environment in which both
    `seabox` and the docker CLI reach it as that tenant)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"seabox-bench-{name}-"))
    workdir.chmod(0o711)  # a user-namespaced container's root walks through it to its bundle
    data_dir = workdir / "data"
    data_dir.mkdir()
    table = f"seabox_bench_{name}_{os.getpid()}"
    with built_busybox_layout() as layout, running_registry() as registry:
        image = push_busybox(registry, layout)
        (data_dir / "config.toml").write_text(node_config(table, registry))
        server = Server(data_dir, free_port(), registry)
        try:
            server.start()
            key = server.tenant("bench")
            httpx.post(server.url + "/v1/images/pull", json={"image": image}, headers={"X-Api-Key": key},
                       timeout=120).raise_for_status()
            config = workdir / "docker-config"
            config.mkdir()
            (config / "config.json").write_text(json.dumps({"HttpHeaders": {"X-Api-Key": key}}))
            env = server.env("bench")
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env.update(DOCKER_HOST=f"tcp://127.0.0.1:{server.port}", DOCKER_CONFIG=str(config),
                       PYTHONPATH=os.pathsep.join(sys.path))
            yield image, env
        finally:
            server.stop(signal.SIGTERM)
            teardown_node(data_dir, table)
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    figures: dict[str, tuple[list[float], list[float]]] = {}
    with docker_server("cli") as (image, env):
        figures["--version"] = _pairs(["--version"], env)
        figures["ps"] = _pairs(["ps"], env)
        figures["run --rm busybox true"] = _pairs(["run", "--rm", image, "true"], env)
    targets = {"ps": " (target <= 4x)", "run --rm busybox true": " (target <= 1.3x)"}
    rows = [p50_row(f"`seabox {args}` vs `docker {args}`, p50{targets.get(args, '')}", ours, docker)
            for args, (ours, docker) in figures.items()]
    report("cli", rows, f"## CLI start-up\n\nLatest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench cli` "
           f"({RUNS} runs of each command, interleaved) on a 2-core machine shared with other work.",
           "Each row times the whole command from a shell: `seabox` (Python 3.11, argparse, the native /v1 API over "
           "a socket with httptools parsing the answers, bytecode cached) against the docker CLI 28 (Go) pointed at the same server's Docker API, "
           "tenant `bench`, an empty container list for `ps`, the busybox image already pulled for `run`.\n")
