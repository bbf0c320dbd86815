"""`make bench` / `python -m bench [FIGURE ...]`: each figure against a peer measured in the same run.

Figures: `runtime` (container start latency and per-container memory, against bare runc and runsc;
needs root), `scheduler` (placements per second on simulated nodes), `cluster` (create+start
through a node agent in another network namespace, against the embedded node; needs root),
`overlay` (TCP throughput between containers on two nodes, against one node; needs root), `fip`
(a container through its floating IP against its private address, security group and FIP move
times; needs root), `dns` (query latency through a tenant resolver, against its upstream asked
directly; needs root), `service` (requests through a load-balanced service's VIP, against the same
replica directly; needs root) and `func` (a cold stdio function call against `seabox run --rm`, a warm
http-mode call against a direct request to its replica; needs root), `cli` (`seabox --version`, `ps`
and `run --rm` against the same docker commands on one server; needs root), `cp` (`docker cp` of a
100 MiB file into a container against `tar` into a local directory; needs root), `update` (a live `docker update
--memory` against stop, update and start; needs root) and `billing` (a usage query over 100,000 lifecycle events,
invoices for 1,000 tenants). No argument runs them all.
"""

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

from bench import billing, cli, cluster, cp, fip, func, overlay, resolver, scheduler, service, update
from bench.results import markdown_table, write_section
from tests.fixtures.images import LAYOUT_TAG, built_busybox_layout, push_busybox
from tests.fixtures.registry import running_registry
from tests.fixtures.server import SEABOX, Server, free_port, node_config, teardown_node

STARTS = int(os.environ.get("BENCH_STARTS", "50"))
GVISOR_STARTS = int(os.environ.get("BENCH_GVISOR_STARTS", "20"))
IDLE = int(os.environ.get("BENCH_IDLE", "100"))
GVISOR_IDLE = int(os.environ.get("BENCH_GVISOR_IDLE", "20"))
BENCH_ID_BASE = 1 << 30  # a host uid range no tenant of the bench's server uses
CLI_RUNS = int(os.environ.get("BENCH_CLI_RUNS", "20"))


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


def _bundle(layout: Path, bundle: Path, *, userns: bool, seccomp: bool) -> None:
    """A bundle of the image with Seabox's own config.json, hardened as asked (no network attach)."""
    from seabox.node.runtime.base import IdMap, RunSpec
    from seabox.node.runtime.spec import ProcessUser, build_config

    bundle.mkdir()
    unpack = ["umoci", "raw", "unpack", "--image", f"{layout}:{LAYOUT_TAG}"]
    if userns:
        mapping = f"0:{BENCH_ID_BASE}:65536"
        unpack += ["--uid-map", mapping, "--gid-map", mapping]
        bundle.chmod(0o711)
    subprocess.run([*unpack, bundle / "rootfs"], check=True, capture_output=True)
    spec = RunSpec(id="0" * 64, name="bench", bundle=bundle, args=["sleep", "300"], env=[],
                   id_map=IdMap(BENCH_ID_BASE) if userns else None, seccomp=seccomp)
    config = build_config(spec, ProcessUser(), nofile=1024)
    if not seccomp:  # the unhardened peer: Docker's defaults without no-new-privileges
        config["process"]["noNewPrivileges"] = False
    config["linux"].pop("cgroupsPath")
    (bundle / "config.json").write_text(json.dumps(config))


def runc_hardening(layout: Path, workdir: Path) -> dict[str, list[float]]:
    """`runc run -d` of one image: plain, +seccomp/no-new-privileges, +user namespace, both (interleaved)."""
    variants = {"plain": (False, False), "seccomp": (False, True), "userns": (True, False), "both": (True, True)}
    for name, (userns, seccomp) in variants.items():
        _bundle(layout, workdir / f"hard-{name}", userns=userns, seccomp=seccomp)
    times: dict[str, list[float]] = {name: [] for name in variants}
    started: list[str] = []
    try:
        for i in range(STARTS):
            for name in variants:
                cid = f"bench-hard-{os.getpid()}-{name}-{i}"
                t0 = time.perf_counter()
                subprocess.run(["runc", "run", "-d", "--bundle", workdir / f"hard-{name}", cid], check=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t0)
                started.append(cid)
            if len(started) >= 40:  # keep the host quiet: the figure is the start, not a crowd
                for cid in started:
                    subprocess.run(["runc", "delete", "--force", cid], capture_output=True)
                started.clear()
    finally:
        for cid in started:
            subprocess.run(["runc", "delete", "--force", cid], capture_output=True)
    return times


def bare_runsc_starts(layout: Path, workdir: Path) -> list[float]:
    """`runsc create` + `runsc start` of the same image, inside a netns as Seabox runs it."""
    bundle = workdir / "runsc-bundle"
    _bundle(layout, bundle, userns=False, seccomp=False)
    netns = f"sbxbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    root = workdir / "runsc-root"
    enter = ["nsenter", f"--net=/run/netns/{netns}", "runsc", "--root", str(root), "--network=host"]
    times, ids = [], []
    try:
        for i in range(GVISOR_STARTS):
            cid = f"bench-runsc-{os.getpid()}-{i}"
            t0 = time.perf_counter()
            subprocess.run([*enter, "create", "--bundle", bundle, cid], check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run([*enter, "start", cid], check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
            ids.append(cid)
            subprocess.run([*enter, "delete", "--force", cid], capture_output=True)
    finally:
        for cid in ids:
            subprocess.run([*enter, "delete", "--force", cid], capture_output=True)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True)
    return times


def seabox_starts(client: httpx.Client, image: str, runtime: str = "runc", count: int = STARTS) -> list[float]:
    """POST /v1/containers?start=true until the answer says running (the process has been started)."""
    times = []
    body = {"image": image, "cmd": ["sleep", "300"], "runtime_class": runtime, "size": "s1"}
    for _ in range(count):
        t0 = time.perf_counter()
        r = client.post("/v1/containers", params={"start": "true"}, json=body)
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


def gvisor_pids(data_dir: Path) -> list[int]:
    """conmon, runsc-sandbox and runsc-gofer of every gVisor container of the server."""
    out = subprocess.run(["pgrep", "-f", f"runsc-(sandbox|gofer).*{data_dir}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()] + conmon_pids(data_dir)


def gvisor_idle_memory(server: Server, client: httpx.Client, image: str) -> float:
    """MiB of host memory (PSS) per idle gVisor container: its conmon, sandbox and gofer."""
    for _ in range(GVISOR_IDLE):
        r = client.post("/v1/containers", params={"start": "true"},
                        json={"image": image, "cmd": ["sleep", "3600"], "size": "s1", "runtime_class": "gvisor"})
        assert r.status_code == 201, r.text
    time.sleep(1)
    return sum(pss_kib(p) for p in gvisor_pids(server.data_dir)) / GVISOR_IDLE / 1024


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


def runtime() -> None:
    """Start latency and idle memory of runc and gVisor containers through a real server (root)."""
    workdir = Path(tempfile.mkdtemp(prefix="seabox-bench-"))
    workdir.chmod(0o711)  # a user-namespaced container's root walks through it to its bundle
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
            hardening = runc_hardening(layout, workdir)
            ours = seabox_starts(client, image)
            remove_all(client)
            gvisor = seabox_starts(client, image, "gvisor", GVISOR_STARTS)
            remove_all(client)
            runc_again = seabox_starts(client, image, "runc", GVISOR_STARTS)
            remove_all(client)
            bare_runsc = bare_runsc_starts(layout, workdir)
            docker, native = docker_vs_native(server, image, workdir)
            per_container, conmon, server_growth = idle_memory(server, client, image)
            remove_all(client)
            gvisor_memory = gvisor_idle_memory(server, client, image)
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
    med = {name: statistics.median(values) * 1000 for name, values in hardening.items()}
    g50, gr50, rs50 = (statistics.median(v) * 1000 for v in (gvisor, runc_again, bare_runsc))
    rows += [
        ("gvisor API create+start, p50 (target <= 350 ms; peer: runc through the API)",
         f"{g50:.1f} ms", f"{gr50:.1f} ms", f"{g50 / gr50:.2f}x"),
        ("gvisor API create+start, p50 (target <= 1.5x; peer: bare `runsc create`+`start`, same bundle)",
         f"{g50:.1f} ms", f"{rs50:.1f} ms", f"{g50 / rs50:.2f}x"),
        ("bare runc start, seccomp + no-new-privileges (peer: plain Docker defaults)",
         f"{med['seccomp']:.1f} ms", f"{med['plain']:.1f} ms", f"{med['seccomp'] / med['plain']:.2f}x"),
        ("bare runc start, user namespace (peer: plain)",
         f"{med['userns']:.1f} ms", f"{med['plain']:.1f} ms", f"{med['userns'] / med['plain']:.2f}x"),
        ("bare runc start, user namespace + seccomp + nnp: Seabox's runc (target <= 1.2x; peer: plain)",
         f"{med['both']:.1f} ms", f"{med['plain']:.1f} ms", f"{med['both'] / med['plain']:.2f}x"),
        (f"host memory per idle gvisor container, {GVISOR_IDLE} containers (peer: runc's per container)",
         f"{gvisor_memory:.2f} MiB", f"{per_container:.2f} MiB", f"{gvisor_memory / per_container:.1f}x"),
    ]
    table_md = markdown_table(rows)
    print(table_md)
    write_section("runtime", (
        f"Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `make bench` "
        f"({STARTS} starts, {IDLE} idle containers) on a 2-core, 24 GiB machine.\n\n"
        + table_md
        + "\nStart latency is measured from the HTTP request to the API's answer, which comes after "
        "`runc start` returned (the process is running). The peer is `runc run -d` of a bundle unpacked "
        "from the same busybox image, timed the same way, in the same run. The Docker row times the "
        "whole `docker` command (Go client, Docker API, attach, wait, auto-remove) against the whole "
        "`seabox` command (Python client, native API), each run from a shell. Memory is the proportional "
        "set size (PSS) of every conmon plus the server's PSS growth, divided by the container count; "
        "the containers' own processes are the tenant's and are not counted; for gVisor the sandbox "
        "(the Sentry, which holds the tenant's memory too) and gofer are counted, so the row is an upper "
        "bound of its overhead. The hardening rows run bare `runc run -d` with Seabox's own config.json "
        "in four variants, interleaved, so the ratio isolates the cost of each layer.\n"
    ))


FIGURES: dict[str, Callable[[], None]] = {"runtime": runtime, "scheduler": scheduler.main, "billing": billing.main, "cli": cli.main, "cp": cp.main,
                                     "cluster": cluster.main,
                                     "overlay": overlay.main, "fip": fip.main,
                                     "dns": resolver.main, "service": service.main, "func": func.main,
                                     "update": update.main}


def main(argv: list[str]) -> None:
    unknown = [name for name in argv if name not in FIGURES]
    if unknown:
        sys.exit(f"unknown figure {', '.join(unknown)}: use one or more of {', '.join(FIGURES)}")
    for name in argv or FIGURES:
        FIGURES[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
