"""The report flow: read the store's views and build the fleet report."""

from __future__ import annotations

import fnmatch
from datetime import datetime

from patchctl.errors import ConfigError
from patchctl.report import FleetReport, build_report
from patchctl.store import Store


def fleet_report(db_url: str, limit: str | None, now: datetime) -> FleetReport:
    """The compliance report of every host in the store (or those matching ``limit``)."""
    with Store.open(db_url) as store:
        names = store.hosts()
        if limit:
            patterns = [p.strip() for p in limit.replace(":", ",").split(",") if p.strip()]
            names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
            if not names:
                raise ConfigError(f"--limit: {limit!r} matches no host in the store {store.url}")
        rows = store.host_compliance(names)
    return build_report(rows, now)
