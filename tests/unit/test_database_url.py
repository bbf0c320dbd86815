"""database_url from config.toml and --database-url: the admin commands and the server open the database it names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from seabox.errors import InvalidArgument, Unavailable
from seabox.store.db import database_url, open_engine
from seabox.store.repo import Store

from tests.fixtures.postgres import Cluster
from tests.fixtures.server import free_port
from tests.unit.test_cli import cli


def test_postgresql_urls_use_psycopg_3_and_other_schemes_are_refused() -> None:
    assert database_url("postgresql://seabox@db.example:5433/cloud").drivername == "postgresql+psycopg"
    assert database_url("postgres://u:pw@h/d").render_as_string() == "postgresql+psycopg://u:***@h/d"
    assert database_url("sqlite:////var/lib/seabox/seabox.db").database == "/var/lib/seabox/seabox.db"
    for bad in ("mysql://u@h/d", "not a url", "sqlite://"):
        with pytest.raises(InvalidArgument, match="database_url"):
            database_url(bad)


def test_admin_commands_use_the_database_named_in_config_toml(tmp_path: Path, pg_database: str) -> None:
    (tmp_path / "config.toml").write_text(f'database_url = "{pg_database}"\n')
    result = cli("admin", "tenant", "create", "acme", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert Store(open_engine(pg_database)).tenant_for_key(key).name == "acme"  # type: ignore[union-attr]
    assert not (tmp_path / "seabox.db").exists()


@pytest.mark.parametrize("command", [["admin", "tenant", "ls"], ["server", "--listen", "127.0.0.1:1"]])
def test_an_unreachable_database_is_a_clear_error_without_the_password(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql://seabox:hunter2@127.0.0.1:{free_port()}/cloud"
    if command[0] == "server":
        command = [*command, "--database-url", url]
    else:
        (tmp_path / "config.toml").write_text(f'database_url = "{url}"\n')
    result = cli(*command, "--data-dir", str(tmp_path))
    output = " ".join(result.output.split())  # unwrapped
    assert result.exit_code == 1
    assert "cannot reach the database postgresql://seabox:***@127.0.0.1" in output and "Connection refused" in output
    assert "hunter2" not in output and "Traceback" not in output


def test_a_database_that_goes_away_while_serving_is_unavailable_not_an_internal_error(pg_cluster: Cluster) -> None:
    url = pg_cluster.create_database()
    store = Store(open_engine(url))
    store.create_tenant("acme")
    pg_cluster.drop_database(url)  # its connections are closed, and it cannot be connected to again
    with pytest.raises(Unavailable, match="cannot reach the database postgresql://seabox@127.0.0.1") as caught:
        store.list_tenants()
    assert caught.value.status == 503


def test_a_server_sees_every_tenant_that_admin_commands_create_meanwhile(tmp_path: Path) -> None:
    server = Store(open_engine(f"sqlite:///{tmp_path / 'seabox.db'}"))  # open, as a running server's is
    for name in ("a", "b", "c"):
        created = subprocess.run([sys.executable, "-m", "seabox.cli.main", "admin", "tenant", "create", name,
                                  "--data-dir", str(tmp_path)], capture_output=True, text=True)
        assert created.returncode == 0, created.stderr
        assert server.tenant_for_key(created.stdout.strip().splitlines()[-1]) is not None, name
