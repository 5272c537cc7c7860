"""Change safety in the store: health check results (``health_results``) and the services a host
still runs from replaced files (``hosts.restart_pending``). Written in the transaction of the run
result they belong to (a deploy's host result, a reboot, a restart, a health run)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from patchctl.store import schema as t
from patchctl.store.db import Store


def write_health(
    conn: sa.Connection,
    host: str,
    context: str,
    checks: Sequence[dict[str, Any]],
    at: datetime,
    rollout_id: int | None = None,
    wave: str | None = None,
) -> None:
    """One row per check of one run on ``host`` (nothing when it ran no checks)."""
    rows = [
        {
            "host": host,
            "context": context,
            "rollout_id": rollout_id,
            "wave": wave,
            "name": str(c.get("name") or c.get("kind") or "check")[:255],
            "kind": str(c.get("kind") or "command")[:32],
            "state": str(c.get("state") or t.HEALTH_FAILED)[:16],
            "before": str(c["before"])[:16] if c.get("before") is not None else None,
            "message": str(c.get("message") or "")[:2000],
            "checked_at": at,
        }
        for c in checks
    ]
    if rows:
        conn.execute(t.health_results.insert(), rows)


def write_restart_pending(conn: sa.Connection, host: str, services: Sequence[dict[str, Any]], at: datetime) -> None:
    """What ``host`` still runs from replaced files, as a change found it: an empty list clears
    it; the since-time is kept while something stays pending."""
    h = t.hosts
    if not services:
        conn.execute(h.update().where(h.c.name == host).values(restart_pending=None, restart_pending_since=None))
        return
    conn.execute(
        h.update()
        .where(h.c.name == host)
        .values(
            restart_pending=list(services),
            restart_pending_since=sa.func.coalesce(h.c.restart_pending_since, at),
        )
    )


class SafetyStore:
    """The writes of a restart run: what still runs replaced files on a host and its health
    checks, in one transaction per host."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record_restart(
        self, host: str, pending: Sequence[dict[str, Any]], health: Sequence[dict[str, Any]], at: datetime
    ) -> None:
        with self.store._write(f"record the restart of {host}") as conn:
            write_restart_pending(conn, host, pending, at)
            write_health(conn, host, "restart", health, at)
