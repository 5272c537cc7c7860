"""Exceptions in the store (table ``update_exceptions``, migration 0012): made, removed and
expired, each with an audit row in the same transaction (the reads: :mod:`patchctl.store.exception_reads`).

An exception ends by itself at its ``until`` (the rule says so at any read); :func:`record_expiries`
writes that end and its audit row (at ``until``, by ``patchctl``) when a writing command next
opens the store.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from patchctl.rules.exceptions import UpdateException, due_to_expire
from patchctl.store import audit
from patchctl.store import schema as t
from patchctl.store.exception_reads import exceptions
from patchctl.store.reports import Query

EXPIRY_ACTOR = "patchctl"


def add(
    conn: Connection,
    now: datetime,
    actor: str,
    target: str,
    pattern: str,
    reason: str,
    owner: str,
    until: datetime,
) -> int:
    """Make an exception and its audit row; its id."""
    x = t.update_exceptions
    new_id = conn.execute(
        x.insert()
        .values(
            target=target,
            pattern=pattern,
            reason=reason,
            owner=owner,
            until=until,
            created_at=now,
            created_by=actor,
        )
        .returning(x.c.id)
    ).scalar_one()
    audit.record(
        conn,
        now,
        actor,
        "exception added",
        subject=f"{target} {pattern}",
        detail=f"#{new_id} owner {owner}, until {until.isoformat()}: {reason}",
    )
    return int(new_id)


def remove(conn: Connection, now: datetime, actor: str, exception: UpdateException) -> None:
    x = t.update_exceptions
    conn.execute(
        x.update().where(x.c.id == exception.id).values(ended_at=now, ended_by=actor, end_reason=t.EXCEPTION_REMOVED)
    )
    audit.record(
        conn,
        now,
        actor,
        "exception removed",
        subject=f"{exception.target} {exception.pattern}",
        detail=f"#{exception.id} (owner {exception.owner}, was until {exception.until.isoformat()})",
    )


def record_expiries(conn: Connection, q: Query, now: datetime) -> list[UpdateException]:
    """End the exceptions whose ``until`` has come, each at its ``until`` with an audit row there;
    the ones ended."""
    x = t.update_exceptions
    ended = due_to_expire(exceptions(q), now)
    for e in ended:
        conn.execute(
            x.update()
            .where(x.c.id == e.id, x.c.ended_at.is_(None))
            .values(ended_at=e.until, ended_by=EXPIRY_ACTOR, end_reason=t.EXCEPTION_EXPIRED)
        )
        audit.record(
            conn,
            e.until,
            EXPIRY_ACTOR,
            "exception expired",
            subject=f"{e.target} {e.pattern}",
            detail=f"#{e.id} (owner {e.owner}): {e.reason}",
        )
    return ended
