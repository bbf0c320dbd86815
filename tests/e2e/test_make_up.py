"""`make up` (`seabox admin up`) on a machine with no registry: the tenant gets a local busybox, and the README's
first `seabox run` works with it; a second `up` changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.server import SEABOX, free_port, node_config, teardown_node

pytestmark = pytest.mark.root
NO_REGISTRY = "127.0.0.1:1"  # nothing listens there: a pull would fail


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="seabox-up-"))
    table = f"seabox_up_{os.getpid()}"
    (path / "config.toml").write_text(node_config(table, NO_REGISTRY))
    try:
        yield path
    finally:
        try:
            subprocess.run([*SEABOX, "admin", "down", "--data-dir", str(path)], capture_output=True, timeout=60)
        finally:
            teardown_node(path, table)
            shutil.rmtree(path, ignore_errors=True)


def up(data_dir: Path, listen: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*SEABOX, "admin", "up", "--data-dir", str(data_dir), "--listen", listen],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_up_offers_a_local_busybox_and_the_first_run_works_offline(data_dir: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    first = up(data_dir, listen)
    assert "imported busybox:latest" in first.stdout
    env = {**os.environ, "SEABOX_URL": f"http://{listen}", "SEABOX_API_KEY": first.stdout.split()[-1], "NO_COLOR": "1"}
    env.pop("SEABOX_CONFIG", None)
    run = subprocess.run([*SEABOX, "run", "--rm", "busybox", "echo", "hello"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert (run.returncode, run.stdout) == (0, "hello\n"), run.stderr
    again = up(data_dir, listen)
    assert "imported" not in again.stdout and again.stderr == ""
    images = subprocess.run([*SEABOX, "images"], env=env, capture_output=True, text=True, timeout=60).stdout
    assert [line.split()[:2] for line in images.splitlines()[1:]] == [["busybox", "latest"]]
