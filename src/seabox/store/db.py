"""Opening the database: engine creation (SQLite WAL or PostgreSQL via psycopg 3) and Alembic migrations to head."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import ArgumentError, OperationalError

from seabox.errors import InvalidArgument, Unavailable
from seabox.store.dialect import one_writer_at_a_time

MIGRATIONS = Path(__file__).parent / "migrations"
# Seconds to wait for a PostgreSQL server before saying it cannot be reached.
CONNECT_TIMEOUT = 5
# Advisory lock keys (any constants): one server at a time migrates a shared PostgreSQL database.
MIGRATION_LOCK = 0x5EAB0C

# PostgreSQL connection pool of each server process.
POOL: dict[str, Any] = {
    "pool_size": 5,  # connections kept open
    "max_overflow": 10,  # and opened beyond that under a burst
    "pool_timeout": 10,  # seconds a request waits for a free connection
    "pool_recycle": 1800,  # reopen connections before firewalls and poolers drop idle ones
    "pool_pre_ping": True,  # a connection the server closed (restart, failover) is replaced, not used
    "connect_args": {"connect_timeout": CONNECT_TIMEOUT, "application_name": "seabox"},
}


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _private_sqlite_file(path: Path) -> None:
    """Create the database file (and fix an existing one) readable by root only: it holds tenants' secrets.

    SQLite gives its -wal and -shm files the mode of the database file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # never open an existing one: closing any descriptor of it drops the fcntl locks that this
        # process's SQLite connections hold on it, and another process may then delete the live WAL
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            os.chmod(file, 0o600)


def database_url(url: str) -> URL:
    """URL as SQLAlchemy opens it: sqlite:///PATH, or postgresql://USER@HOST:PORT/DB on the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidArgument(
            f"database_url: not a database URL: {url!r} (use sqlite:///PATH or postgresql://USER@HOST:PORT/DB)",
            field="database_url",
        ) from None
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite" and parsed.database:
        return parsed
    raise InvalidArgument(
        f"database_url: {parsed.render_as_string()!r} is neither sqlite:///PATH nor postgresql://USER@HOST:PORT/DB",
        field="database_url",
    )


def libpq_url(url: URL) -> str:
    """The libpq connection string of a PostgreSQL URL (what psycopg.connect takes)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _refuse_nul(_conn, _cursor, _statement, parameters, _context, executemany) -> None:  # type: ignore[no-untyped-def]
    """Refuse text holding a NUL character before it reaches the database, on both engines alike.

    PostgreSQL cannot store NUL in text (psycopg would fail the statement); SQLite would store it.
    JSON values arrive here already encoded, with NUL escaped, so they pass.
    """
    for params in parameters if executemany else [parameters]:
        values = params.values() if isinstance(params, dict) else params
        if any(isinstance(v, str) and "\x00" in v for v in values or ()):
            raise InvalidArgument("a name or reference contains a NUL character (\\0), which is never valid")


def _engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        _private_sqlite_file(Path(url.database or ""))
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, **POOL)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


@contextlib.contextmanager
def _one_sqlite_migrator(engine: Engine) -> Iterator[None]:
    """Hold an flock on the SQLite file's directory (not the file: see _private_sqlite_file)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    fd = os.open(Path(engine.url.database or "").resolve().parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def head_revision() -> str:
    """The newest revision: migrations are versions/NNNN_name.py, revision NNNN revising the one numbered before."""
    return max(path.name[:4] for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def _at_head(engine: Engine) -> bool:
    """Whether ENGINE's schema is already at the newest revision (then Alembic need not even be imported)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) == [head_revision()]


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade ENGINE's schema to REVISION (the newest by default).

    Processes starting together (servers, admin commands) take turns: one migrates, the others find it done.
    """
    # imported here: Alembic costs every admin command's start a third of a second, and is rarely needed
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _one_sqlite_migrator(engine), engine.begin() as conn:
        one_writer_at_a_time(conn, MIGRATION_LOCK)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _report_unreachable(engine: Engine, shown: str) -> None:
    """Make a PostgreSQL connection failure (at start or later) an Unavailable naming the database: a 503, not a 500."""

    def handle(context: ExceptionContext) -> BaseException | None:
        if context.is_pre_ping or not isinstance(context.sqlalchemy_exception, OperationalError):
            return None  # a failed pre-ping is answered by the pool with a new connection
        first_line = str(context.original_exception).strip().splitlines()
        return Unavailable(f"cannot reach the database {shown}: {first_line[0] if first_line else 'no answer'}")

    event.listen(engine, "handle_error", handle)


def open_engine(url: str) -> Engine:
    """An engine for URL with the schema migrated to the newest revision.

    A PostgreSQL database that cannot be reached raises Unavailable naming it (without its password).
    """
    engine = _engine(database_url(url))
    if engine.dialect.name == "postgresql":
        _report_unreachable(engine, make_url(url).render_as_string())  # as the operator wrote it, password hidden
    try:
        if not _at_head(engine):
            migrate(engine)
    except Unavailable:
        engine.dispose()
        raise
    return engine

