"""The update catalog and its decisions: every update ever seen, with the latest decision of an
operator and of the policy (tables ``updates``, ``update_counts``, ``decisions``).

``decisions`` is only ever inserted into: an update's state is its latest decision. Each function
runs on the connection it is given; :class:`patchctl.store.rollouts.RolloutStore` opens the
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from patchctl.store import schema as t
from patchctl.store.counters import refresh_approvals
from patchctl.store.scan_write import scan_write_lock


@dataclass(frozen=True)
class CatalogEntry:
    """One update of the catalog with its latest decisions and where it is missing."""

    id: int
    uid: str
    source: str
    name: str
    version: str
    classification: str
    severity: str | None
    major: bool
    kbs: tuple[str, ...]
    update_id: str | None
    first_seen_at: datetime
    hosts_missing: int
    manual: Decision | None  # the latest decision by an operator
    automatic: Decision | None  # the latest decision by the policy
    released_at: datetime | None = None  # when the source released it, if it says
    cves: tuple[str, ...] = ()
    advisory_ids: tuple[str, ...] = ()
    # apt: the Debian urgency of the changelog entries it brings, its source package and version,
    # and its changelog's status and reason (apt_changelogs; None: not fetched yet)
    urgency: str | None = None
    source_package: str | None = None
    source_version: str | None = None
    changelog_status: str | None = None
    changelog_reason: str | None = None


@dataclass(frozen=True)
class Decision:
    state: str
    actor: str
    reason: str | None
    decided_at: datetime
    major: bool = False


def read_catalog(conn: Connection) -> list[CatalogEntry]:
    """Every update ever seen, sorted by source, name, version."""
    u, c, d, log = t.updates, t.update_counts, t.decisions, t.apt_changelogs
    rows = conn.execute(
        sa.select(
            u,
            sa.func.coalesce(c.c.hosts_missing, 0).label("hosts_missing"),
            log.c.status.label("changelog_status"),
            log.c.reason.label("changelog_reason"),
        )
        .outerjoin(c, c.c.update_id == u.c.id)
        .outerjoin(
            log,
            sa.and_(log.c.source_package == u.c.source_package, log.c.source_version == u.c.source_version),
        )
        .order_by(u.c.source, u.c.name, u.c.version)
    ).all()
    latest: dict[tuple[int, bool], Decision] = {}
    last_ids = sa.select(sa.func.max(d.c.id)).group_by(d.c.update_id, d.c.automatic)
    for row in conn.execute(sa.select(d).where(d.c.id.in_(last_ids))):
        latest[(int(row.update_id), bool(row.automatic))] = Decision(
            row.state, row.actor, row.reason, row.decided_at, bool(row.major)
        )
    return [
        CatalogEntry(
            id=int(r.id),
            uid=r.uid,
            source=r.source,
            name=r.name,
            version=r.version,
            classification=r.classification,
            severity=r.severity,
            major=bool(r.major),
            kbs=tuple(r.kbs or ()),
            update_id=r.update_id,
            first_seen_at=r.first_seen_at,
            hosts_missing=int(r.hosts_missing),
            manual=latest.get((int(r.id), False)),
            automatic=latest.get((int(r.id), True)),
            released_at=r.released_at,
            cves=tuple(r.cves or ()),
            advisory_ids=tuple(r.advisory_ids or ()),
            urgency=r.urgency,
            source_package=r.source_package,
            source_version=r.source_version,
            changelog_status=r.changelog_status,
            changelog_reason=r.changelog_reason,
        )
        for r in rows
    ]


def record_decisions(conn: Connection, decisions: Sequence[tuple[CatalogEntry, Decision, bool]]) -> None:
    """Append decisions ``(update, decision, automatic)``; the approvals they change are counted
    in the same transaction (``updates.approved``, the hosts' ``missing_approved``)."""
    scan_write_lock(conn)  # PostgreSQL: scans count approved updates; take turns with them
    conn.execute(
        t.decisions.insert(),
        [
            {
                "update_id": entry.id,
                "uid": entry.uid,
                "state": dec.state,
                "actor": dec.actor,
                "automatic": automatic,
                "major": dec.major,
                "reason": dec.reason,
                "decided_at": dec.decided_at,
            }
            for entry, dec, automatic in decisions
        ],
    )
    refresh_approvals(conn, sorted({entry.id for entry, _dec, _automatic in decisions}))
