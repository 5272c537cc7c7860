"""What ``patchctl report`` reads of change safety: each host's latest health checks and the
services a host still runs from replaced files. Plain SQL through a
:data:`patchctl.store.reports.Query` (standard library only, like the report's other reads)."""

from __future__ import annotations

from collections.abc import Sequence

from patchctl.rules.report import HealthCheck, RestartPending, restart_services
from patchctl.store.reports import Query, _dt, _json


def health_checks(q: Query, hosts: Sequence[str] | None = None) -> list[HealthCheck]:
    """Each host's latest run of health checks (the rows of its newest ``checked_at``)."""
    rows = q(
        "SELECT r.* FROM health_results r"
        " JOIN (SELECT host, MAX(checked_at) AS at FROM health_results GROUP BY host) last"
        " ON last.host = r.host AND last.at = r.checked_at ORDER BY r.host, r.id",
        {},
    )
    wanted = None if hosts is None else set(hosts)
    return [
        HealthCheck(
            host=str(r["host"]),
            context=str(r["context"]),
            name=str(r["name"]),
            kind=str(r["kind"]),
            state=str(r["state"]),
            before=None if r["before"] is None else str(r["before"]),
            message=str(r["message"] or ""),
            at=_dt(r["checked_at"]),
        )
        for r in rows
        if wanted is None or r["host"] in wanted
    ]


def restart_pending_hosts(q: Query, hosts: Sequence[str] | None = None) -> list[RestartPending]:
    """The hosts still running replaced files, with the services to restart and since when."""
    rows = q(
        "SELECT name, restart_pending, restart_pending_since FROM hosts"
        " WHERE restart_pending IS NOT NULL ORDER BY name",
        {},
    )
    wanted = None if hosts is None else set(hosts)
    out = []
    for r in rows:
        entries = _json(r["restart_pending"])
        if (wanted is None or r["name"] in wanted) and isinstance(entries, list) and entries:
            out.append(RestartPending(str(r["name"]), restart_services(entries), _dt(r["restart_pending_since"])))
    return out
