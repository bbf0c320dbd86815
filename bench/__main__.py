"""`make bench`: container start latency and per-container memory, against bare runc in the same run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.fixtures.images import LAYOUT_TAG, built_busybox_layout, push_busybox
from tests.fixtures.registry import running_registry
from tests.fixtures.server import SEABOX, Server, free_port, node_config, teardown_node

STARTS = int(os.environ.get("BENCH_STARTS", "50"))
IDLE = int(os.environ.get("BENCH_IDLE", "100"))
CLI_RUNS = int(os.environ.get("BENCH_CLI_RUNS", "20"))
RESULTS = Path(__file__).parent / "RESULTS.md"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bare_runc_starts(layout: Path, workdir: Path) -> list[float]:
    """`runc run -d` of a bundle unpacked from the same image, process `sleep 300`."""
    bundle = workdir / "bundle"
    bundle.mkdir()
    subprocess.run(["umoci", "raw", "unpack", "--image", f"{layout}:{LAYOUT_TAG}", bundle / "rootfs"], check=True,
                   capture_output=True)
    subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["sleep", "300"])
    (bundle / "config.json").write_text(json.dumps(config))
    times = []
    ids = [f"bench-peer-{os.getpid()}-{i}" for i in range(STARTS)]
    try:
        for cid in ids:
            t0 = time.perf_counter()
            subprocess.run(["runc", "run", "-d", "--bundle", bundle, cid], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
    finally:
        for cid in ids:
            subprocess.run(["runc", "delete", "--force", cid], capture_output=True)
    return times


def seabox_starts(client: httpx.Client, image: str) -> list[float]:
    """POST /v1/containers?start=true until the answer says running (the process has been started)."""
    times = []
    for _ in range(STARTS):
        t0 = time.perf_counter()
        r = client.post("/v1/containers", params={"start": "true"}, json={"image": image, "cmd": ["sleep", "300"]})
        times.append(time.perf_counter() - t0)
        assert r.status_code == 201 and r.json()["status"]["state"] == "running", r.text
    return times


def cli_runs(argv: list[str], env: dict[str, str]) -> list[float]:
    """Wall time of a whole CLI command, as a tenant would type it."""
    times = []
    for _ in range(CLI_RUNS):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - t0)
    return times


def docker_vs_native(server: Server, image: str, workdir: Path) -> tuple[list[float], list[float]]:
    """`docker run --rm IMAGE true` through Seabox's Docker API against `seabox run --rm IMAGE true`."""
    env = server.env("bench")
    config = workdir / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"HttpHeaders": {"X-Api-Key": server.tenant("bench")}}))
    env.update(DOCKER_HOST=f"tcp://127.0.0.1:{server.port}", DOCKER_CONFIG=str(config))
    docker = cli_runs(["docker", "run", "--rm", image, "true"], env)
    native = cli_runs([*SEABOX, "run", "--rm", image, "true"], env)
    return docker, native


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def conmon_pids(data_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"conmon.*{data_dir}"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def idle_memory(server: Server, client: httpx.Client, image: str) -> tuple[float, float, float]:
    """(MiB per container of ours: conmon + server growth; conmon alone; server growth alone)."""
    assert server.proc is not None
    before_server = pss_kib(server.proc.pid)
    for _ in range(IDLE):
        r = client.post("/v1/containers", params={"start": "true"},
                        json={"image": image, "cmd": ["sleep", "3600"], "size": "s1"})
        assert r.status_code == 201, r.text
    time.sleep(1)
    conmon = sum(pss_kib(p) for p in conmon_pids(server.data_dir))
    server_growth = max(0, pss_kib(server.proc.pid) - before_server)
    return (conmon + server_growth) / IDLE / 1024, conmon / IDLE / 1024, server_growth / IDLE / 1024


def remove_all(client: httpx.Client) -> None:
    for c in client.get("/v1/containers", params={"all": "true"}).json():
        client.delete(f"/v1/containers/{c['id']}", params={"force": "true"})


def timed(label: str, fn: Callable[[], object]) -> None:
    t0 = time.perf_counter()
    fn()
    print(f"  ({label}: {time.perf_counter() - t0:.1f} s)", file=sys.stderr)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="seabox-bench-"))
    data_dir = workdir / "data"
    data_dir.mkdir()
    table = f"seabox_bench_{os.getpid()}"
    with built_busybox_layout() as layout, running_registry() as registry:
        image = push_busybox(registry, layout)
        (data_dir / "config.toml").write_text(node_config(table, registry))
        server = Server(data_dir, free_port(), registry)
        try:
            server.start()
            client = httpx.Client(base_url=server.url, headers={"X-Api-Key": server.tenant("bench")}, timeout=120)
            client.post("/v1/images/pull", json={"image": image}).raise_for_status()
            peer = bare_runc_starts(layout, workdir)
            ours = seabox_starts(client, image)
            remove_all(client)
            docker, native = docker_vs_native(server, image, workdir)
            per_container, conmon, server_growth = idle_memory(server, client, image)
            remove_all(client)
        finally:
            server.stop(signal.SIGTERM)
            teardown_node(data_dir, table)
            shutil.rmtree(workdir, ignore_errors=True)
    p50, p95 = statistics.median(ours) * 1000, pct(ours, 0.95) * 1000
    r50, r95 = statistics.median(peer) * 1000, pct(peer, 0.95) * 1000
    rows = [
        ("API create+start to running, p50 (target <= 150 ms; peer: bare `runc run -d`)", f"{p50:.1f} ms", f"{r50:.1f} ms", f"{p50 / r50:.2f}x"),
        ("API create+start to running, p95 (peer: bare `runc run -d`)", f"{p95:.1f} ms", f"{r95:.1f} ms", f"{p95 / r95:.2f}x"),
        ("`docker run --rm busybox true` vs `seabox run --rm busybox true`, p50 (target <= 1.2x)",
         f"{statistics.median(docker) * 1000:.0f} ms", f"{statistics.median(native) * 1000:.0f} ms",
         f"{statistics.median(docker) / statistics.median(native):.2f}x"),
        (f"host memory per idle container, {IDLE} containers (target <= 3 MiB)",
         f"{per_container:.2f} MiB", "-", f"conmon {conmon:.2f} + server {server_growth:.2f} MiB"),
    ]
    header = "| figure | seabox | peer measured in the same run | ratio / detail |\n|---|---|---|---|\n"
    table_md = header + "".join(f"| {a} | {b} | {c} | {d} |\n" for a, b, c, d in rows)
    print(table_md)
    RESULTS.write_text(
        "# Benchmark results\n\n"
        f"Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `make bench` "
        f"({STARTS} starts, {IDLE} idle containers) on a 2-core, 24 GiB machine.\n\n"
        + table_md
        + "\nStart latency is measured from the HTTP request to the API's answer, which comes after "
        "`runc start` returned (the process is running). The peer is `runc run -d` of a bundle unpacked "
        "from the same busybox image, timed the same way, in the same run. The Docker row times the "
        "whole `docker` command (Go client, Docker API, attach, wait, auto-remove) against the whole "
        "`seabox` command (Python client, native API), each run from a shell. Memory is the proportional "
        "set size (PSS) of every conmon plus the server's PSS growth, divided by the container count; "
        "the containers' own processes are the tenant's and are not counted.\n"
    )


if __name__ == "__main__":
    main()
