"""mTLS: a client certificate whose CN names a tenant is a complete credential for the docker CLI and SDK."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from seabox.tls import CA, create_ca, issue
from tests.e2e.docker_fixtures import Terminal, pull, unique
from tests.fixtures.server import SEABOX, Server, free_port, node_config, teardown_node


@pytest.fixture(scope="module")
def tls_server(registry: str) -> Iterator[tuple[Server, int]]:
    """A second server with the TLS listener on (and the test registry, for the containers of the detach test)."""
    data_dir = Path(tempfile.mkdtemp(prefix="seabox-tls-"))
    table = f"seabox_tls_{os.getpid()}"
    tls_port = free_port()
    (data_dir / "config.toml").write_text(node_config(table, registry))
    subprocess.run([*SEABOX, "admin", "tls", "init", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                    "--listen", f"127.0.0.1:{tls_port}"], check=True, capture_output=True)
    srv = Server(data_dir, free_port(), registry)
    try:
        srv.start()
        yield srv, tls_port
    finally:
        srv.stop()
        teardown_node(data_dir, table)
        shutil.rmtree(data_dir, ignore_errors=True)


def cert_dir(server: Server, tenant: str) -> Path:
    out = server.data_dir / "certs" / tenant
    server.tenant(tenant)
    subprocess.run([*SEABOX, "admin", "tenant", "cert", tenant, "--out", str(out), "--data-dir", str(server.data_dir)],
                   check=True, capture_output=True)
    return out


def tls_env(port: int, certs: Path) -> dict[str, str]:
    """The docker CLI's environment for the TLS listener on PORT with the client certificate in CERTS (no key)."""
    return {"PATH": os.environ["PATH"], "HOME": str(certs), "DOCKER_HOST": f"tcp://127.0.0.1:{port}",
            "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs), "DOCKER_CONFIG": str(certs / "empty-config")}


def docker_cli(port: int, certs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=tls_env(port, certs), capture_output=True, text=True, timeout=30)


def test_docker_cli_with_a_client_certificate_and_no_key(tls_server: tuple[Server, int]) -> None:
    server, port = tls_server
    certs = cert_dir(server, "certco")
    assert docker_cli(port, certs, "volume", "create", "tls-vol").returncode == 0
    r = docker_cli(port, certs, "volume", "ls", "-q")
    assert r.returncode == 0 and r.stdout.split() == ["tls-vol"], r.stderr
    # another tenant's certificate sees nothing of certco's
    other = cert_dir(server, "otherco")
    assert docker_cli(port, other, "volume", "ls", "-q").stdout.split() == []


def test_unknown_cn_and_foreign_ca_are_refused(tls_server: tuple[Server, int], tmp_path: Path) -> None:
    server, port = tls_server
    stranger = tmp_path / "stranger"
    ca = CA(server.data_dir / "tls" / "ca.pem", server.data_dir / "tls" / "ca-key.pem")
    issue(ca, "no-such-tenant", stranger / "cert.pem", stranger / "key.pem")
    shutil.copyfile(ca.cert, stranger / "ca.pem")
    r = docker_cli(port, stranger, "ps")
    assert r.returncode != 0 and "names no tenant" in r.stderr
    foreign_ca = create_ca(tmp_path / "foreign")
    foreign = tmp_path / "foreign-client"
    issue(foreign_ca, "certco", foreign / "cert.pem", foreign / "key.pem")
    shutil.copyfile(ca.cert, foreign / "ca.pem")  # trusts the server, but the server does not trust it
    r = docker_cli(port, foreign, "ps")
    assert r.returncode != 0


def test_docker_sdk_with_tls_config(tls_server: tuple[Server, int], monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE (set on some machines) override the session's CA: drop it
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    server, port = tls_server
    certs = cert_dir(server, "sdkco")
    tls = docker.tls.TLSConfig(client_cert=(str(certs / "cert.pem"), str(certs / "key.pem")),
                               ca_cert=str(certs / "ca.pem"), verify=True)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=tls, version="1.45")
    try:
        client.volumes.create("sdk-vol")
        assert [v.name for v in client.volumes.list()] == ["sdk-vol"]
        assert client.ping()
    finally:
        client.close()


def test_detach_keys_over_tls_end_the_cli_at_once(tls_server: tuple[Server, int], busybox_image: str) -> None:
    """Over TLS the docker CLI itself ends on the detach keys (it prints `read escape sequence`), for attach
    and exec: the container and the exec's process run on. (Over plain TCP the CLI misses its own escape:
    see tests/e2e/test_docker_streams.py.)"""
    server, port = tls_server
    certs = cert_dir(server, "detachco")
    pull(server, "detachco", busybox_image)
    name = unique("tlsattach")
    try:
        r = docker_cli(port, certs, "run", "-dit", "--name", name, busybox_image, "sh")
        assert r.returncode == 0, r.stderr
        for argv, typed in ((["attach", name], b"\x10\x11"), (["attach", "--detach-keys", "ctrl-a,b", name], b"\x01b"),
                            (["exec", "-it", name, "sh"], b"\x10\x11")):
            term = Terminal(["docker", *argv], tls_env(port, certs), 24, 80)
            try:
                assert term.detach(typed, b"read escape sequence") < 2
                # the CLI 28 returns the escape as its error, as against Docker: printed, exit status 1
                assert term.wait(5) == 1, term.output
            finally:
                term.close()
            r = docker_cli(port, certs, "inspect", "-f", "{{.State.Running}}", name)
            assert r.stdout == "true\n", (argv, r.stdout, r.stderr)
        top = docker_cli(port, certs, "top", name).stdout.splitlines()
        assert sum(line.split()[-1] == "sh" for line in top[1:]) == 2, top  # the detached exec's shell runs on
    finally:
        docker_cli(port, certs, "rm", "-f", name)
