"""The store's side of verification: each verify run's result per host (table ``verify_results``)
and every host's latest (view ``v_host_state``, migration 0003).

Each function runs on the connection it is given; :class:`patchctl.store.reboots.RebootStore`
opens the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from patchctl.rules.clock import iso_utc
from patchctl.store import schema as t


@dataclass(frozen=True)
class VerifyRow:
    """One host's verify result (``verify_results`` / ``v_host_state``)."""

    host: str
    state: str
    detail: str | None
    verified_at: datetime
    missing: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "state": self.state,
            "detail": self.detail,
            "missing": list(self.missing),
            "failed": dict(self.failed),
            "verified_at": iso_utc(self.verified_at),
        }


def record_results(conn: Connection, results: Sequence[VerifyRow]) -> None:
    """Append the results (at least one)."""
    conn.execute(
        t.verify_results.insert(),
        [
            {
                "run_id": v.run_id,
                "host": v.host,
                "state": v.state,
                "detail": v.detail,
                "missing": list(v.missing),
                "failed": dict(v.failed),
                "verified_at": v.verified_at,
            }
            for v in results
        ],
    )


def host_states(conn: Connection) -> list[VerifyRow]:
    """Every verified host's latest result (``v_host_state``), sorted by host."""
    v = t.v_host_state
    return [
        VerifyRow(
            host=r.host,
            state=r.state,
            detail=r.detail,
            verified_at=r.verified_at,
            missing=tuple(r.missing or ()),
            failed=dict(r.failed or {}),
            run_id=r.run_id,
        )
        for r in conn.execute(sa.select(v).order_by(v.c.host))
    ]
