"""The `update` figure: a live `docker update --memory` of a running container, against stop, update and start (root)."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime

from bench.cli import docker_server
from bench.results import p50_row, report

RUNS = int(os.environ.get("BENCH_UPDATE_RUNS", "10"))
SIZES = ("1g", "512m")  # m1 and s4, one after the other


def _timed(argvs: list[list[str]], env: dict[str, str]) -> float:
    """Seconds the docker commands ARGVS take, one after the other."""
    t0 = time.perf_counter()
    for argv in argvs:
        subprocess.run(["docker", *argv], env=env, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - t0


def main() -> None:
    live, restarted = [], []
    with docker_server("update") as (image, env):
        for name in ("live", "restarted"):
            subprocess.run(["docker", "run", "-d", "--name", name, image, "sleep", "3000"], env=env, check=True,
                           capture_output=True, timeout=60)
        for i in range(RUNS):
            memory = SIZES[i % 2]
            live.append(_timed([["update", "--memory", memory, "live"]], env))
            restarted.append(_timed([["stop", "-t", "0", "restarted"], ["update", "--memory", memory, "restarted"],
                                     ["start", "restarted"]], env))
    report("update", [p50_row("`docker update --memory` of a running runc container, p50 (peer: `docker stop -t 0`, "
                              "`update`, `start` of another)", live, restarted)],
           f"## docker update\n\nLatest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench update` ({RUNS} "
           "changes each, interleaved, between sizes m1 and s4) on a 2-core machine shared with other work.",
           "Each live change goes through the docker CLI 28, the Docker API, the size's admission on the node, the "
           "store (the size, the billing switch and the event in one transaction), the node's converger and `runc "
           "update`, and returns once the node reported the new limits. The peer is what a size change took before: "
           "stopping the container, changing its size, starting it again (its process restarted).\n")
