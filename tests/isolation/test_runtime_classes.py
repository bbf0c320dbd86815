"""Runtime classes and Docker's hardening options as tenants use them: the CLI, the docker CLI and the admin's settings."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seabox.model.runtime import RUNTIME_CLASSES
from tests.e2e.docker_fixtures import DockerCli, cleaned, docker_config, pull
from tests.fixtures.server import SEABOX, Server

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: containers"),
]

CAP_NET_RAW = 1 << 13
CAP_CHOWN = 1 << 0


def admin(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEABOX, "admin", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture
def dcli(server: Server, tmp_path: Path) -> Iterator[DockerCli]:
    with cleaned(server, "hardening"):
        yield DockerCli(server, "hardening", docker_config(server, "hardening", tmp_path))


@pytest.mark.parametrize("runtime", RUNTIME_CLASSES)
def test_run_in_each_class_and_inspect_shows_it(server: Server, busybox_image: str, runtime: str) -> None:
    r = server.cli("run", "--rm", "--runtime", runtime, busybox_image, "cat", "/proc/version", tenant="classes")
    assert r.returncode == 0, r.stderr
    # gVisor's Sentry presents its own kernel version; runc shows the host's
    assert ("4.4.0" in r.stdout) == (runtime == "gvisor"), r.stdout
    cid = server.cli("run", "-d", "--runtime", runtime, busybox_image, "sleep", "60", tenant="classes").stdout.strip()
    shown = json.loads(server.cli("inspect", cid, tenant="classes").stdout)
    assert shown[0]["spec"]["runtime_class"] == runtime
    assert server.cli("rm", "-f", cid, tenant="classes").returncode == 0


def test_an_unknown_class_is_a_clear_error(server: Server, busybox_image: str) -> None:
    r = server.cli("run", "--rm", "--runtime", "kata", busybox_image, "true", tenant="classes")
    assert r.returncode == 1 and "runtime" in r.stderr and "gvisor" in r.stderr


def test_the_operator_sets_a_tenants_default_and_allowed_classes(server: Server, busybox_image: str) -> None:
    server.tenant("sandboxed")
    refused = admin(server, "tenant", "set", "sandboxed", "--allowed-runtimes", "gvisor")
    assert refused.returncode == 1 and "--default-runtime" in refused.stderr
    done = admin(server, "tenant", "set", "sandboxed", "--default-runtime", "gvisor", "--allowed-runtimes", "gvisor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gvisor" in admin(server, "tenant", "ls").stdout
    r = server.cli("run", "--rm", busybox_image, "cat", "/proc/version", tenant="sandboxed")
    assert r.returncode == 0 and "4.4.0" in r.stdout, r.stdout + r.stderr
    r = server.cli("run", "--rm", "--runtime", "runc", busybox_image, "true", tenant="sandboxed")
    assert r.returncode == 1 and "not allowed for tenant sandboxed" in r.stderr and "gvisor" in r.stderr
    assert admin(server, "tenant", "set", "sandboxed", "--default-runtime", "", "--allowed-runtimes", "").returncode == 0


def test_docker_hardening_options_are_honoured(dcli: DockerCli, busybox_image: str) -> None:
    pull(dcli.server, dcli.tenant, busybox_image)
    script = (
        "grep CapEff /proc/self/status; ulimit -n; ulimit -Hn; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null; "
        "touch /written && echo writable || echo read-only; grep NoNewPrivs /proc/self/status"
    )
    r = dcli(
        "run", "--rm", "--cap-drop", "NET_RAW", "--cap-drop", "chown", "--read-only", "--ulimit", "nofile=1024:2048",
        "--pids-limit", "50", "--security-opt", "no-new-privileges", busybox_image, "sh", "-c", script,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cap_line, soft, hard, pids, written, nnp = r.stdout.split("\n")[:6]
    caps = int(cap_line.split()[1], 16)
    assert not caps & CAP_NET_RAW and not caps & CAP_CHOWN and caps
    assert (soft, hard, pids, written) == ("1024", "2048", "50", "read-only")
    assert nnp.split()[1] == "1"


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--security-opt", "seccomp=unconfined"], "--security-opt seccomp=unconfined"),
        (["--security-opt", "no-new-privileges=false"], "no-new-privileges"),
        (["--security-opt", "apparmor=unconfined"], "--security-opt apparmor=unconfined"),
        (["--runtime", "kata"], "runtime"),
        (["--cap-drop", "SYS_ADMIN"], "SYS_ADMIN"),
        (["--ulimit", "nofile=10:5"], "ulimit"),
    ],
)
def test_options_that_would_weaken_or_cannot_be_honoured_are_refused(
    dcli: DockerCli, busybox_image: str, flags: list[str], named: str
) -> None:
    pull(dcli.server, dcli.tenant, busybox_image)
    r = dcli("run", "--rm", *flags, busybox_image, "true")
    assert r.returncode != 0 and named in r.stderr, r.stderr
    assert dcli.lines("ps", "-aq") == []


@pytest.mark.parametrize("runtime", RUNTIME_CLASSES)
def test_a_terminal_exec_is_a_terminal_that_resizes_and_takes_ctrl_c(
    dcli: DockerCli, busybox_image: str, runtime: str
) -> None:
    pull(dcli.server, dcli.tenant, busybox_image)
    cid = dcli.ok("run", "-d", "--runtime", runtime, busybox_image, "sleep", "60").strip()
    script = (
        "trap 'echo got-int; exit 3' INT; trap 'echo size $(stty size)' WINCH; "
        "test -t 0 && test -t 1 && echo tty-in-out $TERM; echo ready; sleep 30 & while sleep 1; do :; done"
    )
    term = dcli.terminal("exec", "-it", cid, "sh", "-c", script, rows=30, cols=100)
    try:
        assert b"tty-in-out xterm\r\n" in term.read_until(b"ready\r\n")
        # the docker CLI sends its terminal's size at the start (runc may apply it after the process
        # started: Docker's race too), then again on every SIGWINCH
        term.resize(40, 120)
        term.read_until(b"size 40 120\r\n")
        term.type(b"\x03")  # the CLI's terminal is raw: ^C travels as a byte and becomes SIGINT in there
        term.read_until(b"got-int")
        assert term.wait(timeout=10) == 3, term.output  # though `sleep 30 &` still holds the terminal
        assert b"\r\r\n" not in term.output  # one terminal translates newlines, not two
    finally:
        term.close()
    r = dcli("exec", "-u", "nobody", cid, "sh", "-c", "id -u; echo err >&2")  # without -t: separate streams
    assert (r.returncode, r.stdout, r.stderr) == (0, "65534\n", "err\n")


@pytest.mark.parametrize("runtime", RUNTIME_CLASSES)
def test_a_native_terminal_exec_has_the_callers_width(server: Server, busybox_image: str, runtime: str) -> None:
    cid = server.cli("run", "-d", "--runtime", runtime, busybox_image, "sleep", "60", tenant="classes").stdout.strip()
    try:
        # COLUMNS=200 in the CLI's environment is its terminal's width; runc may size its terminal just
        # after the process started (Docker's race too): until then busybox's `stty size` prints an
        # error, nothing on stdout, and still exits 0
        script = "test -t 0 && test -t 1 && until s=$(stty size 2>/dev/null) && [ -n \"$s\" ]; do sleep 0.05; done; echo $s; exit 6"
        r = server.cli("exec", "-t", cid, "sh", "-c", script, tenant="classes")
        assert r.returncode == 6 and r.stdout.endswith(" 200\n"), (r.stdout, r.stderr)  # text mode: \r\n read as \n
        r = server.cli("exec", cid, "sh", "-c", "test -t 1 || echo no-tty", tenant="classes")
        assert (r.returncode, r.stdout) == (0, "no-tty\n"), r.stderr
    finally:
        server.cli("rm", "-f", cid, tenant="classes")
