"""What ``patchctl report`` reads beyond ``v_host_compliance``: the most widespread missing
updates, compliance per past scan run, the waves of the latest rollout and its failed deploys.

Plain, portable SQL with ``:name`` parameters, run through a :data:`Query`: a SQLite connection
of :mod:`patchctl.store.fastread` (standard library only: ``patchctl report`` starts fast) or a
SQLAlchemy connection of a :class:`~patchctl.store.Store` (any database). What is large is
aggregated in SQL (10,000 hosts x 100 missing updates stay a few hundred rows here).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from patchctl.rules.lineage import LineageRollout
from patchctl.rules.report import (
    HISTORY_STATES,
    DeployFailure,
    Exposure,
    HistoryPoint,
    NodeThroughput,
    TopMissing,
    WaveRow,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

Row = Mapping[str, Any]
Query = Callable[[str, Mapping[str, Any]], list[Row]]


def sqlite_query(conn: sqlite3.Connection) -> Query:
    def run(sql: str, params: Mapping[str, Any]) -> list[Row]:
        cur = conn.execute(sql, dict(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    return run


def sqlalchemy_query(conn: Connection) -> Query:
    import sqlalchemy as sa

    def run(sql: str, params: Mapping[str, Any]) -> list[Row]:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql), dict(params))]

    return run


def _dt(value: Any) -> datetime | None:
    """A timestamp from either driver (SQLite keeps naive UTC text) as an aware UTC datetime."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _json(value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    return json.loads(value)


def _host_filter(column: str, hosts: Sequence[str] | None, params: dict[str, Any]) -> str:
    """`` AND <column> IN (SELECT id FROM hosts WHERE name IN (...))`` for ``hosts``, or ""."""
    if hosts is None:
        return ""
    names = []
    for i, name in enumerate(hosts):
        params[f"h{i}"] = name
        names.append(f":h{i}")
    inner = ", ".join(names) or "NULL"
    # Only placeholders and a fixed column name are interpolated; values travel as parameters.
    return f" AND {column} IN (SELECT id FROM hosts WHERE name IN ({inner}))"  # noqa: S608 - only placeholders and fixed names are interpolated


def top_missing(q: Query, limit: int, hosts: Sequence[str] | None = None) -> list[TopMissing]:
    """The ``limit`` updates missing on the most hosts; ties: security first, then by name.

    For the whole fleet, from the counts kept per update (``update_counts``, migration 0007); for
    some hosts (``--limit``), counted from their rows.
    """
    params: dict[str, Any] = {"top": max(0, limit)}
    if hosts is None:
        counts = "(SELECT update_id, hosts_missing AS n FROM update_counts WHERE hosts_missing > 0)"
    else:
        where = _host_filter("hu.host_id", hosts, params)
        counts = (
            "(SELECT hu.update_id, COUNT(*) AS n FROM host_updates hu"  # noqa: S608 - only placeholders and fixed names are interpolated
            f" WHERE hu.state = 'missing'{where} GROUP BY hu.update_id)"
        )
    rows = q(
        "SELECT u.uid, u.source, u.name, u.version, u.classification, u.severity, u.major, u.cves, u.urgency, c.n"  # noqa: S608 - only placeholders and fixed names are interpolated
        f" FROM {counts} c"
        " JOIN updates u ON u.id = c.update_id"
        " ORDER BY c.n DESC, CASE WHEN u.classification = 'security' THEN 0 ELSE 1 END, u.name, u.version"
        " LIMIT :top",
        params,
    )
    return [
        TopMissing(
            uid=r["uid"],
            source=r["source"],
            name=r["name"],
            version=r["version"],
            classification=r["classification"],
            severity=r["severity"],
            major=bool(r["major"]),
            cves=tuple(_json(r["cves"]) or ()),
            hosts=int(r["n"]),
            urgency=r["urgency"],
        )
        for r in rows
    ]


# The history point of each scan run: every scan of the run counted. ``Store.finish_run`` keeps
# it on the run's row (``scan_runs.scans_*``, migration 0006); the report reads it from there and
# aggregates ``scans`` only for runs not finished yet, or for some hosts (``--limit``).
_OK_CLEAN = "s.status = 'ok' AND COALESCE(s.missing_total, 0) = 0"
RUN_COUNTS_SQL = (
    "SELECT s.run_id, COUNT(*) AS hosts,"  # noqa: S608 - constants here; {where} gets placeholders only
    f" SUM(CASE WHEN {_OK_CLEAN} AND NOT (s.reboot_required IS TRUE) THEN 1 ELSE 0 END) AS compliant,"
    " SUM(CASE WHEN s.status = 'ok' AND s.missing_total > 0 THEN 1 ELSE 0 END) AS missing,"
    f" SUM(CASE WHEN {_OK_CLEAN} AND s.reboot_required IS TRUE THEN 1 ELSE 0 END) AS reboot_pending,"
    " SUM(CASE WHEN s.status NOT IN ('ok', 'unreachable') THEN 1 ELSE 0 END) AS failed,"
    " SUM(CASE WHEN s.status = 'unreachable' THEN 1 ELSE 0 END) AS unreachable,"
    " SUM(CASE WHEN s.status = 'ok' THEN COALESCE(s.missing_total, 0) ELSE 0 END) AS missing_total"
    " FROM scans s WHERE {where} GROUP BY s.run_id"
)
# RUN_COUNTS_SQL's columns -> the scan_runs columns that keep them.
RUN_COUNT_COLUMNS = {
    "hosts": "scans_total",
    "compliant": "scans_compliant",
    "missing": "scans_missing",
    "reboot_pending": "scans_reboot_pending",
    "failed": "scans_failed",
    "unreachable": "scans_unreachable",
    "missing_total": "scans_missing_updates",
}


def history(q: Query, runs: int, hosts: Sequence[str] | None = None) -> list[HistoryPoint]:
    """Compliance as each of the last ``runs`` scan runs found it, oldest first.

    Each point counts the hosts that run scanned (a nightly scan covers the fleet): compliant
    (nothing missing, no reboot pending), missing, reboot pending, failed, unreachable.
    """
    kept = ", ".join(f"{column} AS {name}" for name, column in RUN_COUNT_COLUMNS.items())
    run_rows = q(
        f"SELECT id AS run_id, started_at, finished_at, {kept} FROM scan_runs ORDER BY id DESC LIMIT :n",  # noqa: S608 - fixed column names only
        {"n": max(1, runs)},
    )
    if not run_rows:
        return []
    counted = {int(r["run_id"]): r for r in run_rows if hosts is None and r["hosts"] is not None}
    todo = sorted(int(r["run_id"]) for r in run_rows if int(r["run_id"]) not in counted)
    if todo:
        params: dict[str, Any] = {"first": todo[0]}
        # Not BETWEEN: SQLite then prefers the run index to the (host, time) one for --limit.
        where = "s.run_id >= :first" + _host_filter("s.host_id", hosts, params)
        wanted = set(todo)
        for r in q(RUN_COUNTS_SQL.format(where=where), params):
            if int(r["run_id"]) in wanted:
                counted[int(r["run_id"])] = r
    times = {int(r["run_id"]): r for r in run_rows}
    out = []
    for run_id in sorted(counted):
        r = counted[run_id]
        if not int(r["hosts"] or 0):
            continue  # a run without scans has no point
        at = _dt(times[run_id]["finished_at"]) or _dt(times[run_id]["started_at"])
        assert at is not None
        out.append(
            HistoryPoint(
                run_id=run_id,
                at=at,
                hosts=int(r["hosts"]),
                by_state={s: int(r[s] or 0) for s in HISTORY_STATES},
                missing_total=int(r["missing_total"] or 0),
            )
        )
    return out


def approved_missing(q: Query, hosts: Sequence[str] | None = None) -> dict[str, int] | None:
    """Per host, how many of its missing updates are approved (their latest decision says so),
    for hosts missing any: the count kept on the host (``hosts.missing_approved``, migration 0008).

    None when the store holds no decision at all (no policy was ever evaluated): then "approved"
    is unknown and a report falls back to counting every missing update.
    """
    if not q("SELECT 1 AS one FROM decisions LIMIT 1", {}):
        return None
    params: dict[str, Any] = {}
    where = _host_filter("id", hosts, params)
    rows = q(f"SELECT name AS host, missing_approved AS n FROM hosts WHERE missing_approved > 0{where}", params)  # noqa: S608 - only placeholders are interpolated
    return {str(r["host"]): int(r["n"]) for r in rows}


def latest_rollout_id(q: Query) -> int | None:
    rows = q("SELECT MAX(id) AS id FROM rollouts", {})
    value = rows[0]["id"] if rows else None
    return None if value is None else int(value)


def wave_rows(q: Query, rollout_id: int) -> list[WaveRow]:
    """The waves of a rollout (``v_wave_progress``) with the hosts recorded for each, in order."""
    rows = q(
        "SELECT v.*, w.hosts AS wave_hosts FROM v_wave_progress v"
        " JOIN rollout_waves w ON w.rollout_id = v.rollout_id AND w.position = v.position"
        " WHERE v.rollout_id = :r ORDER BY v.position",
        {"r": rollout_id},
    )
    return [
        WaveRow(
            rollout_id=int(r["rollout_id"]),
            position=int(r["position"]),
            wave=r["wave"],
            state=r["state"],
            hosts_total=int(r["hosts_total"] or 0),
            hosts_ok=int(r["hosts_ok"] or 0),
            hosts_failed=int(r["hosts_failed"] or 0),
            hosts_unreachable=int(r["hosts_unreachable"] or 0),
            hosts_pending=max(0, int(r["hosts_pending"] or 0)),
            started_at=_dt(r["started_at"]),
            finished_at=_dt(r["finished_at"]),
            bake_days=float(r["bake_days"] or 0),
            halted_reason=r["halted_reason"],
            hosts=tuple(_json(r["wave_hosts"]) or ()),
        )
        for r in rows
    ]


def deploy_failures(q: Query, rollout_id: int) -> list[DeployFailure]:
    """Hosts whose last deploy result in the rollout is not ok (``blocked`` included), with the reason."""
    rows = q(
        "SELECT d.* FROM deploy_results d"
        " WHERE d.id IN (SELECT MAX(id) FROM deploy_results WHERE rollout_id = :r GROUP BY host)"
        " AND d.status <> 'ok' ORDER BY d.host",
        {"r": rollout_id},
    )
    return [_failure(r) for r in rows]


def _failure(r: Row) -> DeployFailure:
    failed = _json(r["failed"]) or {}
    detail = "; ".join(f"{uid}: {why}" for uid, why in sorted(dict(failed).items()))
    at = _dt(r["finished_at"])
    assert at is not None
    return DeployFailure(
        rollout_id=int(r["rollout_id"]),
        wave=r["wave"],
        host=r["host"],
        status=r["status"],
        reason=str(r["error"] or detail or r["status"]),
        at=at,
    )


def blocked_hosts(q: Query) -> list[DeployFailure]:
    """Hosts whose last deploy result in any rollout is ``blocked`` (an approved update the
    repositories no longer offer), with the reason; a later result in a newer rollout (the
    follow-up that delivers the successor) ends it."""
    rows = q(
        "SELECT d.* FROM deploy_results d"
        " WHERE d.id IN (SELECT MAX(id) FROM deploy_results GROUP BY host)"
        " AND d.status = 'blocked' ORDER BY d.host",
        {},
    )
    return [_failure(r) for r in rows]


def exposures(q: Query, hosts: Sequence[str] | None = None) -> list[Exposure]:
    """The open exposures (``v_host_exposure``): per host and lineage, missing since when."""
    params: dict[str, Any] = {}
    where = _host_filter("host_id", hosts, params)
    rows = q(f"SELECT host, source, name, since FROM v_host_exposure WHERE 1 = 1{where}", params)  # noqa: S608 - only placeholders are interpolated
    out = []
    for r in rows:
        since = _dt(r["since"])
        if since is not None:
            out.append(Exposure(str(r["host"]), str(r["source"]), str(r["name"]), since))
    return out


def lineage_rollouts(q: Query) -> list[LineageRollout]:
    """Each rollout's updates as versions of their lineages: when the rollout's first wave
    started and whether a later wave of it recorded a host ok (delivered beyond the pilot)."""
    rows = q(
        "SELECT ru.rollout_id, ru.source, ru.name, ru.version, w0.started_at AS first_started,"
        " (SELECT COUNT(*) FROM deploy_results d JOIN rollout_waves w"
        "  ON w.rollout_id = d.rollout_id AND w.name = d.wave"
        "  WHERE d.rollout_id = ru.rollout_id AND w.position > 0 AND d.status = 'ok') AS beyond"
        " FROM rollout_updates ru"
        " LEFT JOIN rollout_waves w0 ON w0.rollout_id = ru.rollout_id AND w0.position = 0"
        " ORDER BY ru.rollout_id, ru.uid",
        {},
    )
    return [
        LineageRollout(
            rollout_id=int(r["rollout_id"]),
            source=str(r["source"]),
            name=str(r["name"]),
            version=str(r["version"]),
            first_wave_started_at=_dt(r["first_started"]),
            delivered_beyond_first=int(r["beyond"] or 0) > 0,
        )
        for r in rows
    ]


def node_throughput(q: Query) -> list[NodeThroughput]:
    """Per execution node (and the control node) and kind of run, its throughput (``v_node_throughput``)."""

    def rate(value: Any) -> float | None:
        return None if value is None else round(float(value), 1)

    rows = q("SELECT * FROM v_node_throughput ORDER BY kind DESC, node", {})
    return [
        NodeThroughput(
            node=str(r["node"]),
            kind=str(r["kind"]),
            parts=int(r["parts"] or 0),
            parts_failed=int(r["parts_failed"] or 0),
            hosts=int(r["hosts"] or 0),
            seconds=round(float(r["seconds"] or 0), 1),
            hosts_per_minute=rate(r["hosts_per_minute"]),
            last_hosts=int(r["last_hosts"] or 0),
            last_hosts_per_minute=rate(r["last_hosts_per_minute"]),
            last_forks=None if r["last_forks"] is None else int(r["last_forks"]),
            last_error=r["last_error"],
            last_finished_at=_dt(r["last_finished_at"]),
        )
        for r in rows
    ]
