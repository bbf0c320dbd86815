"""`python -m bench func` (root): a cold stdio function call (one container per call) against `seabox run --rm`
of the same image, through one real server in the same run."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable

import httpx

from bench.results import report
from tests.fixtures.images import SERVE_CGI, built_busybox_layout, push_busybox
from tests.fixtures.registry import running_registry
from tests.fixtures.server import SEABOX, Server, own_server

CALLS = int(os.environ.get("BENCH_FUNC_CALLS", "30"))
HTTP_CALLS = int(os.environ.get("BENCH_FUNC_HTTP_CALLS", "200"))
CLI_RUNS = int(os.environ.get("BENCH_FUNC_CLI_RUNS", "10"))
Row = tuple[str, str, str, str]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cli(server: Server, argv: list[str]) -> list[float]:
    """Wall time of a whole `seabox` command, as a tenant would type it."""
    times = []
    for _ in range(CLI_RUNS):
        t0 = time.perf_counter()
        subprocess.run([*SEABOX, *argv], env=server.env("bench"), check=True, capture_output=True, timeout=120,
                       input=b"hello")
        times.append(time.perf_counter() - t0)
    return times


def stdio_rows(server: Server, client: httpx.Client, image: str) -> list[Row]:
    """Cold stdio calls (`cat` echoing the body) through the API and the CLI, against `seabox run --rm`."""
    r = client.post("/v1/funcs", json={"name": "bench-cat", "image": image, "cmd": ["cat"], "size": "s1"})
    r.raise_for_status()
    try:
        client.post("/v1/funcs/bench-cat/call", params={"sync": "1"}, content=b"warm-up").raise_for_status()
        api = []
        for i in range(CALLS):
            r = client.post("/v1/funcs/bench-cat/call", params={"sync": "1"}, content=f"call {i}".encode())
            assert r.status_code == 200 and r.content == f"call {i}".encode(), (r.status_code, r.text)
            api.append(r.elapsed.total_seconds())
        call_cli = _cli(server, ["func", "call", "--sync", "bench-cat", "--data", "-"])
        run_cli = _cli(server, ["run", "--rm", image, "cat"])
    finally:
        client.delete("/v1/funcs/bench-cat")
    a50, a95 = statistics.median(api) * 1000, pct(api, 0.95) * 1000
    c50, r50 = statistics.median(call_cli) * 1000, statistics.median(run_cli) * 1000
    return [
        ("cold stdio call p50, `POST /v1/funcs/NAME/call?sync=1` (target <= 250 ms on runc)",
         f"{a50:.0f} ms", "-", f"p95 {a95:.0f} ms"),
        ("`seabox func call --sync` vs `seabox run --rm` of the same image (`cat`), p50",
         f"{c50:.0f} ms", f"{r50:.0f} ms", f"{c50 / r50:.2f}x"),
    ]


def http_rows(server: Server, client: httpx.Client, image: str) -> list[Row]:
    """Warm http-mode calls through the API against direct requests to the same replica, interleaved."""
    r = client.post("/v1/funcs", json={"name": "bench-http", "image": image, "cmd": SERVE_CGI, "mode": "http",
                                       "size": "s1", "min_warm": 1})
    r.raise_for_status()
    try:
        client.post("/v1/funcs/bench-http/call", params={"sync": "1"}, content=b"warm-up").raise_for_status()
        (replica,) = [c for c in client.get("/v1/containers").json() if c["name"].startswith("bench-http-fn-")]
        api: list[float] = []
        own: list[float] = []
        with httpx.Client(base_url=f"http://{replica['status']['ip']}:8080", timeout=30) as direct:
            for i in range(HTTP_CALLS):
                body = f"call {i}".encode()
                r = client.post("/v1/funcs/bench-http/call", params={"sync": "1"}, content=body)
                assert r.status_code == 200 and r.content.endswith(body), (r.status_code, r.text)
                api.append(r.elapsed.total_seconds())
                d = direct.post("/", content=body)
                assert d.status_code == 200 and d.content.endswith(body), (d.status_code, d.text)
                own.append(d.elapsed.total_seconds())
    finally:
        client.delete("/v1/funcs/bench-http")
    a50, d50 = statistics.median(api) * 1000, statistics.median(own) * 1000
    return [
        ("warm http-mode call p50, `POST /v1/funcs/NAME/call?sync=1` vs a direct request to the same replica "
         "(target <= 20 ms over direct)", f"{a50:.1f} ms", f"{d50:.1f} ms",
         f"+{a50 - d50:.1f} ms (p95 {pct(api, 0.95) * 1000:.1f} vs {pct(own, 0.95) * 1000:.1f} ms)"),
    ]


FIGURES: list[Callable[[Server, httpx.Client, str], list[Row]]] = [stdio_rows, http_rows]


def main() -> None:
    with built_busybox_layout() as layout, running_registry() as registry:
        image = push_busybox(registry, layout)
        with own_server(registry, "benchfunc") as server:
            client = httpx.Client(base_url=server.url, headers={"X-Api-Key": server.tenant("bench")}, timeout=120)
            client.post("/v1/images/pull", json={"image": image}).raise_for_status()
            rows = [row for figure in FIGURES for row in figure(server, client, image)]
    report("func", rows, f"`python -m bench func` ({CALLS} stdio API calls, {CLI_RUNS} CLI runs each, {HTTP_CALLS} warm "
                         "http-mode calls and as many direct requests), on a 2-core machine.", (
        "One embedded server. A stdio call is cold by design: each call creates a container with its "
        "stdin open, attaches, starts it, writes the body, closes stdin, reads stdout to its end and "
        "removes the container; the API figure is the HTTP request's elapsed time as the client saw it. "
        "A warm http-mode call goes to a replica that is already up (busybox httpd with a CGI echoing the "
        "body): the server dials the replica's port through its node and forwards the call as one HTTP/1.1 "
        "request; the direct request is the same POST from the host to the replica's tenant address, "
        "interleaved with the API calls. "
        "The CLI row compares the whole `seabox func call --sync` command with the whole `seabox run --rm` "
        "command of the same image and command, both Python clients started from a shell.\n"
    ))
