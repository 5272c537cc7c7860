"""A host's scan written in one transaction, on the DBAPI cursor, with its own SQL per dialect.

A successful scan upserts the host, adds a ``scans`` row, upserts every reported update into the
catalog and marks them missing on the host; updates that were missing before and are no longer
reported become ``installed`` (when ``scan.installed`` shows the host now has that version) or
``gone``. The host's summary counts (``hosts.missing_*``) and the updates' ``update_counts`` are
written with it. A failed or unreachable scan records the scan and the host's status only: what
is missing on it is unknown, so it stays as it was.

On PostgreSQL a scan's write takes a transaction-level advisory lock (:func:`scan_write_lock`),
so two control nodes recording the same new update or host take turns instead of one failing on a
unique key; on SQLite ``BEGIN IMMEDIATE`` does the same.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE, HostScan, Update
from patchctl.store import schema as t
from patchctl.store.counters import BUMP_COUNTS_SQL, host_summary, refresh_host_summaries_on
from patchctl.store.dbapi import IN_CHUNK, XACT_LOCK_SQL, Dialect, chunks, padded

HOST_STATUSES = (HOST_OK, HOST_FAILED, HOST_UNREACHABLE)
# The pg_advisory_xact_lock key under which scans (and the writers of what a scan counts) take turns.
_SCAN_WRITE_LOCK_NAME = "patchctl scan write"
# updates.last_seen_at is bumped once per this span, not by every host of a run that reports the
# update: at 10,000 hosts each bump rewrote catalog pages in every host's transaction.
SEEN_GRANULARITY = timedelta(minutes=10)


def scan_write_lock(conn: Connection) -> None:
    """PostgreSQL: take the scans' turn (see :meth:`_ScanWrite.lock`), for other writers of what a
    scan counts (decisions). Released at commit; nothing on SQLite (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(Dialect(conn.dialect.name).sql(XACT_LOCK_SQL), (_SCAN_WRITE_LOCK_NAME,))


def write_scan(dialect: Dialect, cur: Any, run_id: int, scan: HostScan) -> None:
    """Write ``scan`` (its status one of :data:`HOST_STATUSES`) of run ``run_id`` in the
    transaction of ``cur``.

    About ten statements, whatever the number of updates: each kind of row is read, inserted or
    updated in one batched statement (executemany or ``IN``).
    """
    ok = scan.status == HOST_OK
    reported = list({u.uid: u for u in scan.updates}.items()) if ok else []
    write = _ScanWrite(dialect, cur, scan)
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
        refresh_host_summaries_on(dialect, cur, write.hosts_also_missing(host_id, reclassified))


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
    "released_at",
)
_C_ID, _C_UID, _C_CLASS, _C_MAJOR, _C_FIRST, _C_LAST = range(6)
_C_ARCH, _C_SEVERITY, _C_TITLE, _C_ORIGIN, _C_UPDATE_ID, _C_REBOOT, _C_CVES, _C_ADVISORIES, _C_KBS = range(6, 15)
_C_APPROVED, _C_RELEASED = 15, 16


def _adds_detail(upd: Update, old: Sequence[Any], at: Any, released: Any) -> bool:
    """Whether a scan's ``upd`` tells the catalog row ``old`` (its ``_CATALOG_COLUMNS``) anything but
    that it was seen at ``at`` (``released``: its ``released_at``; both timestamps as the database
    keeps them).

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
        or (released is not None and released != old[_C_RELEASED])
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


# --- the SQL ------------------------------------------------------------------------------

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
# SQL with ``?`` placeholders (made the driver's by Dialect.sql) and ``{in}`` for an IN list.
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
    "released_at",
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


class _ScanWrite:
    """One host's scan, written in the transaction of ``cur`` (a DBAPI cursor).

    At 10,000 hosts x 100 updates SQLAlchemy's per-row work (bind and result processing, a
    compiled-cache lookup per statement) cost more than the database's: here rows are plain
    tuples, and the scan's time is converted once into what a UTCDateTime column keeps
    (:func:`patchctl.store.schema.sqlite_timestamp` on SQLite), so timestamps read back are
    compared as the database keeps them. The values written are those SQLAlchemy's column types
    would write (a unit test reads them back through SQLAlchemy).
    """

    def __init__(self, dialect: Dialect, cur: Any, scan: HostScan) -> None:
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
        for chunk in chunks(values):
            values_in = padded(chunk)
            self.cur.execute(self.d.sql(text, len(values_in)), [*head, *values_in])
            rows += self.cur.fetchall()
        return rows

    def _run_in(self, text: str, head: Sequence[Any], values: Sequence[Any]) -> int:
        """Run ``text`` (with ``{in}``) for ``head``'s parameters, then ``values`` in the list;
        returns the rows it changed."""
        changed = 0
        for chunk in chunks(values):
            values_in = padded(chunk)
            self.cur.execute(self.d.sql(text, len(values_in)), [*head, *values_in])
            changed += self.cur.rowcount
        return changed

    def _insert_rows(self, text: str, row: str, values: Sequence[Any]) -> None:
        """Multi-row INSERT ``text`` (with ``{rows}``) of ``values``: ``row``'s parameters, row after
        row, flat; in statements of 2**k rows (100 rows: 64, 32, 4). A statement of many rows is
        cheaper than executemany's one per row."""
        width = row.count("?")
        start, left = 0, len(values) // width
        while left:
            n = 1 << (min(left, IN_CHUNK).bit_length() - 1)
            self.cur.execute(self.d.sql(text, n, row), values[start : start + n * width])
            start, left = start + n * width, left - n

    def lock(self) -> None:
        """PostgreSQL: scans insert-or-update hosts, catalog rows and host updates that another
        writer (a thread, or another control node) may be inserting at the same moment: they take
        turns, as BEGIN IMMEDIATE makes them on SQLite. Released at commit."""
        if not self.d.sqlite:
            self._run(XACT_LOCK_SQL, (_SCAN_WRITE_LOCK_NAME,))

    def host_row(self) -> dict[str, Any] | None:
        rows = self._rows(_SELECT_HOST_SQL, (self.scan.host,))
        return dict(zip(_HOST_COLUMNS, rows[0], strict=True)) if rows else None

    def released(self, upd: Update) -> Any:
        """The update's release date as the database keeps it (None when the source gives none)."""
        return None if upd.released_at is None else self.d.time(upd.released_at)

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
                        self.released(upd),
                    )
                )
                continue
            update_id = old[_C_ID]
            ids.append(update_id)
            if not _adds_detail(upd, old, at, self.released(upd)):
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
                    # the source's latest word (a revised update is re-dated), else what was known
                    self.released(upd) if upd.released_at is not None else old[_C_RELEASED],
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
            values["holds"] = held_json(scan)
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
            self._run_many(BUMP_COUNTS_SQL, rows)
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


def held_json(scan: HostScan) -> str:
    """``hosts.holds`` (migration 0012): the host's package holds and the updates they keep back."""
    return t.json_text(
        {
            "holds": [{"name": name, "by": by} for name, by in scan.holds],
            "updates": [
                {
                    "uid": u.uid,
                    "name": u.name,
                    "version": u.version,
                    "installed_version": u.installed_version,
                    "by": u.held,
                }
                for u in scan.held
            ],
        }
    )
