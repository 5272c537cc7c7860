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
from dataclasses import dataclass, fields
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
from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE, HostScan, Update
from patchctl.store import schema as t
from patchctl.store.fastread import head_revisions
from patchctl.store.reports import RUN_COUNT_COLUMNS, RUN_COUNTS_SQL

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# SQLite's WAL is copied into the database (with an fsync) once it holds this many pages, not
# SQLite's default 1,000: a scan's transaction writes about 25 pages, and each checkpoint then
# copies the pages rewritten by many transactions once (10,000 fresh hosts: 5% less CPU and wall
# time). The WAL file grows to about 40 MB between checkpoints.
WAL_AUTOCHECKPOINT_PAGES = 10_000
HOST_STATUSES = (HOST_OK, HOST_FAILED, HOST_UNREACHABLE)
RUN_KINDS = ("scan",)
NODE_RUN_KINDS = ("scan", "deploy")

# An execution option read by the SQLite "begin" hook: which BEGIN to emit.
_BEGIN_OPTION = "patchctl_sqlite_begin"
_IN_CHUNK = 500  # values per IN (...) clause, well under every database's limit


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
                cur.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
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


def _padded(values: Sequence[Any]) -> list[Any]:
    """``values`` (not empty) to the next power-of-two length, the last one repeated (an IN list
    means the same with it)."""
    size = 1 << (len(values) - 1).bit_length()
    return [*values, *([values[-1]] * (size - len(values)))]


def _json_list(text: str | None) -> list[str]:
    return list(json.loads(text)) if text else []


# The catalog columns a scan reads, in this order (JSON lists as their text: decoded only for the
# rare update that adds detail).
_CATALOG_COLUMNS = (
    "id",
    "uid",
    "classification",
    "major",
    "first_seen_at",
    "last_seen_at",
    "arch",
    "severity",
    "title",
    "origin",
    "update_id",
    "reboot_hint",
    "cves",
    "advisory_ids",
    "kbs",
    "approved",
)
_C_ID, _C_UID, _C_CLASS, _C_MAJOR, _C_FIRST, _C_LAST = range(6)
_C_ARCH, _C_SEVERITY, _C_TITLE, _C_ORIGIN, _C_UPDATE_ID, _C_REBOOT, _C_CVES, _C_ADVISORIES, _C_KBS = range(6, 15)
_C_APPROVED = 15


def _adds_detail(upd: Update, old: Sequence[Any], at: Any) -> bool:
    """Whether a scan's ``upd`` tells the catalog row ``old`` (its ``_CATALOG_COLUMNS``) anything but
    that it was seen at ``at`` (a timestamp as the database keeps it).

    The same test as the merge in :meth:`_ScanWrite.catalog`, without building the merged row;
    spelled out, as it runs for every update of every scan.
    """
    classification = upd.classification
    if classification != old[_C_CLASS] and classification != "other":  # "other" never overrides
        return True
    if (
        (upd.arch and upd.arch != old[_C_ARCH])
        or (upd.severity and upd.severity != old[_C_SEVERITY])
        or (upd.title and upd.title != old[_C_TITLE])
        or (upd.origin and upd.origin != old[_C_ORIGIN])
        or (upd.update_id and upd.update_id != old[_C_UPDATE_ID])
    ):
        return True
    if (upd.major and not old[_C_MAJOR]) or (upd.reboot_hint and not old[_C_REBOOT]) or old[_C_FIRST] > at:
        return True
    return bool(
        (upd.cves and not set(upd.cves) <= set(_json_list(old[_C_CVES])))
        or (upd.advisory_ids and not set(upd.advisory_ids) <= set(_json_list(old[_C_ADVISORIES])))
        or (upd.kbs and not set(upd.kbs) <= set(_json_list(old[_C_KBS])))
    )


def _merge_tuple(new: tuple[str, ...], old: Any) -> list[str]:
    """Union of what this scan reports and what the catalog knew, in first-seen order."""
    merged = list(old or [])
    merged.extend(v for v in new if v not in merged)
    return merged


# --- summary counts (migration 0006) ------------------------------------------------------------

# updates.last_seen_at is bumped once per this span, not by every host of a run that reports the
# update: at 10,000 hosts each bump rewrote catalog pages in every host's transaction.
SEEN_GRANULARITY = timedelta(minutes=10)
# classification -> its summary column (unknown ones count as other)
_SUMMARY_COLUMN = {c: f"missing_{c}" for c in t.VIEW_CLASSIFICATIONS}
# What host_summary gives: the view's summary columns (0006) and missing_approved (0008).
_HOST_SUMMARY_KEPT = (*t.HOST_SUMMARY_COLUMNS, "missing_approved")


def host_summary(kinds: Iterable[tuple[str, bool, bool]], counts: Iterable[int] | None = None) -> dict[str, int]:
    """The ``hosts.missing_*`` summary columns for the updates missing on a host.

    ``kinds`` gives each update's (classification, major, approved) as the catalog has them; with
    ``counts``, each stands for that many updates. Unknown classifications count as other.
    """
    summary = dict.fromkeys(_HOST_SUMMARY_KEPT, 0)
    numbers = counts if counts is not None else repeat(1)
    for (classification, major, approved), n in zip(kinds, numbers, strict=False):
        summary["missing_total"] += n
        summary[_SUMMARY_COLUMN.get(classification, "missing_other")] += n
        if major:
            summary["missing_major"] += n
        if approved:
            summary["missing_approved"] += n
    return summary


def refresh_host_summaries(conn: Connection, host_ids: Sequence[int]) -> None:
    """Recompute ``hosts.missing_*`` of ``host_ids`` from ``host_updates``, in ``conn``'s transaction.

    For writers that change a few of a host's rows (a deploy result), for catalog changes that
    move updates between classifications and for decisions that approve updates or no longer do;
    a scan writes its host's counts itself.
    """
    cur = _dbapi_cursor(conn)
    try:
        _refresh_host_summaries(_Dialect(conn.dialect.name), cur, host_ids)
    finally:
        cur.close()


def _refresh_host_summaries(dialect: _Dialect, cur: Any, host_ids: Sequence[int]) -> None:
    """:func:`refresh_host_summaries` on a DBAPI cursor (the scan's write runs on one)."""
    if not host_ids:
        return
    kinds: dict[int, list[tuple[str, bool, bool]]] = {int(h): [] for h in host_ids}
    counts: dict[int, list[int]] = {int(h): [] for h in host_ids}
    for chunk in _chunks(list(kinds)):
        padded = _padded(chunk)
        cur.execute(dialect.sql(_HOST_KINDS_SQL, len(padded)), padded)
        for host_id, classification, major, approved, n in cur.fetchall():
            kinds[int(host_id)].append((str(classification), bool(major), bool(approved)))
            counts[int(host_id)].append(int(n))
    rows = []
    for host_id in kinds:
        summary = host_summary(kinds[host_id], counts[host_id])
        rows.append((*(summary[c] for c in _HOST_SUMMARY_KEPT), host_id))
    cur.executemany(dialect.sql(_UPDATE_SUMMARY_SQL), rows)


def scan_write_lock(conn: Connection) -> None:
    """PostgreSQL: take the scans' turn (see :meth:`_ScanWrite.lock`), for other writers of what a
    scan counts (decisions). Released at commit; nothing on SQLite (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_Dialect(conn.dialect.name).sql(_SCAN_WRITE_LOCK_SQL), (_SCAN_WRITE_LOCK_NAME,))


def refresh_approvals(conn: Connection, update_ids: Sequence[int] | None = None) -> None:
    """``updates.approved`` of ``update_ids`` (None: every update) from their latest decisions, in
    ``conn``'s transaction; ``hosts.missing_approved`` moves with it for the hosts missing an
    update whose approval changed."""
    u, d, hu = t.updates, t.decisions, t.host_updates
    chunks = _chunks(list(update_ids)) if update_ids is not None else [None]
    now_approved: list[int] = []
    no_longer: list[int] = []
    for chunk in chunks:
        last = sa.select(sa.func.max(d.c.id)).group_by(d.c.update_id)
        catalog = sa.select(u.c.id, u.c.approved)
        if chunk is not None:
            last = last.where(d.c.update_id.in_(chunk))
            catalog = catalog.where(u.c.id.in_(chunk))
        approved = {
            int(i)
            for i in conn.scalars(sa.select(d.c.update_id).where(d.c.id.in_(last), d.c.state == t.DECISION_APPROVED))
        }
        for row in conn.execute(catalog):
            if (int(row.id) in approved) != bool(row.approved):
                (now_approved if int(row.id) in approved else no_longer).append(int(row.id))
    added: Counter[int] = Counter()  # host id -> approved missing updates added
    for ids, value, sign in ((now_approved, True, 1), (no_longer, False, -1)):
        for chunk in _chunks(ids):
            conn.execute(u.update().where(u.c.id.in_(chunk)).values(approved=value))
            missing = (
                sa.select(hu.c.host_id, sa.func.count().label("n"))
                .where(hu.c.update_id.in_(chunk), hu.c.state == t.STATE_MISSING)
                .group_by(hu.c.host_id)
            )
            for row in conn.execute(missing):
                added[int(row.host_id)] += sign * int(row.n)
    rows = [{"_id": host_id, "n": n} for host_id, n in sorted(added.items()) if n]
    if rows:
        h = t.hosts
        conn.execute(
            h.update()
            .where(h.c.id == sa.bindparam("_id"))
            .values(missing_approved=h.c.missing_approved + sa.bindparam("n", type_=sa.Integer)),
            rows,
        )


def bump_update_counts(conn: Connection, deltas: Iterable[tuple[int, int, int]]) -> None:
    """Add ``(update_id, missing, installed)`` to ``update_counts`` (migration 0007), in ``conn``'s
    transaction: for writers of ``host_updates`` other than a scan (which adds its own)."""
    rows = sorted(d for d in deltas if d[1] or d[2])  # in update order, as a scan locks them
    if rows:
        conn.exec_driver_sql(_Dialect(conn.dialect.name).sql(_BUMP_COUNTS_SQL), rows)


def refresh_update_counts(conn: Connection) -> None:
    """Recompute every row of ``update_counts`` from ``host_updates``, in ``conn``'s transaction."""
    conn.execute(t.update_counts.delete())
    conn.execute(sa.text(_FILL_UPDATE_COUNTS_SQL))


def _run_history(conn: Connection, run_id: int) -> dict[str, int]:
    """The ``scan_runs.scans_*`` columns of a run: its history point, from its scans."""
    history = dict.fromkeys(RUN_COUNT_COLUMNS.values(), 0)
    for point in conn.execute(sa.text(RUN_COUNTS_SQL.format(where="s.run_id = :run")), {"run": run_id}):
        history = {column: int(point._mapping[name] or 0) for name, column in RUN_COUNT_COLUMNS.items()}
    return history


_FILL_UPDATE_COUNTS_SQL = (
    "INSERT INTO update_counts (update_id, hosts_missing, hosts_installed)"
    " SELECT update_id, SUM(CASE WHEN state = 'missing' THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN state = 'installed' THEN 1 ELSE 0 END) FROM host_updates GROUP BY update_id"
)

# refresh_host_summaries: what is missing on the hosts, by what the summary counts; their counts.
_HOST_KINDS_SQL = (
    "SELECT hu.host_id, u.classification, u.major, u.approved, COUNT(*) FROM host_updates hu"
    " JOIN updates u ON u.id = hu.update_id WHERE hu.state = 'missing' AND hu.host_id IN ({in})"
    " GROUP BY hu.host_id, u.classification, u.major, u.approved"
)
_SUMMARY_SET = ", ".join(f"{c} = ?" for c in _HOST_SUMMARY_KEPT)
_UPDATE_SUMMARY_SQL = f"UPDATE hosts SET {_SUMMARY_SET} WHERE id = ?"  # noqa: S608 - constant column names

# --- a scan's write, on the DBAPI cursor ----------------------------------------------------

_HOST_COLUMNS = (
    "id",
    "address",
    "os_family",
    "distribution",
    "os_version",
    "pkg_mgr",
    "patch_role",
    "patch_window",
    "reboot_required",
    "reboot_required_since",
)
# SQL with ``?`` placeholders (made the driver's by _Dialect.sql) and ``{in}`` for an IN list.
_SELECT_HOST_SQL = f"SELECT {', '.join(_HOST_COLUMNS)} FROM hosts WHERE name = ?"  # noqa: S608 - fixed names
# Empty JSON lists come back as NULL (the same to _json_list): no string built for most rows.
_SELECT_CATALOG_SQL = (
    "SELECT "  # noqa: S608 - fixed names
    + ", ".join(f"NULLIF({c}, '[]')" if c in ("cves", "advisory_ids", "kbs") else c for c in _CATALOG_COLUMNS)
    + " FROM updates WHERE uid IN ({in})"
)
_CATALOG_INSERT_COLUMNS = (
    "uid",
    "source",
    "name",
    "version",
    "arch",
    "classification",
    "severity",
    "cves",
    "advisory_ids",
    "kbs",
    "title",
    "origin",
    "major",
    "reboot_hint",
    "update_id",
    "first_seen_at",
    "last_seen_at",
)
_INSERT_CATALOG_SQL = (
    f"INSERT INTO updates ({', '.join(_CATALOG_INSERT_COLUMNS)})"  # noqa: S608 - fixed names
    f" VALUES ({', '.join('?' * len(_CATALOG_INSERT_COLUMNS))})"
)
_CATALOG_IDS_SQL = "SELECT id, uid FROM updates WHERE uid IN ({in})"
# What a scan may merge into a known catalog row: everything but the identity of the update.
_CATALOG_MERGED_COLUMNS = tuple(c for c in _CATALOG_INSERT_COLUMNS if c not in ("uid", "source", "name", "version"))
_CATALOG_SET = ", ".join(f"{c} = ?" for c in _CATALOG_MERGED_COLUMNS)
_UPDATE_CATALOG_SQL = f"UPDATE updates SET {_CATALOG_SET} WHERE id = ?"  # noqa: S608 - constant column names
_CATALOG_SEEN_SQL = "UPDATE updates SET last_seen_at = ? WHERE id IN ({in})"
_SCAN_OK_COLUMNS = ("reboot_required", "missing_total", "missing_security", "missing_major", "missing_by_class")
_INSERT_SCAN_SQL = "INSERT INTO scans (run_id, host_id, scanned_at, status, error) VALUES (?, ?, ?, ?, ?)"
_INSERT_OK_SCAN_SQL = (
    f"INSERT INTO scans (run_id, host_id, scanned_at, status, error, {', '.join(_SCAN_OK_COLUMNS)})"  # noqa: S608 - constants
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The host's missing rows, and its other rows of updates it reports.
_HOST_MISSING_SQL = (
    "SELECT update_id, installed_version, first_seen_at FROM host_updates WHERE host_id = ? AND state = 'missing'"
)
_HOST_RESOLVED_SQL = (
    "SELECT update_id, state, first_seen_at FROM host_updates WHERE host_id = ? AND update_id IN ({in})"
)
# What decides whether an update the host no longer reports is installed or gone.
_NAME_VERSION_SQL = "SELECT id, name, version FROM updates WHERE id IN ({in})"
# One multi-row INSERT for a host's new rows ({rows}: that many of _HOST_UPDATE_ROW).
_INSERT_HOST_UPDATES_SQL = (
    "INSERT INTO host_updates (host_id, update_id, state, installed_version, first_seen_at, last_seen_at) VALUES {rows}"
)
_HOST_UPDATE_ROW = "(?, ?, 'missing', ?, ?, ?)"
_STILL_MISSING_SQL = "UPDATE host_updates SET last_seen_at = ? WHERE host_id = ? AND update_id IN ({in})"
_REOPEN_SQL = (
    "UPDATE host_updates SET state = 'missing', installed_version = ?, last_seen_at = ?, resolved_at = NULL"
    " WHERE host_id = ? AND update_id = ?"
)
_REOPEN_EARLIER_SQL = (
    "UPDATE host_updates SET state = 'missing', installed_version = ?, last_seen_at = ?, resolved_at = NULL,"
    " first_seen_at = ? WHERE host_id = ? AND update_id = ?"
)
_RESOLVE_SQL = (
    "UPDATE host_updates SET state = ?, installed_version = ?, resolved_at = ?"
    " WHERE host_id = ? AND update_id IN ({in})"
)
_SCAN_WRITE_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ?, 0))"
# update_counts (migration 0007): (update_id, missing, installed) added to an update's counts.
_BUMP_COUNTS_SQL = (
    "INSERT INTO update_counts (update_id, hosts_missing, hosts_installed) VALUES (?, ?, ?)"
    " ON CONFLICT (update_id) DO UPDATE SET hosts_missing = update_counts.hosts_missing + excluded.hosts_missing,"
    " hosts_installed = update_counts.hosts_installed + excluded.hosts_installed"
)
_ADD_COUNTS_SQL = (
    "UPDATE update_counts SET hosts_missing = hosts_missing + ?, hosts_installed = hosts_installed + ?"
    " WHERE update_id IN ({in})"
)
_NEW_COUNTS_SQL = (
    "INSERT INTO update_counts (update_id, hosts_missing, hosts_installed) VALUES (?, ?, ?)"
    " ON CONFLICT (update_id) DO NOTHING"
)
_HOSTS_MISSING_SQL = "SELECT DISTINCT host_id FROM host_updates WHERE state = 'missing' AND update_id IN ({in})"
_MISSED_ELSEWHERE_SQL = "SELECT update_id FROM update_counts WHERE hosts_missing > 1 AND update_id IN ({in})"


class _Dialect:
    """What the scan's write path needs to know of the database behind the DBAPI cursor."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sqlite = name == "sqlite"
        self._sql: dict[tuple[str, int, str], str] = {}

    def time(self, value: datetime) -> Any:
        """``value`` as a UTCDateTime column keeps it: naive UTC text on SQLite, else aware UTC."""
        return t.sqlite_timestamp(value) if self.sqlite else t.as_utc(value)

    def sql(self, text: str, n: int = 0, row: str = "") -> str:
        """``text`` for the driver: ``{in}`` made ``n`` placeholders, ``{rows}`` ``n`` times ``row``;
        ``?`` (sqlite3) or ``%s``."""
        key = (text, n, row)
        found = self._sql.get(key)
        if found is None:
            found = text.replace("{in}", ", ".join("?" * n)).replace("{rows}", ", ".join([row] * n)) if n else text
            if not self.sqlite:
                found = found.replace("?", "%s")
            self._sql[key] = found
        return found


class _ScanWrite:
    """One host's scan, written in the transaction of ``cur`` (a DBAPI cursor).

    At 10,000 hosts x 100 updates SQLAlchemy's per-row work (bind and result processing, a
    compiled-cache lookup per statement) cost more than the database's: here rows are plain
    tuples, and the scan's time is converted once into what a UTCDateTime column keeps
    (:func:`patchctl.store.schema.sqlite_timestamp` on SQLite), so timestamps read back are
    compared as the database keeps them. The values written are those SQLAlchemy's column types
    would write (a unit test reads them back through SQLAlchemy).
    """

    def __init__(self, dialect: _Dialect, cur: Any, scan: HostScan) -> None:
        self.d = dialect
        self.cur = cur
        self.scan = scan
        self.at = dialect.time(scan.scanned_at)

    # Statements with an IN list or several rows come in a few lengths only (powers of two), so
    # that the drivers' statement caches keep them (sqlite3 keeps 128 per connection): a fleet's
    # hosts miss every number of updates, and a statement compiled again costs more than it runs.

    def _rows(self, text: str, params: Sequence[Any]) -> list[Any]:
        self.cur.execute(self.d.sql(text), params)
        rows: list[Any] = self.cur.fetchall()
        return rows

    def _run(self, text: str, params: Sequence[Any]) -> None:
        self.cur.execute(self.d.sql(text), params)

    def _run_many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(self.d.sql(text), rows)

    def _rows_in(self, text: str, head: Sequence[Any], values: Sequence[Any]) -> list[Any]:
        """Rows of ``text`` (with ``{in}``) for ``head``'s parameters, then ``values`` in the list."""
        rows: list[Any] = []
        for chunk in _chunks(values):
            padded = _padded(chunk)
            self.cur.execute(self.d.sql(text, len(padded)), [*head, *padded])
            rows += self.cur.fetchall()
        return rows

    def _run_in(self, text: str, head: Sequence[Any], values: Sequence[Any]) -> int:
        """Run ``text`` (with ``{in}``) for ``head``'s parameters, then ``values`` in the list;
        returns the rows it changed."""
        changed = 0
        for chunk in _chunks(values):
            padded = _padded(chunk)
            self.cur.execute(self.d.sql(text, len(padded)), [*head, *padded])
            changed += self.cur.rowcount
        return changed

    def _insert_rows(self, text: str, row: str, values: Sequence[Any]) -> None:
        """Multi-row INSERT ``text`` (with ``{rows}``) of ``values``: ``row``'s parameters, row after
        row, flat; in statements of 2**k rows (100 rows: 64, 32, 4). A statement of many rows is
        cheaper than executemany's one per row."""
        width = row.count("?")
        start, left = 0, len(values) // width
        while left:
            n = 1 << (min(left, _IN_CHUNK).bit_length() - 1)
            self.cur.execute(self.d.sql(text, n, row), values[start : start + n * width])
            start, left = start + n * width, left - n

    def lock(self) -> None:
        """PostgreSQL: scans insert-or-update hosts, catalog rows and host updates that another
        writer (a thread, or another control node) may be inserting at the same moment: they take
        turns, as BEGIN IMMEDIATE makes them on SQLite. Released at commit."""
        if not self.d.sqlite:
            self._run(_SCAN_WRITE_LOCK_SQL, (_SCAN_WRITE_LOCK_NAME,))

    def host_row(self) -> dict[str, Any] | None:
        rows = self._rows(_SELECT_HOST_SQL, (self.scan.host,))
        return dict(zip(_HOST_COLUMNS, rows[0], strict=True)) if rows else None

    def catalog(
        self, reported: Sequence[tuple[str, Update]]
    ) -> tuple[list[int], list[tuple[str, Any, Any]], list[int]]:
        """Insert new updates, refresh known ones.

        Returns, for each of ``reported``, its ``updates.id`` and its (classification, major,
        approved) as the catalog has them now (what the host's summary counts: major and approved
        as the driver gives booleans); and the ids of known updates whose classification or
        ``major`` this scan changed.
        """
        at = self.at
        existing: dict[str, Any] = {}
        uids = [uid for uid, _upd in reported]
        for row in self._rows_in(_SELECT_CATALOG_SQL, (), uids):
            existing[row[_C_UID]] = row
        # updates.last_seen_at is bumped once per SEEN_GRANULARITY (see there).
        stale = self.d.time(self.scan.scanned_at - SEEN_GRANULARITY)
        new_rows: list[tuple[Any, ...]] = []
        new_at: list[int] = []  # positions in reported of the new updates
        changed_rows: list[tuple[Any, ...]] = []
        seen_only: list[int] = []
        ids: list[int] = []
        kinds: list[tuple[str, Any, Any]] = []
        reclassified: list[int] = []
        for uid, upd in reported:
            old = existing.get(uid)
            if old is None:
                new_at.append(len(ids))
                ids.append(0)  # known once inserted
                kinds.append((upd.classification, bool(upd.major), False))  # no decision yet
                new_rows.append(
                    (
                        uid,
                        upd.source,
                        upd.name,
                        upd.version,
                        upd.arch,
                        upd.classification,
                        upd.severity,
                        t.json_text(upd.cves),
                        t.json_text(upd.advisory_ids),
                        t.json_text(upd.kbs),
                        upd.title,
                        upd.origin,
                        bool(upd.major),
                        bool(upd.reboot_hint),
                        upd.update_id,
                        at,
                        at,
                    )
                )
                continue
            update_id = old[_C_ID]
            ids.append(update_id)
            if not _adds_detail(upd, old, at):
                kinds.append((old[_C_CLASS], old[_C_MAJOR], old[_C_APPROVED]))
                # The usual case at scale: nothing new but the time.
                if old[_C_LAST] < stale:
                    seen_only.append(update_id)
                continue
            # Hosts may describe the same update with more or less detail: keep what is known.
            classification = upd.classification
            if classification == "other" and old[_C_CLASS] != "other":
                classification = old[_C_CLASS]
            major = bool(upd.major or old[_C_MAJOR])
            changed_rows.append(
                (
                    upd.arch or old[_C_ARCH],
                    classification,
                    upd.severity or old[_C_SEVERITY],
                    t.json_text(_merge_tuple(upd.cves, _json_list(old[_C_CVES]))),
                    t.json_text(_merge_tuple(upd.advisory_ids, _json_list(old[_C_ADVISORIES]))),
                    t.json_text(_merge_tuple(upd.kbs, _json_list(old[_C_KBS]))),
                    upd.title or old[_C_TITLE],
                    upd.origin or old[_C_ORIGIN],
                    major,
                    bool(upd.reboot_hint or old[_C_REBOOT]),
                    upd.update_id or old[_C_UPDATE_ID],
                    min(old[_C_FIRST], at),
                    max(old[_C_LAST], at),
                    update_id,
                )
            )
            kinds.append((classification, major, old[_C_APPROVED]))
            if (classification, major) != (old[_C_CLASS], bool(old[_C_MAJOR])):
                reclassified.append(update_id)
        if new_rows:
            self._run_many(_INSERT_CATALOG_SQL, new_rows)
            new_ids: dict[str, int] = {}
            for update_id, uid in self._rows_in(_CATALOG_IDS_SQL, (), [row[0] for row in new_rows]):
                new_ids[uid] = int(update_id)
            for i in new_at:
                ids[i] = new_ids[reported[i][0]]
        self._run_in(_CATALOG_SEEN_SQL, (at,), seen_only)
        self._run_many(_UPDATE_CATALOG_SQL, changed_rows)
        return ids, kinds, reclassified

    def write_host(self, row: dict[str, Any] | None, summary: dict[str, int] | None) -> int:
        """Insert or update the host's row (``row``: its current values, None when new)."""
        scan, at = self.scan, self.at
        ok = scan.status == HOST_OK

        def keep(new: str | None, column: str) -> str | None:
            # What the host or inventory says now; the last known value when it says nothing.
            if new is not None or row is None:
                return new
            old: str | None = row[column]
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
            values["groups"] = t.json_text(list(scan.groups))
        if ok:
            values["last_ok_scan_at"] = at
            values["reboot_required"] = bool(scan.reboot_required)
            if not scan.reboot_required:
                values["reboot_required_since"] = None
            elif row is None or not row["reboot_required"] or row["reboot_required_since"] is None:
                values["reboot_required_since"] = at
        if summary is not None:
            values.update(summary)
        if row is None:
            values.setdefault("reboot_required", False)
            names = ("name", "first_seen_at", *values)
            sql = f"INSERT INTO hosts ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) RETURNING id"  # noqa: S608 - fixed names
            return int(self._rows(sql, (scan.host, at, *values.values()))[0][0])
        sql = f"UPDATE hosts SET {', '.join(f'{name} = ?' for name in values)} WHERE id = ?"  # noqa: S608 - fixed names
        self._run(sql, (*values.values(), row["id"]))
        return int(row["id"])

    def insert_scan(self, run_id: int, host_id: int, reported: Sequence[Update]) -> None:
        scan = self.scan
        values = (run_id, host_id, self.at, scan.status, scan.error)
        if scan.status != HOST_OK:
            self._run(_INSERT_SCAN_SQL, values)
            return
        by_class = Counter([u.classification for u in reported])
        self._run(
            _INSERT_OK_SCAN_SQL,
            (
                *values,
                bool(scan.reboot_required),
                len(reported),
                by_class.get("security", 0),
                len([u for u in reported if u.major]),
                t.json_text(dict(sorted(by_class.items()))),
            ),
        )

    def host_updates(
        self, host_id: int, new_host: bool, reported: Sequence[tuple[str, Update]], ids: Sequence[int]
    ) -> None:
        """Mark the reported updates (``ids``: their ``updates.id``) missing on the host; resolve
        those it no longer reports."""
        scan, at = self.scan, self.at
        # update_id -> (installed_version, first_seen_at) of the host's missing rows
        missing: dict[int, tuple[Any, ...]] = {}
        # update_id -> (state, first_seen_at) of its other rows of updates it reports now
        resolved: dict[int, tuple[Any, ...]] = {}
        if not new_host:
            for update_id, *rest in self._rows(_HOST_MISSING_SQL, (host_id,)):
                missing[int(update_id)] = tuple(rest)
            others = [update_id for update_id in ids if update_id not in missing]
            for update_id, state, first_seen in self._rows_in(_HOST_RESOLVED_SQL, (host_id,), others):
                resolved[int(update_id)] = (state, first_seen)
        inserts: list[Any] = []  # _HOST_UPDATE_ROW's values, flat
        still_missing: list[int] = []  # missing before and now, same installed version: only seen again
        reopened: list[tuple[Any, ...]] = []
        reopened_earlier: list[tuple[Any, ...]] = []  # a scan older than the row's first sighting
        # (state, installed version) -> the updates it resolves: most often (gone, None)
        resolutions: dict[tuple[str, str | None], list[int]] = {}
        # update_counts: (missing, installed) added -> the updates it is added to
        counts: dict[tuple[int, int], list[int]] = {}
        added: list[int] = []  # (1, 0): new on the host, or back from gone
        for (_uid, upd), update_id in zip(reported, ids, strict=True):
            was = missing.get(update_id)
            if was is not None:
                installed_version, first_seen = was[0], was[1]
                if installed_version == upd.installed_version and first_seen <= at:
                    still_missing.append(update_id)
                    continue
            else:
                other = resolved.get(update_id)
                if other is None:
                    inserts += (host_id, update_id, upd.installed_version, at, at)
                    added.append(update_id)
                    continue
                state, first_seen = other
                if state == t.STATE_INSTALLED:
                    counts.setdefault((1, -1), []).append(update_id)
                else:
                    added.append(update_id)
            if first_seen > at:
                reopened_earlier.append((upd.installed_version, at, at, host_id, update_id))
            else:
                reopened.append((upd.installed_version, at, host_id, update_id))
        reported_ids = set(ids)
        gone = [update_id for update_id in missing if update_id not in reported_ids]
        # update_id -> (name, version): what decides installed or gone; read only when the scan
        # gives the host's versions of the packages the store asked about (else: gone).
        packages: dict[int, tuple[str, str]] = {}
        if gone and scan.installed:
            packages = {int(r[0]): (r[1], r[2]) for r in self._rows_in(_NAME_VERSION_SQL, (), gone)}
        for update_id in gone:
            package = packages.get(update_id)
            now_version = None if package is None else scan.installed.get(package[0])
            installed = package is not None and now_version is not None and now_version == package[1]
            state = t.STATE_INSTALLED if installed else t.STATE_GONE
            resolutions.setdefault((state, now_version), []).append(update_id)
            counts.setdefault((-1, 1 if installed else 0), []).append(update_id)
        self._insert_rows(_INSERT_HOST_UPDATES_SQL, _HOST_UPDATE_ROW, inserts)
        # At scale most rows are unchanged but for the time they were seen: one statement for them.
        self._run_in(_STILL_MISSING_SQL, (at, host_id), still_missing)
        self._run_many(_REOPEN_SQL, reopened)
        self._run_many(_REOPEN_EARLIER_SQL, reopened_earlier)
        for (state, now_version), update_ids in resolutions.items():
            self._run_in(_RESOLVE_SQL, (state, now_version, at, host_id), update_ids)
        if added:
            counts[(1, 0)] = added
        self._bump_counts(counts)

    def _bump_counts(self, counts: Mapping[tuple[int, int], Sequence[int]]) -> None:
        """Add to ``update_counts``: ``(missing, installed)`` -> the updates it is added to."""
        if not self.d.sqlite:
            # Row by row in update order: the order every writer (deploy results too) locks them in.
            rows = sorted((update_id, *change) for change, update_ids in counts.items() for update_id in update_ids)
            self._run_many(_BUMP_COUNTS_SQL, rows)
            return
        # SQLite writes one transaction at a time: one UPDATE per kind of change (a scan makes at
        # most five kinds). An update without its row yet (new in the catalog) gets it inserted.
        for (missing, installed), update_ids in counts.items():
            if self._run_in(_ADD_COUNTS_SQL, (missing, installed), update_ids) != len(update_ids):
                self._run_many(_NEW_COUNTS_SQL, [(update_id, missing, installed) for update_id in update_ids])

    def hosts_also_missing(self, host_id: int, update_ids: Sequence[int]) -> list[int]:
        """The other hosts missing any of ``update_ids`` (missing on this host now), sorted. Their
        counts say first whether there are any: no index leads from an update to the hosts
        missing it, so finding them reads every missing row (rare: ``update_ids`` are updates
        whose classification or ``major`` a scan just changed)."""
        elsewhere = [int(r[0]) for r in self._rows_in(_MISSED_ELSEWHERE_SQL, (), update_ids)]
        if not elsewhere:
            return []
        hosts = {int(r[0]) for r in self._rows_in(_HOSTS_MISSING_SQL, (), elsewhere)}
        hosts.discard(host_id)
        return sorted(hosts)


def _dbapi_cursor(conn: Connection) -> Any:
    """A cursor of the DBAPI connection under ``conn``: it runs in ``conn``'s transaction."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return raw.cursor()


class Store:
    """patchctl's database. Open with :meth:`Store.open`; close, or use as a context manager."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._url = url
        self._closed = False
        self._dialect = _Dialect(engine.dialect.name)
        # What the DBAPI raises: the scan's write runs on the DBAPI cursor (see _ScanWrite).
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

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
        except (SQLAlchemyError, self._driver_error) as exc:
            raise StoreError(f"cannot {what} in {self._url}: {exc}") from exc

    @contextmanager
    def _raw_write(self, what: str) -> Iterator[Any]:
        """:meth:`_write` on the DBAPI connection: a cursor in a transaction of its own (BEGIN
        IMMEDIATE on SQLite), committed when the block ends, rolled back if it raises; errors as
        StoreError. SQLAlchemy's connection and transaction objects cost a scan's write about 10%."""
        self._check_open()
        try:
            raw = self._engine.raw_connection()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {what} in {self._url}: {exc}") from exc
        try:
            cur = raw.cursor()
            try:
                if self._dialect.sqlite:
                    cur.execute("BEGIN IMMEDIATE")
                yield cur
                raw.commit()
            except BaseException:
                try:
                    raw.rollback()
                except self._driver_error:
                    raw.invalidate()  # a connection that cannot roll back is not reused
                raise
            finally:
                cur.close()
        except self._driver_error as exc:
            raise StoreError(f"cannot {what} in {self._url}: {exc}") from exc
        finally:
            raw.close()

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
        """Recompute every update's approval and counts, every host's summary counts and every
        finished run's history point from the rows they summarize: for a store whose rows were written by other
        means (the store benchmark's generator, a hand repair). patchctl's own writers keep them
        as they go."""
        sr = t.scan_runs
        with self._write("refresh the summary counts") as conn:
            refresh_approvals(conn)
            refresh_host_summaries(conn, [int(i) for i in conn.scalars(sa.select(t.hosts.c.id).order_by(t.hosts.c.id))])
            refresh_update_counts(conn)
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
        ``controller_cpu_seconds`` and ``error`` (:meth:`patchctl.ansible.fleet.PartStats.as_dict`).
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
        or updated in one batched statement (executemany or ``IN``), on the DBAPI cursor
        (:class:`_ScanWrite`).
        """
        if scan.status not in HOST_STATUSES:
            raise StoreError(
                f"scan of {scan.host}: unknown status {scan.status!r} (expected one of {', '.join(HOST_STATUSES)})"
            )
        ok = scan.status == HOST_OK
        reported = list({u.uid: u for u in scan.updates}.items()) if ok else []
        with self._raw_write(f"record the scan of {scan.host}") as cur:
            write = _ScanWrite(self._dialect, cur, scan)
            write.lock()
            row = write.host_row()
            summary: dict[str, int] | None = None
            ids: list[int] = []
            reclassified: list[int] = []
            if ok:
                ids, kinds, reclassified = write.catalog(reported)
                counted = Counter(kinds)
                summary = host_summary(counted, counted.values())
            host_id = write.write_host(row, summary)
            write.insert_scan(run_id, host_id, [upd for _uid, upd in reported])
            if ok:
                write.host_updates(host_id, row is None, reported, ids)
            if reclassified:
                # A scan told the catalog a new classification or `major` for updates other hosts
                # miss too: their summary counts change with it.
                _refresh_host_summaries(self._dialect, cur, write.hosts_also_missing(host_id, reclassified))

    # --- reading ----------------------------------------------------------------------------

    def watched_packages(self, source: str) -> list[str]:
        """Names of catalog updates of ``source`` missing on some host, sorted.

        A scan passes them to the hosts so each reports the installed version of each.
        """
        u, c = t.updates, t.update_counts
        query = (
            sa.select(u.c.name)
            .distinct()
            .join(c, c.c.update_id == u.c.id)
            .where(u.c.source == source, c.c.hosts_missing > 0)
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
