"""`seabox admin`: operator commands that work on the data dir directly (tenants, keys, quotas, up/down)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from seabox.cli.command import CliError, Group, argument, flag, option
from seabox.defaults import DEFAULT_DATA_DIR, DEFAULT_LISTEN
from seabox.errors import InvalidArgument, SeaboxError, validation_error

if TYPE_CHECKING:
    from seabox.store.repo import Store

app = Group("admin", "Operator commands (run on the server host, as root).")
tenant_app = app.group("tenant", "Manage tenants and their API keys.")
quota_app = app.group("quota", "Tenants' quotas: the defaults are [quotas] in config.toml; set overrides them.")
tls_app = app.group("tls", "TLS and client certificates (mTLS) for the docker CLI and SDK.")
console = Console()
DATA_DIR_OPT = option("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                      help="The server's data dir (its config.toml names the database).")
TENANT = argument("TENANT", "The tenant's name.")


def _store(data_dir: Path) -> Store:
    """The store the server of DATA_DIR uses (database_url in its config.toml, else its SQLite file)."""
    # imported here: the config's models, SQLAlchemy and Alembic would slow every tenant command's start
    from seabox.config import load_config
    from seabox.store.db import open_engine
    from seabox.store.repo import Store

    try:
        return Store(open_engine(load_config(data_dir).db_url))
    except SeaboxError as exc:
        raise _fail(exc) from None


def _fail(exc: SeaboxError) -> CliError:
    """EXC as the command's failure: `error: MESSAGE`, exit 1."""
    return CliError(exc.message)


@tenant_app.command("create")
def tenant_create(name: str = TENANT, data_dir: Path = DATA_DIR_OPT) -> None:
    """Create a tenant; its API key is printed on the last line (shown once, stored hashed)."""
    from seabox.model.tenant import TenantCreate

    try:
        store = _store(data_dir)
        tenant = store.create_tenant(TenantCreate(name=name).name)
    except SeaboxError as exc:
        raise _fail(exc) from None
    except ValidationError as exc:
        raise _fail(validation_error(exc)) from None
    print(f"created tenant {tenant.name} ({tenant.id})")
    print(store.issue_key(tenant.id))


@tenant_app.command("key")
def tenant_key(name: str = TENANT, data_dir: Path = DATA_DIR_OPT) -> None:
    """Issue one more API key for an existing tenant (printed on the last line)."""
    try:
        store = _store(data_dir)
        print(store.issue_key(store.tenant_by_name(name).id))
    except SeaboxError as exc:
        raise _fail(exc) from None


@tenant_app.command("cert")
def tenant_cert(
    name: str = TENANT,
    out: Path = option("--out", type=Path, required=True,
                       help="Directory for ca.pem, cert.pem and key.pem (DOCKER_CERT_PATH layout)."),
    data_dir: Path = DATA_DIR_OPT,
) -> None:
    """Issue a client certificate whose CN is the tenant: the docker CLI's DOCKER_TLS_VERIFY=1 way in."""
    import shutil

    from seabox.tls import CA, issue

    try:
        _store(data_dir).tenant_by_name(name)
        ca = CA(data_dir / "tls" / "ca.pem", data_dir / "tls" / "ca-key.pem")
        if not ca.cert.exists():
            raise SeaboxError(f"no CA in {data_dir / 'tls'}: run `seabox admin tls init` first")
        out.mkdir(parents=True, exist_ok=True)
        issue(ca, name, out / "cert.pem", out / "key.pem")
        shutil.copyfile(ca.cert, out / "ca.pem")
    except SeaboxError as exc:
        raise _fail(exc) from None
    print(f"client certificate for tenant {name} in {out}; use it with:")
    print(f"  export DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={out} DOCKER_HOST=tcp://HOST:PORT")


@tls_app.command("init")
def tls_init(
    data_dir: Path = DATA_DIR_OPT,
    hosts: list[str] | None = option("--host", many=True, help="Names and IPs the server answers to; repeatable "
                                     "(default: 127.0.0.1 and localhost)."),
    listen: str = option("--listen", default="0.0.0.0:2376", help="HOST:PORT of the TLS listener."),
) -> None:
    """Create a CA and a server certificate under DATA_DIR/tls and enable the TLS listener with client certificates.

    Takes effect at the next start of the server. Tenants then get certificates with `admin tenant cert`.
    """
    from seabox.tls import create_ca, issue

    tls_dir = data_dir / "tls"
    host = hosts or ["127.0.0.1", "localhost"]
    try:
        ca = create_ca(tls_dir)
        issue(ca, host[0], tls_dir / "server.pem", tls_dir / "server-key.pem", server_names=host)
    except SeaboxError as exc:
        raise _fail(exc) from None
    config = data_dir / "config.toml"
    text = config.read_text() if config.exists() else ""
    if "[tls]" not in text:
        config.write_text(
            text
            + f'\n[tls]\nlisten = "{listen}"\ncert = "{tls_dir / "server.pem"}"\nkey = "{tls_dir / "server-key.pem"}"\n'
            + f'client_ca = "{ca.cert}"\n'
        )
    print(f"TLS ready in {tls_dir}; restart the server to listen on {listen} (see [tls] in {config})")


@tenant_app.command("set")
def tenant_set(
    name: str = TENANT,
    default_runtime: str | None = option(
        "--default-runtime", help="Runtime class the tenant's containers get unless they ask: runc or gvisor "
        "('' = the operator's default_runtime)."
    ),
    allowed_runtimes: str | None = option(
        "--allowed-runtimes", help="Comma-separated classes the tenant may use, e.g. gvisor "
        "('' = every class the operator allows)."
    ),
    data_dir: Path = DATA_DIR_OPT,
) -> None:
    """Set a tenant's runtime classes: its default and the ones it may choose (within [isolation] of config.toml)."""
    from seabox.config import load_config
    from seabox.model.tenant import TenantRuntimes

    try:
        store = _store(data_dir)
        tenant = store.tenant_by_name(name)
        default = tenant.default_runtime if default_runtime is None else (default_runtime or None)
        if allowed_runtimes is None:
            allowed = tenant.allowed_runtimes
        else:
            allowed = [r.strip() for r in allowed_runtimes.split(",") if r.strip()] or None
        settings = TenantRuntimes.model_validate({"default_runtime": default, "allowed_runtimes": allowed})
        operator = load_config(data_dir).isolation
        settings.check_against(operator.allowed_runtimes, operator.default_runtime)
        tenant = store.set_tenant_runtimes(tenant.id, settings.default_runtime, settings.allowed_runtimes)
    except SeaboxError as exc:
        raise _fail(exc) from None
    except ValidationError as exc:
        raise _fail(validation_error(exc)) from None
    print(
        f"tenant {tenant.name}: default runtime {tenant.default_runtime or operator.default_runtime}, "
        f"allowed {', '.join(tenant.allowed_runtimes or operator.allowed_runtimes)}"
    )


@app.command("metrics-token")
def metrics_token_cmd(
    data_dir: Path = DATA_DIR_OPT,
    rotate: bool = flag("--rotate", help="Replace the token (scrapers need the new one)."),
) -> None:
    """Print the operator's bearer token for GET /metrics, kept in DATA_DIR/metrics.token (mode 0600)."""
    from seabox.api.metrics import metrics_token

    print(metrics_token(data_dir, rotate))


@tenant_app.command("ls")
def tenant_ls(data_dir: Path = DATA_DIR_OPT) -> None:
    """List tenants with their runtime classes (- = the operator's defaults)."""
    table = Table("NAME", "ID", "NETWORK INDEX", "DEFAULT RUNTIME", "ALLOWED RUNTIMES", "CREATED", box=None)
    for t in _store(data_dir).list_tenants():
        table.add_row(
            t.name, t.id, str(t.index), t.default_runtime or "-", ",".join(t.allowed_runtimes or []) or "-",
            t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )  # fmt: skip
    console.print(table)


def _print_quotas(data_dir: Path, store: Store, tenant_name: str) -> None:
    from seabox.config import load_config
    from seabox.store.quotas import QuotaStore

    tenant = store.tenant_by_name(tenant_name)
    table = Table("QUOTA", "USED", "LIMIT", "SET", box=None)
    for q in QuotaStore(store.engine).usage(tenant.id, load_config(data_dir).quotas.defaults()):
        table.add_row(q.key, str(q.used), str(q.limit), "default" if q.default else "for this tenant")
    console.print(table)


@quota_app.command("show")
def quota_show(tenant: str = TENANT, data_dir: Path = DATA_DIR_OPT) -> None:
    """Show a tenant's quotas: each one's use and limit, and whether the limit is the default or set for it."""
    try:
        _print_quotas(data_dir, _store(data_dir), tenant)
    except SeaboxError as exc:
        raise _fail(exc) from None


@quota_app.command("set")
def quota_set(
    tenant: str = TENANT,
    values: list[str] = argument("KEY=N...", "New limits, e.g. containers=20 fips=4; KEY=default: the default of "
                                 "config.toml again.", many=True),
    data_dir: Path = DATA_DIR_OPT,
) -> None:
    """Set a tenant's quotas (all or none); what it holds already stays, new requests past a limit get a 403."""
    from seabox.model.quota import parse_quota_values
    from seabox.store.quotas import QuotaStore

    try:
        pairs: dict[str, str] = {}
        for item in values:
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidArgument(f"{item!r} is not KEY=N", field=key)
            pairs[key.strip()] = value
        limits = parse_quota_values(pairs)
        store = _store(data_dir)
        QuotaStore(store.engine).set(store.tenant_by_name(tenant).id, limits)
        _print_quotas(data_dir, store, tenant)
    except SeaboxError as exc:
        raise _fail(exc) from None


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_ping", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def offer_busybox(url: str, key: str) -> None:
    """Import a busybox image built from this host's busybox-static for the tenant of KEY unless it has one
    (the quick start's first `seabox run` then needs no registry)."""
    from seabox.cli.local_image import busybox_archive

    headers = {"X-Api-Key": key}
    try:
        urllib.request.urlopen(urllib.request.Request(url + "/v1/images/busybox", headers=headers), timeout=10).close()
        return
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    try:
        with busybox_archive() as archive, archive.open("rb") as f:
            request = urllib.request.Request(url + "/v1/images/import", data=f, method="POST", headers={
                **headers, "Content-Length": str(archive.stat().st_size)})
            urllib.request.urlopen(request, timeout=120).close()
    except SeaboxError as exc:
        print(f"no local busybox image: {exc.message}")
        return
    print("imported busybox:latest (built from this host's busybox-static)")


@app.command("up")
def up(
    data_dir: Path = DATA_DIR_OPT,
    listen: str = option("--listen", default=DEFAULT_LISTEN, help="HOST:PORT for the API."),
    tenant: str = option("--tenant", default="default", help="Tenant to create (if missing) and issue a key for."),
) -> None:
    """Start the embedded server in the background (if not running) and print its URL and a tenant key."""
    from seabox.config import load_config

    cfg = load_config(data_dir, listen=listen)
    host, port = cfg.host_port
    url = f"http://{host}:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not _ping(url):
        log = open(data_dir / "server.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "seabox.cli.main", "server", "--data-dir", str(data_dir), "--listen", listen],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        (data_dir / "server.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 60
        while not _ping(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise CliError(f"the server did not come up; see {data_dir / 'server.log'}")
            time.sleep(0.1)
    store = _store(data_dir)
    try:
        t = store.tenant_by_name(tenant)
    except SeaboxError:
        t = store.create_tenant(tenant)
    key = store.issue_key(t.id)
    offer_busybox(url, key)
    print(f"Seabox is up: {url}  (data dir {data_dir}, log {data_dir / 'server.log'})")
    bindir = Path(sys.executable).parent
    print(f"tenant {t.name}; use it with:")
    print(f"  export PATH={bindir}:$PATH")
    print(f"  export SEABOX_URL={url}")
    print(f"  export SEABOX_API_KEY={key}")
    print("  seabox run --rm busybox echo hello        # or, for the docker CLI: eval $(seabox docker-env)")
    print(key)


@app.command("down")
def down(data_dir: Path = DATA_DIR_OPT) -> None:
    """Stop the background server started by `admin up` (containers keep running)."""
    pidfile = data_dir / "server.pid"
    if not pidfile.exists():
        print("no server started by `seabox admin up` in this data dir")
        return
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    print("stopped")


def register(root: Group) -> None:
    # imported here: they use this module's helpers
    from seabox.cli.admin_billing import invoices_app, prices_app, spend_app, usage_app
    from seabox.cli.admin_nodes import node_app

    for group in (node_app, prices_app, invoices_app, spend_app, usage_app):
        app.add(group)
    root.add(app)
