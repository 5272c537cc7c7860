"""The :class:`Store`: patchctl's database, opened from a SQLAlchemy URL.

SQLite is the default (``sqlite:////var/lib/patchctl/patchctl.db``); PostgreSQL
(``postgresql://user:password@host/db``, driven by psycopg 3) serves several control nodes
sharing one store. Opening a store creates the parent directory of a SQLite file, migrates the
schema to the newest Alembic revision and, for SQLite, turns on WAL, ``busy_timeout`` and foreign
keys. On PostgreSQL concurrent openers migrate one at a time under an advisory lock.

Every write runs in its own short transaction (``BEGIN IMMEDIATE`` on SQLite, so concurrent
writers queue on the busy timeout instead of failing on a lock upgrade; on PostgreSQL a scan's
write takes a transaction-level advisory lock, so two control nodes recording the same new update
or host take turns instead of one failing on a unique key). That makes
:meth:`Store.record_host_scan` safe to call from a result callback, from any thread: a crash
loses at most the host in flight.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from itertools import repeat
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from patchctl.errors import StoreError
from patchctl.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE, HostScan, Update
from patchctl.store import schema as t
from patchctl.store.fastread import head_revisions
from patchctl.store.reports import RUN_COUNT_COLUMNS, RUN_COUNTS_SQL

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
HOST_STATUSES = (HOST_OK, HOST_FAILED, HOST_UNREACHABLE)
RUN_KINDS = ("scan",)
NODE_RUN_KINDS = ("scan", "deploy")

# An execution option read by the SQLite "begin" hook: which BEGIN to emit.
_BEGIN_OPTION = "patchctl_sqlite_begin"
_IN_CHUNK = 500  # values per IN (...) clause, well under every database's limit
_LIST_COLUMNS = frozenset({"cves", "advisory_ids", "kbs"})


@dataclass(frozen=True)
class HostComplianceRow:
    """One row of ``v_host_compliance``."""

    host: str
    os: str
    os_family: str | None
    pkg_mgr: str | None
    patch_role: str | None
    patch_window: str | None
    last_scan_at: datetime | None
    last_ok_scan_at: datetime | None
    reachability: str  # ok | failed | unreachable | never_scanned
    last_error: str | None
    missing_total: int
    missing_by_class: dict[str, int]  # every classification of model.CLASSIFICATIONS
    missing_major: int
    reboot_required: bool
    reboot_required_since: datetime | None


@dataclass(frozen=True)
class MissingUpdateRow:
    """One row of ``v_missing_updates``: an update missing on a host."""

    host: str
    uid: str
    source: str
    name: str
    version: str
    installed_version: str | None
    classification: str
    severity: str | None
    major: bool
    reboot_hint: bool
    cves: tuple[str, ...]
    first_seen_at: datetime
    last_seen_at: datetime
    catalog_first_seen_at: datetime


@dataclass(frozen=True)
class ScanRunRow:
    """One row of ``scan_runs``."""

    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    inventory: str
    limit_pattern: str | None
    status: str
    hosts_total: int
    hosts_ok: int
    hosts_failed: int
    hosts_unreachable: int


@dataclass
class _HostUpdateChange:
    update_id: int
    values: dict[str, Any] = field(default_factory=dict)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _safe_url(url: str | URL) -> str:
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


# pg_advisory_xact_lock keys: PostgreSQL openers migrate one at a time; scans write one at a time.
_MIGRATE_LOCK_NAME = "patchctl migrate"
_SCAN_WRITE_LOCK_NAME = "patchctl scan write"


def _sqlite_file(url: URL) -> Path | None:
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
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
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


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _json_list(text: str | None) -> list[str]:
    return list(json.loads(text)) if text else []


def _adds_detail(upd: Update, old: Any, at: datetime) -> bool:
    """Whether a scan's ``upd`` tells the catalog row ``old`` anything but that it was seen at ``at``.

    The same test as the merge in :meth:`Store._upsert_catalog`, without building the merged row.
    """
    if upd.classification not in (old.classification, "other"):  # "other" never overrides
        return True
    for name in ("arch", "severity", "title", "origin", "update_id"):
        value = getattr(upd, name)
        if value and value != getattr(old, name):
            return True
    if (upd.major and not old.major) or (upd.reboot_hint and not old.reboot_hint) or old.first_seen_at > at:
        return True
    for name in ("cves", "advisory_ids", "kbs"):
        values = getattr(upd, name)
        if values and not set(values) <= set(_json_list(getattr(old, name))):
            return True
    return False


def _merge_tuple(new: tuple[str, ...], old: Any) -> list[str]:
    """Union of what this scan reports and what the catalog knew, in first-seen order."""
    merged = list(old or [])
    merged.extend(v for v in new if v not in merged)
    return merged


# --- summary counts (migration 0006) ------------------------------------------------------------

# updates.last_seen_at is bumped once per this span, not by every host of a run that reports the
# update: at 10,000 hosts each bump rewrote catalog pages in every host's transaction.
SEEN_GRANULARITY = timedelta(minutes=10)
_KNOWN_CLASSES = frozenset(t.VIEW_CLASSIFICATIONS)


def host_summary(kinds: Iterable[tuple[str, bool]], counts: Iterable[int] | None = None) -> dict[str, int]:
    """The ``hosts.missing_*`` summary columns for the updates missing on a host.

    ``kinds`` gives each update's (classification, major) as the catalog has them; with
    ``counts``, each pair stands for that many updates. Unknown classifications count as other.
    """
    summary = dict.fromkeys(t.HOST_SUMMARY_COLUMNS, 0)
    numbers = counts if counts is not None else repeat(1)
    for (classification, major), n in zip(kinds, numbers, strict=False):
        summary["missing_total"] += n
        summary[f"missing_{classification}" if classification in _KNOWN_CLASSES else "missing_other"] += n
        if major:
            summary["missing_major"] += n
    return summary


def refresh_host_summaries(conn: Connection, host_ids: Sequence[int]) -> None:
    """Recompute ``hosts.missing_*`` of ``host_ids`` from ``host_updates``, in ``conn``'s transaction.

    For writers that change a few of a host's rows (a deploy result) and for catalog changes
    that move updates between classifications; a scan writes its host's counts itself.
    """
    if not host_ids:
        return
    hu, u = t.host_updates, t.updates
    kinds: dict[int, list[tuple[str, bool]]] = {int(h): [] for h in host_ids}
    counts: dict[int, list[int]] = {int(h): [] for h in host_ids}
    for chunk in _chunks(list(kinds)):
        query = (
            sa.select(hu.c.host_id, u.c.classification, u.c.major, sa.func.count().label("n"))
            .join(u, u.c.id == hu.c.update_id)
            .where(hu.c.host_id.in_(chunk), hu.c.state == t.STATE_MISSING)
            .group_by(hu.c.host_id, u.c.classification, u.c.major)
        )
        for row in conn.execute(query):
            kinds[int(row.host_id)].append((str(row.classification), bool(row.major)))
            counts[int(row.host_id)].append(int(row.n))
    conn.execute(
        _UPDATE_HOST,
        [{"_id": h, **host_summary(kinds[h], counts[h])} for h in kinds],
    )


def _run_history(conn: Connection, run_id: int) -> dict[str, int]:
    """The ``scan_runs.scans_*`` columns of a run: its history point, from its scans."""
    history = dict.fromkeys(RUN_COUNT_COLUMNS.values(), 0)
    for point in conn.execute(sa.text(RUN_COUNTS_SQL.format(where="s.run_id = :run")), {"run": run_id}):
        history = {column: int(point._mapping[name] or 0) for name, column in RUN_COUNT_COLUMNS.items()}
    return history


def _scan_write_lock(conn: Connection) -> None:
    """PostgreSQL: scans insert-or-update hosts, catalog rows and host updates that another writer
    (a thread, or another control node) may be inserting at the same moment: they take turns, as
    BEGIN IMMEDIATE makes them on SQLite. Released at commit."""
    conn.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || :n, 0))"),
        {"n": _SCAN_WRITE_LOCK_NAME},
    )


# Statements of a scan's write, built once (each compiles once per set of keys and is cached).
_SELECT_HOST = sa.select(
    t.hosts.c.id,
    t.hosts.c.os_family,
    t.hosts.c.distribution,
    t.hosts.c.os_version,
    t.hosts.c.pkg_mgr,
    t.hosts.c.address,
    t.hosts.c.patch_role,
    t.hosts.c.patch_window,
    t.hosts.c.reboot_required,
    t.hosts.c.reboot_required_since,
).where(t.hosts.c.name == sa.bindparam("name"))
_UPDATE_HOST = t.hosts.update().where(t.hosts.c.id == sa.bindparam("_id"))
# JSON list columns as their text: decoded only for the rare update that adds detail.
_SELECT_CATALOG = sa.select(
    *(sa.type_coerce(c, sa.Text).label(c.name) if c.name in _LIST_COLUMNS else c for c in t.updates.c)
)
_INSERT_CATALOG = t.updates.insert().returning(t.updates.c.id, t.updates.c.uid)


class Store:
    """patchctl's database. Open with :meth:`Store.open`; close, or use as a context manager."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._url = url
        self._closed = False

    # --- lifecycle --------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (creating and migrating if needed) the store at a SQLAlchemy URL.

        Raises StoreError naming the URL (password hidden) when it cannot be opened.
        """
        shown = _safe_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid database URL {shown!r}: {exc}") from exc
        kwargs: dict[str, Any] = {}
        sqlite = _is_sqlite(parsed)
        db_file = _sqlite_file(parsed) if sqlite else None
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
        store = cls(engine, shown)
        try:
            store._migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The store's URL, password hidden."""
        return self._url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for store modules that add their own tables."""
        return self._engine

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None: not created yet)."""
        with self._read() as conn:
            current = self._current_revisions(conn)
        return next(iter(current)) if len(current) == 1 else None

    @staticmethod
    def _current_revisions(conn: Connection) -> set[str]:
        """The revisions in ``alembic_version``: empty for a new database."""
        if not sa.inspect(conn).has_table("alembic_version"):
            return set()
        return {str(r[0]) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}

    def _migrate(self) -> None:
        # The usual case, a store at the newest revision, is answered without Alembic (its import
        # alone costs every command a third of a second): the heads come from the revision files.
        try:
            with self._engine.connect() as conn:
                current = self._current_revisions(conn)
                conn.rollback()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open database {self._url}: {exc}") from exc
        if current and current == head_revisions(MIGRATIONS_DIR / "versions"):
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
                        f"database {self._url} is at schema revision {rev!r}, which this "
                        "patchctl does not know (was it written by a newer version?)"
                    ) from exc
            with self._engine.connect() as conn:
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                if conn.dialect.name == "postgresql":
                    # One opener migrates at a time (SQLite: BEGIN IMMEDIATE does it); the others
                    # wait here, then find the schema current. Released at commit.
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || :n, 0))"),
                        {"n": _MIGRATE_LOCK_NAME},
                    )
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
        except StoreError:
            raise
        except (SQLAlchemyError, CommandError, OSError) as exc:
            raise StoreError(f"cannot open database {self._url}: {exc}") from exc

    # --- transactions -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self._url} is closed")

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        self._check_open()
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {what} in {self._url}: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._check_open()
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {self._url}: {exc}") from exc

    # --- scan runs --------------------------------------------------------------------------

    def start_run(
        self,
        kind: str,
        inventory: str,
        limit: str | None,
        hosts_total: int,
        *,
        now: datetime | None = None,
    ) -> int:
        """Record the start of a run; returns its id for :meth:`record_host_scan`."""
        if kind not in RUN_KINDS:
            raise StoreError(f"unknown run kind {kind!r} (expected one of {', '.join(RUN_KINDS)})")
        if hosts_total < 0:
            raise StoreError(f"hosts_total must not be negative, got {hosts_total}")
        with self._write("start a run") as conn:
            result = conn.execute(
                t.scan_runs.insert().values(
                    kind=kind,
                    started_at=now or _utcnow(),
                    inventory=inventory,
                    limit_pattern=limit,
                    status="running",
                    hosts_total=hosts_total,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def finish_run(self, run_id: int, status: str, *, now: datetime | None = None) -> None:
        """Close a run: its status, finish time and host counts taken from its scans.

        A host scanned twice in one run counts once, by its last scan. The report's history
        point of the run (``scan_runs.scans_*``: every scan counted) is kept with it.
        """
        with self._write("finish a run") as conn:
            history = _run_history(conn, run_id)
            last = (
                sa.select(t.scans.c.host_id, sa.func.max(t.scans.c.id).label("scan_id"))
                .where(t.scans.c.run_id == run_id)
                .group_by(t.scans.c.host_id)
                .subquery()
            )
            counts = Counter(
                {
                    str(row.status): int(row.n)
                    for row in conn.execute(
                        sa.select(t.scans.c.status, sa.func.count().label("n"))
                        .join(last, last.c.scan_id == t.scans.c.id)
                        .group_by(t.scans.c.status)
                    )
                }
            )
            result = conn.execute(
                t.scan_runs.update()
                .where(t.scan_runs.c.id == run_id)
                .values(
                    finished_at=now or _utcnow(),
                    status=status,
                    hosts_ok=counts[HOST_OK],
                    hosts_failed=counts[HOST_FAILED],
                    hosts_unreachable=counts[HOST_UNREACHABLE],
                    **history,
                )
            )
            if result.rowcount != 1:
                raise StoreError(f"no run {run_id} in {self._url}")

    def refresh_summaries(self) -> None:
        """Recompute every host's summary counts and every finished run's history point from the
        rows they summarize: for a store whose rows were written by other means (the store
        benchmark's generator, a hand repair). patchctl's own writers keep them as they go."""
        sr = t.scan_runs
        with self._write("refresh the summary counts") as conn:
            refresh_host_summaries(conn, [int(i) for i in conn.scalars(sa.select(t.hosts.c.id).order_by(t.hosts.c.id))])
            for run_id in conn.scalars(sa.select(sr.c.id).where(sr.c.finished_at.is_not(None))):
                conn.execute(sr.update().where(sr.c.id == run_id).values(**_run_history(conn, int(run_id))))

    def unfinished_runs(self, kind: str, started_before: datetime) -> list[int]:
        """Ids of runs of ``kind`` still ``running`` that started before ``started_before``."""
        sr = t.scan_runs
        with self._read() as conn:
            return [
                int(i)
                for i in conn.scalars(
                    sa.select(sr.c.id)
                    .where(sr.c.kind == kind, sr.c.status == "running", sr.c.started_at < started_before)
                    .order_by(sr.c.id)
                )
            ]

    def get_run(self, run_id: int) -> ScanRunRow:
        with self._read() as conn:
            columns = [t.scan_runs.c[f.name] for f in fields(ScanRunRow)]
            row = conn.execute(sa.select(*columns).where(t.scan_runs.c.id == run_id)).one_or_none()
        if row is None:
            raise StoreError(f"no run {run_id} in {self._url}")
        return ScanRunRow(**row._asdict())

    # --- execution nodes: per part of a run -------------------------------------------------

    def record_node_parts(
        self, kind: str, run_id: int, parts: Iterable[Mapping[str, Any]], *, now: datetime | None = None
    ) -> None:
        """Record how each part of a scan or deploy run went (``node_runs``, ``v_node_throughput``).

        ``run_id`` is a ``scan_runs`` id for ``kind`` scan, a ``deploy_runs`` id for deploy; each
        part has ``node``, ``hosts``, ``seconds`` and optionally ``forks``,
        ``controller_cpu_seconds`` and ``error`` (:meth:`patchctl.fleetrun.PartStats.as_dict`).
        """
        if kind not in NODE_RUN_KINDS:
            raise StoreError(f"unknown node run kind {kind!r} (expected one of {', '.join(NODE_RUN_KINDS)})")
        run_column = "scan_run_id" if kind == "scan" else "deploy_run_id"
        rows = [
            {
                "kind": kind,
                run_column: run_id,
                "node": str(p["node"]),
                "hosts": int(p["hosts"]),
                "forks": int(p["forks"]) if p.get("forks") else None,
                "seconds": float(p["seconds"]),
                "controller_cpu_seconds": p.get("controller_cpu_seconds"),
                "error": p.get("error"),
                "finished_at": now or _utcnow(),
            }
            for p in parts
        ]
        if not rows:
            return
        with self._write("record the run's parts per node") as conn:
            conn.execute(t.node_runs.insert(), rows)

    def node_throughput(self) -> list[dict[str, Any]]:
        """``v_node_throughput``: per node and kind of run, hosts, seconds and hosts per minute."""
        v = t.v_node_throughput
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(v).order_by(v.c.kind, v.c.node))]

    # --- recording a scan -------------------------------------------------------------------

    def record_host_scan(self, run_id: int, scan: HostScan) -> None:
        """Write one host's scan in one transaction.

        A successful scan upserts the host, adds a ``scans`` row, upserts every reported update
        into the catalog and marks them missing on the host; updates that were missing before
        and are no longer reported become ``installed`` (when ``scan.installed`` shows the
        host now has that version) or ``gone``. The host's summary counts (``hosts.missing_*``)
        are written with it. A failed or unreachable scan records the scan and the host's status
        only: what is missing on it is unknown, so it stays as it was.

        About ten statements, whatever the number of updates: each kind of row is read, inserted
        or updated in one batched statement (executemany or ``IN``).
        """
        if scan.status not in HOST_STATUSES:
            raise StoreError(
                f"scan of {scan.host}: unknown status {scan.status!r} (expected one of {', '.join(HOST_STATUSES)})"
            )
        ok = scan.status == HOST_OK
        reported: dict[str, Update] = {u.uid: u for u in scan.updates} if ok else {}
        with self._write(f"record the scan of {scan.host}") as conn:
            if conn.dialect.name == "postgresql":
                _scan_write_lock(conn)
            row = conn.execute(_SELECT_HOST, {"name": scan.host}).one_or_none()
            summary: dict[str, int] | None = None
            ids: dict[str, int] = {}
            reclassified: list[int] = []
            if ok:
                ids, kinds, reclassified = self._upsert_catalog(conn, list(reported.values()), scan.scanned_at)
                summary = host_summary(kinds[ids[uid]] for uid in reported)
            host_id = self._write_host(conn, scan, row, summary)
            self._insert_scan(conn, run_id, host_id, scan, list(reported.values()))
            if ok:
                self._sync_host_updates(conn, host_id, scan, reported, ids)
            if reclassified:
                # A scan told the catalog a new classification or `major` for updates other hosts
                # miss too: their summary counts change with it.
                hu = t.host_updates
                others: set[int] = set()
                for chunk in _chunks(reclassified):
                    others.update(
                        int(i)
                        for i in conn.scalars(
                            sa.select(hu.c.host_id)
                            .distinct()
                            .where(hu.c.update_id.in_(chunk), hu.c.state == t.STATE_MISSING)
                        )
                    )
                others.discard(host_id)
                refresh_host_summaries(conn, sorted(others))

    def _write_host(self, conn: Connection, scan: HostScan, row: Any, summary: dict[str, int] | None) -> int:
        """Insert or update the host's row (``row``: its current values, None when new)."""
        at = scan.scanned_at
        ok = scan.status == HOST_OK

        def keep(new: str | None, column: str) -> str | None:
            # What the host or inventory says now; the last known value when it says nothing.
            if new is not None or row is None:
                return new
            old: str | None = getattr(row, column)
            return old

        values: dict[str, Any] = {
            "address": keep(scan.address, "address"),
            "os_family": keep(scan.os_family, "os_family"),
            "distribution": keep(scan.distribution, "distribution"),
            "os_version": keep(scan.os_version, "os_version"),
            "pkg_mgr": keep(scan.pkg_mgr, "pkg_mgr"),
            "patch_role": keep(scan.patch_role, "patch_role"),
            "patch_window": keep(scan.patch_window, "patch_window"),
            "last_scan_at": at,
            "last_status": scan.status,
            "last_error": None if ok else (scan.error or scan.status),
        }
        if scan.groups or row is None:
            values["groups"] = list(scan.groups)
        if ok:
            values["last_ok_scan_at"] = at
            values["reboot_required"] = scan.reboot_required
            if not scan.reboot_required:
                values["reboot_required_since"] = None
            elif row is None or not row.reboot_required or row.reboot_required_since is None:
                values["reboot_required_since"] = at
        if summary is not None:
            values.update(summary)
        if row is None:
            values.setdefault("reboot_required", False)
            result = conn.execute(t.hosts.insert(), {"name": scan.host, "first_seen_at": at, **values})
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])
        # The statement is built once; its SET clause follows the keys given (compiled once each).
        conn.execute(_UPDATE_HOST, {"_id": row.id, **values})
        return int(row.id)

    def _insert_scan(
        self,
        conn: Connection,
        run_id: int,
        host_id: int,
        scan: HostScan,
        reported: list[Update],
    ) -> None:
        values: dict[str, Any] = {
            "run_id": run_id,
            "host_id": host_id,
            "scanned_at": scan.scanned_at,
            "status": scan.status,
            "error": scan.error,
        }
        if scan.status == HOST_OK:
            by_class = Counter(u.classification for u in reported)
            values.update(
                reboot_required=scan.reboot_required,
                missing_total=len(reported),
                missing_security=by_class.get("security", 0),
                missing_major=sum(1 for u in reported if u.major),
                missing_by_class=dict(sorted(by_class.items())),
            )
        conn.execute(t.scans.insert(), values)

    def _upsert_catalog(
        self, conn: Connection, reported: list[Update], at: datetime
    ) -> tuple[dict[str, int], dict[int, tuple[str, bool]], list[int]]:
        """Insert new updates, refresh known ones.

        Returns uid -> updates.id; updates.id -> (classification, major) as the catalog has them
        now (what the host's summary counts); and the ids of known updates whose classification
        or ``major`` this scan changed.
        """
        u = t.updates
        uids = [x.uid for x in reported]
        existing: dict[str, Any] = {}
        for chunk in _chunks(uids):
            for row in conn.execute(_SELECT_CATALOG.where(u.c.uid.in_(chunk))):
                existing[row.uid] = row

        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        seen_only: list[int] = []
        kinds: dict[int, tuple[str, bool]] = {}
        reclassified: list[int] = []
        for upd in reported:
            old = existing.get(upd.uid)
            if old is None:
                new_rows.append(
                    {
                        "uid": upd.uid,
                        "source": upd.source,
                        "name": upd.name,
                        "version": upd.version,
                        "arch": upd.arch,
                        "classification": upd.classification,
                        "severity": upd.severity,
                        "cves": list(upd.cves),
                        "advisory_ids": list(upd.advisory_ids),
                        "kbs": list(upd.kbs),
                        "title": upd.title,
                        "origin": upd.origin,
                        "major": upd.major,
                        "reboot_hint": upd.reboot_hint,
                        "update_id": upd.update_id,
                        "first_seen_at": at,
                        "last_seen_at": at,
                    }
                )
                continue
            if not _adds_detail(upd, old, at):
                kinds[int(old.id)] = (old.classification, bool(old.major))
                # The usual case at scale: nothing new but the time. Bumped once per
                # SEEN_GRANULARITY, not by every host of a run (each bump rewrites a catalog page).
                if old.last_seen_at < at - SEEN_GRANULARITY:
                    seen_only.append(int(old.id))
                continue
            # Hosts may describe the same update with more or less detail: keep what is known.
            classification = upd.classification
            if classification == "other" and old.classification != "other":
                classification = old.classification
            merged: dict[str, Any] = {
                "_id": old.id,
                "arch": upd.arch or old.arch,
                "classification": classification,
                "severity": upd.severity or old.severity,
                "cves": _merge_tuple(upd.cves, _json_list(old.cves)),
                "advisory_ids": _merge_tuple(upd.advisory_ids, _json_list(old.advisory_ids)),
                "kbs": _merge_tuple(upd.kbs, _json_list(old.kbs)),
                "title": upd.title or old.title,
                "origin": upd.origin or old.origin,
                "major": bool(upd.major or old.major),
                "reboot_hint": bool(upd.reboot_hint or old.reboot_hint),
                "update_id": upd.update_id or old.update_id,
                "first_seen_at": min(old.first_seen_at, at),
                "last_seen_at": max(old.last_seen_at, at),
            }
            changed_rows.append(merged)
            kinds[int(old.id)] = (classification, merged["major"])
            if (classification, merged["major"]) != (old.classification, bool(old.major)):
                reclassified.append(int(old.id))
        ids = {uid: int(row.id) for uid, row in existing.items()}
        if new_rows:
            # One multi-row INSERT ... RETURNING (SQLAlchemy's "insertmanyvalues"), not a re-read.
            for row in conn.execute(_INSERT_CATALOG, new_rows):
                ids[row.uid] = int(row.id)
            for new in new_rows:
                kinds[ids[new["uid"]]] = (new["classification"], bool(new["major"]))
        for chunk in _chunks(seen_only):
            conn.execute(u.update().where(u.c.id.in_(chunk)).values(last_seen_at=at))
        if changed_rows:
            conn.execute(
                u.update()
                .where(u.c.id == sa.bindparam("_id"))
                .values({name: sa.bindparam(name, type_=u.c[name].type) for name in changed_rows[0] if name != "_id"}),
                changed_rows,
            )
        return ids, kinds, reclassified

    def _sync_host_updates(
        self,
        conn: Connection,
        host_id: int,
        scan: HostScan,
        reported: dict[str, Update],
        ids: dict[str, int],
    ) -> None:
        hu = t.host_updates
        at = scan.scanned_at
        current = {
            int(row.update_id): row
            for row in conn.execute(
                sa.select(
                    hu.c.update_id,
                    hu.c.state,
                    hu.c.installed_version,
                    hu.c.first_seen_at,
                    t.updates.c.name,
                    t.updates.c.version,
                )
                .join(t.updates, t.updates.c.id == hu.c.update_id)
                .where(hu.c.host_id == host_id)
            )
        }
        inserts: list[dict[str, Any]] = []
        changes: list[_HostUpdateChange] = []
        still_missing: list[int] = []  # missing before and now, same installed version: only seen again
        reported_ids: set[int] = set()
        for uid, upd in reported.items():
            update_id = ids[uid]
            reported_ids.add(update_id)
            values = {
                "state": t.STATE_MISSING,
                "installed_version": upd.installed_version,
                "last_seen_at": at,
                "resolved_at": None,
            }
            old = current.get(update_id)
            if old is None:
                inserts.append({"host_id": host_id, "update_id": update_id, "first_seen_at": at, **values})
            elif (
                old.state == t.STATE_MISSING
                and old.installed_version == upd.installed_version
                and old.first_seen_at <= at
            ):
                still_missing.append(update_id)
            else:
                if old.first_seen_at > at:
                    values["first_seen_at"] = at
                changes.append(_HostUpdateChange(update_id, values))
        for update_id, old in current.items():
            if old.state != t.STATE_MISSING or update_id in reported_ids:
                continue
            now_version = scan.installed.get(old.name)
            installed = now_version is not None and now_version == old.version
            changes.append(
                _HostUpdateChange(
                    update_id,
                    {
                        "state": t.STATE_INSTALLED if installed else t.STATE_GONE,
                        "installed_version": now_version,
                        "resolved_at": at,
                    },
                )
            )
        if inserts:
            conn.execute(hu.insert(), inserts)
        # At scale most rows are unchanged but for the time they were seen: one statement for them,
        # and one executemany per shape of the other changes (not one statement per row).
        for chunk in _chunks(still_missing):
            conn.execute(
                hu.update().where(hu.c.host_id == host_id, hu.c.update_id.in_(chunk)).values(last_seen_at=at)
            )
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in changes:
            by_shape.setdefault(tuple(sorted(change.values)), []).append({"_update": change.update_id, **change.values})
        for shape, rows in by_shape.items():
            conn.execute(
                hu.update()
                .where(hu.c.host_id == host_id, hu.c.update_id == sa.bindparam("_update"))
                .values({name: sa.bindparam(name, type_=hu.c[name].type) for name in shape}),
                rows,
            )

    # --- reading ----------------------------------------------------------------------------

    def watched_packages(self, source: str) -> list[str]:
        """Names of catalog updates of ``source`` missing on some host, sorted.

        A scan passes them to the hosts so each reports the installed version of each.
        """
        u, hu = t.updates, t.host_updates
        query = (
            sa.select(u.c.name)
            .distinct()
            .join(hu, hu.c.update_id == u.c.id)
            .where(u.c.source == source, hu.c.state == t.STATE_MISSING)
            .order_by(u.c.name)
        )
        with self._read() as conn:
            return [str(name) for name in conn.scalars(query)]

    def hosts(self) -> list[str]:
        """Names of every host the store knows, sorted."""
        with self._read() as conn:
            names = conn.scalars(sa.select(t.hosts.c.name).order_by(t.hosts.c.name))
            return [str(n) for n in names]

    def host_compliance(self, hosts: Iterable[str] | None = None) -> list[HostComplianceRow]:
        """Rows of ``v_host_compliance`` (all hosts, or the named ones), sorted by host."""
        v = t.v_host_compliance
        query = sa.select(v).order_by(v.c.host)
        if hosts is not None:
            query = query.where(v.c.host.in_(list(hosts)))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            HostComplianceRow(
                host=row.host,
                os=row.os or "",
                os_family=row.os_family,
                pkg_mgr=row.pkg_mgr,
                patch_role=row.patch_role,
                patch_window=row.patch_window,
                last_scan_at=row.last_scan_at,
                last_ok_scan_at=row.last_ok_scan_at,
                reachability=row.reachability,
                last_error=row.last_error,
                missing_total=int(row.missing_total),
                missing_by_class={c: int(getattr(row, f"missing_{c}")) for c in t.VIEW_CLASSIFICATIONS},
                missing_major=int(row.missing_major),
                reboot_required=bool(row.reboot_required),
                reboot_required_since=row.reboot_required_since,
            )
            for row in rows
        ]

    def missing_updates(self, host: str | None = None) -> list[MissingUpdateRow]:
        """Rows of ``v_missing_updates`` (one host or all), sorted by host then update."""
        v = t.v_missing_updates
        query = sa.select(v).order_by(v.c.host, v.c.source, v.c.name, v.c.version)
        if host is not None:
            query = query.where(v.c.host == host)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            MissingUpdateRow(
                host=row.host,
                uid=row.uid,
                source=row.source,
                name=row.name,
                version=row.version,
                installed_version=row.installed_version,
                classification=row.classification,
                severity=row.severity,
                major=bool(row.major),
                reboot_hint=bool(row.reboot_hint),
                cves=tuple(row.cves or ()),
                first_seen_at=row.first_seen_at,
                last_seen_at=row.last_seen_at,
                catalog_first_seen_at=row.catalog_first_seen_at,
            )
            for row in rows
        ]
