"""The audit trail of change freezes: entering and leaving each span of a policy's freezes is
recorded (``freeze entered`` at the span's start, ``freeze left`` at its end, by ``patchctl``) by
the writing commands that look at freezes (deploy, reboot, promote), each event once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Connection

from patchctl.rules.clock import iso_utc
from patchctl.rules.freezes import Freeze
from patchctl.store import audit
from patchctl.store import schema as t

ACTOR = "patchctl"
ENTERED = "freeze entered"
LEFT = "freeze left"
# how far back a command looks for spans it has not recorded yet
LOOKBACK = timedelta(days=31)


def record_transitions(conn: Connection, freezes: Sequence[Freeze], now: datetime) -> int:
    """Record the freeze starts and ends up to ``now`` not recorded yet; how many were written."""
    if not freezes:
        return 0
    a = t.audit_events
    rows = conn.execute(sa.select(a.c.action, a.c.subject, a.c.at).where(a.c.action.in_((ENTERED, LEFT)))).all()
    seen = {(r.action, r.subject, t.as_utc(r.at)) for r in rows}
    written = 0
    for f in freezes:
        for span in f.spans_between(now - LOOKBACK, now + timedelta(microseconds=1)):
            events = [(ENTERED, span.start, f"until {iso_utc(span.end)}; stops {', '.join(f.stops)}; {f.scope_text()}")]
            events.append((LEFT, span.end, f"entered {iso_utc(span.start)}"))
            for action, at, detail in events:
                if at <= now and (action, f.name, at) not in seen:
                    audit.record(conn, at, ACTOR, action, subject=f.name, detail=detail)
                    seen.add((action, f.name, at))
                    written += 1
    return written
