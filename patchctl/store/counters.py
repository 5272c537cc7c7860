"""The counts the store keeps as it writes, so that reports need not count rows.

- ``hosts.missing_*`` (migration 0006) and ``hosts.missing_approved`` (0008): per host, what is
  missing on it by classification, major and approved (:func:`host_summary`);
- ``update_counts`` (0007): per update, the hosts missing it and the hosts that installed it;
- ``updates.approved`` (0008): whether the update's latest decision approves it;
- ``scan_runs.scans_*`` (0006): a finished run's history point, every scan counted.

A scan writes its own host's counts (:mod:`patchctl.store.scan_write`); the functions here are for
the other writers (decisions, deploy results) and for a full refresh (:func:`refresh_all`). Each
runs in the transaction of the connection it is given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from patchctl.store import schema as t
from patchctl.store.dbapi import Dialect, chunks, dbapi_cursor, padded
from patchctl.store.reports import RUN_COUNT_COLUMNS, RUN_COUNTS_SQL

# classification -> its summary column (unknown ones count as other)
_SUMMARY_COLUMN = {c: f"missing_{c}" for c in t.VIEW_CLASSIFICATIONS}
# What host_summary gives: the view's summary columns (0006) and missing_approved (0008).
_HOST_SUMMARY_KEPT = (*t.HOST_SUMMARY_COLUMNS, "missing_approved")

# update_counts: (update_id, missing, installed) added to an update's counts.
BUMP_COUNTS_SQL = (
    "INSERT INTO update_counts (update_id, hosts_missing, hosts_installed) VALUES (?, ?, ?)"
    " ON CONFLICT (update_id) DO UPDATE SET hosts_missing = update_counts.hosts_missing + excluded.hosts_missing,"
    " hosts_installed = update_counts.hosts_installed + excluded.hosts_installed"
)
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
    cur = dbapi_cursor(conn)
    try:
        refresh_host_summaries_on(Dialect(conn.dialect.name), cur, host_ids)
    finally:
        cur.close()


def refresh_host_summaries_on(dialect: Dialect, cur: Any, host_ids: Sequence[int]) -> None:
    """:func:`refresh_host_summaries` on a DBAPI cursor (the scan's write runs on one)."""
    if not host_ids:
        return
    kinds: dict[int, list[tuple[str, bool, bool]]] = {int(h): [] for h in host_ids}
    counts: dict[int, list[int]] = {int(h): [] for h in host_ids}
    for chunk in chunks(list(kinds)):
        values = padded(chunk)
        cur.execute(dialect.sql(_HOST_KINDS_SQL, len(values)), values)
        for host_id, classification, major, approved, n in cur.fetchall():
            kinds[int(host_id)].append((str(classification), bool(major), bool(approved)))
            counts[int(host_id)].append(int(n))
    rows = []
    for host_id in kinds:
        summary = host_summary(kinds[host_id], counts[host_id])
        rows.append((*(summary[c] for c in _HOST_SUMMARY_KEPT), host_id))
    cur.executemany(dialect.sql(_UPDATE_SUMMARY_SQL), rows)


def refresh_approvals(conn: Connection, update_ids: Sequence[int] | None = None) -> None:
    """``updates.approved`` of ``update_ids`` (None: every update) from their latest decisions, in
    ``conn``'s transaction; ``hosts.missing_approved`` moves with it for the hosts missing an
    update whose approval changed."""
    u, d, hu = t.updates, t.decisions, t.host_updates
    batches = chunks(list(update_ids)) if update_ids is not None else [None]
    now_approved: list[int] = []
    no_longer: list[int] = []
    for chunk in batches:
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
        for chunk in chunks(ids):
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
        conn.exec_driver_sql(Dialect(conn.dialect.name).sql(BUMP_COUNTS_SQL), rows)


def refresh_update_counts(conn: Connection) -> None:
    """Recompute every row of ``update_counts`` from ``host_updates``, in ``conn``'s transaction."""
    conn.execute(t.update_counts.delete())
    conn.execute(sa.text(_FILL_UPDATE_COUNTS_SQL))


def run_history(conn: Connection, run_id: int) -> dict[str, int]:
    """The ``scan_runs.scans_*`` columns of a run: its history point, from its scans."""
    history = dict.fromkeys(RUN_COUNT_COLUMNS.values(), 0)
    for point in conn.execute(sa.text(RUN_COUNTS_SQL.format(where="s.run_id = :run")), {"run": run_id}):
        history = {column: int(point._mapping[name] or 0) for name, column in RUN_COUNT_COLUMNS.items()}
    return history


def refresh_all(conn: Connection) -> None:
    """Recompute every update's approval and counts, every host's summary counts and every
    finished run's history point from the rows they summarize, in ``conn``'s transaction."""
    sr = t.scan_runs
    refresh_approvals(conn)
    refresh_host_summaries(conn, [int(i) for i in conn.scalars(sa.select(t.hosts.c.id).order_by(t.hosts.c.id))])
    refresh_update_counts(conn)
    for run_id in conn.scalars(sa.select(sr.c.id).where(sr.c.finished_at.is_not(None))):
        conn.execute(sr.update().where(sr.c.id == run_id).values(**run_history(conn, int(run_id))))
