"""The store's engine: URL checks, the connection set-up of each database, and migrations.

SQLite is the default (``sqlite:////var/lib/patchctl/patchctl.db``); PostgreSQL
(``postgresql://user:password@host/db``, driven by psycopg 3) serves several control nodes
sharing one store. :func:`open_engine` creates a SQLite file (owner only) when asked to create
(its parent directory too when that lies in ``PATCHCTL_HOME``; elsewhere a missing directory is an
error naming it) and, for SQLite, turns on WAL, ``busy_timeout`` and foreign keys on every
connection; :func:`migrate` brings the schema to the newest Alembic revision. On PostgreSQL
concurrent openers migrate one at a time under an advisory lock. :func:`require_current` is the
check of the commands that only read: the store must exist and be at the newest revision, and
nothing is created or migrated. A store already at the newest revision is answered without
importing Alembic.
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

from patchctl import paths
from patchctl.errors import StoreError, StoreMissing, StoreOutdated
from patchctl.store.dbapi import XACT_LOCK_SQL, Dialect
from patchctl.store.fastread import VERSIONS_DIR, head_revisions

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

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


def _install_sqlite_hooks(engine: Engine, *, wal: bool, set_journal: bool) -> None:
    """Pragmas on every new connection, and BEGIN issued by us (DEFERRED or IMMEDIATE).

    ``set_journal``: switch the file to WAL (a setting kept in the file). Only an opener that may
    create the store does: on a file that is not a store yet (an empty file) it would write one.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event (below) emit BEGIN instead of the sqlite3 module,
        # which would otherwise begin lazily and never IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            if wal and set_journal:
                cur.execute("PRAGMA journal_mode = WAL")
            if wal:
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


def _in_home(directory: Path) -> bool:
    """Whether ``directory`` is ``PATCHCTL_HOME`` or lies under it (where patchctl may make
    directories unasked)."""
    return directory.resolve().is_relative_to(paths.home().resolve())


def _create_sqlite_file(db_file: Path, shown: str) -> None:
    """The store's SQLite file, owner only; its directory too when that lies in PATCHCTL_HOME."""
    parent = db_file.parent
    if not parent.is_dir():
        if parent.exists() or not _in_home(parent):
            raise StoreError(
                f"cannot create the store {shown}: no directory {parent} (create it, or check --db / PATCHCTL_DB)"
            )
        try:
            parent.mkdir(parents=True, exist_ok=True)
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


def open_engine(url: str, *, create: bool = True) -> tuple[Engine, str]:
    """A SQLAlchemy engine for the store at ``url``, and the URL as errors show it.

    ``create``: a SQLite file that does not exist is created (see :func:`_create_sqlite_file`);
    without it, StoreMissing, and nothing is written. Raises StoreError naming the URL (password
    hidden) when it cannot be opened.
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
            if create:
                _create_sqlite_file(db_file, shown)
            elif not db_file.is_file():
                # sqlite3 would create it on the first connection.
                raise StoreMissing(shown)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot open database {shown}: {exc}") from exc
    if sqlite:
        _install_sqlite_hooks(engine, wal=db_file is not None, set_journal=create)
    return engine, shown


def current_revisions(conn: Connection) -> set[str]:
    """The revisions in ``alembic_version``: empty for a new database."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return set()
    return {str(r[0]) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}


def _read_revisions(engine: Engine, shown: str) -> set[str]:
    try:
        with engine.connect() as conn:
            current = current_revisions(conn)
            conn.rollback()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {shown}: {exc}") from exc
    return current


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory  # imported only for a store not at the newest revision

    return ScriptDirectory.from_config(alembic_config())


def _check_known(script: ScriptDirectory, current: set[str], shown: str) -> None:
    """StoreError when the database is at a revision this patchctl has no file of."""
    from alembic.util import CommandError

    for rev in current:
        try:
            script.get_revision(rev)
        except CommandError as exc:
            raise StoreError(
                f"database {shown} is at schema revision {rev!r}, which this "
                "patchctl does not know (was it written by a newer version?)"
            ) from exc


def require_current(engine: Engine, shown: str) -> str:
    """The revision of a store that exists and is at the newest revision; otherwise StoreMissing
    (no ``alembic_version``: nothing was ever created there) or StoreOutdated naming the pending
    migrations. Nothing is created or migrated. Alembic is imported only when not current."""
    current = _read_revisions(engine, shown)
    if not current:
        raise StoreMissing(shown)
    shown_current = ", ".join(sorted(current))
    if current == head_revisions(VERSIONS_DIR):
        return shown_current
    script = _script()
    _check_known(script, current, shown)
    if current == set(script.get_heads()):
        return shown_current
    pending = [
        Path(rev.path).stem
        for rev in reversed(list(script.iterate_revisions("heads", tuple(current))))
        if rev.revision not in current
    ]
    raise StoreOutdated(shown, shown_current, pending)


def migrate(engine: Engine, shown: str) -> tuple[str | None, str]:
    """Bring the database of ``engine`` (``shown`` in errors) to the newest schema revision.

    Returns the revision it was at (None: a new database) and the one it is at now.
    """
    # The usual case, a store at the newest revision, is answered without Alembic (its import
    # alone costs every command a third of a second): the heads come from the revision files.
    current = _read_revisions(engine, shown)
    before = ", ".join(sorted(current)) or None
    if current and current == head_revisions(VERSIONS_DIR):
        return before, ", ".join(sorted(current))
    from alembic import command  # imported only to migrate
    from alembic.util import CommandError

    cfg = alembic_config()
    try:
        script = _script()
        heads = set(script.get_heads())
        if current == heads:
            return before, ", ".join(sorted(heads))
        _check_known(script, current, shown)
        with engine.connect() as conn:
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            if conn.dialect.name == "postgresql":
                # One opener migrates at a time (SQLite: BEGIN IMMEDIATE does it); the others
                # wait here, then find the schema current. Released at commit.
                conn.exec_driver_sql(Dialect(conn.dialect.name).sql(XACT_LOCK_SQL), (_MIGRATE_LOCK_NAME,))
            # Another opener may have migrated meanwhile: where the schema starts from is read in
            # this transaction (on SQLite its first statement, which begins it IMMEDIATE).
            before = ", ".join(sorted(current_revisions(conn))) or None
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
    except StoreError:
        raise
    except (SQLAlchemyError, CommandError, OSError) as exc:
        raise StoreError(f"cannot open database {shown}: {exc}") from exc
    return before, ", ".join(sorted(heads))


def upgrade_existing(engine: Engine, shown: str) -> tuple[str, str]:
    """:func:`migrate` a store that exists (StoreMissing otherwise: an empty file or schema is
    left as it is); the revisions it was at and is at now."""
    if not _read_revisions(engine, shown):
        raise StoreMissing(shown)
    before, after = migrate(engine, shown)
    return before or "", after
