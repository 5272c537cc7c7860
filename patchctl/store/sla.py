"""What the report's SLA section reads: the updates missing now with since when each host is
exposed (``v_host_exposure``), and the times to patch (``v_time_to_patch``). Through the
report's :data:`patchctl.store.reports.Query`, so both of its read paths use it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from patchctl.rules.sla import OpenItem, Patched, Span
from patchctl.store import reports as reads


def open_items(q: reads.Query, hosts: Sequence[str] | None = None) -> list[OpenItem]:
    """Each update missing on a host now, exposed since the lineage's exposure clock (else since
    the host was first found missing it)."""
    params: dict[str, Any] = {}
    where = reads._host_filter("hu.host_id", hosts, params)
    rows = q(
        "SELECT h.name AS host, u.uid, u.source, u.name, u.classification, u.severity, u.urgency,"  # noqa: S608 - only placeholders and fixed names are interpolated
        " hu.first_seen_at FROM host_updates hu"
        " JOIN hosts h ON h.id = hu.host_id JOIN updates u ON u.id = hu.update_id"
        f" WHERE hu.state = 'missing'{where}",
        params,
    )
    clock = {(e.host, e.source, e.name): e.since for e in reads.exposures(q, hosts)}
    out = []
    for r in rows:
        first = reads._dt(r["first_seen_at"])
        if first is None:
            continue
        since = min(first, clock.get((str(r["host"]), str(r["source"]), str(r["name"])), first))
        host, uid, cls = str(r["host"]), str(r["uid"]), str(r["classification"])
        out.append(OpenItem(host, uid, cls, r["severity"], r["urgency"], since))
    return out


def patched(q: reads.Query, hosts: Sequence[str] | None = None) -> list[Patched]:
    """The updates found installed after they were missing (``v_time_to_patch``); the rule
    (:func:`patchctl.rules.sla.evaluate_sla`) keeps those of its period."""
    params: dict[str, Any] = {}
    where = reads._host_filter("host_id", hosts, params)
    rows = q(
        f"SELECT host, uid, classification, missing_since, installed_at FROM v_time_to_patch WHERE 1 = 1{where}",  # noqa: S608 - only placeholders are interpolated
        params,
    )
    out = []
    for r in rows:
        start, end = reads._dt(r["missing_since"]), reads._dt(r["installed_at"])
        if start is None or end is None:
            continue
        out.append(Patched(str(r["host"]), str(r["uid"]), str(r["classification"]), start, end))
    return out


def spans(q: reads.Query, open_now: Sequence[OpenItem], hosts: Sequence[str] | None = None) -> list[Span]:
    """Each host's stored span of each update (the breach history's input): the open ones from
    ``open_now`` (what :func:`open_items` read, on the exposure clock), the others from first found
    missing until the scan that found them installed or gone. One span per host and update: a
    reopened one keeps its latest span only (the store keeps one row per host and update)."""
    out = [Span(i.host, i.uid, i.classification, i.severity, i.urgency, i.since, None) for i in open_now]
    params: dict[str, Any] = {}
    where = reads._host_filter("hu.host_id", hosts, params)
    rows = q(
        "SELECT h.name AS host, u.uid, u.classification, u.severity, u.urgency,"  # noqa: S608 - only placeholders and fixed names are interpolated
        " hu.first_seen_at, hu.resolved_at FROM host_updates hu"
        " JOIN hosts h ON h.id = hu.host_id JOIN updates u ON u.id = hu.update_id"
        f" WHERE hu.state <> 'missing' AND hu.resolved_at IS NOT NULL{where}",
        params,
    )
    for r in rows:
        start, end = reads._dt(r["first_seen_at"]), reads._dt(r["resolved_at"])
        if start is None or end is None:
            continue
        out.append(
            Span(str(r["host"]), str(r["uid"]), str(r["classification"]), r["severity"], r["urgency"], start, end)
        )
    return out
