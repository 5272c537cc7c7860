"""The append-only audit trail (table ``audit_events``, read with the decisions through the view
``v_audit_log``): who did what, when, to which rollout.

:func:`record` writes on the connection of the change it records, so the change and its audit row
commit or roll back together. ``audit_events`` is only ever inserted into.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from patchctl.store import schema as t


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    subject: str | None
    rollout_id: int | None
    detail: str | None


def record(
    conn: Connection,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None = None,
    rollout_id: int | None = None,
    detail: str | None = None,
) -> None:
    """Append one event, in the transaction of ``conn``."""
    conn.execute(
        t.audit_events.insert().values(
            at=at, actor=actor, action=action, subject=subject, rollout_id=rollout_id, detail=detail
        )
    )


def audit_log(conn: Connection, rollout_id: int | None = None, limit: int | None = None) -> list[AuditRow]:
    """The trail in order (one rollout's, or all); ``limit``: only the last so many events."""
    v = t.v_audit_log
    # At one instant (a simulated clock gives many): decisions first (a rollout freezes what the
    # policy just approved), then each table's insertion order.
    query = sa.select(v).order_by(v.c.at, v.c.source, v.c.source_id)
    if rollout_id is not None:
        query = query.where(v.c.rollout_id == rollout_id)
    rows = conn.execute(query).all()
    out = [AuditRow(r.at, r.actor, r.action, r.subject, r.rollout_id, r.detail) for r in rows]
    return out[-limit:] if limit else out
