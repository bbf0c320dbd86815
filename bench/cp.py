"""The `cp` figure: `docker cp` of a 100 MiB file into a container, against `tar` of the same file into a local directory (root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.cli import docker_server
from bench.results import p50_row, report

RUNS = int(os.environ.get("BENCH_CP_RUNS", "5"))
SIZE = 100 * 1024 * 1024


def _tar_into(source: Path, dest: Path) -> float:
    """Seconds of `tar -c` of SOURCE piped into `tar -x` in DEST, as docker cp streams one into the other."""
    t0 = time.perf_counter()
    pack = subprocess.Popen(["tar", "-C", str(source.parent), "-cf", "-", source.name], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-C", str(dest), "-xf", "-"], stdin=pack.stdout, check=True)
    assert pack.stdout is not None
    pack.stdout.close()
    if pack.wait() != 0:
        raise RuntimeError("tar -c failed")
    return time.perf_counter() - t0


def main() -> None:
    ours, peer = [], []
    with tempfile.TemporaryDirectory(prefix="seabox-bench-cp-") as tmp, docker_server("cp") as (image, env):
        source = Path(tmp) / "big"
        with source.open("wb") as f:
            for _ in range(SIZE // (1 << 20)):
                f.write(os.urandom(1 << 20))
        subprocess.run(["docker", "create", "--name", "cpbench", image, "sleep", "300"], env=env, check=True,
                       capture_output=True, timeout=60)
        for i in range(RUNS):
            t0 = time.perf_counter()
            subprocess.run(["docker", "cp", str(source), f"cpbench:/big{i}"], env=env, check=True,
                           capture_output=True, timeout=300)
            ours.append(time.perf_counter() - t0)
            dest = Path(tmp) / f"dest{i}"
            dest.mkdir()
            peer.append(_tar_into(source, dest))
            shutil.rmtree(dest)
    report("cp", [p50_row("`docker cp` of a 100 MiB file into a container, p50 (peer: `tar -c` piped to `tar -x`, "
                          "into a local directory)", ours, peer)],
           f"## docker cp\n\nLatest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench cp` ({RUNS} copies, "
           "interleaved with the peer) on a 2-core machine shared with other work.",
           "The file is 100 MiB of random bytes; each copy goes to a new path of one created (never started) "
           "runc container, through the docker CLI 28, the Docker API, the node link and the node's chrooted "
           "unpacker. The peer streams the same file through two local `tar` processes.\n")
