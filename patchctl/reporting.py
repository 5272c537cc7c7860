"""The report flow: read the store's views and build the fleet report."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import datetime

from patchctl.errors import ConfigError
from patchctl.rules.report import ComplianceRow, FleetReport, build_report
from patchctl.store import fastread


def _matching(names: list[str], limit: str | None, where: str) -> set[str] | None:
    """The host names matching ``limit`` (None: no limit, every host)."""
    if not limit:
        return None
    patterns = [p.strip() for p in limit.replace(":", ",").split(",") if p.strip()]
    wanted = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
    if not wanted:
        raise ConfigError(f"--limit: {limit!r} matches no host in the store {where}")
    return wanted


def fleet_report(db_url: str, limit: str | None, now: datetime) -> FleetReport:
    """The compliance report of every host in the store (or those matching ``limit``).

    A SQLite store at the newest schema is read with the standard library alone (no SQLAlchemy
    or Alembic import: ``patchctl report`` starts fast); any other store through the Store.
    """
    rows: Sequence[ComplianceRow]
    conn = fastread.open_current(db_url)
    if conn is not None:
        try:
            wanted = _matching(fastread.host_names(conn), limit, db_url)
            rows = fastread.host_compliance(conn, wanted)
        finally:
            conn.close()
        return build_report(rows, now)
    from patchctl.store import Store

    with Store.open(db_url) as store:
        wanted = _matching(store.hosts(), limit, store.url)
        # All rows and a filter here: an IN list of thousands of names is slow in SQLite.
        rows = [r for r in store.host_compliance() if wanted is None or r.host in wanted]
    return build_report(rows, now)
