"""The store's reads for the flows: hosts, the views ``v_host_compliance``, ``v_missing_updates``
and ``v_node_throughput``, scan runs, and the packages a scan asks the hosts about.

Each function reads on the connection it is given; rows come back as the frozen dataclasses here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from patchctl.rules.report import HostComplianceRow
from patchctl.store import schema as t


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


def get_run(conn: Connection, run_id: int) -> ScanRunRow | None:
    """The run ``run_id``; None when there is none."""
    columns = [t.scan_runs.c[f.name] for f in fields(ScanRunRow)]
    row = conn.execute(sa.select(*columns).where(t.scan_runs.c.id == run_id)).one_or_none()
    return None if row is None else ScanRunRow(**row._asdict())


def unfinished_runs(conn: Connection, kind: str, started_before: datetime) -> list[int]:
    """Ids of runs of ``kind`` still ``running`` that started before ``started_before``."""
    sr = t.scan_runs
    return [
        int(i)
        for i in conn.scalars(
            sa.select(sr.c.id)
            .where(sr.c.kind == kind, sr.c.status == t.RUN_RUNNING, sr.c.started_at < started_before)
            .order_by(sr.c.id)
        )
    ]


def node_throughput(conn: Connection) -> list[dict[str, Any]]:
    """``v_node_throughput``: per node and kind of run, hosts, seconds and hosts per minute."""
    v = t.v_node_throughput
    return [dict(r._mapping) for r in conn.execute(sa.select(v).order_by(v.c.kind, v.c.node))]


def watched_packages(conn: Connection, source: str) -> list[str]:
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
    return [str(name) for name in conn.scalars(query)]


def host_names(conn: Connection) -> list[str]:
    """Names of every host the store knows, sorted."""
    return [str(n) for n in conn.scalars(sa.select(t.hosts.c.name).order_by(t.hosts.c.name))]


def host_compliance(conn: Connection, hosts: Iterable[str] | None = None) -> list[HostComplianceRow]:
    """Rows of ``v_host_compliance`` (all hosts, or the named ones), sorted by host."""
    v = t.v_host_compliance
    query = sa.select(v).order_by(v.c.host)
    if hosts is not None:
        query = query.where(v.c.host.in_(list(hosts)))
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


def missing_updates(conn: Connection, host: str | None = None) -> list[MissingUpdateRow]:
    """Rows of ``v_missing_updates`` (one host or all), sorted by host then update."""
    v = t.v_missing_updates
    query = sa.select(v).order_by(v.c.host, v.c.source, v.c.name, v.c.version)
    if host is not None:
        query = query.where(v.c.host == host)
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


def host_lineages(conn: Connection, hosts: Iterable[str]) -> dict[str, set[tuple[str, str]]]:
    """host -> the (source, package name) its scans ever listed, missing, installed or gone: the
    package lineages a rollout's update may apply to on the host (patchctl.rules.lineage)."""
    h, hu, u = t.hosts, t.host_updates, t.updates
    names = list(hosts)
    out: dict[str, set[tuple[str, str]]] = {name: set() for name in names}
    query = (
        sa.select(h.c.name, u.c.source, u.c.name.label("package"))
        .distinct()
        .join(hu, hu.c.host_id == h.c.id)
        .join(u, u.c.id == hu.c.update_id)
        .where(h.c.name.in_(names))
    )
    for row in conn.execute(query):
        out[row.name].add((row.source, row.package))
    return out
