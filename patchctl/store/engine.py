"""The store's engine: URL checks, the connection set-up of each database, and migrations.

SQLite is the default (``sqlite:////var/lib/patchctl/patchctl.db``); PostgreSQL
(``postgresql://user:password@host/db``, driven by psycopg 3) serves several control nodes
sharing one store. :func:`open_engine` creates the parent directory of a SQLite file (and the file,
owner only) and, for SQLite, turns on WAL, ``busy_timeout`` and foreign keys on every connection;
:func:`migrate` brings the schema to the newest Alembic revision. On PostgreSQL concurrent openers
migrate one at a time under an advisory lock. A store already at the newest revision is answered
without importing Alembic.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from patchctl.errors import StoreError
from patchctl.store.dbapi import XACT_LOCK_SQL, Dialect
from patchctl.store.fastread import VERSIONS_DIR, head_revisions

if TYPE_CHECKING:
    from alembic.config import Config

# The Alembic script directory: env.py and versions/ (the revision files fastread reads too).
MIGRATIONS_DIR = VERSIONS_DIR.parent
BUSY_TIMEOUT_MS = 30_000
# SQLite's WAL is copied into the database (with an fsync) once it holds this many pages, not
# SQLite's default 1,000: a scan's transaction writes about 25 pages, and each checkpoint then
# copies the pages rewritten by many transactions once (10,000 fresh hosts: 5% less CPU and wall
# time). The WAL file grows to about 40 MB between checkpoints.
WAL_AUTOCHECKPOINT_PAGES = 10_000

# An execution option read by the SQLite "begin" hook: which BEGIN to emit.
BEGIN_OPTION = "patchctl_sqlite_begin"
# The pg_advisory_xact_lock key under which PostgreSQL openers migrate one at a time.
_MIGRATE_LOCK_NAME = "patchctl migrate"


def safe_url(url: str | URL) -> str:
    """``url`` as errors show it: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _is_postgresql(url: URL) -> bool:
    return url.get_backend_name() == "postgresql"


def _with_driver(url: URL) -> URL:
    """``postgresql://`` means psycopg 3 (SQLAlchemy alone would pick psycopg2, not installed)."""
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


def application_name() -> str:
    """How this process shows in ``pg_stat_activity`` (and so as the holder of a lock)."""
    return f"patchctl {socket.gethostname()} pid {os.getpid()}"[:63]


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database).expanduser()


def _install_sqlite_hooks(engine: Engine, *, wal: bool) -> None:
    """Pragmas on every new connection, and BEGIN issued by us (DEFERRED or IMMEDIATE)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event (below) emit BEGIN instead of the sqlite3 module,
        # which would otherwise begin lazily and never IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            if wal:
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
                cur.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the packaged migrations, without an ini file.

    Developers can use it to write a revision, e.g.
    ``command.revision(alembic_config(url), "add approvals", autogenerate=True)``.
    """
    from alembic.config import Config  # Alembic is imported only to migrate

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def open_engine(url: str) -> tuple[Engine, str]:
    """A SQLAlchemy engine for the store at ``url``, and the URL as errors show it.

    Raises StoreError naming the URL (password hidden) when it cannot be opened.
    """
    shown = safe_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {shown!r}: {exc}") from exc
    kwargs: dict[str, Any] = {}
    sqlite = _is_sqlite(parsed)
    db_file = sqlite_file(parsed) if sqlite else None
    parsed = _with_driver(parsed)
    if _is_postgresql(parsed):
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"application_name": application_name()}
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False}
        if db_file is not None:
            try:
                db_file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory of database {shown}: {exc}") from exc
            try:
                # Owner only (its -wal and -shm files take the same mode): the store holds the
                # fleet's inventory and state.
                os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot create database {shown}: {exc}") from exc
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot open database {shown}: {exc}") from exc
    if sqlite:
        _install_sqlite_hooks(engine, wal=db_file is not None)
    return engine, shown


def current_revisions(conn: Connection) -> set[str]:
    """The revisions in ``alembic_version``: empty for a new database."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return set()
    return {str(r[0]) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}


def migrate(engine: Engine, shown: str) -> None:
    """Bring the database of ``engine`` (``shown`` in errors) to the newest schema revision."""
    # The usual case, a store at the newest revision, is answered without Alembic (its import
    # alone costs every command a third of a second): the heads come from the revision files.
    try:
        with engine.connect() as conn:
            current = current_revisions(conn)
            conn.rollback()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {shown}: {exc}") from exc
    if current and current == head_revisions(VERSIONS_DIR):
        return
    from alembic import command  # imported only to migrate
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    cfg = alembic_config()
    try:
        script = ScriptDirectory.from_config(cfg)
        heads = set(script.get_heads())
        if current == heads:
            return
        for rev in current:
            try:
                script.get_revision(rev)
            except CommandError as exc:
                raise StoreError(
                    f"database {shown} is at schema revision {rev!r}, which this "
                    "patchctl does not know (was it written by a newer version?)"
                ) from exc
        with engine.connect() as conn:
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            if conn.dialect.name == "postgresql":
                # One opener migrates at a time (SQLite: BEGIN IMMEDIATE does it); the others
                # wait here, then find the schema current. Released at commit.
                conn.exec_driver_sql(Dialect(conn.dialect.name).sql(XACT_LOCK_SQL), (_MIGRATE_LOCK_NAME,))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
    except StoreError:
        raise
    except (SQLAlchemyError, CommandError, OSError) as exc:
        raise StoreError(f"cannot open database {shown}: {exc}") from exc
