"""Two nodes on one host: a `make up` server (started, used, stopped) and another server with its own
data dir; the second one's tenant networks work and the first one's links stay as they were."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
from pyroute2 import IPRoute

from seabox.config import load_config
from seabox.node.identity import net_names
from seabox.node.network import links
from tests.e2e.test_api import pull, run, wait
from tests.e2e.test_network import SERVE, fetch
from tests.fixtures.server import SEABOX, free_port, own_server, teardown_node


def test_make_up_use_and_down_then_another_server_runs_the_same_tenant_index(registry: str, busybox_image: str) -> None:
    up_dir = Path(tempfile.mkdtemp(prefix="seabox-up-"))
    (up_dir / "config.toml").write_text(f'[registries]\ninsecure = ["{registry}"]\nallow_internal = ["{registry}"]\n')
    try:
        listen = f"127.0.0.1:{free_port()}"
        up = [*SEABOX, "admin", "up", "--data-dir", str(up_dir), "--listen", listen]
        key = subprocess.run(up, capture_output=True, text=True, check=True, timeout=90).stdout.strip().splitlines()[-1]
        with httpx.Client(base_url=f"http://{listen}", headers={"X-Api-Key": key}, timeout=60) as first:
            pull(first, busybox_image)
            hello = run(first, busybox_image, ["echo", "hello"])  # tenant "default", index 1
            assert wait(first, hello["id"]) == 0
            assert first.delete(f"/v1/containers/{hello['id']}").status_code == 204
        subprocess.run([*SEABOX, "admin", "down", "--data-dir", str(up_dir)], check=True, capture_output=True)
        left = net_names(up_dir)
        with IPRoute() as ipr:
            assert links.lookup(ipr, left.bridge(1)) is not None  # what the stopped node leaves on the host

        with own_server(registry, "second") as srv:
            with httpx.Client(base_url=srv.url, headers={"X-Api-Key": srv.tenant("alice")}, timeout=60) as alice:
                pull(alice, busybox_image)
                web = run(alice, busybox_image, SERVE, name="web")  # alice is this cloud's tenant 1
                assert fetch(alice, busybox_image, web["status"]["ip"]) == (0, "hello-from-web\n")
                assert fetch(alice, busybox_image, "web") == (0, "hello-from-web\n")
                own = net_names(srv.data_dir, load_config(srv.data_dir).network.nft_table)
                assert own.bridge(1) != left.bridge(1) and own.table != left.table
                with IPRoute() as ipr:
                    bridge = links.lookup(ipr, own.bridge(1))
                    assert bridge is not None and bridge.get("ifalias") == own.link_tag
                    assert links.lookup(ipr, left.bridge(1)).get("ifalias") == left.link_tag
                alice.delete(f"/v1/containers/{web['id']}", params={"force": "true"})
    finally:
        subprocess.run([*SEABOX, "admin", "down", "--data-dir", str(up_dir)], capture_output=True)
        teardown_node(up_dir)
        shutil.rmtree(up_dir, ignore_errors=True)
