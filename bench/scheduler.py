"""`python -m bench scheduler`: placements per second on simulated nodes, the indexed Cluster against place() over a list."""

from __future__ import annotations

import os
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime

from bench.results import markdown_table, write_section
from seabox.model.sizes import SIZES, GiB
from seabox.scheduler.cluster import Cluster
from seabox.scheduler.place import Placement, Refusal, place
from seabox.scheduler.snapshot import NodeState, NodeView, PlacementRequest

NODES = int(os.environ.get("BENCH_SCHED_NODES", "1000"))
CONTAINERS = int(os.environ.get("BENCH_SCHED_CONTAINERS", "20000"))
TENANTS = 500
SEED = 13
# (weight, memory GiB, CPUs) of a node; (weight, state) of a node; weight of each size among requests
MACHINES = [(40, 16, 8), (40, 32, 16), (20, 64, 32)]
STATES: list[tuple[int, NodeState]] = [(94, "ready"), (3, "cordoned"), (1, "draining"), (2, "down")]
SIZE_MIX = {"s1": 20, "s2": 20, "s3": 20, "s4": 15, "m1": 10, "m2": 7, "m3": 4, "l1": 2, "l2": 1.5, "l3": 0.5}
PINNED, AVOIDING = 0.05, 0.02  # shares of requests pinned to a node (a volume) and avoiding one (a lost copy)
RUNS = int(os.environ.get("BENCH_SCHED_RUNS", "5"))  # ours takes well under a second: the median of RUNS runs


def simulated_nodes(rng: random.Random) -> list[NodeView]:
    """NODES empty nodes of mixed sizes, a few of them cordoned, draining or down."""
    nodes = []
    for i in range(NODES):
        _, memory, cpus = rng.choices(MACHINES, weights=[m[0] for m in MACHINES])[0]
        state = rng.choices([s for _, s in STATES], weights=[w for w, _ in STATES])[0]
        nodes.append(NodeView(f"node-{i:04}", state, memory * GiB, cpus, 0, 0, {}))
    return nodes


def simulated_requests(rng: random.Random, nodes: list[NodeView]) -> list[PlacementRequest]:
    """CONTAINERS requests: tenants of Zipf-like sizes (the largest holds thousands), mostly small sizes."""
    tenants = [f"tenant-{k:03}" for k in range(TENANTS)]
    tenant_weights = [1 / (k + 1) ** 1.1 for k in range(TENANTS)]
    sizes = rng.choices(list(SIZE_MIX), weights=list(SIZE_MIX.values()), k=CONTAINERS)
    owners = rng.choices(tenants, weights=tenant_weights, k=CONTAINERS)
    requests = []
    for tenant, size in zip(owners, sizes):
        s, roll = SIZES[size], rng.random()
        required = rng.choice(nodes).name if roll < PINNED else None
        avoid = frozenset({rng.choice(nodes).name}) if PINNED <= roll < PINNED + AVOIDING else frozenset()
        requests.append(PlacementRequest(tenant, size, s.memory_bytes, s.cpus, required_node=required,
                                         avoid_nodes=avoid, pinned_by="volume data" if required else None))
    return requests


def indexed(nodes: list[NodeView], requests: list[PlacementRequest]) -> tuple[list[float], list[Placement | Refusal]]:
    """Seconds per placement (place + commit) with one Cluster, and each answer."""
    cluster = Cluster(nodes)
    times, answers = [], []
    clock = time.perf_counter
    for r in requests:
        t0 = clock()
        result = cluster.place(r)
        if isinstance(result, Placement):
            cluster.commit(result.node, r)
        times.append(clock() - t0)
        answers.append(result)
    return times, answers


def scanned(nodes: list[NodeView], requests: list[PlacementRequest], expected: list[Placement | Refusal]) -> list[float]:
    """Seconds per `place()` over a list of views kept current (updating the list is not timed); checks each answer."""
    views, index = list(nodes), {n.name: i for i, n in enumerate(nodes)}
    times = []
    clock = time.perf_counter
    for r, answer in zip(requests, expected):
        t0 = clock()
        result = place(views, r)
        times.append(clock() - t0)
        assert result == answer, (r, result, answer)
        if isinstance(result, Placement):
            i = index[result.node]
            v = views[i]
            tenants = dict(v.tenant_containers)
            tenants[r.tenant_id] = tenants.get(r.tenant_id, 0) + 1
            views[i] = replace(v, memory_allocated=v.memory_allocated + r.memory_bytes, containers=v.containers + 1,
                               tenant_containers=tenants)
    return times


def main() -> None:
    rng = random.Random(SEED)
    nodes = simulated_nodes(rng)
    requests = simulated_requests(rng, nodes)
    runs = sorted((indexed(nodes, requests) for _ in range(RUNS)), key=lambda run: sum(run[0]))
    ours, answers = runs[len(runs) // 2]
    assert all(run[1] == answers for run in runs)
    peer = scanned(nodes, requests, answers)
    placed = sum(isinstance(a, Placement) for a in answers)
    pinned_refused = sum(isinstance(a, Refusal) and r.required_node is not None for r, a in zip(requests, answers))
    rate, peer_rate = len(ours) / sum(ours), len(peer) / sum(peer)
    us = {name: (statistics.median(t) * 1e6, statistics.quantiles(t, n=100)[98] * 1e6)
          for name, t in (("ours", ours), ("peer", peer))}
    label = f"{NODES:,} nodes, {CONTAINERS:,} requests"
    rows = [
        (f"scheduler placements/s, {label} (target >= 2,000/s; peer: `place()` over a list)",
         f"{rate:,.0f}/s", f"{peer_rate:,.0f}/s", f"{rate / peer_rate:.1f}x"),
        ("scheduler time per placement, p50 (ours: Cluster place + commit; peer: `place()`)",
         f"{us['ours'][0]:.1f} µs", f"{us['peer'][0]:.1f} µs", f"{us['ours'][0] / us['peer'][0]:.2f}x"),
        ("scheduler time per placement, p99 (same)",
         f"{us['ours'][1]:.1f} µs", f"{us['peer'][1]:.1f} µs", f"{us['ours'][1] / us['peer'][1]:.2f}x"),
    ]
    table_md = markdown_table(rows)
    print(table_md)
    ready = sum(n.state == "ready" for n in nodes)
    write_section("scheduler", (
        f"## Scheduler\n\nLatest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench scheduler` "
        f"(one process, one thread, no root; ours: the median of {RUNS} runs) on a 2-core machine shared "
        "with other work.\n\n"
        + table_md
        + f"\n{NODES:,} simulated nodes (16, 32 or 64 GiB; {ready} ready, the rest cordoned, draining or down) "
        f"receive {CONTAINERS:,} placement requests one after another (seed {SEED}): {TENANTS} tenants whose "
        "shares follow a Zipf-like curve (the largest holds thousands of containers, more than there are "
        f"nodes), sizes s1 to l3 weighted towards the small ones, {PINNED:.0%} pinned to a node by a volume "
        f"and {AVOIDING:.0%} avoiding a node. {placed:,} were placed and {len(answers) - placed:,} refused "
        f"({pinned_refused:,} of them pinned to a node that was not ready or had too little memory free). "
        "Ours is `Cluster.place` plus `commit` on a placement; the peer is the pure `place()` scanning the whole list of node views for the same request, with the list "
        "kept current between requests outside the timing. Every answer of the peer is checked to be the "
        "same as ours.\n"
    ))


if __name__ == "__main__":
    main()
