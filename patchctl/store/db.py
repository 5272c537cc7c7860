"""The :class:`Store`: patchctl's database as one object, opened from a SQLAlchemy URL.

The Store holds the engine and its transactions; each job is a module of its own, which the
Store's methods call:

- :mod:`patchctl.store.engine`: URL checks, the connection set-up of SQLite and PostgreSQL,
  Alembic migrations (:meth:`Store.open` creates and migrates, for the commands that write;
  :meth:`Store.open_existing` neither, for those that only read; :meth:`Store.upgrade`);
- :mod:`patchctl.store.scan_write`: a host's scan, on the DBAPI cursor
  (:meth:`Store.record_host_scan`), with :mod:`patchctl.store.dbapi` for its SQL per dialect;
- :mod:`patchctl.store.counters`: the counts kept as rows are written
  (:meth:`Store.refresh_summaries`);
- :mod:`patchctl.store.runs`: scan runs and their parts per node;
- :mod:`patchctl.store.queries`: the reads and the rows they return.

Every write runs in its own short transaction (``BEGIN IMMEDIATE`` on SQLite, so concurrent
writers queue on the busy timeout instead of failing on a lock upgrade; on PostgreSQL a scan's
write takes a transaction-level advisory lock, so two control nodes recording the same new update
or host take turns instead of one failing on a unique key). That makes
:meth:`Store.record_host_scan` safe to call from a result callback, from any thread: a crash
loses at most the host in flight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from patchctl.errors import StoreError
from patchctl.rules.model import HostScan
from patchctl.rules.report import HostComplianceRow
from patchctl.store import counters, queries, runs
from patchctl.store import schema as t
from patchctl.store.dbapi import Dialect
from patchctl.store.engine import (
    BEGIN_OPTION,
    alembic_config,
    current_revisions,
    migrate,
    open_engine,
    require_current,
    upgrade_existing,
)
from patchctl.store.queries import MissingUpdateRow, ScanRunRow
from patchctl.store.scan_write import HOST_STATUSES, write_scan

__all__ = ["HostComplianceRow", "MissingUpdateRow", "ScanRunRow", "SchemaUpgrade", "Store", "alembic_config"]


@dataclass(frozen=True)
class SchemaUpgrade:
    """What :meth:`Store.upgrade` did: the store's schema revision before and after."""

    url: str
    before: str
    after: str

    @property
    def upgraded(self) -> bool:
        return self.before != self.after

    def as_dict(self) -> dict[str, Any]:
        return {"db": self.url, "from": self.before, "to": self.after, "upgraded": self.upgraded}


class Store:
    """patchctl's database. Open with :meth:`Store.open`; close, or use as a context manager."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._url = url
        self._closed = False
        self._dialect = Dialect(engine.dialect.name)
        # What the DBAPI raises: the scan's write runs on the DBAPI cursor (see scan_write).
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    # --- lifecycle --------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Open (creating and migrating if needed) the store at a SQLAlchemy URL: for the
        commands that write. A SQLite file's missing directory is made only in PATCHCTL_HOME.
        ``create=False``: for writers that need what an earlier command stored (deploy, reboot,
        verify without a rescan): an existing store is migrated, a missing one is StoreMissing.

        Raises StoreError naming the URL (password hidden) when it cannot be opened.
        """
        engine, shown = open_engine(url, create=create)
        store = cls(engine, shown)
        try:
            if create:
                migrate(engine, shown)
            else:
                upgrade_existing(engine, shown)
        except BaseException:
            engine.dispose()
            raise
        return store

    @classmethod
    def open_existing(cls, url: str) -> Store:
        """Open the store at a SQLAlchemy URL as it is: for the commands that only read.

        Nothing is created or migrated: StoreMissing when there is no store there (no SQLite file;
        no patchctl tables in the PostgreSQL schema), StoreOutdated naming the pending migrations
        when it is at an older schema revision, StoreError when it cannot be opened.
        """
        engine, shown = open_engine(url, create=False)
        store = cls(engine, shown)
        try:
            require_current(engine, shown)
        except BaseException:
            engine.dispose()
            raise
        return store

    @staticmethod
    def upgrade(url: str) -> SchemaUpgrade:
        """Migrate the existing store at ``url`` to the newest schema revision (StoreMissing when
        there is none: upgrading creates nothing)."""
        engine, shown = open_engine(url, create=False)
        try:
            before, after = upgrade_existing(engine, shown)
        finally:
            engine.dispose()
        return SchemaUpgrade(shown, before, after)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        _exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
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
            current = current_revisions(conn)
        return next(iter(current)) if len(current) == 1 else None

    # --- transactions -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self._url} is closed")

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        self._check_open()
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
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
        runs.check_run(kind, hosts_total)
        with self._write("start a run") as conn:
            return runs.start_run(conn, kind, inventory, limit, hosts_total, now)

    def finish_run(self, run_id: int, status: str, *, now: datetime | None = None) -> None:
        """Close a run: its status, finish time and host counts taken from its scans.

        A host scanned twice in one run counts once, by its last scan. The report's history
        point of the run (``scan_runs.scans_*``: every scan counted) is kept with it.
        """
        with self._write("finish a run") as conn:
            if not runs.finish_run(conn, run_id, status, now):
                raise StoreError(f"no run {run_id} in {self._url}")

    def refresh_summaries(self) -> None:
        """Recompute every update's approval and counts, every host's summary counts and every
        finished run's history point from the rows they summarize: for a store whose rows were written by other
        means (the store benchmark's generator, a hand repair). patchctl's own writers keep them
        as they go."""
        with self._write("refresh the summary counts") as conn:
            counters.refresh_all(conn)

    def unfinished_runs(self, kind: str, started_before: datetime) -> list[int]:
        """Ids of runs of ``kind`` still ``running`` that started before ``started_before``."""
        with self._read() as conn:
            return queries.unfinished_runs(conn, kind, started_before)

    def get_run(self, run_id: int) -> ScanRunRow:
        with self._read() as conn:
            row = queries.get_run(conn, run_id)
        if row is None:
            raise StoreError(f"no run {run_id} in {self._url}")
        return row

    # --- execution nodes: per part of a run -------------------------------------------------

    def record_node_parts(
        self, kind: str, run_id: int, parts: Iterable[Mapping[str, Any]], *, now: datetime | None = None
    ) -> None:
        """Record how each part of a scan or deploy run went (``node_runs``, ``v_node_throughput``).

        ``run_id`` is a ``scan_runs`` id for ``kind`` scan, a ``deploy_runs`` id for deploy; each
        part has ``node``, ``hosts``, ``seconds`` and optionally ``forks``,
        ``controller_cpu_seconds`` and ``error`` (:meth:`patchctl.ansible.fleet.PartStats.as_dict`).
        """
        runs.check_node_kind(kind)
        rows = runs.node_part_rows(kind, run_id, parts, now)
        if not rows:
            return
        with self._write("record the run's parts per node") as conn:
            conn.execute(t.node_runs.insert(), rows)

    def node_throughput(self) -> list[dict[str, Any]]:
        """``v_node_throughput``: per node and kind of run, hosts, seconds and hosts per minute."""
        with self._read() as conn:
            return queries.node_throughput(conn)

    # --- recording a scan -------------------------------------------------------------------

    def record_host_scan(self, run_id: int, scan: HostScan) -> None:
        """Write one host's scan in one transaction (:mod:`patchctl.store.scan_write`).

        A successful scan upserts the host, adds a ``scans`` row, upserts every reported update
        into the catalog and marks them missing on the host; updates that were missing before
        and are no longer reported become ``installed`` (when ``scan.installed`` shows the
        host now has that version) or ``gone``. The host's summary counts (``hosts.missing_*``)
        are written with it. A failed or unreachable scan records the scan and the host's status
        only: what is missing on it is unknown, so it stays as it was.
        """
        if scan.status not in HOST_STATUSES:
            raise StoreError(
                f"scan of {scan.host}: unknown status {scan.status!r} (expected one of {', '.join(HOST_STATUSES)})"
            )
        with self._raw_write(f"record the scan of {scan.host}") as cur:
            write_scan(self._dialect, cur, run_id, scan)

    # --- reading ----------------------------------------------------------------------------

    def watched_packages(self, source: str) -> list[str]:
        """Names of catalog updates of ``source`` missing on some host, sorted.

        A scan passes them to the hosts so each reports the installed version of each.
        """
        with self._read() as conn:
            return queries.watched_packages(conn, source)

    def hosts(self) -> list[str]:
        """Names of every host the store knows, sorted."""
        with self._read() as conn:
            return queries.host_names(conn)

    def host_compliance(self, hosts: Iterable[str] | None = None) -> list[HostComplianceRow]:
        """Rows of ``v_host_compliance`` (all hosts, or the named ones), sorted by host."""
        with self._read() as conn:
            return queries.host_compliance(conn, hosts)

    def missing_updates(self, host: str | None = None) -> list[MissingUpdateRow]:
        """Rows of ``v_missing_updates`` (one host or all), sorted by host then update."""
        with self._read() as conn:
            return queries.missing_updates(conn, host)

    def host_lineages(self, hosts: Iterable[str]) -> dict[str, set[tuple[str, str]]]:
        """host -> the (source, package) its scans ever listed (:func:`queries.host_lineages`)."""
        with self._read() as conn:
            return queries.host_lineages(conn, hosts)
